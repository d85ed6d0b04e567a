//! Logs of the real binary: one JSON line per request with its route template, status and
//! request id (`X-Request-Id` kept or made), a line per attempt at debug — and, at debug
//! level through a whole flow, never a key, secret, token, cookie or body.

use crate::support::*;
use serde_json::{Value, json};

const SEALING_KEY: &str = "7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a";

#[tokio::test]
async fn debug_json_logs_name_every_request_and_never_a_secret_or_a_body() {
    let rx = Receiver::start().await;
    rx.always("logs", Reply::status(200).body("RECEIVER-BODY-7f3a"));
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("herald.log");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.args(["serve", "--log-json"])
        .env("HERALD_LISTEN", "127.0.0.1:0")
        .env("HERALD_DATA_DIR", dir.path())
        .env("HERALD_ALLOW_PRIVATE_TARGETS", "true")
        .env("HERALD_BOOTSTRAP_API_KEY", KEY)
        .env("HERALD_SECRET_KEY", SEALING_KEY)
        .env("RUST_LOG", "debug")
        .stderr(std::fs::File::create(&log_path).unwrap());
    let Served { mut child, base, .. } = spawn_served(cmd).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = http.request(method, format!("{base}{path}")).bearer_auth(KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req
    };
    let created: Value = call(
        reqwest::Method::POST,
        "/api/v1/webhooks",
        Some(json!({"url": rx.url("logs"), "events": ["email.received"]})),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let wh = created["id"].as_str().unwrap().to_owned();
    let first_secret = created["signing_secret"].as_str().unwrap().to_owned();
    let res = call(
        reqwest::Method::POST,
        "/api/v1/events",
        Some(json!({"type": "email.received", "data": {"note": "PAYLOAD-MARKER-5d1c"}})),
    )
    .header("x-request-id", "trace-abc-1")
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(res.headers()["x-request-id"], "trace-abc-1", "a caller's id is kept");
    rx.wait_for("logs", 1).await;
    // An Ed25519 webhook: its account's private key signs a delivery, then is rotated.
    let ed = call(
        reqwest::Method::POST,
        "/api/v1/webhooks",
        Some(json!({"url": rx.url("logs-ed"), "events": ["email.sent"], "signature": "ed25519"})),
    );
    assert_eq!(ed.send().await.unwrap().status(), 201);
    let sent = call(reqwest::Method::POST, "/api/v1/events", Some(json!({"type": "email.sent", "data": {}})));
    assert_eq!(sent.send().await.unwrap().status(), 202);
    rx.wait_for("logs-ed", 1).await;
    let res = call(reqwest::Method::POST, "/api/v1/signing-keys/rotate", None).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = call(reqwest::Method::POST, &format!("/api/v1/webhooks/{wh}/rotate-secret"), None).send().await.unwrap();
    let made_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made_id.len(), 32, "an id is made when none is given");
    let rotated: Value = res.json().await.unwrap();
    let second_secret = rotated["signing_secret"].as_str().unwrap().to_owned();
    let portal: Value =
        call(reqwest::Method::POST, "/api/v1/portal-sessions", None).send().await.unwrap().json().await.unwrap();
    let link = portal["url"].as_str().unwrap().to_owned();
    let token = link.split("token=").nth(1).unwrap().to_owned();
    let opened = http.get(&link).send().await.unwrap();
    let cookie = opened.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let cookie_value = cookie.split('=').nth(1).unwrap().to_owned();
    assert_eq!(http.get(format!("{base}/portal/")).header("cookie", &cookie).send().await.unwrap().status(), 200);

    // Every request has been answered, so its line is written; the attempt's too.
    let log = eventually("the rotation's request line", || async {
        let log = std::fs::read_to_string(&log_path).unwrap();
        log.contains(&made_id).then_some(log)
    })
    .await;
    child.kill().await.unwrap();
    let private_keys: Vec<String> = {
        let db =
            sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("herald.db").display())).await.unwrap();
        let sealed: Vec<String> =
            sqlx::query_scalar("SELECT private_key FROM signing_keys").fetch_all(&db).await.unwrap();
        let cipher = herald_store::codec::SecretCipher::from_key_text(SEALING_KEY).unwrap();
        sealed.iter().map(|s| cipher.open(s).unwrap()["whsk_".len()..].to_owned()).collect()
    };
    assert_eq!(private_keys.len(), 2, "the first key and the rotated one");

    let lines: Vec<Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(lines.len() * 10 >= log.lines().count() * 9, "JSON lines");
    let request = |pred: &dyn Fn(&Value) -> bool| {
        lines.iter().find(|l| l["target"] == "herald::http" && pred(&l["fields"])).cloned()
    };
    let rotate = request(&|f| f["request_id"] == made_id.as_str()).expect("the rotation's request line");
    let f = &rotate["fields"];
    assert_eq!(
        (f["method"].as_str(), f["route"].as_str(), f["status"].as_u64()),
        (Some("POST"), Some("/api/v1/webhooks/{id}/rotate-secret"), Some(200)),
        "{rotate}"
    );
    assert!(f["duration_ms"].as_f64().is_some());
    assert!(request(&|f| f["request_id"] == "trace-abc-1" && f["route"] == "/api/v1/events").is_some());
    assert!(request(&|f| f["route"] == "/portal/login" && f["status"] == 303).is_some());
    assert!(
        lines.iter().any(|l| l["fields"]["message"] == "attempt finished" && l["fields"]["status"] == 200),
        "an attempt line at debug"
    );

    for (what, secret) in [
        ("API key", KEY),
        ("first signing secret", &first_secret[6..]),
        ("second signing secret", &second_secret[6..]),
        ("event payload", "PAYLOAD-MARKER-5d1c"),
        ("receiver's answer", "RECEIVER-BODY-7f3a"),
        ("portal link token", &token),
        ("portal cookie", &cookie_value),
        ("first private signing key", &private_keys[0]),
        ("second private signing key", &private_keys[1]),
        ("HERALD_SECRET_KEY", SEALING_KEY),
    ] {
        if let Some(line) = log.lines().find(|l| l.contains(secret)) {
            panic!("the log holds the {what}: {line}");
        }
    }
}
