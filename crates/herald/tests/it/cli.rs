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
async fn cli_sets_delivery_controls_and_skips_the_blocked_head_of_a_fifo_lane() {
    let rx = Receiver::start().await;
    let app = spawn_app().await;
    let created = herald_json(
        &app,
        &[
            "webhooks",
            "create",
            &rx.url("lane"),
            "--events",
            "email.received",
            "--max-in-flight",
            "4",
            "--concurrency",
            "fixed",
            "--rate-limit",
            "50",
            "--ordering",
            "fifo",
            "--on-final-failure",
            "block",
            "--retry-schedule",
            "1s",
            "--max-age",
            "3d",
        ],
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["concurrency"], "fixed", "{created}");
    assert_eq!(created["effective_max_in_flight"], 4, "fixed: the limit is max_in_flight: {created}");
    assert_eq!(created["rate_limit_per_second"], 50, "{created}");
    assert_eq!(created["ordering"], "fifo", "{created}");
    assert_eq!(created["on_final_failure"], "block", "{created}");
    assert_eq!(created["retry_schedule"], serde_json::json!(["1s"]), "{created}");
    assert_eq!(created["custom_retry_schedule"], true, "{created}");
    assert_eq!(created["max_age"], "3d", "{created}");
    let (ok, table) = herald(&app, &["webhooks", "get", &id]).await;
    assert!(ok && table.contains("EFFECTIVE_MAX_IN_FLIGHT") && table.contains("fifo"), "{table}");

    // Two events of one key: the first fails both attempts and blocks the lane.
    rx.script("lane", vec![Reply::status(500), Reply::status(500)]);
    let first = herald_json(&app, &["events", "send", "--type", "email.received", "--ordering-key", "k1"]).await;
    let second = herald_json(&app, &["events", "send", "--type", "email.received", "--ordering-key", "k1"]).await;
    assert_eq!((first["deliveries"].as_u64(), second["deliveries"].as_u64()), (Some(1), Some(1)));
    let blocked = eventually("the first delivery blocked", || async {
        let page = herald_json(&app, &["deliveries", "list", &id, "--status", "blocked"]).await;
        page["items"].as_array().and_then(|a| a.first().cloned())
    })
    .await;
    assert_eq!(blocked["event_id"], first["id"], "{blocked}");
    let did = blocked["id"].as_str().unwrap().to_owned();
    assert_eq!(rx.received("lane").len(), 2, "the second event waits behind the blocked head");

    let skipped = herald_json(&app, &["deliveries", "skip", &did]).await;
    assert_eq!(skipped["status"], "failed", "{skipped}");
    let got = rx.wait_for("lane", 3).await;
    assert_eq!(got[2].json()["id"], second["id"], "the lane moves on to the second event");
    let (ok, out) = herald(&app, &["deliveries", "skip", &did]).await;
    assert!(!ok && out.contains("409"), "a failed delivery cannot be skipped: {out}");

    let changed = herald_json(
        &app,
        &[
            "webhooks",
            "update",
            &id,
            "--concurrency",
            "adaptive",
            "--rate-limit",
            "0",
            "--ordering",
            "none",
            "--retry-schedule",
            "",
            "--max-age",
            "0s",
        ],
    )
    .await;
    assert_eq!(changed["concurrency"], "adaptive", "{changed}");
    assert_eq!(changed["ordering"], "none", "{changed}");
    assert!(changed.get("rate_limit_per_second").is_none(), "0 removes the limit: {changed}");
    assert!(changed.get("max_age").is_none(), "0s removes the limit: {changed}");
    assert_eq!(changed["custom_retry_schedule"], false, "an empty schedule is the server's: {changed}");
    let server = serde_json::json!(["1m", "5m", "15m", "1h", "4h", "8h", "16h"]);
    assert_eq!(changed["retry_schedule"], server, "the server's schedule is in effect again: {changed}");
    let (ok, out) = herald(&app, &["webhooks", "update", &id]).await;
    assert!(!ok, "an update without a change is refused: {out}");
    let (ok, out) = herald(&app, &["webhooks", "update", &id, "--ordering", "lifo"]).await;
    assert!(!ok && out.contains("lifo"), "{out}");
}

