//! The delivery rules one by one, through the real app: durable publish, immediate first
//! attempt, leases, caps, retries, receiver signals, expiry.

use crate::support::*;
use herald_domain::SigningSecret;
use herald_domain::signing::{verify_e2a, verify_standard};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

fn ts(v: &serde_json::Value) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(v.as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap()
}

async fn published_event_is_delivered_verbatim_with_both_signatures_and_headers(backend: Backend) {
    let rx = Receiver::start().await;
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let (wh, secret) = app.webhook(&rx.url("a")).await;
    let ev = app.publish(json!({"type": "email.received", "data": {"b": 1, "a": [1, 2]}})).await;
    assert_eq!(ev["deliveries"], 1);
    let got = rx.wait_for("a", 1).await.remove(0);
    let secret = SigningSecret::from_stored(secret);
    let event_id = ev["id"].as_str().unwrap();

    let body = got.json();
    assert_eq!(body["id"], ev["id"]);
    assert_eq!(body["type"], "email.received");
    assert_eq!(body["schema_version"], "1");
    assert_eq!(body["created_at"], ev["created_at"]);
    assert_eq!(body["data"], json!({"b": 1, "a": [1, 2]}));
    assert!(verify_e2a(got.header("x-e2a-signature"), &got.body, &secret));
    assert!(verify_standard(
        got.header("webhook-signature"),
        event_id,
        got.header("webhook-timestamp"),
        &got.body,
        &secret
    ));
    assert_eq!(got.header("webhook-id"), event_id);
    assert_eq!(got.header("content-type"), "application/json");
    assert!(got.header("user-agent").starts_with("herald/"));
    assert_eq!(got.header("x-e2a-event-type"), "email.received");
    assert_eq!(got.header("x-e2a-event-id"), event_id);
    assert_eq!(got.header("x-e2a-attempt"), "1");
    let d = app.wait_delivery(&wh, "delivered", |d| d["status"] == "delivered").await;
    assert_eq!(got.header("x-e2a-delivery-id"), d["id"].as_str().unwrap());
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["attempt_log"][0]["status_code"], 200);
}

