//! Durability: an acknowledged publish survives SIGKILL of the real binary.

use crate::support::*;
use serde_json::json;
use std::process::Stdio;

pub(crate) async fn start_binary(dir: &std::path::Path) -> (tokio::process::Child, String) {
    start_binary_with(dir, &[]).await
}

pub(crate) async fn start_binary_with(dir: &std::path::Path, env: &[(&str, &str)]) -> (tokio::process::Child, String) {
    let (child, addr, _) = start_binary_full(dir, env).await;
    (child, addr)
}

/// Starts the binary; returns it, its API base URL and its SMTP address (when it has one).
pub(crate) async fn start_binary_full(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (tokio::process::Child, String, Option<std::net::SocketAddr>) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.arg("serve")
        .env("HERALD_LISTEN", "127.0.0.1:0")
        .env("HERALD_DATA_DIR", dir)
        .env("HERALD_ALLOW_PRIVATE_TARGETS", "true")
        .env("HERALD_BOOTSTRAP_API_KEY", KEY)
        // A short lease so a restart picks up held work quickly; it must exceed the attempt timeout.
        .env("HERALD_LEASE", "3s")
        .env("HERALD_ATTEMPT_TIMEOUT", "1500ms")
        .env("HERALD_RETRY_JITTER", "0")
        .env("RUST_LOG", "warn")
        // The caller's settings win over the defaults above.
        .envs(env.iter().copied())
        .stderr(Stdio::null());
    let served = spawn_served(cmd).await;
    (served.child, served.base, served.smtp)
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

#[tokio::test]
async fn a_config_file_is_read_and_flags_and_environment_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let file_key = "hk_00000000000000000000000000000000000000000000000f";
    let config = dir.path().join("herald.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:1\"\nbootstrap_api_key = \"{file_key}\"\nretry_schedule = [\"1m\", \"2m\"]\nallow_private_targets = true\n"
        ),
    )
    .unwrap();
    // The environment gives the key (beats the file); the flag gives the address (beats the file).
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("HERALD_DATA_DIR", dir.path())
        .env("HERALD_BOOTSTRAP_API_KEY", KEY)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null());
    // Kept until the end: the server is killed when it is dropped.
    let Served { child: _child, base, .. } = spawn_served(cmd).await;
    let http = reqwest::Client::new();
    let r = http.get(format!("{base}/api/v1/webhooks")).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(r.status(), 200, "the environment's key won");
    let r = http.get(format!("{base}/api/v1/webhooks")).bearer_auth(file_key).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // The file's own settings apply: 3 attempts from a 2-step schedule; private targets allowed.
    let w: serde_json::Value = http
        .post(format!("{base}/api/v1/webhooks"))
        .bearer_auth(KEY)
        .json(&json!({"url": "http://127.0.0.1:9/x", "events": ["email.received"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = w["id"].as_str().expect("private target allowed by the file");
    http.post(format!("{base}/api/v1/events"))
        .bearer_auth(KEY)
        .json(&json!({"type": "email.received", "data": {}}))
        .send()
        .await
        .unwrap();
    let d: serde_json::Value = http
        .get(format!("{base}/api/v1/webhooks/{id}/deliveries"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["items"][0]["max_attempts"], 3);

    std::fs::write(&config, "no_such_setting = 1\n").unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("HERALD_DATA_DIR", dir.path())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown setting"));
}
