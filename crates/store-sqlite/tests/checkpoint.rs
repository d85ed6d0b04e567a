//! The WAL is checkpointed off the write path: the writer never checkpoints (its automatic
//! checkpoint is off), yet the WAL stops growing — the store's own task copies it back and
//! the writer then restarts it from the beginning.

use herald_store::{Accounts, EventLog, NewEvent};
use herald_store_sqlite::{Durability, SqliteStore};
use std::time::Duration;

async fn publish(store: &SqliteStore, account: &herald_domain::AccountId) {
    let id = herald_domain::EventId::generate();
    let data = serde_json::value::RawValue::from_string(format!("{{\"pad\":\"{}\"}}", "x".repeat(2000))).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let new = NewEvent {
        envelope: herald_domain::Envelope::build(&id, "email.received", now, &data),
        id,
        account_id: account.clone(),
        event_type: "email.received".into(),
        routing: Default::default(),
        ordering_key: None,
        idempotency_key: None,
        created_at: now,
    };
    store.publish(new, &Default::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stops_growing_although_the_writer_never_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.db");
    let store = SqliteStore::open(&format!("sqlite://{}", path.display()), Durability::Process).await.unwrap();
    let account = store.create_account("a", "h", time::OffsetDateTime::now_utc()).await.unwrap().id;
    for _ in 0..100 {
        publish(&store, &account).await;
    }
    let wal = dir.path().join("h.db-wal");
    let size = || std::fs::metadata(&wal).unwrap().len();
    assert!(size() > 0);
    // Once the task has copied the WAL back, the next write reuses it from the start: the
    // file does not grow. (With no checkpoint at all, every write would append to it.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let before = size();
        publish(&store, &account).await;
        if size() <= before {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the WAL kept growing: never checkpointed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
