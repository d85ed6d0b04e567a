//! Webhook lifecycle through the API: rotation, test sends, auto-disable, recovery,
//! events log, custom event types.

use crate::support::*;
use herald_domain::SigningSecret;
use herald_domain::signing::verify_e2a;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

async fn rotation_keeps_earlier_secrets_signing_through_their_grace(backend: Backend) {
    let rx = Receiver::start().await;
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let (wh, first) = app.webhook(&rx.url("rot")).await;
    let path = format!("/api/v1/webhooks/{wh}/rotate-secret");
    let (s, r1) = app.call(Method::POST, &path, None).await;
    assert_eq!(s, 200, "{r1}");
    let (s, r2) = app.call(Method::POST, &path, Some(json!({"grace_period_seconds": 3600}))).await;
    assert_eq!(s, 200);
    let second = r1["signing_secret"].as_str().unwrap();
    let third = r2["signing_secret"].as_str().unwrap();
    assert!(r2["previous_secret_expires_at"].is_string());
    app.publish_received().await;
    let got = rx.wait_for("rot", 1).await.remove(0);
    let header = got.header("x-e2a-signature");
    assert_eq!(header.matches("v1=").count(), 3, "rotating twice in a day invalidates nothing: {header}");
    for secret in [&first, second, third] {
        assert!(verify_e2a(header, &got.body, &SigningSecret::from_stored(secret.to_string())));
    }
    let (s, _) = app.call(Method::POST, &path, Some(json!({"grace_period_seconds": 604_801}))).await;
    assert_eq!(s, 400);
    let (_, w) = app.call(Method::GET, &format!("/api/v1/webhooks/{wh}"), None).await;
    assert!(!w.to_string().contains("whsec_"), "no secret outside create and rotate");
}

async fn rotation_with_the_same_idempotency_key_returns_the_same_secret(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let (wh, _) = app.webhook("http://127.0.0.1:9/x").await;
    let rotate = || async {
        let r = app
            .http
            .post(app.url(&format!("/api/v1/webhooks/{wh}/rotate-secret")))
            .bearer_auth(KEY)
            .header("idempotency-key", "rot-1")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<serde_json::Value>().await.unwrap()
    };
    let a = rotate().await;
    let b = rotate().await;
    assert_eq!(a["signing_secret"], b["signing_secret"]);
}

async fn test_send_returns_the_delivery_and_with_wait_the_first_attempts_outcome(backend: Backend) {
    let rx = Receiver::start().await;
    rx.script("t", vec![Reply::status(200).body("hello"), Reply::status(500).body("boom")]);
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let (wh, _) = app.webhook(&rx.url("t")).await;
    let path = format!("/api/v1/webhooks/{wh}/test");
    let (s, v) = app.call(Method::POST, &format!("{path}?wait=true"), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["success"], true);
    assert_eq!(v["status_code"], 200);
    assert_eq!(v["response_body"], "hello");
    assert!(v["duration_ms"].is_u64());
    let got = rx.wait_for("t", 1).await.remove(0);
    assert_eq!(got.json()["type"], "webhook.test");
    let (s, v) = app
        .call(Method::POST, &format!("{path}?wait=true"), Some(json!({"type": "email.sent", "data": {"x": 1}})))
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["success"], false);
    assert_eq!(v["status_code"], 500);
    let (s, v) = app.call(Method::POST, &path, None).await;
    assert_eq!(s, 202);
    assert!(v["delivery_id"].as_str().unwrap().starts_with("whd_"));
    app.call(Method::PATCH, &format!("/api/v1/webhooks/{wh}"), Some(json!({"enabled": false}))).await;
    let (s, _) = app.call(Method::POST, &path, None).await;
    assert_eq!(s, 409, "disabled webhook");
}

async fn failing_webhooks_are_auto_disabled_and_re_enabling_waits_for_the_cooldown(backend: Backend) {
    let rx = Receiver::start().await;
    rx.always("ad", Reply::status(500));
    let Some(app) = spawn_on(
        backend,
        Options {
            manual_clock: true,
            tweak: Box::new(|s| {
                s.retry_schedule = vec![];
                s.auto_disable_threshold = 3;
                s.auto_disable_interval = Duration::from_millis(50);
            }),
            ..Default::default()
        },
    )
    .await
    else {
        return;
    };
    let (wh, _) = app.webhook(&rx.url("ad")).await;
    for _ in 0..3 {
        app.publish_received().await;
    }
    let w = eventually("webhook auto-disabled", || async {
        let (_, w) = app.call(Method::GET, &format!("/api/v1/webhooks/{wh}"), None).await;
        (w["enabled"] == false).then_some(w)
    })
    .await;
    assert_eq!(w["disabled_reason"], "failing");
    assert!(w["auto_disabled_at"].is_string());
    let enable = Some(json!({"enabled": true}));
    let (s, v) = app.call(Method::PATCH, &format!("/api/v1/webhooks/{wh}"), enable.clone()).await;
    assert_eq!(s, 409, "{v}");
    app.advance(Duration::from_secs(301));
    let (s, v) = app.call(Method::PATCH, &format!("/api/v1/webhooks/{wh}"), enable).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["enabled"], true);
    assert!(v.get("disabled_reason").is_none());
}