async fn stored_bytes_are_posted_verbatim_on_every_attempt(backend: Backend) {
    let rx = Receiver::start().await;
    rx.script("v", vec![Reply::status(500)]);
    let Some(app) = spawn_on(backend, Options { manual_clock: true, ..Default::default() }).await else {
        return;
    };
    let (wh, _) = app.webhook(&rx.url("v")).await;
    let raw = r#"{"type": "email.received", "data": {"z": "ü", "n": 1.50}}"#;
    let r = app
        .http
        .post(app.url("/api/v1/events"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let first = rx.wait_for("v", 1).await.remove(0);
    // The failure must be recorded (retry due a minute after the attempt) before the clock
    // moves, or the retry would be scheduled from the moved clock.
    app.wait_delivery(&wh, "the failure recorded", |d| d["attempts"] == 1).await;
    app.advance(Duration::from_secs(60));
    let second = rx.wait_for("v", 2).await.remove(1);
    assert_eq!(first.body, second.body);
    assert_eq!(second.header("x-e2a-attempt"), "2");
    assert!(std::str::from_utf8(&first.body).unwrap().contains(r#""data":{"z": "ü", "n": 1.50}"#));
}

async fn first_attempt_does_not_wait_for_a_poll_tick(backend: Backend) {
    let rx = Receiver::start().await;
    let Some(app) = spawn_on(
        backend,
        Options { tweak: Box::new(|s| s.poll_interval = Duration::from_secs(3600)), ..Default::default() },
    )
    .await
    else {
        return;
    };
    let (wh, _) = app.webhook(&rx.url("now")).await;
    app.publish_received().await;
    rx.wait_for("now", 1).await;
    // Past its start-up claim, the dispatcher now sleeps on its one-hour poll: only the
    // work signal of the next publish can wake it within the test's deadline.
    app.wait_delivery(&wh, "first recorded", |d| d["status"] == "delivered").await;
    app.publish_received().await;
    rx.wait_for("now", 2).await;
}

async fn failed_attempt_is_retried_after_one_minute_then_on_schedule_until_failed(backend: Backend) {
    let rx = Receiver::start().await;
    rx.always("f", Reply::status(500).body("nope"));
    let Some(app) = spawn_on(
        backend,
        Options {
            manual_clock: true,
            tweak: Box::new(|s| s.retry_schedule = vec![Duration::from_secs(60), Duration::from_secs(300)]),
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    let (wh, _) = app.webhook(&rx.url("f")).await;
    app.publish_received().await;
    rx.wait_for("f", 1).await;
    let d = app.wait_delivery(&wh, "first failure recorded", |d| d["attempts"] == 1).await;
    assert_eq!(d["status"], "pending");
    assert_eq!(d["last_status_code"], 500);
    let first = ts(&d["attempt_log"][0]["started_at"]);
    assert_eq!(ts(&d["next_retry_at"]) - first, time::Duration::seconds(60), "1 min, not 5");
    assert_eq!(d["attempt_log"][0]["response_body"], "nope");

    app.advance(Duration::from_secs(60));
    rx.wait_for("f", 2).await;
    let d = app.wait_delivery(&wh, "second failure recorded", |d| d["attempts"] == 2).await;
    assert_eq!(ts(&d["next_retry_at"]) - ts(&d["attempt_log"][1]["started_at"]), time::Duration::seconds(300));

    app.advance(Duration::from_secs(300));
    rx.wait_for("f", 3).await;
    let d = app.wait_delivery(&wh, "failed after the last attempt", |d| d["status"] == "failed").await;
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["max_attempts"], 3);
    assert_eq!(d["attempt_log"].as_array().unwrap().len(), 3);
}

async fn retry_after_on_429_pushes_the_next_attempt_out(backend: Backend) {
    let rx = Receiver::start().await;
    rx.script("r", vec![Reply::status(429).header("retry-after", "600")]);
    let Some(app) = spawn_on(backend, Options { manual_clock: true, ..Default::default() }).await else {
        return;
    };
    let (wh, _) = app.webhook(&rx.url("r")).await;
    app.publish_received().await;
    let d = app.wait_delivery(&wh, "429 recorded", |d| d["attempts"] == 1).await;
    assert_eq!(ts(&d["next_retry_at"]) - ts(&d["attempt_log"][0]["started_at"]), time::Duration::seconds(600));
    app.advance(Duration::from_secs(600));
    app.wait_delivery(&wh, "delivered after Retry-After", |d| d["status"] == "delivered").await;
}

async fn gone_fails_the_delivery_at_once_and_disables_the_webhook(backend: Backend) {
    let rx = Receiver::start().await;
    rx.always("g", Reply::status(410));
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let (wh, _) = app.webhook(&rx.url("g")).await;
    app.publish_received().await;
    let d = app.wait_delivery(&wh, "failed on 410", |d| d["status"] == "failed").await;
    assert_eq!(d["attempts"], 1);
    let (_, w) = app.call(Method::GET, &format!("/api/v1/webhooks/{wh}"), None).await;
    assert_eq!(w["enabled"], false);
    assert_eq!(w["disabled_reason"], "gone");
    assert!(w["auto_disabled_at"].is_string());
    // Events published now are not fanned out to the disabled webhook.
    let ev = app.publish_received().await;
    assert_eq!(ev["deliveries"], 0);
}

#[tokio::test]
async fn redirects_are_not_followed_and_count_as_failures() {
    let rx = Receiver::start().await;
    rx.script("moved", vec![Reply::status(302).header("location", &rx.url("elsewhere"))]);
    let app = spawn_app_with(Options { manual_clock: true, ..Default::default() }).await;
    let (wh, _) = app.webhook(&rx.url("moved")).await;
    app.publish_received().await;
    let d = app.wait_delivery(&wh, "302 recorded", |d| d["attempts"] == 1).await;
    assert_eq!(d["status"], "pending");
    assert_eq!(d["last_status_code"], 302);
    assert!(rx.received("elsewhere").is_empty());
}

#[tokio::test]
async fn connection_refused_is_recorded_with_status_zero() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let app = spawn_app_with(Options { manual_clock: true, ..Default::default() }).await;
    let (wh, _) = app.webhook(&format!("http://127.0.0.1:{port}/x")).await;
    app.publish_received().await;
    let d = app.wait_delivery(&wh, "connection error recorded", |d| d["attempts"] == 1).await;
    let a = &d["attempt_log"][0];
    assert_eq!(a["status_code"], 0);
    assert!(a["error"].as_str().unwrap().starts_with("connection failed"), "{a}");
    assert_eq!(a["outcome"], "connect_error", "{a}");
    assert!(!a["error"].as_str().unwrap().contains("127.0.0.1"), "no URL in errors: {a}");
}

async fn disabled_webhook_defers_without_burning_attempts_and_resumes_when_enabled(backend: Backend) {
    let rx = Receiver::start().await;
    rx.script("d", vec![Reply::status(500)]);
    let Some(app) = spawn_on(backend, Options { manual_clock: true, ..Default::default() }).await else {
        return;
    };
    let (wh, _) = app.webhook(&rx.url("d")).await;
    app.publish_received().await;
    app.wait_delivery(&wh, "first failure", |d| d["attempts"] == 1).await;
    let (s, w) = app.call(Method::PATCH, &format!("/api/v1/webhooks/{wh}"), Some(json!({"enabled": false}))).await;
    assert_eq!(s, 200);
    assert_eq!(w["disabled_reason"], "manual");
    // The retry falls due while disabled: nothing is attempted, nothing is counted.
    app.advance(Duration::from_secs(3600));
    let (s, _) = app.call(Method::PATCH, &format!("/api/v1/webhooks/{wh}"), Some(json!({"enabled": true}))).await;
    assert_eq!(s, 200);
    // No clock movement needed: enabling wakes the engine at once.
    let d = app.wait_delivery(&wh, "delivered after enable", |d| d["status"] == "delivered").await;
    assert_eq!(d["attempts"], 2);
    assert_eq!(rx.received("d").len(), 2);
}

async fn deleting_a_webhook_ends_its_pending_deliveries(backend: Backend) {
    let rx = Receiver::start().await;
    rx.always("del", Reply::status(500));
    let Some(app) = spawn_on(backend, Options { manual_clock: true, ..Default::default() }).await else {
        return;
    };
    let (wh, _) = app.webhook(&rx.url("del")).await;
    app.publish_received().await;
    let d = app.wait_delivery(&wh, "first failure", |d| d["attempts"] == 1).await;
    let id = d["id"].as_str().unwrap().to_owned();
    let (s, _) = app.call(Method::DELETE, &format!("/api/v1/webhooks/{wh}"), None).await;
    assert_eq!(s, 204);
    let d = app.delivery(&id).await;
    assert_eq!(d["status"], "failed");
    assert_eq!(d["last_error"], "webhook deleted");
    app.advance(Duration::from_secs(3600));
    let (s, _) = app.call(Method::POST, &format!("/api/v1/deliveries/{id}/retry"), None).await;
    assert_eq!(s, 409);
}

async fn manual_retry_of_a_failed_delivery_allows_one_more_attempt(backend: Backend) {
    let rx = Receiver::start().await;
    rx.script("m", vec![Reply::status(500)]);
    let Some(app) = spawn_on(
        backend,
        Options { manual_clock: true, tweak: Box::new(|s| s.retry_schedule = vec![]), ..Default::default() },
    )
    .await
    else {
        return;
    };
    let (wh, _) = app.webhook(&rx.url("m")).await;
    app.publish_received().await;
    let d = app.wait_delivery(&wh, "failed", |d| d["status"] == "failed").await;
    assert_eq!(d["max_attempts"], 1);
    let id = d["id"].as_str().unwrap().to_owned();
    let (s, v) = app.call(Method::POST, &format!("/api/v1/deliveries/{id}/retry"), None).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["status"], "pending");
    assert_eq!(v["max_attempts"], 2);
    let d = app.wait_delivery(&wh, "delivered on retry", |d| d["status"] == "delivered").await;
    assert_eq!(d["attempts"], 2);
    let (s, _) = app.call(Method::POST, &format!("/api/v1/deliveries/{id}/retry"), None).await;
    assert_eq!(s, 409, "only failed deliveries can be retried");
}

async fn a_slow_webhook_at_its_cap_does_not_delay_a_fast_one(backend: Backend) {
    let rx = Receiver::start().await;
    rx.always("slow", Reply::status(200).gated());
    let Some(app) = spawn_on(
        backend,
        Options {
            // Two global slots: if waiting slow deliveries held slots, the fast one would starve.
            tweak: Box::new(|s| s.max_in_flight = 2),
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    app.create_webhook(json!({"url": rx.url("slow"), "events": ["email.sent"]})).await;
    app.create_webhook(json!({"url": rx.url("fast"), "events": ["email.received"]})).await;
    for _ in 0..5 {
        app.publish(json!({"type": "email.sent", "data": {}})).await;
    }
    rx.wait_for("slow", 1).await;
    for _ in 0..20 {
        app.publish_received().await;
    }
    rx.wait_for("fast", 20).await;
    assert_eq!(rx.received("slow").len(), 1, "slow webhook stays at its cap of 1");
    rx.open_gate();
    rx.wait_for("slow", 5).await;
    assert_eq!(rx.max_in_flight("slow"), 1);
}

async fn per_webhook_cap_bounds_concurrency(backend: Backend) {
    let rx = Receiver::start().await;
    rx.always("cap", Reply::status(200).gated());
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    app.create_webhook(json!({"url": rx.url("cap"), "events": ["email.received"], "max_in_flight": 3})).await;
    for _ in 0..10 {
        app.publish_received().await;
    }
    rx.wait_for("cap", 3).await;
    assert_eq!(rx.max_in_flight("cap"), 3);
    rx.open_gate();
    rx.wait_for("cap", 10).await;
    assert_eq!(rx.max_in_flight("cap"), 3);
}

async fn filters_route_events_by_their_attributes(backend: Backend) {
    let rx = Receiver::start().await;
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    app.create_webhook(json!({
        "url": rx.url("flt"), "events": ["email.received"],
        "filters": {"agent_ids": ["bot@a.example"], "labels": ["vip", "vip"]}
    }))
    .await;
    let miss = app.publish(json!({"type": "email.received", "data": {}, "agent_id": "bot@a.example"})).await;
    assert_eq!(miss["deliveries"], 0, "labels key set but event has none");
    let hit = app
        .publish(json!({"type": "email.received", "data": {}, "agent_id": "bot@a.example", "labels": ["x", "vip"]}))
        .await;
    assert_eq!(hit["deliveries"], 1);
    let other = app
        .publish(json!({"type": "email.received", "data": {}, "agent_id": "else@a.example", "labels": ["vip"]}))
        .await;
    assert_eq!(other["deliveries"], 0);
    assert_eq!(rx.wait_for("flt", 1).await[0].json()["id"], hit["id"]);
}

async fn idempotency_key_returns_the_same_event_without_new_deliveries(backend: Backend) {
    let rx = Receiver::start().await;
    let Some(app) = spawn_on(backend, Options { manual_clock: true, ..Default::default() }).await else {
        return;
    };
    let (wh, _) = app.webhook(&rx.url("idem")).await;
    let body = json!({"type": "email.received", "data": {}, "idempotency_key": "order-1"});
    let a = app.publish(body.clone()).await;
    let b = app.publish(body.clone()).await;
    assert_eq!(a["id"], b["id"]);
    assert_eq!(app.deliveries(&wh).await.len(), 1);
    app.advance(Duration::from_secs(86_400 + 1));
    let c = app.publish(body).await;
    assert_ne!(a["id"], c["id"], "after 24 h the key names a new event");
    assert_eq!(app.deliveries(&wh).await.len(), 2);
}

async fn expired_pending_deliveries_are_never_attempted(backend: Backend) {
    let rx = Receiver::start().await;
    rx.always("exp", Reply::status(500));
    let Some(app) = spawn_on(backend, Options { manual_clock: true, ..Default::default() }).await else {
        return;
    };
    let (wh, _) = app.webhook(&rx.url("exp")).await;
    app.publish_received().await;
    app.wait_delivery(&wh, "first failure", |d| d["attempts"] == 1).await;
    // Past the 30-day TTL the claim ignores the row; the janitor removes it.
    app.advance(Duration::from_secs(31 * 86_400));
    let deleted =
        app.store.delete_expired(herald_domain::Clock::now(app.clock.as_ref().unwrap().as_ref()), 5000).await.unwrap();
    assert_eq!(deleted, 2, "one delivery and one event");
    assert!(app.deliveries(&wh).await.is_empty());
    assert_eq!(rx.received("exp").len(), 1);
}

async fn graceful_shutdown_finishes_the_attempt_in_flight_and_records_it(backend: Backend) {
    let rx = Receiver::start().await;
    rx.always("sd", Reply::status(200).gated());
    let Some(mut app) = spawn_on(backend, Options::default()).await else { return };
    let (wh, _) = app.webhook(&rx.url("sd")).await;
    app.publish_received().await;
    let d = app.wait_delivery(&wh, "delivery created", |_| true).await;
    rx.wait_for("sd", 1).await;
    let store = app.store.clone();
    let _keep_dir = app._dir.clone();
    let _keep_db = app.take_db();
    let addr = app.addr;
    app.cancel.cancel();
    let stopping = tokio::spawn(app.stop());
    // The API has stopped accepting, yet the process waits for the attempt in flight.
    eventually("the API stops accepting", || async {
        tokio::net::TcpStream::connect(addr).await.is_err().then_some(())
    })
    .await;
    assert!(!stopping.is_finished(), "shutdown must wait (up to the grace) for the attempt in flight");
    rx.open_gate();
    stopping.await.unwrap();
    let account = store.account_by_key_hash(&herald_domain::ApiKey::parse(KEY).unwrap().hash()).await.unwrap().unwrap();
    let id = herald_domain::DeliveryId::parse(d["id"].as_str().unwrap()).unwrap();
    let (after, attempts) = store.get_delivery(&account.id, &id).await.unwrap().unwrap();
    assert_eq!(after.status, herald_domain::DeliveryStatus::Delivered);
    assert_eq!(attempts.len(), 1);
}

#[tokio::test]
async fn an_attempt_that_outlives_its_timeout_is_a_failure_with_status_zero() {
    let rx = Receiver::start().await;
    rx.always("slowpoke", Reply::status(200).gated());
    let app = spawn_app_with(Options {
        manual_clock: true,
        tweak: Box::new(|s| s.attempt_timeout = Duration::from_millis(300)),
        ..Default::default()
    })
    .await;
    let (wh, _) = app.webhook(&rx.url("slowpoke")).await;
    app.publish_received().await;
    let d = app.wait_delivery(&wh, "timed-out attempt recorded", |d| d["attempts"] == 1).await;
    assert_eq!(d["status"], "pending");
    let a = &d["attempt_log"][0];
    assert_eq!(a["status_code"], 0);
    assert!(a["error"].as_str().unwrap().starts_with("timeout"), "{a}");
    assert_eq!(a["outcome"], "timeout", "{a}");
    rx.open_gate();
}

crate::on_both_stores!(
    published_event_is_delivered_verbatim_with_both_signatures_and_headers,
    stored_bytes_are_posted_verbatim_on_every_attempt,
    first_attempt_does_not_wait_for_a_poll_tick,
    failed_attempt_is_retried_after_one_minute_then_on_schedule_until_failed,
    retry_after_on_429_pushes_the_next_attempt_out,
    gone_fails_the_delivery_at_once_and_disables_the_webhook,
    disabled_webhook_defers_without_burning_attempts_and_resumes_when_enabled,
    deleting_a_webhook_ends_its_pending_deliveries,
    manual_retry_of_a_failed_delivery_allows_one_more_attempt,
    a_slow_webhook_at_its_cap_does_not_delay_a_fast_one,
    per_webhook_cap_bounds_concurrency,
    filters_route_events_by_their_attributes,
    idempotency_key_returns_the_same_event_without_new_deliveries,
    expired_pending_deliveries_are_never_attempted,
    graceful_shutdown_finishes_the_attempt_in_flight_and_records_it,
);
