//! Operational webhooks: `webhook.disabled` (manual, gone, failing), `webhook.enabled`,
//! `delivery.failed` and `secret.rotated` reach the account's subscribed webhooks through the
//! same engine (signed, retried); the API refuses to publish them; a failed delivery of an
//! operational event never causes another `delivery.failed`. On both stores.

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

const OPERATIONAL: [&str; 4] = herald_domain::operational::TYPES;

/// Settings: a failed attempt is retried once, 50 ms later.
fn quick_retries() -> Box<dyn FnOnce(&mut herald::settings::Settings)> {
    Box::new(|s| s.retry_schedule = vec![Duration::from_millis(50)])
}

/// The operational events `rx` got on `path`, as (type, data), in arrival order.
fn notices(rx: &Receiver, path: &str) -> Vec<(String, Value)> {
    rx.received(path)
        .iter()
        .map(|r| {
            let v = r.json();
            (v["type"].as_str().unwrap().to_owned(), v["data"].clone())
        })
        .collect()
}

async fn wait_notices(rx: &Receiver, path: &str, what: &str, pred: impl Fn(&[(String, Value)]) -> bool) {
    eventually(what, || async { pred(&notices(rx, path)).then_some(()) }).await;
}

fn has(list: &[(String, Value)], kind: &str, pred: impl Fn(&Value) -> bool) -> bool {
    list.iter().any(|(t, d)| t == kind && pred(d))
}

