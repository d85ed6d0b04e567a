//! The SSRF baseline: refused at registration and at connect time, no connection made.

use crate::support::*;
use herald_delivery::StaticLookup;
use reqwest::Method;
use serde_json::json;

fn strict(lookup: StaticLookup) -> Options {
    Options { lookup: Some(lookup), tweak: Box::new(|s| s.allow_private_targets = false), ..Default::default() }
}

#[tokio::test]
async fn private_targets_are_refused_at_registration() {
    let lookup = StaticLookup::default();
    lookup.set("inside.test", vec!["10.0.0.5".parse().unwrap()]);
    lookup.set("outside.test", vec!["93.184.216.34".parse().unwrap()]);
    let app = spawn_app_with(strict(lookup)).await;
    for url in [
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://2130706433/",
        "http://169.254.169.254/",
        "http://inside.test/",
        "http://unresolvable.test/",
    ] {
        let (s, v) =
            app.call(Method::POST, "/api/v1/webhooks", Some(json!({"url": url, "events": ["email.sent"]}))).await;
        assert_eq!(s, 400, "{url}: {v}");
        assert_eq!(v["errors"][0]["field"], "url");
    }
    app.create_webhook(json!({"url": "http://outside.test/", "events": ["email.sent"]})).await;
}

#[tokio::test]
async fn a_name_rebound_to_loopback_after_registration_is_refused_at_connect_time() {
    let rx = Receiver::start().await;
    let lookup = StaticLookup::default();
    lookup.set("rebind.test", vec!["93.184.216.34".parse().unwrap()]);
    let app = spawn_app_with(strict(lookup.clone())).await;
    let url = format!("http://rebind.test:{}/rb", rx.addr.port());
    let v = app.create_webhook(json!({"url": url, "events": ["email.received"]})).await;
    let wh = v["id"].as_str().unwrap().to_owned();
    // The name now points at the receiver on loopback.
    lookup.set("rebind.test", vec!["127.0.0.1".parse().unwrap()]);
    app.publish_received().await;
    let d = app.wait_delivery(&wh, "refused attempt recorded", |d| d["attempts"] == 1).await;
    let a = &d["attempt_log"][0];
    assert_eq!(a["status_code"], 0);
    assert!(a["error"].as_str().unwrap().contains("destination refused"), "{a}");
    assert_eq!(a["outcome"], "refused_by_policy", "{a}");
    assert_eq!(d["status"], "failed", "a refusal by the address policy is not retried like a network failure");
    assert!(rx.received("rb").is_empty(), "no connection was made");
}

#[tokio::test]
async fn patch_revalidates_the_url_only_when_it_changes() {
    let lookup = StaticLookup::default();
    lookup.set("hooks.test", vec!["93.184.216.34".parse().unwrap()]);
    let app = spawn_app_with(strict(lookup.clone())).await;
    let v = app.create_webhook(json!({"url": "https://hooks.test/in", "events": ["email.sent"]})).await;
    let id = v["id"].as_str().unwrap();
    // The name now resolves inside: unchanged URLs are not looked up again…
    lookup.set("hooks.test", vec!["10.1.2.3".parse().unwrap()]);
    let path = format!("/api/v1/webhooks/{id}");
    let (s, v) = app.call(Method::PATCH, &path, Some(json!({"description": "still fine"}))).await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = app.call(Method::PATCH, &path, Some(json!({"url": "https://hooks.test/in"}))).await;
    assert_eq!(s, 200, "same URL: not re-validated");
    // …a changed URL is.
    let (s, v) = app.call(Method::PATCH, &path, Some(json!({"url": "https://hooks.test/other"}))).await;
    assert_eq!(s, 400, "{v}");
    let (_, w) = app.call(Method::GET, &path, None).await;
    assert_eq!(w["url"], "https://hooks.test/in", "nothing changed");
}

#[tokio::test]
async fn require_https_refuses_plain_http_targets() {
    let lookup = StaticLookup::default();
    lookup.set("hooks.test", vec!["93.184.216.34".parse().unwrap()]);
    let app = spawn_app_with(Options {
        lookup: Some(lookup),
        tweak: Box::new(|s| {
            s.allow_private_targets = false;
            s.require_https = true;
        }),
        ..Default::default()
    })
    .await;
    let (s, v) = app
        .call(Method::POST, "/api/v1/webhooks", Some(json!({"url": "http://hooks.test/", "events": ["email.sent"]})))
        .await;
    assert_eq!(s, 400, "{v}");
    app.create_webhook(json!({"url": "https://hooks.test/", "events": ["email.sent"]})).await;
}

#[tokio::test]
async fn an_allow_list_opens_exactly_its_ranges() {
    let rx = Receiver::start().await;
    let app = spawn_app_with(Options {
        lookup: Some(StaticLookup::default()),
        tweak: Box::new(|s| {
            s.allow_private_targets = false;
            s.allow_cidrs = vec!["127.0.0.0/8".parse().unwrap()];
        }),
        ..Default::default()
    })
    .await;
    app.webhook(&rx.url("al")).await;
    let (s, _) = app
        .call(Method::POST, "/api/v1/webhooks", Some(json!({"url": "http://10.0.0.1/", "events": ["email.sent"]})))
        .await;
    assert_eq!(s, 400);
    app.publish_received().await;
    rx.wait_for("al", 1).await;
}
