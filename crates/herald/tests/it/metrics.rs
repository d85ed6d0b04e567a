//! `/metrics` of the real binary after a known flow: every series the README documents is
//! there, histograms are histograms, and the counts match what the flow did — events,
//! deliveries, attempts by outcome class, publish latency, slots in use, the queue's
//! gauges, disabled webhooks, SMTP sessions and messages; per-webhook labels on request.

use crate::crash::start_binary_full;
use crate::inbound::{raw_message, send};
use crate::support::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The API of a running binary.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(base: &str) -> Self {
        Self { http: reqwest::Client::new(), base: base.to_owned() }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn webhook(&self, url: &str) -> String {
        let body = json!({"url": url, "events": ["order.paid"]});
        let (s, v) = self.call(reqwest::Method::POST, "/api/v1/webhooks", Some(body)).await;
        assert_eq!(s, 201, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }

    /// Publishes an `order.paid`; returns how many deliveries it made.
    async fn publish(&self) -> u64 {
        let body = json!({"type": "order.paid", "data": {"order": 1}});
        let (s, v) = self.call(reqwest::Method::POST, "/api/v1/events", Some(body)).await;
        assert_eq!(s, 202, "{v}");
        v["deliveries"].as_u64().unwrap()
    }

    async fn deliveries(&self, webhook: &str) -> Vec<Value> {
        let (s, v) =
            self.call(reqwest::Method::GET, &format!("/api/v1/webhooks/{webhook}/deliveries?limit=100"), None).await;
        assert_eq!(s, 200, "{v}");
        v["items"].as_array().unwrap().clone()
    }

    /// Waits until `webhook` has `n` deliveries, each satisfying `pred`.
    async fn wait_all(&self, webhook: &str, n: usize, what: &str, pred: impl Fn(&Value) -> bool) {
        eventually(what, || async {
            let ds = self.deliveries(webhook).await;
            (ds.len() == n && ds.iter().all(&pred)).then_some(())
        })
        .await;
    }

    async fn scrape(&self) -> Scrape {
        let res = self.http.get(format!("{}/metrics", self.base)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        Scrape(res.text().await.unwrap())
    }
}

/// One `/metrics` answer in the Prometheus text format.
struct Scrape(String);

impl Scrape {
    /// The value of the sample `name` with exactly these labels.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.0.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (n, set) = match series.split_once('{') {
                Some((n, rest)) => (n, parse_labels(rest.strip_suffix('}')?)),
                None => (series, BTreeMap::new()),
            };
            (n == name && set == want).then(|| value.parse().unwrap())
        })
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or_else(|| panic!("no sample {name} {labels:?} in:\n{}", self.0))
    }

    fn kind(&self, name: &str) -> Option<&str> {
        self.0.lines().find_map(|l| l.strip_prefix(&format!("# TYPE {name} ")))
    }
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    s.split("\",")
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once("=\""))
        .map(|(k, v)| (k.to_owned(), v.trim_end_matches('"').to_owned()))
        .collect()
}

/// The series of the README's metrics table (its rows start with "| `herald_").
fn documented_series() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let names: Vec<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `herald_"))
        .map(|rest| format!("herald_{}", rest.split('`').next().unwrap()))
        .collect();
    assert!(names.len() >= 15, "the README documents the series: {names:?}");
    names
}

/// A loopback port that refuses connections for as long as the socket is kept (bound, never
/// listening: no other test can take the port meanwhile).
fn refusing_port() -> (tokio::net::TcpSocket, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, format!("http://{addr}/"))
}

