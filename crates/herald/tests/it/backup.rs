//! `herald backup` of a live SQLite database under write load, and `herald restore`
//! refused while a server holds the database — all through the real binary.

use crate::crash::start_binary;
use crate::support::*;
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

async fn herald_cli(args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald")).args(args).output().await.unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_write_load_holds_every_event_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap().to_owned();
    let (mut server, base) = start_binary(&data).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/api/v1/webhooks"))
        .bearer_auth(KEY)
        .json(&json!({"url": "http://127.0.0.1:9/never", "events": ["email.received"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // Publishers keep writing for the whole backup; each acknowledged id is recorded.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut publishers = Vec::new();
    for _ in 0..4 {
        let (http, base, acked, stop) = (http.clone(), base.clone(), acked.clone(), stop.clone());
        publishers.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let r = http
                    .post(format!("{base}/api/v1/events"))
                    .bearer_auth(KEY)
                    .json(&json!({"type": "email.received", "data": {"n": 1}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
                let v: serde_json::Value = r.json().await.unwrap();
                acked.lock().unwrap().push(v["id"].as_str().unwrap().to_owned());
            }
        }));
    }
    eventually("some events acknowledged", || async { (acked.lock().unwrap().len() >= 50).then_some(()) }).await;
    let before: Vec<String> = acked.lock().unwrap().clone();
    let copy = dir.path().join("copy.db");
    let (ok, out) = herald_cli(&["backup", copy.to_str().unwrap(), "--data-dir", &data_arg]).await;
    assert!(ok, "{out}");
    let during = acked.lock().unwrap().len();
    stop.cancel();
    for p in publishers {
        p.await.unwrap();
    }
    assert!(during > before.len(), "the server kept acknowledging during the backup");
    let (ok, out) = herald_cli(&["backup", copy.to_str().unwrap(), "--data-dir", &data_arg]).await;
    assert!(!ok && out.contains("already exists"), "a backup never overwrites: {out}");

    // The copy opens, passes the integrity check and holds every event acknowledged before.
    assert_eq!(herald_store_sqlite::backup::integrity_check(&copy).await.unwrap(), "ok");
    let store = herald_store_sqlite::SqliteStore::open(
        &format!("sqlite://{}", copy.display()),
        herald_store_sqlite::Durability::Process,
    )
    .await
    .unwrap();
    let account = herald_store::Accounts::account_by_name(&store, "default").await.unwrap().unwrap().id;
    let mut missing = HashSet::new();
    for id in &before {
        let id = herald_domain::EventId::parse(id).unwrap();
        if herald_store::EventLog::get_event(&store, &account, &id).await.unwrap().is_none() {
            missing.insert(id.to_string());
        }
    }
    assert!(missing.is_empty(), "{} of {} acknowledged events missing from the copy", missing.len(), before.len());
    drop(store);

    // Restore is refused while the server holds the database; allowed once it stopped.
    let (ok, out) = herald_cli(&["restore", copy.to_str().unwrap(), "--data-dir", &data_arg]).await;
    assert!(!ok && out.contains("running `herald serve`"), "{out}");
    let (ok, out) = herald_cli(&["serve", "--data-dir", &data_arg, "--listen", "127.0.0.1:0"]).await;
    assert!(!ok && out.contains("running `herald serve`"), "one server per SQLite file: {out}");
    server.kill().await.unwrap();
    server.wait().await.unwrap();
    let (ok, out) = herald_cli(&["restore", copy.to_str().unwrap(), "--data-dir", &data_arg]).await;
    assert!(ok, "{out}");
    let (ok, out) =
        herald_cli(&["restore", dir.path().join("nope.db").to_str().unwrap(), "--data-dir", &data_arg]).await;
    assert!(!ok && out.contains("no backup"), "{out}");
    let (mut server, base) = start_binary(&data).await;
    let r = http.get(format!("{base}/api/v1/events/{}", before[0])).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(r.status(), 200, "the restored database serves");
    server.kill().await.unwrap();
}
