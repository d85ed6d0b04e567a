//! Secrets at rest under `HERALD_SECRET_KEY`: a webhook whose secrets (or an Ed25519
//! webhook whose account's signing key) were sealed under another key is never sent
//! unsigned and never blocks the other webhooks (both stores).

use crate::support::*;
use herald_store_postgres::test_db::TestDb;
use std::sync::Arc;

async fn a_webhook_sealed_under_another_key_does_not_block_the_others(backend: Backend) {
    let db = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => match TestDb::create("sealed_under_another_key").await {
            Some(db) => Some(db),
            None => return,
        },
    };
    let url = db.as_ref().map(|d| d.url.clone());
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let with_key = |key: &'static str| {
        let (dir, url) = (dir.path().to_path_buf(), url.clone());
        Options {
            tweak: Box::new(move |s: &mut herald::Settings| {
                s.data_dir = dir;
                s.database_url = url;
                s.pg_pool_size = 4;
                s.secret_key = Some(herald::settings::SecretText::new(key.repeat(32)));
            }),
            ..Default::default()
        }
    };
    let rx = Receiver::start().await;
    let first = spawn_app_with(with_key("ab")).await;
    let (old, _) = first.webhook(&rx.url("old")).await;
    let ed = first
        .create_webhook(serde_json::json!({"url": rx.url("ed"), "events": ["email.received"], "signature": "ed25519"}))
        .await;
    let ed = ed["id"].as_str().unwrap().to_owned();
    first.stop().await;
    let second = spawn_app_with(with_key("cd")).await;
    second.webhook(&rx.url("new")).await;
    second.publish_received().await;
    rx.wait_for("new", 1).await;
    let d = second.wait_delivery(&old, "the sealed webhook's attempt recorded", |d| d["attempts"] == 1).await;
    assert!(d["last_error"].as_str().unwrap().contains("cannot be decrypted"), "{d}");
    assert!(rx.received("old").is_empty(), "never sent unsigned");
    let d = second.wait_delivery(&ed, "the Ed25519 webhook's attempt recorded", |d| d["attempts"] == 1).await;
    assert!(d["last_error"].as_str().unwrap().contains("signing key"), "{d}");
    assert!(rx.received("ed").is_empty(), "never sent unsigned");
    second.stop().await;
    if let Some(db) = db {
        db.drop_now().await;
    }
}

crate::on_both_stores!(a_webhook_sealed_under_another_key_does_not_block_the_others);