#[tokio::test]
async fn cli_manages_agents_of_a_running_server() {
    let app = spawn_app().await;
    let hook = "http://127.0.0.1:9/agent";
    let created = herald_json(
        &app,
        &["agents", "create", "bot@agents.test", "--name", "Bot", "--webhook-url", hook, "--max-in-flight", "3"],
    )
    .await;
    assert_eq!(created["address"], "bot@agents.test");
    assert_eq!(created["name"], "Bot");
    assert_eq!(created["webhook_url"], hook);
    assert_eq!(created["max_in_flight"], 3);
    let first_secret = created["signing_secret"].as_str().unwrap().to_owned();
    assert!(first_secret.starts_with("whsec_"), "{created}");
    // A local part with `/`, `+` and `%` only survives as one percent-encoded path segment.
    let odd = herald_json(&app, &["agents", "create", "ops/x+y%z@agents.test"]).await;
    assert_eq!(odd["address"], "ops/x+y%z@agents.test");

    let (ok, table) = herald(&app, &["agents", "list"]).await;
    assert!(ok && table.starts_with("ADDRESS") && table.contains("bot@agents.test"), "{table}");
    let page = herald_json(&app, &["agents", "list", "--limit", "1"]).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
    let cursor = page["next_cursor"].as_str().expect("a second page").to_owned();
    let rest = herald_json(&app, &["agents", "list", "--cursor", &cursor]).await;
    let mut seen: Vec<Value> = page["items"].as_array().unwrap().iter().map(|a| a["address"].clone()).collect();
    seen.extend(rest["items"].as_array().unwrap().iter().map(|a| a["address"].clone()));
    seen.sort_by_key(|a| a.to_string());
    assert_eq!(seen, ["bot@agents.test", "ops/x+y%z@agents.test"], "both pages: {page} {rest}");

    let got = herald_json(&app, &["agents", "get", "ops/x+y%z@agents.test"]).await;
    assert_eq!(got["address"], "ops/x+y%z@agents.test");
    let got = herald_json(&app, &["agents", "get", "bot@agents.test"]).await;
    assert_eq!(got["webhook_url"], hook);
    assert!(got.get("signing_secret").is_none(), "the secret is shown only on create: {got}");

    let changed = herald_json(
        &app,
        &["agents", "update", "bot@agents.test", "--name", "Robot", "--max-in-flight", "7", "--no-webhook-url"],
    )
    .await;
    assert_eq!(changed["name"], "Robot");
    assert_eq!(changed["max_in_flight"], 7);
    assert!(changed.get("webhook_url").is_none(), "--no-webhook-url removes it: {changed}");
    let (ok, out) = herald(&app, &["agents", "update", "bot@agents.test"]).await;
    assert!(!ok, "an update without a change is refused: {out}");

    let r = herald_json(&app, &["agents", "rotate", "bot@agents.test", "--grace-period-seconds", "60"]).await;
    let rotated = r["signing_secret"].as_str().unwrap().to_owned();
    assert!(rotated.starts_with("whsec_") && rotated != first_secret, "{r}");
    assert!(r["previous_secret_expires_at"].is_string(), "{r}");
    let keyed = ["agents", "rotate", "bot@agents.test", "--idempotency-key", "cli-rotate-1"];
    let once = herald_json(&app, &keyed).await;
    let again = herald_json(&app, &keyed).await;
    assert_eq!(once["signing_secret"], again["signing_secret"], "the same key replays the answer");
    assert_ne!(once["signing_secret"], r["signing_secret"]);

    let gone = herald_json(&app, &["agents", "delete", "bot@agents.test"]).await;
    assert_eq!(gone["deleted"], true);
    let (ok, out) = herald(&app, &["agents", "get", "bot@agents.test"]).await;
    assert!(!ok && out.contains("404"), "a deleted agent is gone: {out}");
    let (ok, out) = herald(&app, &["agents", "delete", "ops/x+y%z@agents.test"]).await;
    assert!(ok && out.contains("agent ops/x+y%z@agents.test deleted"), "{out}");

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["agents", "create", "bot@elsewhere.test"])
        .env("HERALD_SERVER", format!("http://{}", app.addr))
        .env("HERALD_API_KEY", KEY)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && out.stdout.is_empty(), "{stderr}");
    assert!(stderr.contains("400") && stderr.contains("not one this server accepts"), "{stderr}");
}

