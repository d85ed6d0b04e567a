//! Durability: an acknowledged publish survives SIGKILL of the real binary.

use crate::support::*;
use serde_json::json;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};

pub(crate) async fn start_binary(dir: &std::path::Path) -> (tokio::process::Child, String) {
    start_binary_with(dir, &[]).await
}

pub(crate) async fn start_binary_with(dir: &std::path::Path, env: &[(&str, &str)]) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("serve")
        .envs(env.iter().copied())
        .env("HERALD_LISTEN", "127.0.0.1:0")
        .env("HERALD_DATA_DIR", dir)
        .env("HERALD_ALLOW_PRIVATE_TARGETS", "true")
        .env("HERALD_BOOTSTRAP_API_KEY", KEY)
        .env("HERALD_LEASE", "2s")
        .env("HERALD_RETRY_JITTER", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next_line().await.unwrap().expect("binary printed its address");
        if let Some(a) = line.strip_prefix("herald listening on ") {
            break a.to_owned();
        }
    };
    (child, addr)
}

#[tokio::test]
async fn acknowledged_events_survive_sigkill_and_are_delivered_after_restart() {
    let rx = Receiver::start().await;
    rx.always("k", Reply::status(200).gated());
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = start_binary(dir.path()).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/api/v1/webhooks"))
        .bearer_auth(KEY)
        .json(&json!({"url": rx.url("k"), "events": ["email.received"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut ids = std::collections::HashSet::new();
    for i in 0..25 {
        let r = http
            .post(format!("{base}/api/v1/events"))
            .bearer_auth(KEY)
            .json(&json!({"type": "email.received", "data": {"i": i}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let v: serde_json::Value = r.json().await.unwrap();
        ids.insert(v["id"].as_str().unwrap().to_owned());
    }
    // One attempt is in flight (held by the receiver), the rest are queued: kill now.
    rx.wait_for("k", 1).await;
    child.start_kill().unwrap();
    child.wait().await.unwrap();

    rx.open_gate();
    let (_child, _) = start_binary(dir.path()).await;
    let got = eventually("every acknowledged event delivered", || async {
        let got: std::collections::HashSet<String> =
            rx.received("k").iter().map(|r| r.header("webhook-id").to_owned()).collect();
        (got.len() == ids.len()).then_some(got)
    })
    .await;
    assert_eq!(got, ids);
}
