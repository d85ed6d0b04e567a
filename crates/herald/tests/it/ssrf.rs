//! The SSRF baseline: refused at registration and at connect time, no connection made.

use crate::support::*;
use herald_delivery::StaticLookup;
use reqwest::Method;
use serde_json::json;

fn strict(lookup: StaticLookup) -> Options {
    Options {
        lookup: Some(lookup),
        tweak: Box::new(|s| s.allow_private_targets = false),
        ..Default::default()
    }
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
        let (s, v) = app
            .call(
                Method::POST,
                "/api/v1/webhooks",
                Some(json!({"url": url, "events": ["email.sent"]})),
            )
            .await;
        assert_eq!(s, 400, "{url}: {v}");
        assert_eq!(v["errors"][0]["field"], "url");
    }
    app.create_webhook(json!({"url": "http://outside.test/", "events": ["email.sent"]}))
        .await;
}

#[tokio::test]
async fn a_name_rebound_to_loopback_after_registration_is_refused_at_connect_time() {
    let rx = Receiver::start().await;
    let lookup = StaticLookup::default();
    lookup.set("rebind.test", vec!["93.184.216.34".parse().unwrap()]);
    let app = spawn_app_with(strict(lookup.clone())).await;
    let url = format!("http://rebind.test:{}/rb", rx.addr.port());
    let v = app
        .create_webhook(json!({"url": url, "events": ["email.received"]}))
        .await;
    let wh = v["id"].as_str().unwrap().to_owned();
    // The name now points at the receiver on loopback.
    lookup.set("rebind.test", vec!["127.0.0.1".parse().unwrap()]);
    app.publish_received().await;
    let d = app
        .wait_delivery(&wh, "refused attempt recorded", |d| d["attempts"] == 1)
        .await;
    let a = &d["attempt_log"][0];
    assert_eq!(a["status_code"], 0);
    assert!(
        a["error"].as_str().unwrap().contains("destination refused"),
        "{a}"
    );
    assert!(rx.received("rb").is_empty(), "no connection was made");
}