#[tokio::test]
async fn signing_keys_and_the_signature_flag_from_the_command_line() {
    let app = spawn_app().await;
    let (ok, out) = herald(&app, &["agents", "create", "ed@agents.test", "--signature", "ed25519"]).await;
    assert!(ok && out.contains("ed25519") && out.contains("public keys: http"), "{out}");
    assert!(!out.contains("whsec_"), "an ed25519 agent has no secret to show: {out}");
    let (ok, out) = herald(&app, &["signing-keys", "list"]).await;
    assert!(ok && out.contains("KID") && out.contains("whpk_") && out.contains("jwks.json"), "{out}");
    let listed = herald_json(&app, &["signing-keys", "rotate", "--grace-period-seconds", "60"]).await;
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{listed}");
    assert_eq!((keys[0]["current"].as_bool(), keys[1]["current"].as_bool()), (Some(true), Some(false)));
    let (ok, out) = herald(&app, &["agents", "update", "ed@agents.test", "--signature", "hmac"]).await;
    assert!(ok && out.contains("signing secret (shown once): whsec_"), "{out}");
    let (ok, out) = herald(&app, &["webhooks", "create", "http://127.0.0.1:9/x", "--events", "email.received"]).await;
    assert!(ok && out.contains("signing secret (shown once): whsec_"), "{out}");
    let (ok, out) = herald(&app, &["signing-keys", "rotate", "--grace-period-seconds", "604801"]).await;
    assert!(!ok && out.contains("grace_period_seconds"), "{out}");
}