async fn recovery_redelivers_events_published_while_disabled(backend: Backend) {
    let rx = Receiver::start().await;
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let (wh, _) = app.webhook(&rx.url("rec")).await;
    let since = herald_domain::rfc3339(time::OffsetDateTime::now_utc() - time::Duration::seconds(5));
    app.call(Method::PATCH, &format!("/api/v1/webhooks/{wh}"), Some(json!({"enabled": false}))).await;
    for _ in 0..3 {
        assert_eq!(app.publish_received().await["deliveries"], 0);
    }
    app.call(Method::PATCH, &format!("/api/v1/webhooks/{wh}"), Some(json!({"enabled": true}))).await;
    let path = format!("/api/v1/webhooks/{wh}/recover");
    let (s, v) = app.call(Method::POST, &path, Some(json!({"since": since, "dry_run": true}))).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"count": 3, "dry_run": true}));
    assert!(rx.received("rec").is_empty());
    let (s, v) = app.call(Method::POST, &path, Some(json!({"since": since}))).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["count"], 3);
    rx.wait_for("rec", 3).await;
    let r = app.http.post(app.url(&path)).bearer_auth(KEY).json(&json!({"since": since})).send().await.unwrap();
    assert_eq!(r.status(), 429, "rate-limited per webhook");
    assert!(r.headers().get("retry-after").is_some());
    let (s, _) = app.call(Method::POST, &path, Some(json!({"since": "yesterday"}))).await;
    assert_eq!(s, 400);
}

async fn the_events_log_lists_filters_and_shows_deliveries(backend: Backend) {
    let rx = Receiver::start().await;
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    app.webhook(&rx.url("log")).await;
    let a = app.publish_received().await;
    let b = app.publish(json!({"type": "email.sent", "data": {"k": "v"}})).await;
    let (s, v) = app.call(Method::GET, "/api/v1/events", None).await;
    assert_eq!(s, 200);
    let ids: Vec<_> = v["items"].as_array().unwrap().iter().map(|e| e["id"].clone()).collect();
    assert_eq!(ids, vec![b["id"].clone(), a["id"].clone()]);
    let (_, v) = app.call(Method::GET, "/api/v1/events?type=email.sent", None).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert_eq!(v["items"][0]["data"], json!({"k": "v"}));
    let (_, v) = app.call(Method::GET, "/api/v1/events?limit=1", None).await;
    assert!(v["next_cursor"].is_string());
    let (s, e) = app.call(Method::GET, &format!("/api/v1/events/{}", a["id"].as_str().unwrap()), None).await;
    assert_eq!(s, 200);
    assert_eq!(e["delivery_log"].as_array().unwrap().len(), 1);
    let (s, _) = app.call(Method::GET, "/api/v1/events/evt_00000000000000000000000000000000", None).await;
    assert_eq!(s, 404);
}

async fn custom_event_types_can_be_registered_subscribed_and_published(backend: Backend) {
    let rx = Receiver::start().await;
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let (s, v) = app
        .call(Method::POST, "/api/v1/event-types", Some(json!({"name": "invoice.paid", "description": "paid"})))
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, _) = app.call(Method::POST, "/api/v1/event-types", Some(json!({"name": "invoice.paid"}))).await;
    assert_eq!(s, 409);
    let (s, _) = app.call(Method::POST, "/api/v1/event-types", Some(json!({"name": "email.sent"}))).await;
    assert_eq!(s, 400);
    let (_, list) = app.call(Method::GET, "/api/v1/event-types", None).await;
    assert!(list["items"].as_array().unwrap().iter().any(|t| t["name"] == "invoice.paid" && t["built_in"] == false));
    app.create_webhook(json!({"url": rx.url("inv"), "events": ["invoice.paid"]})).await;
    let ev = app.publish(json!({"type": "invoice.paid", "data": {"amount": 5}})).await;
    assert_eq!(ev["deliveries"], 1);
    rx.wait_for("inv", 1).await;
}