#[tokio::test]
async fn metrics_count_a_known_flow_and_document_every_series() {
    let rx = Receiver::start().await;
    rx.always("ok", Reply::status(200));
    rx.always("fail", Reply::status(503));
    rx.always("slow", Reply::status(200).gated());
    let dir = tempfile::tempdir().unwrap();
    let env = [
        // One global slot: a held request makes the others wait, due.
        ("HERALD_MAX_IN_FLIGHT", "1"),
        ("HERALD_ATTEMPT_TIMEOUT", "30s"),
        ("HERALD_LEASE", "2m"),
        // A failed first attempt waits an hour: it stays pending, not due.
        ("HERALD_RETRY_SCHEDULE", "1h"),
        ("HERALD_QUEUE_GAUGES_INTERVAL", "100ms"),
        ("HERALD_SMTP_LISTEN", "127.0.0.1:0"),
        ("HERALD_SMTP_DOMAINS", "agents.test"),
    ];
    let (mut child, base, smtp) = start_binary_full(dir.path(), &env).await;
    let api = Api::new(&base);

    // The counters alerts take a rate of are there from the start, at 0.
    let first = api.scrape().await;
    for (name, label) in [
        ("herald_store_errors_total", ("kind", "unavailable")),
        ("herald_events_published_total", ("source", "api")),
        ("herald_attempts_total", ("outcome", "5xx")),
        ("herald_smtp_messages_total", ("answer", "temporary_failure")),
    ] {
        assert_eq!(first.get(name, &[label]), 0.0);
    }

    let (s, v) = api.call(reqwest::Method::POST, "/api/v1/event-types", Some(json!({"name": "order.paid"}))).await;
    assert_eq!(s, 201, "{v}");
    let ok = api.webhook(&rx.url("ok")).await;
    let fail = api.webhook(&rx.url("fail")).await;
    let (_refusing, refusing_url) = refusing_port();
    let dead = api.webhook(&refusing_url).await;
    let mut created = api.publish().await + api.publish().await;
    assert_eq!(created, 6);
    api.wait_all(&ok, 2, "ok's deliveries delivered", |d| d["status"] == "delivered").await;
    api.wait_all(&fail, 2, "fail's first attempts", |d| d["attempts"] == 1).await;
    api.wait_all(&dead, 2, "dead's first attempts", |d| d["attempts"] == 1).await;
    let (s, v) =
        api.call(reqwest::Method::PATCH, &format!("/api/v1/webhooks/{dead}"), Some(json!({"enabled": false}))).await;
    assert_eq!(s, 200, "{v}");

    // A held request takes the only slot; the deliveries behind it wait, due.
    let slow = api.webhook(&rx.url("slow")).await;
    created += api.publish().await + api.publish().await;
    let held = eventually("a held attempt and a due delivery waiting behind it", || async {
        let m = api.scrape().await;
        let busy = m.value("herald_attempts_in_flight", &[]) == Some(1.0)
            && m.value("herald_delivery_slots_free", &[]) == Some(0.0);
        // Counted after the webhook was disabled (the gauges lag by up to their interval).
        let fresh = m.value("herald_webhooks_disabled", &[("reason", "manual")]) == Some(1.0);
        let waiting = m.value("herald_oldest_due_delivery_age_seconds", &[]).is_some_and(|age| age > 0.0);
        (busy && fresh && waiting).then_some(m)
    })
    .await;
    assert!(held.get("herald_deliveries_pending", &[]) >= 6.0, "{}", held.0);
    rx.open_gate();
    api.wait_all(&slow, 2, "slow's deliveries delivered", |d| d["status"] == "delivered").await;
    api.wait_all(&ok, 4, "ok's deliveries delivered", |d| d["status"] == "delivered").await;
    api.wait_all(&fail, 4, "fail's first attempts", |d| d["attempts"] == 1).await;

    // One message over SMTP for an agent (no endpoint of its own, no webhook subscribed).
    let (s, v) = api.call(reqwest::Method::POST, "/api/v1/agents", Some(json!({"address": "bot@agents.test"}))).await;
    assert_eq!(s, 201, "{v}");
    let answer = send(
        smtp.unwrap(),
        "alice@sender.test",
        &["bot@agents.test"],
        &raw_message("m1@sender.test", "bot@agents.test"),
    )
    .await
    .unwrap();
    assert!(answer.starts_with("250"), "{answer}");

    let mut pending = 0;
    for w in [&ok, &fail, &dead, &slow] {
        pending += api.deliveries(w).await.iter().filter(|d| d["status"] == "pending").count();
    }
    let m = eventually("the queue's gauges caught up", || async {
        let m = api.scrape().await;
        let settled = m.value("herald_deliveries_pending", &[]) == Some(pending as f64)
            && m.value("herald_oldest_due_delivery_age_seconds", &[]) == Some(0.0)
            && m.value("herald_webhooks_disabled", &[("reason", "manual")]) == Some(1.0);
        settled.then_some(m)
    })
    .await;
    assert_eq!(m.get("herald_events_published_total", &[("source", "api")]), 4.0);
    assert_eq!(m.get("herald_events_published_total", &[("source", "mail")]), 1.0);
    assert_eq!(m.get("herald_deliveries_created_total", &[]), created as f64);
    assert_eq!(m.get("herald_attempts_total", &[("outcome", "2xx")]), 6.0, "ok ×4, slow ×2");
    assert_eq!(m.get("herald_attempts_total", &[("outcome", "5xx")]), 4.0);
    assert_eq!(m.get("herald_attempts_total", &[("outcome", "connect_error")]), 2.0);
    assert_eq!(m.get("herald_attempt_duration_seconds_count", &[]), 12.0);
    assert!(m.get("herald_attempt_duration_seconds_bucket", &[("le", "+Inf")]) == 12.0);
    assert_eq!(m.kind("herald_attempt_duration_seconds"), Some("histogram"));
    let publish = [("method", "POST"), ("route", "/api/v1/events"), ("status", "202")];
    assert_eq!(m.get("herald_http_request_duration_seconds_count", &publish), 4.0);
    assert_eq!(m.kind("herald_http_request_duration_seconds"), Some("histogram"));
    assert_eq!(m.get("herald_attempts_in_flight", &[]), 0.0);
    assert_eq!(m.get("herald_delivery_slots_free", &[]), 1.0);
    assert_eq!(m.get("herald_webhooks_disabled", &[("reason", "failing")]), 0.0);
    assert_eq!(m.get("herald_webhooks_disabled", &[("reason", "gone")]), 0.0);
    assert_eq!(m.get("herald_smtp_sessions_total", &[("result", "served")]), 1.0);
    assert_eq!(m.get("herald_smtp_messages_total", &[("answer", "accepted")]), 1.0);
    assert_eq!(m.get("herald_store_errors_total", &[("kind", "unavailable")]), 0.0);
    for name in documented_series() {
        assert!(m.kind(&name).is_some(), "{name} is documented but not served");
    }
    assert!(!m.0.contains("quantile="), "histograms, not summaries");
    assert!(!m.0.contains("webhook_id="), "no per-webhook series unless asked for");
    child.start_kill().unwrap();
    child.wait().await.unwrap();

    // With HERALD_METRICS_PER_WEBHOOK the attempts carry the webhook's id.
    let per_webhook = [("HERALD_METRICS_PER_WEBHOOK", "true")];
    let (mut child, base, _) = start_binary_full(dir.path(), &per_webhook).await;
    let api = Api::new(&base);
    api.publish().await;
    api.wait_all(&ok, 5, "ok's new delivery delivered", |d| d["status"] == "delivered").await;
    api.wait_all(&slow, 3, "slow's new delivery delivered", |d| d["status"] == "delivered").await;
    let m = api.scrape().await;
    assert_eq!(m.get("herald_attempts_total", &[("outcome", "2xx"), ("webhook_id", ok.as_str())]), 1.0);
    assert_eq!(m.get("herald_attempt_duration_seconds_count", &[("webhook_id", slow.as_str())]), 1.0);
    assert_eq!(m.value("herald_attempts_total", &[("outcome", "2xx")]), Some(0.0), "only per-webhook series count");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}