/// `herald listen` with `keys` on `port`, once it says it listens: the process (killed when
/// dropped) and its output lines.
async fn listen(
    keys: &[&str],
    port: u16,
) -> (tokio::process::Child, tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("listen")
        .args(keys)
        .args(["--port", &port.to_string()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    assert!(first.starts_with("listening on"), "{first}");
    (child, lines)
}

/// The next delivery `herald listen` printed (its `---` line).
async fn delivery_line(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    loop {
        let l = lines.next_line().await.unwrap().expect("listen printed the delivery");
        if l.starts_with("---") {
            return l;
        }
    }
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
    let (_child, mut lines) = listen(&["--secret", secret], port).await;
    let ev = app.publish_received().await;
    let line = delivery_line(&mut lines).await;
    assert!(line.contains(ev["id"].as_str().unwrap()), "{line}");
    assert!(line.ends_with("signatures OK"), "{line}");
}

#[tokio::test]
async fn herald_listen_verifies_ed25519_deliveries_with_the_webhooks_jwks_url() {
    let app = spawn_app().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let v = app
        .create_webhook(serde_json::json!({
            "url": format!("http://127.0.0.1:{port}/hook"), "events": ["email.received"], "signature": "ed25519"
        }))
        .await;
    let jwks_url = v["jwks_url"].as_str().unwrap();
    let (_child, mut lines) = listen(&["--jwks-url", jwks_url], port).await;
    let ev = app.publish_received().await;
    let line = delivery_line(&mut lines).await;
    assert!(line.contains(ev["id"].as_str().unwrap()), "{line}");
    assert!(line.ends_with("signatures OK"), "{line}");
    // A rotation without grace: only a key listen has never seen signs; it fetches the set again.
    let (s, _) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/signing-keys/rotate",
            Some(serde_json::json!({"grace_period_seconds": 0})),
        )
        .await;
    assert_eq!(s, 200);
    let ev = app.publish_received().await;
    let line = delivery_line(&mut lines).await;
    assert!(line.contains(ev["id"].as_str().unwrap()) && line.ends_with("signatures OK"), "{line}");
}

#[tokio::test]
async fn herald_portal_prints_a_one_time_link_an_operator_can_hand_out() {
    let app = spawn_app().await;
    let data_dir = app._dir.path().to_str().unwrap().to_owned();
    let public = format!("http://{}", app.addr);
    let portal = |extra: &[&str]| {
        let mut args = vec!["portal", "--data-dir", &data_dir, "--public-url", &public];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let args = portal(&["--account", "default", "--read-only"]);
    let (ok, out) = herald(&app, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert!(ok, "{out}");
    let link = out.lines().next().unwrap().trim().to_owned();
    assert!(link.starts_with(&format!("{public}/portal/login?token=hpl_")), "{out}");
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = browser.get(&link).send().await.unwrap();
    assert_eq!(res.status(), 303, "the running server opens the link the CLI made");
    let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let page = browser.get(format!("{public}/portal/")).header("cookie", cookie).send().await.unwrap();
    assert!(page.text().await.unwrap().contains("read-only"));

    for (bad, says) in [(vec!["--account", "nobody"], "no account named"), (vec!["--expires-in", "0"], "86400")] {
        let args = portal(&bad);
        let (ok, out) = herald(&app, &args.iter().map(String::as_str).collect::<Vec<_>>()).await;
        assert!(!ok && out.contains(says), "{bad:?}: {out}");
    }
}

/// Runs the binary without a server: stdout and stderr together, and the exit status.
async fn herald_offline(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn config_check_reports_every_problem_and_the_effective_settings_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("herald.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:9999\"\nretry_schedule = [\"1m\", \"5m\"]\n").unwrap();
    let key = "hk_000000000000000000000000000000000000000000000077";
    let (code, out) = herald_offline(
        &["config", "check", "--config", file.to_str().unwrap(), "--lease", "1s"],
        &[
            ("HERALD_BOOTSTRAP_API_KEY", key),
            ("HERALD_PUBLIC_URL", "https://hooks.example.com/sub"),
            ("HERALD_DATABASE_URL", "postgres://herald:s3cret-pw@127.0.0.1:5432/herald"),
        ],
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("2 problem(s)") && out.contains("HERALD_LEASE") && out.contains("HERALD_PUBLIC_URL"), "{out}");
    assert!(out.contains("--listen / HERALD_LISTEN = 127.0.0.1:9999  (flag or --config file)"), "{out}");
    assert!(out.contains("--retry-schedule / HERALD_RETRY_SCHEDULE = 1m,5m"), "{out}");
    assert!(out.contains("--public-url / HERALD_PUBLIC_URL = https://hooks.example.com/sub  (environment)"), "{out}");
    assert!(out.contains("--attempt-timeout / HERALD_ATTEMPT_TIMEOUT = 15s  (default)"), "{out}");
    assert!(!out.contains(key) && !out.contains("s3cret-pw"), "secrets are never printed: {out}");
    assert!(out.contains("HERALD_BOOTSTRAP_API_KEY = *** (set)"), "{out}");

    let (code, out) = herald_offline(&["config", "check", "--data-dir", dir.path().to_str().unwrap()], &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("settings OK"), "{out}");
}

#[tokio::test]
async fn help_speaks_to_the_person_running_it_with_an_example_per_command() {
    let (code, top) = herald_offline(&["--help"], &[]).await;
    assert_eq!(code, 0);
    assert!(!top.contains("wiring") && top.contains("Examples:"), "{top}");
    for cmd in [
        "serve",
        "migrate",
        "backup",
        "restore",
        "accounts",
        "portal",
        "config",
        "bench",
        "webhooks",
        "agents",
        "deliveries",
        "events",
        "listen",
    ] {
        let (code, help) = herald_offline(&[cmd, "--help"], &[]).await;
        assert_eq!(code, 0, "{cmd}");
        assert!(help.contains("Example:") && help.contains(&format!("herald {cmd}")), "herald {cmd} --help: {help}");
    }
}

#[tokio::test]
async fn migrate_dry_run_lists_what_would_run_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let (code, out) = herald_offline(&["migrate", "--dry-run", "--data-dir", &data], &[]).await;
    assert_eq!(code, 0, "{out}");
    let known = herald_store_sqlite::migrations::known();
    assert_eq!(out.lines().filter(|l| l.starts_with("would apply")).count(), known.len(), "{out}");
    assert!(out.contains("would apply 0001 init"), "{out}");
    assert!(!dir.path().join("herald.db").exists(), "a dry run creates nothing");
    let (code, out) = herald_offline(&["migrate", "--data-dir", &data], &[]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = herald_offline(&["migrate", "--dry-run", "--data-dir", &data], &[]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("is up to date") && !out.contains("would apply"), "{out}");
}
