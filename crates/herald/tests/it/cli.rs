//! The CLI against a running app, and `herald listen` as a real receiver.

use crate::support::*;
use serde_json::Value;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};

async fn herald(app: &TestApp, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .env("HERALD_SERVER", format!("http://{}", app.addr))
        .env("HERALD_API_KEY", KEY)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

async fn herald_json(app: &TestApp, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, out) = herald(app, &all).await;
    assert!(ok, "herald {args:?} failed: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[tokio::test]
async fn cli_manages_webhooks_events_and_deliveries_of_a_running_server() {
    let rx = Receiver::start().await;
    let app = spawn_app().await;
    let created =
        herald_json(&app, &["webhooks", "create", &rx.url("cli"), "--events", "email.received,email.sent"]).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(created["signing_secret"].as_str().unwrap().starts_with("whsec_"));
    let (ok, table) = herald(&app, &["webhooks", "list"]).await;
    assert!(ok && table.contains(&id) && table.starts_with("ID"), "{table}");

    let ev = herald_json(&app, &["events", "send", "--type", "email.received", "--data", r#"{"n":1}"#]).await;
    assert_eq!(ev["deliveries"], 1);
    rx.wait_for("cli", 1).await;
    let list = herald_json(&app, &["events", "list", "--type", "email.received"]).await;
    assert_eq!(list["items"][0]["id"], ev["id"]);

    let ds = herald_json(&app, &["deliveries", "list", &id]).await;
    let did = ds["items"][0]["id"].as_str().unwrap().to_owned();
    let d = herald_json(&app, &["deliveries", "show", &did]).await;
    assert!(d["attempt_log"].is_array());

    let t = herald_json(&app, &["webhooks", "test", &id]).await;
    assert_eq!(t["success"], true);
    let r = herald_json(&app, &["webhooks", "rotate", &id, "--grace-period-seconds", "60"]).await;
    assert!(r["signing_secret"].as_str().unwrap().starts_with("whsec_"));
    let since = herald_domain::rfc3339(time::OffsetDateTime::now_utc() - time::Duration::minutes(5));
    let rec = herald_json(&app, &["webhooks", "recover", &id, "--since", &since, "--dry-run"]).await;
    assert_eq!(rec["count"], 1, "the published event; the test event is not a subscribed type");
    let (ok, out) = herald(&app, &["webhooks", "recover", &id, "--since", &since]).await;
    assert!(ok, "{out}");
    assert!(out.contains("1 events re-delivered"), "{out}");
    let off = herald_json(&app, &["webhooks", "disable", &id]).await;
    assert_eq!(off["enabled"], false);
    let on = herald_json(&app, &["webhooks", "enable", &id]).await;
    assert_eq!(on["enabled"], true);
    let (ok, out) = herald(&app, &["deliveries", "retry", &did]).await;
    assert!(!ok && out.contains("409"), "a delivered delivery cannot be retried: {out}");
}

#[tokio::test]
async fn herald_listen_verifies_both_signatures_of_real_deliveries() {
    let app = spawn_app().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let v = app
        .create_webhook(
            serde_json::json!({"url": format!("http://127.0.0.1:{port}/hook"), "events": ["email.received"]}),
        )
        .await;
    let secret = v["signing_secret"].as_str().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["listen", "--secret", secret, "--port", &port.to_string()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    assert!(first.starts_with("listening on"), "{first}");
    let ev = app.publish_received().await;
    let line = loop {
        let l = lines.next_line().await.unwrap().expect("listen printed the delivery");
        if l.starts_with("---") {
            break l;
        }
    };
    assert!(line.contains(ev["id"].as_str().unwrap()), "{line}");
    assert!(line.ends_with("signatures OK"), "{line}");
}
