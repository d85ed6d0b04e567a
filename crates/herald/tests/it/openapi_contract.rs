//! The served OpenAPI document is the contract; this walks it against the running server.
//! For every operation: its valid example must be accepted (2xx); every variant the
//! document says is invalid — a field missing, of the wrong type, out of range, over-long,
//! off its pattern, unknown; an unknown or malformed query parameter; a body that is not
//! JSON, of another content type, over the size limit — must be refused with a documented
//! status, and every variant at the edge of a documented range or length accepted. Every
//! answer must have a status the operation lists, its documented content type, a body that
//! matches the documented schema (with no undocumented field) and the documented headers.
//! Without a key every authenticated operation answers a documented 401, and for an id that
//! names nothing a documented 404; a method a path does not list answers 405.

mod examples;
mod mutations;
mod schema_check;

use crate::support::*;
use examples::{Body, Example, Fixtures, example, fixtures};
use mutations::{Case, Change, Expect, body_cases, query_cases};
use reqwest::Method;
use schema_check::Schemas;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// An answer as the walk sees it.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// How a request is sent apart from its example and change.
#[derive(Clone, Copy, Default)]
struct Sending<'a> {
    without_key: bool,
    /// Replaces the body (bytes) and its content type.
    raw_body: Option<(&'a str, &'a [u8])>,
}

/// One operation of the document.
struct Op<'d> {
    method: &'d str,
    path: &'d str,
    id: &'d str,
    spec: &'d Value,
}

fn operations(doc: &Value) -> Vec<Op<'_>> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, spec) in item.as_object().unwrap() {
            ops.push(Op { method, path, id: spec["operationId"].as_str().unwrap(), spec });
        }
    }
    ops
}

async fn send(app: &TestApp, op: &Op<'_>, ex: &Example, change: Option<&Change>, how: Sending<'_>) -> Answer {
    let mut path = op.path.to_owned();
    for (name, value) in &ex.path {
        path = path.replace(&format!("{{{name}}}"), value);
    }
    let mut query = ex.query.clone();
    let mut json_body = match &ex.body {
        Body::Json(v) => Some(v.clone()),
        _ => None,
    };
    if let Some(c) = change {
        let mut no_body = Value::Null;
        c.apply(json_body.as_mut().unwrap_or(&mut no_body), &mut query);
    }
    let mut url = app.url(&path);
    if !query.is_empty() {
        url.push('?');
        url.push_str(&url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&query).finish());
    }
    let method = Method::from_bytes(op.method.to_uppercase().as_bytes()).unwrap();
    let mut req = app.http.request(method, url);
    if !how.without_key {
        req = req.bearer_auth(KEY);
    }
    req = match (how.raw_body, json_body, &ex.body) {
        (Some((content_type, bytes)), _, _) => req.header("content-type", content_type).body(bytes.to_vec()),
        (None, Some(v), _) => req.json(&v),
        (None, None, Body::Raw(content_type, bytes)) => req.header("content-type", *content_type).body(bytes.clone()),
        (None, None, _) => req,
    };
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    Answer { status, headers, body: r.bytes().await.unwrap().to_vec() }
}

/// Everything about `answer` the document does not say.
fn undocumented(s: &Schemas, op: &Op<'_>, answer: &Answer) -> Vec<String> {
    let mut out = Vec::new();
    let Some(doc) = op.spec["responses"].get(answer.status.to_string()) else {
        return vec![format!("status {} is not documented: {}", answer.status, String::from_utf8_lossy(&answer.body))];
    };
    let content_type = answer.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    match doc["content"].as_object() {
        None if !answer.body.is_empty() => out.push(format!("{}: a body where none is documented", answer.status)),
        None => {}
        Some(content) => match content.get(essence) {
            None => out.push(format!("{}: content type {content_type:?} is not documented", answer.status)),
            Some(media) if essence.ends_with("json") => {
                let body = answer.json();
                for e in s.errors(&media["schema"], &body, true) {
                    out.push(format!("{}: {e}", answer.status));
                }
                if essence == "application/problem+json" && body["status"] != answer.status {
                    out.push(format!("problem status {} on a {}", body["status"], answer.status));
                }
            }
            Some(_) => {}
        },
    }
    for name in doc["headers"].as_object().into_iter().flat_map(|h| h.keys()) {
        if !answer.headers.contains_key(name.as_str()) {
            out.push(format!("{}: documented header {name} is missing", answer.status));
        }
    }
    out
}

