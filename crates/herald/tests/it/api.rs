//! Management API: auth, tenancy, validation, pagination.

use crate::support::*;
use reqwest::Method;
use serde_json::json;

async fn every_api_route_needs_a_valid_key(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    for (m, p) in [
        (Method::GET, "/api/v1/webhooks"),
        (Method::POST, "/api/v1/webhooks"),
        (Method::POST, "/api/v1/events"),
        (Method::GET, "/api/v1/deliveries/whd_00000000000000000000000000000000"),
    ] {
        let r = app.http.request(m.clone(), app.url(p)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{m} {p}");
        assert!(r.headers().get("www-authenticate").is_some());
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let (s, _) = app.call_as("hk_ffffffffffffffffffffffffffffffffffffffffffffffff", m.clone(), p, None).await;
        assert_eq!(s, 401, "unknown key on {m} {p}");
    }
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

async fn another_accounts_resources_are_not_found(backend: Backend) {
    let rx = Receiver::start().await;
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let (wh, _) = app.webhook(&rx.url("t")).await;
    app.publish_received().await;
    let d = app.wait_delivery(&wh, "delivered", |d| d["status"] == "delivered").await;
    let did = d["id"].as_str().unwrap();

    let other = herald_domain::ApiKey::generate();
    app.store.create_account("other", &other.hash(), time::OffsetDateTime::now_utc()).await.unwrap();
    let k = other.expose();
    for (m, p, body) in [
        (Method::GET, format!("/api/v1/webhooks/{wh}"), None),
        (Method::PATCH, format!("/api/v1/webhooks/{wh}"), Some(json!({"enabled": false}))),
        (Method::DELETE, format!("/api/v1/webhooks/{wh}"), None),
        (Method::GET, format!("/api/v1/webhooks/{wh}/deliveries"), None),
        (Method::GET, format!("/api/v1/deliveries/{did}"), None),
        (Method::POST, format!("/api/v1/deliveries/{did}/retry"), None),
        (Method::POST, format!("/api/v1/webhooks/{wh}/rotate-secret"), None),
        (Method::POST, format!("/api/v1/webhooks/{wh}/test"), None),
        (
            Method::POST,
            format!("/api/v1/webhooks/{wh}/recover"),
            Some(json!({"since": "2020-01-01T00:00:00Z", "dry_run": true})),
        ),
        (Method::GET, format!("/api/v1/events/{}", d["event_id"].as_str().unwrap()), None),
        // Guessing: well-formed ids that exist nowhere look exactly the same.
        (Method::GET, "/api/v1/webhooks/wh_0123456789abcdef0123456789abcdef".to_string(), None),
        (Method::GET, "/api/v1/deliveries/whd_0123456789abcdef0123456789abcdef".to_string(), None),
    ] {
        let (s, v) = app.call_as(k, m.clone(), &p, body).await;
        assert_eq!(s, 404, "{m} {p}: {v}");
    }
    for list in ["/api/v1/webhooks", "/api/v1/events"] {
        let (s, v) = app.call_as(k, Method::GET, list, None).await;
        assert_eq!(s, 200);
        assert!(v["items"].as_array().unwrap().is_empty(), "{list} of B shows nothing of A");
    }
    app.call(Method::POST, "/api/v1/event-types", Some(json!({"name": "a.secret"}))).await;
    let (_, types) = app.call_as(k, Method::GET, "/api/v1/event-types", None).await;
    assert!(!types.to_string().contains("a.secret"));
    let body = json!({"url": "http://127.0.0.1:9/", "events": ["a.secret"]});
    let (s, _) = app.call_as(k, Method::POST, "/api/v1/webhooks", Some(body)).await;
    assert_eq!(s, 400, "A's custom type is unknown to B");
    let ev = app.call_as(k, Method::POST, "/api/v1/events", Some(json!({"type": "email.received", "data": {}}))).await;
    assert_eq!(ev.1["deliveries"], 0, "B's events never reach A's webhooks");
    // A's webhook is untouched.
    let (_, w) = app.call(Method::GET, &format!("/api/v1/webhooks/{wh}"), None).await;
    assert_eq!(w["enabled"], true);
}

async fn webhook_crud_follows_the_contract(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let v = app
        .create_webhook(json!({"url": "http://127.0.0.1:9/in", "events": ["email.sent", "email.sent", "email.received"], "description": "mine"}))
        .await;
    let id = v["id"].as_str().unwrap();
    assert!(id.starts_with("wh_") && id.len() == 35);
    let secret = v["signing_secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_") && secret.len() == 70);
    assert_eq!(v["events"], json!(["email.sent", "email.received"]), "duplicates removed");
    assert_eq!(v["max_in_flight"], 1);
    assert_eq!(v["enabled"], true);

    let (s, got) = app.call(Method::GET, &format!("/api/v1/webhooks/{id}"), None).await;
    assert_eq!(s, 200);
    assert!(got.get("signing_secret").is_none(), "secret shown on create only");
    let (_, list) = app.call(Method::GET, "/api/v1/webhooks", None).await;
    assert!(!list.to_string().contains(secret));

    let (s, p) = app
        .call(Method::PATCH, &format!("/api/v1/webhooks/{id}"), Some(json!({"description": "new", "max_in_flight": 8})))
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["description"], "new");
    assert_eq!(p["max_in_flight"], 8);
    assert_eq!(p["url"], "http://127.0.0.1:9/in");
    assert_eq!(p["events"], json!(["email.sent", "email.received"]));

    let (s, _) = app.call(Method::DELETE, &format!("/api/v1/webhooks/{id}"), None).await;
    assert_eq!(s, 204);
    let (s, _) = app.call(Method::GET, &format!("/api/v1/webhooks/{id}"), None).await;
    assert_eq!(s, 404);
}