async fn test_sends_and_rotations_are_rate_limited_per_account(backend: Backend) {
    let tweak = Box::new(|s: &mut herald::Settings| {
        s.test_sends_per_minute = 2;
        s.rotations_per_minute = 1;
        s.recoveries_per_minute = 1;
    });
    let Some(app) = spawn_on(backend, Options { tweak, ..Default::default() }).await else { return };
    let (wh, _) = app.webhook("http://127.0.0.1:9/rl").await;
    let test = format!("/api/v1/webhooks/{wh}/test");
    // Refused requests take no token: a disabled webhook's test sends, a bad grace period,
    // a bad recovery window.
    let off = app
        .create_webhook(json!({"url": "http://127.0.0.1:9/off", "events": ["email.received"], "enabled": false}))
        .await;
    let off_test = format!("/api/v1/webhooks/{}/test", off["id"].as_str().unwrap());
    for _ in 0..3 {
        assert_eq!(app.call(Method::POST, &off_test, None).await.0, 409);
    }
    let rotate = format!("/api/v1/webhooks/{wh}/rotate-secret");
    let bad_grace = json!({"grace_period_seconds": 999_999_999});
    for _ in 0..2 {
        assert_eq!(app.call(Method::POST, &rotate, Some(bad_grace.clone())).await.0, 400);
    }
    let recover = format!("/api/v1/webhooks/{wh}/recover");
    let backwards = json!({"since": "2999-01-01T00:00:00Z", "dry_run": true});
    assert_eq!(app.call(Method::POST, &recover, Some(backwards)).await.0, 400);
    let real = json!({"since": "2020-01-01T00:00:00Z"});
    assert_eq!(app.call(Method::POST, &recover, Some(real)).await.0, 202, "the bad window used no token");
    for _ in 0..2 {
        let (s, _) = app.call(Method::POST, &test, None).await;
        assert_eq!(s, 202);
    }
    let r = app.http.post(app.url(&test)).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], 429, "the problem body says what the status line says");
    assert_eq!(body["type"], "/problems/rate-limited");
    assert_eq!(app.call(Method::POST, &rotate, None).await.0, 200);
    assert_eq!(app.call(Method::POST, &rotate, None).await.0, 429);
}

/// `HERALD_RETENTION` is how long events and their deliveries are kept: once it has passed,
/// the janitor (every `HERALD_JANITOR_INTERVAL`) deletes both.
async fn retention_setting_expires_events_and_deliveries(backend: Backend) {
    let rx = Receiver::start().await;
    let opts = Options {
        manual_clock: true,
        tweak: Box::new(|s| {
            s.retention = Duration::from_secs(3600);
            s.retry_schedule = vec![Duration::from_secs(60)];
            s.janitor_interval = Duration::from_secs(1);
        }),
        ..Default::default()
    };
    let Some(app) = spawn_on(backend, opts).await else { return };
    let (wh, _) = app.webhook(&rx.url("kept")).await;
    let event = app.publish_received().await;
    let id = event["id"].as_str().unwrap().to_owned();
    app.wait_delivery(&wh, "delivered", |d| d["status"] == "delivered").await;
    app.advance(Duration::from_secs(1800));
    let (status, _) = app.call(reqwest::Method::GET, &format!("/api/v1/events/{id}"), None).await;
    assert_eq!(status, 200, "kept within the retention");
    app.advance(Duration::from_secs(1801));
    eventually("the event deleted after the retention", || async {
        let (status, _) = app.call(reqwest::Method::GET, &format!("/api/v1/events/{id}"), None).await;
        (status == 404).then_some(())
    })
    .await;
    assert!(app.deliveries(&wh).await.is_empty(), "its delivery deleted too");
}

crate::on_both_stores!(
    retention_setting_expires_events_and_deliveries,
    test_sends_and_rotations_are_rate_limited_per_account,
    rotation_keeps_earlier_secrets_signing_through_their_grace,
    rotation_with_the_same_idempotency_key_returns_the_same_secret,
    test_send_returns_the_delivery_and_with_wait_the_first_attempts_outcome,
    failing_webhooks_are_auto_disabled_and_re_enabling_waits_for_the_cooldown,
    recovery_redelivers_events_published_while_disabled,
    the_events_log_lists_filters_and_shows_deliveries,
    custom_event_types_can_be_registered_subscribed_and_published,
);
