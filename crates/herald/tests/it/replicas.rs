//! Many `herald serve` replicas on one PostgreSQL database (skipped without
//! `HERALD_TEST_DATABASE_URL`, failing in CI).

use crate::support::*;
use herald_store_postgres::test_db::TestDb;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

async fn replicas(db: &TestDb, n: usize, tweak: fn(&mut herald::Settings)) -> Vec<TestApp> {
    let mut apps = Vec::new();
    for _ in 0..n {
        let url = db.url.clone();
        apps.push(
            spawn_app_with(Options {
                tweak: Box::new(move |s| {
                    s.database_url = Some(url);
                    // Tests run side by side: stay well under the server's connection limit.
                    s.pg_pool_size = 4;
                    tweak(s);
                }),
                ..Default::default()
            })
            .await,
        );
    }
    apps
}

#[tokio::test]
async fn three_replicas_share_1200_deliveries_with_no_duplicates_and_no_losses() {
    let Some(db) = TestDb::create("three_replicas").await else {
        return;
    };
    let rx = Receiver::start().await;
    let apps = replicas(&db, 3, |_| {}).await;
    apps[0].create_webhook(json!({"url": rx.url("many"), "events": ["email.received"], "max_in_flight": 16})).await;
    let mut tasks = Vec::new();
    for t in 0..12 {
        let (addr, http) = (apps[t % 3].addr, apps[t % 3].http.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..100 {
                let r = http
                    .post(format!("http://{addr}/api/v1/events"))
                    .bearer_auth(KEY)
                    .json(&json!({"type": "email.received", "data": {"t": t, "i": i}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
                let v: serde_json::Value = r.json().await.unwrap();
                ids.push(v["id"].as_str().unwrap().to_owned());
            }
            ids
        }));
    }
    let mut published = Vec::new();
    for t in tasks {
        published.extend(t.await.unwrap());
    }
    assert_eq!(published.len(), 1200);
    let got = rx.wait_for("many", 1200).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *counts.entry(r.header("webhook-id").to_owned()).or_default() += 1;
    }
    assert_eq!(counts.len(), 1200, "no losses");
    assert!(counts.values().all(|&c| c == 1), "no duplicates");
    for id in &published {
        assert!(counts.contains_key(id));
    }
    db.drop_now().await;
}

#[tokio::test]
async fn the_per_webhook_cap_holds_across_replicas() {
    let Some(db) = TestDb::create("cap_across_replicas").await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.always("capped", Reply::status(200).gated());
    let apps = replicas(&db, 3, |_| {}).await;
    apps[0].create_webhook(json!({"url": rx.url("capped"), "events": ["email.received"], "max_in_flight": 2})).await;
    for i in 0..12 {
        apps[i % 3].publish_received().await;
    }
    rx.wait_for("capped", 2).await;
    // Every replica has had a chance to claim (a publish on each woke all of them).
    for app in &apps {
        app.store.work_signal().raise();
    }
    rx.open_gate();
    rx.wait_for("capped", 12).await;
    assert_eq!(rx.max_in_flight("capped"), 2, "never more than 2 in flight across 3 replicas");
    db.drop_now().await;
}

#[tokio::test]
async fn a_publish_by_another_process_is_delivered_without_waiting_for_the_poll() {
    let Some(db) = TestDb::create("notify_wakeup").await else {
        return;
    };
    let rx = Receiver::start().await;
    let apps = replicas(&db, 1, |s| s.poll_interval = Duration::from_secs(3600)).await;
    apps[0].create_webhook(json!({"url": rx.url("woken"), "events": ["email.received"]})).await;
    // A second process: its own store, its own pool, no engine.
    let other = herald_store_postgres::PgStore::open(&db.url, &Default::default()).await.unwrap();
    let account = herald_store::Accounts::account_by_name(&other, "default").await.unwrap().unwrap();
    let id = herald_domain::EventId::generate();
    let now = time::OffsetDateTime::now_utc();
    let data = serde_json::value::RawValue::from_string("{}".into()).unwrap();
    let published = herald_store::EventLog::publish(
        &other,
        herald_store::NewEvent {
            id: id.clone(),
            account_id: account.id,
            event_type: "email.received".into(),
            envelope: herald_domain::Envelope::build(&id, "email.received", now, &data),
            routing: Default::default(),
            ordering_key: None,
            idempotency_key: None,
            created_at: now,
        },
        &Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(published.deliveries, 1);
    let got = rx.wait_for("woken", 1).await;
    assert_eq!(got[0].header("webhook-id"), id.as_str());
    db.drop_now().await;
}

#[tokio::test]
async fn a_killed_replicas_leased_work_is_completed_by_another_after_the_lease() {
    let Some(db) = TestDb::create("killed_replica").await else {
        return;
    };
    let rx = Receiver::start().await;
    rx.always("kr", Reply::status(200).gated());
    let dir = tempfile::tempdir().unwrap();
    let (mut a, base) = crate::crash::start_binary_with(dir.path(), &[("HERALD_DATABASE_URL", &db.url)]).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/api/v1/webhooks"))
        .bearer_auth(KEY)
        .json(&json!({"url": rx.url("kr"), "events": ["email.received"], "max_in_flight": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut ids = std::collections::HashSet::new();
    for i in 0..10 {
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
    // Replica A holds two leased attempts in flight; kill it without a chance to clean up.
    rx.wait_for("kr", 2).await;
    a.start_kill().unwrap();
    a.wait().await.unwrap();
    rx.open_gate();
    // Replica B (lease 2 s, like A) finishes everything, A's leased rows after their lease.
    let b = replicas(&db, 1, |s| {
        s.lease = Duration::from_secs(2);
        s.attempt_timeout = Duration::from_secs(1);
    })
    .await;
    let got = eventually("every acknowledged event delivered", || async {
        let got: std::collections::HashSet<String> =
            rx.received("kr").iter().map(|r| r.header("webhook-id").to_owned()).collect();
        (got.len() == ids.len()).then_some(got)
    })
    .await;
    assert_eq!(got, ids);
    // Only the two attempts A had in flight may be re-sent (at-least-once window).
    assert!(rx.received("kr").len() <= ids.len() + 2);
    drop(b);
    db.drop_now().await;
}