async fn bad_input_gets_a_problem_and_changes_nothing(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let cases = [
        json!({"url": "http://127.0.0.1:9/", "events": ["nope.never"]}),
        json!({"url": "http://127.0.0.1:9/", "events": []}),
        json!({"url": "ftp://127.0.0.1/", "events": ["email.sent"]}),
        json!({"url": "http://127.0.0.1:9/", "events": ["email.sent"], "max_in_flight": 0}),
        json!({"url": "http://127.0.0.1:9/", "events": ["email.sent"], "max_in_flight": 257}),
        json!({"url": "http://127.0.0.1:9/", "events": ["email.sent"], "description": "a\r\nb"}),
        json!({"url": "http://127.0.0.1:9/", "events": ["email.sent"], "description": "x".repeat(201)}),
        json!({"url": "http://127.0.0.1:9/", "events": ["email.sent"], "surprise": true}),
        json!({"url": 5, "events": ["email.sent"]}),
        json!({"url": "http://127.0.0.1:9/", "events": ["email.sent"], "filters": {"labels": vec!["l"; 51].iter().enumerate().map(|(i, _)| i.to_string()).collect::<Vec<_>>()}}),
    ];
    for c in cases {
        let (s, v) = app.call(Method::POST, "/api/v1/webhooks", Some(c.clone())).await;
        assert_eq!(s, 400, "{c} → {v}");
        assert!(v["type"].as_str().unwrap().starts_with("/problems/"), "{v}");
        assert!(v["detail"].is_string());
    }
    let (s, v) = app
        .call(Method::POST, "/api/v1/webhooks", Some(json!({"url": "http://127.0.0.1:9/", "events": ["bogus"]})))
        .await;
    assert_eq!(s, 400);
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("email.received"), "names allowed types: {v}");
    let (_, list) = app.call(Method::GET, "/api/v1/webhooks", None).await;
    assert!(list["items"].as_array().unwrap().is_empty(), "nothing was written");

    for body in [
        json!({"type": "nope", "data": {}}),
        json!({"type": "email.sent", "data": [1]}),
        json!({"type": "email.sent"}),
        json!({"type": "email.sent", "data": {}, "labels": ["\n"]}),
    ] {
        let (s, v) = app.call(Method::POST, "/api/v1/events", Some(body.clone())).await;
        assert_eq!(s, 400, "{body} → {v}");
    }
    let r = app
        .http
        .post(app.url("/api/v1/events"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = app
        .http
        .post(app.url("/api/v1/events"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(vec![b' '; 300 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = app.http.post(app.url("/api/v1/events")).bearer_auth(KEY).body("{}").send().await.unwrap();
    assert_eq!(r.status(), 415);
    let (s, _) = app.call(Method::GET, "/api/v1/webhooks/not-an-id", None).await;
    assert_eq!(s, 404);
    let (s, _) = app.call(Method::GET, "/api/v1/webhooks?limit=1000", None).await;
    assert_eq!(s, 400);
}

async fn the_fifty_first_webhook_is_refused(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    for i in 0..50 {
        app.create_webhook(json!({"url": format!("http://127.0.0.1:9/{i}"), "events": ["email.sent"]})).await;
    }
    let (s, v) = app
        .call(Method::POST, "/api/v1/webhooks", Some(json!({"url": "http://127.0.0.1:9/x", "events": ["email.sent"]})))
        .await;
    assert_eq!(s, 409, "{v}");
}

async fn lists_page_with_cursors(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let mut ids = Vec::new();
    for i in 0..5 {
        let v = app.create_webhook(json!({"url": format!("http://127.0.0.1:9/{i}"), "events": ["email.sent"]})).await;
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/webhooks?limit=2&cursor={c}"),
            None => "/api/v1/webhooks?limit=2".into(),
        };
        let (s, v) = app.call(Method::GET, &path, None).await;
        assert_eq!(s, 200);
        for w in v["items"].as_array().unwrap() {
            seen.push(w["id"].as_str().unwrap().to_owned());
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");
}

#[tokio::test]
async fn every_route_is_in_the_openapi_document_and_every_documented_route_is_served() {
    let app = spawn_app().await;
    let doc: serde_json::Value = app.http.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    let served = [
        ("post", "/api/v1/webhooks"),
        ("get", "/api/v1/webhooks"),
        ("get", "/api/v1/webhooks/{id}"),
        ("patch", "/api/v1/webhooks/{id}"),
        ("delete", "/api/v1/webhooks/{id}"),
        ("get", "/api/v1/webhooks/{id}/deliveries"),
        ("get", "/api/v1/webhooks/{id}/stats"),
        ("post", "/api/v1/portal-sessions"),
        ("post", "/api/v1/webhooks/{id}/rotate-secret"),
        ("post", "/api/v1/webhooks/{id}/test"),
        ("post", "/api/v1/webhooks/{id}/recover"),
        ("post", "/api/v1/events"),
        ("get", "/api/v1/events"),
        ("get", "/api/v1/events/{id}"),
        ("get", "/api/v1/event-types"),
        ("post", "/api/v1/event-types"),
        ("get", "/api/v1/deliveries/{id}"),
        ("post", "/api/v1/deliveries/{id}/retry"),
        ("post", "/api/v1/deliveries/{id}/skip"),
        ("post", "/api/v1/agents"),
        ("get", "/api/v1/agents"),
        ("get", "/api/v1/agents/{address}"),
        ("patch", "/api/v1/agents/{address}"),
        ("delete", "/api/v1/agents/{address}"),
        ("post", "/api/v1/agents/{address}/rotate-secret"),
        ("get", "/api/v1/agents/{address}/deliveries"),
        ("post", "/api/v1/agents/{address}/messages"),
        ("get", "/api/v1/agents/{address}/messages"),
        ("get", "/api/v1/messages/{id}"),
        ("get", "/api/v1/messages/{id}/raw"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/api/v1/signing-keys"),
        ("post", "/api/v1/signing-keys/rotate"),
        ("get", "/.well-known/herald/{account_public_id}/jwks.json"),
    ];
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    documented.sort();
    let mut expected: Vec<(String, String)> = served.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    expected.sort();
    assert_eq!(documented, expected);
    let account = app.store.account_by_name("default").await.unwrap().unwrap().id.to_string();
    for (method, path) in &documented {
        let concrete = path
            .replace("{id}", "wh_00000000000000000000000000000000")
            .replace("{address}", "bot@agents.test")
            .replace("{account_public_id}", &account);
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let status = app.http.request(m, app.url(&concrete)).send().await.unwrap().status().as_u16();
        let expect = if path.starts_with("/api/") { 401 } else { 200 };
        assert_eq!(status, expect, "{method} {path} is served");
    }
    let r = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(!html.contains("cdn.") && !html.contains("unpkg"), "the reference is served from the binary");
}

async fn hostile_bodies_get_a_4xx_problem_and_never_a_5xx(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let deep = format!("{{\"type\":\"email.sent\",\"data\":{}{}}}", "{\"a\":".repeat(200), "}".repeat(201));
    let bodies: Vec<Vec<u8>> = vec![
        deep.into_bytes(),
        b"\xff\xfe{\"type\":\"email.sent\"}".to_vec(),
        br#"{"type":"email.sent","data":{"x":"\ud800"}}"#.to_vec(),
        br#"{"type":5,"data":{}}"#.to_vec(),
        br#"{"type":"email.sent","data":{},"labels":"x"}"#.to_vec(),
        br#"{"type":"email.sent","data":{},"agent_id":""}"#.to_vec(),
        format!(r#"{{"type":"email.sent","data":{{}},"idempotency_key":"{}"}}"#, "k".repeat(300)).into_bytes(),
        br#"[]"#.to_vec(),
        br#"null"#.to_vec(),
        b"".to_vec(),
    ];
    for body in bodies {
        for path in ["/api/v1/events", "/api/v1/webhooks", "/api/v1/event-types"] {
            let r = app
                .http
                .post(app.url(path))
                .bearer_auth(KEY)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            assert!((400..500).contains(&status), "{path} {:?} → {status}", String::from_utf8_lossy(&body));
            assert_eq!(r.headers()["content-type"], "application/problem+json");
        }
    }
    let (_, list) = app.call(Method::GET, "/api/v1/events", None).await;
    assert!(list["items"].as_array().unwrap().is_empty(), "nothing was written");
    let url_with_crlf = json!({"url": "http://127.0.0.1:9/a\r\nX-Injected: 1", "events": ["email.sent"]});
    assert_eq!(app.call(Method::POST, "/api/v1/webhooks", Some(url_with_crlf)).await.0, 400);
}

#[tokio::test]
async fn secrets_and_keys_never_reach_the_logs_even_at_debug() {
    use tokio::io::AsyncReadExt;
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.arg("serve")
        .env("HERALD_LISTEN", "127.0.0.1:0")
        .env("HERALD_DATA_DIR", dir.path())
        .env("HERALD_ALLOW_PRIVATE_TARGETS", "true")
        .env("HERALD_BOOTSTRAP_API_KEY", KEY)
        .env("RUST_LOG", "debug")
        .stderr(std::process::Stdio::piped());
    let Served { mut child, base, stdout, .. } = spawn_served(cmd).await;
    let mut stdout = stdout.into_inner();
    // Read the logs while the server runs: a full pipe would block its logging (and it).
    let mut stderr = child.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        let mut logs = String::new();
        stderr.read_to_string(&mut logs).await.unwrap();
        logs
    });
    let http = reqwest::Client::new();
    let w: serde_json::Value = http
        .post(format!("{base}/api/v1/webhooks"))
        .bearer_auth(KEY)
        .json(&json!({"url": rx.url("log"), "events": ["email.received"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = w["id"].as_str().unwrap();
    let mut secrets = vec![w["signing_secret"].as_str().unwrap().to_owned()];
    let r: serde_json::Value = http
        .post(format!("{base}/api/v1/webhooks/{id}/rotate-secret"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    secrets.push(r["signing_secret"].as_str().unwrap().to_owned());
    http.post(format!("{base}/api/v1/events"))
        .bearer_auth(KEY)
        .json(&json!({"type": "email.received", "data": {"n": 1}}))
        .send()
        .await
        .unwrap();
    http.post(format!("{base}/api/v1/webhooks/{id}/test?wait=true")).bearer_auth(KEY).send().await.unwrap();
    rx.wait_for("log", 2).await;
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let mut logs = stderr.await.unwrap();
    let mut out = String::new();
    stdout.read_to_string(&mut out).await.unwrap();
    logs.push_str(&out);
    assert!(logs.contains("DEBUG"), "debug logging was on");
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "a signing secret appeared in the logs");
        assert!(!logs.contains(&s[6..]), "a signing secret's hex appeared in the logs");
    }
    assert!(!logs.contains(&KEY[3..]), "the API key appeared in the logs");
    for s in &secrets {
        assert!(!metrics.contains(&s[6..]), "a signing secret appeared in the metrics");
    }
}

async fn data_dir_contains(app: &TestApp, needle: &str) -> bool {
    // Make sure the WAL is written out, then look at every file of the data dir.
    let mut found = false;
    for entry in std::fs::read_dir(app._dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        found |= bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    }
    found
}

#[tokio::test]
async fn with_a_secret_key_the_database_never_holds_signing_secrets_in_clear() {
    for (key, expect_clear) in [(None, true), (Some("ab".repeat(32)), false)] {
        let rx = Receiver::start().await;
        let k = key.clone();
        let tweak = Box::new(move |s: &mut herald::Settings| s.secret_key = k.map(herald::settings::SecretText::new));
        let app = spawn_app_with(Options { tweak, ..Default::default() }).await;
        let (wh, secret) = app.webhook(&rx.url("enc")).await;
        // With an Idempotency-Key, so the stored answer (which holds the secret) is covered too.
        let r: serde_json::Value = app
            .http
            .post(app.url(&format!("/api/v1/webhooks/{wh}/rotate-secret")))
            .bearer_auth(KEY)
            .header("idempotency-key", "enc-1")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let rotated = r["signing_secret"].as_str().unwrap().to_owned();
        app.publish_received().await;
        let got = rx.wait_for("enc", 1).await.remove(0);
        for s in [&secret, &rotated] {
            let s = herald_domain::SigningSecret::from_stored(s.clone());
            assert!(herald_domain::signing::verify_e2a(got.header("x-e2a-signature"), &got.body, &s));
            assert_eq!(data_dir_contains(&app, &s.expose()[6..]).await, expect_clear, "key set: {}", key.is_some());
        }
    }
}

crate::on_both_stores!(
    every_api_route_needs_a_valid_key,
    another_accounts_resources_are_not_found,
    webhook_crud_follows_the_contract,
    bad_input_gets_a_problem_and_changes_nothing,
    the_fifty_first_webhook_is_refused,
    lists_page_with_cursors,
    hostile_bodies_get_a_4xx_problem_and_never_a_5xx,
);
