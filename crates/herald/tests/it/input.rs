//! Input the API must refuse cleanly, on both stores: no user value reaches the database as
//! a string it cannot hold, filters are exact, limits apply to what is stored, and every
//! problem body agrees with its status line. Concurrent rotations lose no secret.

use crate::support::*;
use herald_domain::SigningSecret;
use herald_domain::signing::verify_e2a;
use reqwest::Method;
use serde_json::{Value, json};

async fn strings_the_database_cannot_hold_are_refused_with_400(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    for path in ["/api/v1/events?type=%00", "/api/v1/events?type=a%00b", "/api/v1/events?type=%C3%A9"] {
        let (s, v) = app.call(Method::GET, path, None).await;
        assert_eq!(s, 400, "{path}: {v}");
        assert_eq!(v["status"], 400);
    }
    let nul = "a\u{0}b";
    for body in [
        json!({"type": "email.received", "data": {}, "agent_id": nul}),
        json!({"type": "email.received", "data": {}, "labels": [nul]}),
        json!({"type": "email.received", "data": {}, "idempotency_key": nul}),
        json!({"type": nul, "data": {}}),
    ] {
        let (s, v) = app.call(Method::POST, "/api/v1/events", Some(body.clone())).await;
        assert_eq!(s, 400, "{body}: {v}");
    }
    for body in [
        json!({"url": "http://127.0.0.1:9/", "events": ["email.received"], "description": nul}),
        json!({"url": "http://127.0.0.1:9/", "events": ["email.received"], "filters": {"labels": [nul]}}),
        json!({"url": "http://127.0.0.1:9/", "events": [nul]}),
    ] {
        let (s, v) = app.call(Method::POST, "/api/v1/webhooks", Some(body.clone())).await;
        assert_eq!(s, 400, "{body}: {v}");
    }
    let (s, v) = app.call(Method::POST, "/api/v1/event-types", Some(json!({"name": "x.y", "description": nul}))).await;
    assert_eq!(s, 400, "{v}");
    // Nothing was written, and the store still serves.
    for list in ["/api/v1/webhooks", "/api/v1/events"] {
        let (s, v) = app.call(Method::GET, list, None).await;
        assert_eq!((s, v["items"].as_array().unwrap().len()), (200, 0), "{list}");
    }
    let (s, v) = app.call(Method::GET, "/api/v1/event-types", None).await;
    assert_eq!(s, 200);
    assert!(v["items"].as_array().unwrap().iter().all(|t| t["built_in"] == true), "{v}");
}

async fn a_mistyped_filter_key_is_refused_not_ignored(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let body = json!({"url": "http://127.0.0.1:9/", "events": ["email.received"], "filters": {"label": ["vip"]}});
    let (s, v) = app.call(Method::POST, "/api/v1/webhooks", Some(body)).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("label"), "{v}");
    let wh = app.create_webhook(json!({"url": "http://127.0.0.1:9/", "events": ["email.received"]})).await;
    let patch = json!({"filters": {"agent_id": ["a"]}});
    let (s, _) =
        app.call(Method::PATCH, &format!("/api/v1/webhooks/{}", wh["id"].as_str().unwrap()), Some(patch)).await;
    assert_eq!(s, 400);
}

async fn the_url_limit_applies_to_the_normalised_url_that_is_stored(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let url = format!("http://127.0.0.1:9/{}", "é".repeat(1000));
    let (s, v) =
        app.call(Method::POST, "/api/v1/webhooks", Some(json!({"url": url, "events": ["email.received"]}))).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("2048"), "{v}");
}

async fn ipv4_embedded_in_ipv6_is_refused_in_every_form(backend: Backend) {
    let strict = Options { tweak: Box::new(|s| s.allow_private_targets = false), ..Default::default() };
    let Some(app) = spawn_on(backend, strict).await else { return };
    for url in ["http://[::ffff:8.8.8.8]/", "http://[::1.2.3.4]/", "http://[::ffff:0808:0808]/"] {
        let (s, v) =
            app.call(Method::POST, "/api/v1/webhooks", Some(json!({"url": url, "events": ["email.received"]}))).await;
        assert_eq!(s, 400, "{url}: {v}");
    }
}

async fn method_not_allowed_says_405_in_its_body(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let (s, v) = app.call(Method::DELETE, "/api/v1/events", None).await;
    assert_eq!(s, 405);
    assert_eq!(v["status"], 405);
    assert_eq!(v["type"], "/problems/method-not-allowed");
}

/// Four rotations at once: every secret returned signs deliveries (none lost). Four at once
/// with one Idempotency-Key: one rotation, four identical answers.
async fn concurrent_rotations_lose_no_secret(backend: Backend) {
    let rx = Receiver::start().await;
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let (wh, first) = app.webhook(&rx.url("rot")).await;
    let path = format!("/api/v1/webhooks/{wh}/rotate-secret");
    let rotate = |key: Option<&'static str>| {
        let mut req = app.http.post(app.url(&path)).bearer_auth(KEY);
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let answers = futures_util::future::join_all((0..4).map(|_| rotate(None))).await;
    let mut secrets: Vec<String> = answers.iter().map(|a| a["signing_secret"].as_str().unwrap().to_owned()).collect();
    secrets.push(first);
    let same = futures_util::future::join_all((0..4).map(|_| rotate(Some("one-key")))).await;
    assert!(same.windows(2).all(|w| w[0] == w[1]), "one rotation, one answer: {same:?}");
    secrets.push(same[0]["signing_secret"].as_str().unwrap().to_owned());
    app.publish_received().await;
    let got = rx.wait_for("rot", 1).await.remove(0);
    let header = got.header("x-e2a-signature");
    assert_eq!(header.matches("v1=").count(), 6, "current + five previous: {header}");
    for s in &secrets {
        let secret = SigningSecret::from_stored(s.clone());
        assert!(verify_e2a(header, &got.body, &secret), "a secret was handed out but does not sign");
    }
}

crate::on_both_stores!(
    strings_the_database_cannot_hold_are_refused_with_400,
    a_mistyped_filter_key_is_refused_not_ignored,
    the_url_limit_applies_to_the_normalised_url_that_is_stored,
    ipv4_embedded_in_ipv6_is_refused_in_every_form,
    method_not_allowed_says_405_in_its_body,
    concurrent_rotations_lose_no_secret,
);

#[tokio::test]
async fn contradicting_settings_stop_the_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = test_settings(dir.path());
    s.lease = std::time::Duration::from_secs(5);
    let e = herald::Application::build(s, herald::Deps::default()).await.err().expect("refused").to_string();
    assert!(e.contains("HERALD_LEASE") && e.contains("HERALD_ATTEMPT_TIMEOUT"), "{e}");
    let mut s = test_settings(dir.path());
    s.max_in_flight = 0;
    let e = herald::Application::build(s, herald::Deps::default()).await.err().expect("refused").to_string();
    assert!(e.contains("HERALD_MAX_IN_FLIGHT"), "{e}");
}