/// What is wrong with `answer` to a request that expected `expect`.
fn unexpected(expect: &Expect, answer: &Answer) -> Option<String> {
    match expect {
        Expect::Accepted if !(200..300).contains(&answer.status) => {
            Some(format!("refused with {}: {}", answer.status, String::from_utf8_lossy(&answer.body)))
        }
        Expect::Refused(field) => {
            let body = answer.json();
            let named = body["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["field"].as_str())
                .any(|f| f == field || f.starts_with(&format!("{field}[")) || f.starts_with(&format!("{field}.")));
            (answer.status != 400 || !named).then(|| format!("not a 400 naming {field}: {} {body}", answer.status))
        }
        _ => None,
    }
}

/// A well-formed id (or address) of the same kind as `value` that names nothing.
fn nothing_like(value: &str) -> String {
    match value.split_once('_') {
        _ if value.contains('@') => "nobody@agents.test".into(),
        Some((prefix, _)) => format!("{prefix}_{}", "0".repeat(32)),
        None => panic!("what kind of id is {value}?"),
    }
}

/// The kinds of variant the walk must have sent at least once (a walk that derives nothing
/// from the document proves nothing).
const KINDS: &[&str] = &[
    "unknown field",
    "missing",
    "of the wrong type",
    "above its maximum",
    "below its minimum",
    "longer than",
    "not matching",
    "unknown query parameter",
    "two-byte characters",
    "at its maximum",
];

/// Walks one operation; returns what was wrong, and notes in `kinds` what it sent.
async fn walk(
    app: &TestApp,
    s: &Schemas<'_>,
    fx: &Fixtures,
    op: &Op<'_>,
    n: &mut usize,
    kinds: &mut BTreeSet<&'static str>,
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut fail = |what: &str, problems: Vec<String>| {
        failures.extend(problems.into_iter().map(|p| format!("{} {} ({}) {what}: {p}", op.method, op.path, op.id)));
    };
    let mut next = || {
        *n += 1;
        *n
    };
    let Some(valid) = example(app, fx, op.id, next()).await else {
        fail("", vec!["has no example: add one to openapi_contract/examples.rs".into()]);
        return failures;
    };
    let answer = send(app, op, &valid, None, Sending::default()).await;
    fail(
        "valid request",
        undocumented(s, op, &answer).into_iter().chain(unexpected(&Expect::Accepted, &answer)).collect(),
    );

    if op.spec.get("security").is_some() {
        let ex = example(app, fx, op.id, next()).await.unwrap();
        let answer = send(app, op, &ex, None, Sending { without_key: true, ..Default::default() }).await;
        let mut problems = undocumented(s, op, &answer);
        if answer.status != 401 || !answer.headers.contains_key("www-authenticate") {
            problems.push(format!("not a 401 with WWW-Authenticate: {}", answer.status));
        }
        fail("without a key", problems);
    }

    if !valid.path.is_empty() {
        let mut ex = example(app, fx, op.id, next()).await.unwrap();
        for (_, value) in &mut ex.path {
            *value = nothing_like(value);
        }
        let answer = send(app, op, &ex, None, Sending::default()).await;
        let mut problems = undocumented(s, op, &answer);
        if answer.status != 404 {
            problems.push(format!("expected 404, got {}", answer.status));
        }
        fail("for a resource that does not exist", problems);
    }

    let body_doc = &op.spec["requestBody"]["content"];
    let mut cases: Vec<Case> = Vec::new();
    if let Some(schema) = body_doc.get("application/json").map(|m| &m["schema"]) {
        cases.extend(body_cases(s, schema));
    }
    let params = op.spec["parameters"].as_array().cloned().unwrap_or_default();
    if op.spec.get("security").is_some() || params.iter().any(|p| p["in"] == "query") {
        cases.extend(query_cases(s, &params));
    }
    for case in &cases {
        kinds.extend(KINDS.iter().filter(|k| case.what.contains(*k)));
        let ex = example(app, fx, op.id, next()).await.unwrap();
        let answer = send(app, op, &ex, Some(&case.change), Sending::default()).await;
        fail(&case.what, undocumented(s, op, &answer).into_iter().chain(unexpected(&case.expect, &answer)).collect());
    }

    if body_doc.is_object() {
        // Just over the route's limit (the server answers before reading a much larger
        // body whole, and a client may then see the connection close instead).
        let limit = if op.path == "/api/v1/events" { 256 * 1024 } else { 64 * 1024 };
        let too_large = vec![b' '; limit + 1024];
        let content_type = body_doc.as_object().unwrap().keys().next().unwrap().clone();
        let wrong_type = if content_type == "application/json" { "text/plain" } else { "application/json" };
        let variants: [(&str, &str, &[u8], u16); 4] = [
            ("with another content type", wrong_type, b"{}", 415),
            ("over the size limit", &content_type, &too_large, 413),
            ("not JSON", "application/json", b"{not json", 400),
            ("not an object", "application/json", b"[]", 400),
        ];
        for (what, content_type_sent, bytes, status) in variants {
            if status == 400 && content_type != "application/json" {
                continue;
            }
            let ex = example(app, fx, op.id, next()).await.unwrap();
            let how = Sending { raw_body: Some((content_type_sent, bytes)), ..Default::default() };
            let answer = send(app, op, &ex, None, how).await;
            let mut problems = undocumented(s, op, &answer);
            if answer.status != status {
                problems.push(format!("expected {status}, got {}", answer.status));
            }
            fail(what, problems);
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_only_what_the_openapi_document_says() {
    // Messages above 64 KiB are 413, like other bodies outside events.
    let app =
        spawn_app_with(Options { tweak: Box::new(|s| s.smtp_max_message_size = 64 * 1024), ..Default::default() })
            .await;
    let doc: Value = app.http.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let s = Schemas::new(&doc);
    let fx = fixtures(&app).await;
    let mut n = 0;
    let mut failures = Vec::new();
    let mut kinds = BTreeSet::new();
    let ops = operations(&doc);
    for op in &ops {
        failures.extend(walk(&app, &s, &fx, op, &mut n, &mut kinds).await);
    }
    let missing: Vec<_> = KINDS.iter().filter(|k| !kinds.contains(*k)).collect();
    assert!(missing.is_empty(), "the walk sent no request {missing:?}");
    failures.extend(states_the_walk_does_not_reach(&app, &s, &fx, &ops).await);
    for (path, item) in doc["paths"].as_object().unwrap() {
        if item.get("put").is_some() {
            continue;
        }
        let concrete =
            path.replace("{id}", "wh_00000000000000000000000000000000").replace("{address}", "a@agents.test");
        let r = app.http.put(app.url(&concrete)).bearer_auth(KEY).send().await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status != 405 || body["status"] != 405 {
            failures.push(format!("PUT {path}: expected a 405 problem, got {status} {body}"));
        }
    }
    assert!(failures.is_empty(), "{} departures from the document:\n{}", failures.len(), failures.join("\n"));
}

/// Answers that need a state: a conflict, a rate limit.
async fn states_the_walk_does_not_reach(app: &TestApp, s: &Schemas<'_>, fx: &Fixtures, ops: &[Op<'_>]) -> Vec<String> {
    let op = |id: &str| ops.iter().find(|o| o.id == id).unwrap_or_else(|| panic!("no operation {id}"));
    let request = |path: Vec<(&'static str, String)>, body: Body| Example { path, query: Vec::new(), body };
    let recover = || request(vec![("id", fx.webhook.clone())], Body::Json(json!({"since": "2020-01-01T00:00:00Z"})));
    let cases = [
        ("test_webhook", "to a disabled webhook", request(vec![("id", fx.disabled_webhook.clone())], Body::None), 409),
        ("retry_delivery", "of a delivered delivery", request(vec![("id", fx.delivered.clone())], Body::None), 409),
        ("skip_delivery", "of a delivered delivery", request(vec![("id", fx.delivered.clone())], Body::None), 409),
        ("create_event_type", "already registered", request(vec![], Body::Json(json!({"name": fx.event_type}))), 409),
        ("create_agent", "on a taken address", request(vec![], Body::Json(json!({"address": fx.agent}))), 409),
        ("recover_webhook", "for the first time", recover(), 202),
        ("recover_webhook", "again within the interval", recover(), 429),
    ];
    let mut failures = Vec::new();
    for (id, what, ex, status) in cases {
        let op = op(id);
        let answer = send(app, op, &ex, None, Sending::default()).await;
        let mut problems = undocumented(s, op, &answer);
        if answer.status != status {
            problems.push(format!("expected {status}, got {}", answer.status));
        }
        failures.extend(problems.into_iter().map(|p| format!("{id} {what}: {p}")));
    }
    failures
}