async fn operational_events_reach_subscribers_and_never_feed_themselves(backend: Backend) {
    let Some(app) = spawn_on(backend, Options { tweak: quick_retries(), ..Default::default() }).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.always("ops", Reply::status(200));
    rx.always("bad-ops", Reply::status(503));
    rx.always("gone", Reply::status(410).body("we closed this endpoint"));
    rx.always("failing", Reply::status(500));
    rx.always("fine", Reply::status(200));
    app.create_webhook(json!({"url": rx.url("ops"), "events": OPERATIONAL})).await;
    // A subscriber that fails every delivery.failed it gets: no delivery.failed about those.
    app.create_webhook(json!({"url": rx.url("bad-ops"), "events": ["delivery.failed"]})).await;
    let (gone, _) = app.webhook(&rx.url("gone")).await;
    let (failing, _) = app.webhook(&rx.url("failing")).await;
    let (fine, _) = app.webhook(&rx.url("fine")).await;

    // Nobody but Herald publishes them, nor sends them as a test.
    for t in OPERATIONAL {
        let (s, v) = app.call(Method::POST, "/api/v1/events", Some(json!({"type": t, "data": {}}))).await;
        assert_eq!(s, 400, "{t}: {v}");
        assert!(v["errors"][0]["message"].as_str().unwrap().contains("only Herald publishes"), "{v}");
        let test = json!({"type": t, "data": {"webhook_id": fine, "reason": "gone"}});
        let (s, v) = app.call(Method::POST, &format!("/api/v1/webhooks/{fine}/test"), Some(test)).await;
        assert_eq!(s, 400, "test send of {t}: {v}");
    }
    assert!(rx.received("fine").is_empty(), "nothing was sent");

    let event = app.publish_received().await;
    let event_id = event["id"].as_str().unwrap().to_owned();
    // 410: the delivery fails at once and the webhook is disabled as gone.
    wait_notices(&rx, "ops", "webhook.disabled (gone) and its delivery.failed", |n| {
        has(n, "webhook.disabled", |d| d["webhook_id"] == gone.as_str() && d["reason"] == "gone")
            && has(n, "delivery.failed", |d| d["webhook_id"] == gone.as_str() && d["last_error"] == "HTTP 410")
    })
    .await;
    // 500 twice: attempts exhausted.
    wait_notices(&rx, "ops", "delivery.failed after the last attempt", |n| {
        has(n, "delivery.failed", |d| {
            d["webhook_id"] == failing.as_str()
                && d["attempts"] == 2
                && d["event_id"] == event_id.as_str()
                && d["event_type"] == "email.received"
                && d["delivery_id"].as_str().is_some_and(|id| id.starts_with("whd_"))
        })
    })
    .await;

    // By hand: disabled, enabled, rotated.
    let path = format!("/api/v1/webhooks/{fine}");
    let (s, _) = app.call(Method::PATCH, &path, Some(json!({"enabled": false}))).await;
    assert_eq!(s, 200);
    let (s, _) = app.call(Method::PATCH, &path, Some(json!({"enabled": false}))).await;
    assert_eq!(s, 200, "disabling a disabled webhook is no change: no second notice");
    let (s, _) = app.call(Method::PATCH, &path, Some(json!({"enabled": true}))).await;
    assert_eq!(s, 200);
    let (s, rotated) = app.call(Method::POST, &format!("{path}/rotate-secret"), Some(json!({}))).await;
    assert_eq!(s, 200, "{rotated}");
    wait_notices(&rx, "ops", "manual disable, enable and rotation", |n| {
        has(n, "webhook.enabled", |d| d["webhook_id"] == fine.as_str())
            && has(n, "secret.rotated", |d| {
                d["webhook_id"] == fine.as_str()
                    && d["previous_secret_expires_at"] == rotated["previous_secret_expires_at"]
            })
    })
    .await;
    // The app publishes before it answers: the log is complete once the PATCHes returned.
    let (_, log) = app.call(Method::GET, "/api/v1/events?type=webhook.disabled&limit=100", None).await;
    let manual: Vec<&Value> =
        log["items"].as_array().unwrap().iter().filter(|e| e["data"]["webhook_id"] == fine.as_str()).collect();
    assert_eq!(manual.len(), 1, "one notice for two PATCHes that disable: {log}");
    assert_eq!(manual[0]["data"]["reason"], "manual");
    let secret = rotated["signing_secret"].as_str().unwrap();
    for r in rx.received("ops") {
        assert!(!String::from_utf8_lossy(&r.body).contains(&secret[6..]), "a notice carried the new secret");
        assert!(r.header("webhook-signature").starts_with("v1,"), "notices are signed like any delivery");
    }

    // bad-ops got both delivery.failed events and failed each twice; none of that is reported.
    let bad_ops = rx.wait_for("bad-ops", 4).await;
    assert!(bad_ops.iter().all(|r| r.json()["type"] == "delivery.failed"));
    eventually("bad-ops' deliveries ended failed", || async {
        let (_, list) = app.call(Method::GET, "/api/v1/webhooks", None).await;
        let bad = list["items"].as_array()?.iter().find(|w| w["url"] == rx.url("bad-ops"))?.clone();
        let ds = app.deliveries(bad["id"].as_str()?).await;
        (ds.len() == 2 && ds.iter().all(|d| d["status"] == "failed")).then_some(())
    })
    .await;
    // The engine publishes notices in the order it records outcomes: once a later outcome's
    // notice (another webhook answering 410 to a test send) is in the log, any notice about
    // bad-ops' failures would be there too.
    rx.always("gone-later", Reply::status(410));
    let (later, _) = app.webhook(&rx.url("gone-later")).await;
    let (s, _) = app.call(Method::POST, &format!("/api/v1/webhooks/{later}/test?wait=true"), None).await;
    assert_eq!(s, 200);
    wait_notices(&rx, "ops", "the later webhook.disabled", |n| {
        has(n, "webhook.disabled", |d| d["webhook_id"] == later.as_str())
    })
    .await;
    let (s, log) = app.call(Method::GET, "/api/v1/events?type=delivery.failed&limit=100", None).await;
    assert_eq!(s, 200, "{log}");
    let about: Vec<&str> =
        log["items"].as_array().unwrap().iter().map(|e| e["data"]["webhook_id"].as_str().unwrap_or("?")).collect();
    assert_eq!(about.len(), 2, "only gone's and failing's deliveries, no test send: {about:?}");
    assert!(about.contains(&gone.as_str()) && about.contains(&failing.as_str()), "{about:?}");
    app.stop().await;
}

async fn auto_disabled_webhooks_are_announced_as_failing(backend: Backend) {
    let opts = Options {
        tweak: Box::new(|s| {
            s.retry_schedule = vec![Duration::from_millis(20)];
            s.auto_disable_threshold = 2;
            s.auto_disable_interval = Duration::from_millis(200);
        }),
        ..Default::default()
    };
    let Some(app) = spawn_on(backend, opts).await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.always("ops", Reply::status(200));
    rx.always("down", Reply::status(503));
    app.create_webhook(json!({"url": rx.url("ops"), "events": ["webhook.disabled"]})).await;
    let (down, _) = app.webhook(&rx.url("down")).await;
    app.publish_received().await;
    app.publish_received().await;
    wait_notices(&rx, "ops", "webhook.disabled (failing)", |n| {
        has(n, "webhook.disabled", |d| d["webhook_id"] == down.as_str() && d["reason"] == "failing")
    })
    .await;
    let w = app.call(Method::GET, &format!("/api/v1/webhooks/{down}"), None).await.1;
    assert_eq!(w["enabled"], false);
    app.stop().await;
}

crate::on_both_stores!(
    operational_events_reach_subscribers_and_never_feed_themselves,
    auto_disabled_webhooks_are_announced_as_failing,
);
