//! Upgrades: a database left at each earlier schema version, with data written by that
//! version's schema, opens under this build (the remaining migrations run) and its data
//! reads back and is delivered; a database from a newer Herald is refused.

use herald_domain::{AccountId, EventId, WebhookId, from_millis};
use herald_store::{Accounts, EventLog, Queue, Webhooks};
use herald_store_postgres::migrations::{LEGACY_TABLE, known, migrator};
use herald_store_postgres::test_db::TestDb;
use herald_store_postgres::{PgSettings, PgStore};
use sqlx::postgres::PgPoolOptions;
use std::borrow::Cow;
use std::time::Duration;

const NOW: i64 = 1_700_000_000_000;

/// Rows written with the columns of the first schema (every later migration keeps them).
const DATA: &str = r#"
INSERT INTO accounts (id, name, created_at) VALUES ('acc_0000000000000000000000000000000a', 'old', 1700000000000);
INSERT INTO api_keys (key_hash, account_id, created_at) VALUES ('hash-old', 'acc_0000000000000000000000000000000a', 1700000000000);
INSERT INTO webhooks (id, account_id, url, description, events, filters, enabled, max_in_flight, secret, created_at, updated_at)
  VALUES ('wh_0000000000000000000000000000000b', 'acc_0000000000000000000000000000000a', 'http://127.0.0.1:9/old', 'from v1',
          '["email.received"]', '{"agent_ids":[],"conversation_ids":[],"labels":[]}', true, 4,
          'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 1700000000000, 1700000000000);
INSERT INTO events (id, account_id, type, payload, deliveries, created_at, expires_at)
  VALUES ('evt_0000000000000000000000000000000c', 'acc_0000000000000000000000000000000a', 'email.received',
          convert_to('{"id":"evt_0000000000000000000000000000000c","type":"email.received","data":{}}', 'UTF8'), 1,
          1700000000000, 1800000000000);
INSERT INTO deliveries (id, account_id, webhook_id, event_id, event_type, status, attempts, max_attempts, next_retry_at,
                        created_at, expires_at)
  VALUES ('whd_0000000000000000000000000000000d', 'acc_0000000000000000000000000000000a', 'wh_0000000000000000000000000000000b',
          'evt_0000000000000000000000000000000c', 'email.received', 'pending', 0, 8, 1700000000000, 1700000000000, 1800000000000);
"#;

#[tokio::test]
async fn every_earlier_schema_with_data_upgrades_and_its_data_is_delivered() {
    let all = migrator();
    for k in 1..all.migrations.len() {
        let Some(db) = TestDb::create("every_earlier_schema_with_data_upgrades_and_its_data_is_delivered").await else {
            return;
        };
        let url = db.url.clone();
        let pool = PgPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
        // What Herald did before it had its own table: sqlx's default one.
        let prefix = sqlx::migrate::Migrator {
            migrations: Cow::Owned(all.migrations[..k].to_vec()),
            table_name: Cow::Borrowed(LEGACY_TABLE),
            ..migrator()
        };
        prefix.run(&pool).await.unwrap();
        sqlx::raw_sql(DATA).execute(&pool).await.unwrap_or_else(|e| panic!("data at version {k}: {e}"));
        pool.close().await;

        let pending = herald_store_postgres::migrations::pending(&url).await.unwrap();
        assert_eq!(pending.len(), all.migrations.len() - k, "dry run at version {k}");
        let store =
            PgStore::open(&url, &PgSettings::default()).await.unwrap_or_else(|e| panic!("upgrade from {k}: {e}"));
        assert!(herald_store_postgres::migrations::pending(&url).await.unwrap().is_empty());
        let account = store.account_by_key_hash("hash-old").await.unwrap().expect("the account").id;
        assert_eq!(account, AccountId::parse("acc_0000000000000000000000000000000a").unwrap());
        let wh = WebhookId::parse("wh_0000000000000000000000000000000b").unwrap();
        let w = store.get_webhook(&account, &wh).await.unwrap().expect("the webhook");
        assert_eq!((w.url.as_str(), w.description.as_str(), w.max_in_flight), ("http://127.0.0.1:9/old", "from v1", 4));
        let ev = EventId::parse("evt_0000000000000000000000000000000c").unwrap();
        let (_, deliveries) = store.get_event(&account, &ev).await.unwrap().expect("the event");
        assert_eq!(deliveries.len(), 1);
        let claimed = store.claim_due(from_millis(NOW), Duration::from_secs(60), 10).await.unwrap();
        assert_eq!(claimed.len(), 1, "the old pending delivery is delivered after the upgrade (from {k})");
        assert!(claimed[0].secrets.is_some() && claimed[0].body.as_ref().is_some_and(|b| !b.is_empty()));
        let check = PgPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
        let moved: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _herald_migrations").fetch_one(&check).await.unwrap();
        assert_eq!(moved as usize, all.migrations.len(), "every version recorded in Herald's own table ({k})");
        let legacy = sqlx::query("SELECT 1 FROM _sqlx_migrations").fetch_all(&check).await;
        assert!(legacy.is_err(), "the old table held only Herald's rows: dropped ({k})");
        check.close().await;
        drop(store);
        drop(db);
    }
}

#[tokio::test]
async fn a_database_from_a_newer_herald_is_refused_with_the_versions_named() {
    let Some(db) = TestDb::create("a_database_from_a_newer_herald_is_refused_with_the_versions_named").await else {
        return;
    };
    let url = db.url.clone();
    drop(PgStore::open(&url, &PgSettings::default()).await.unwrap());
    let newest = known().last().unwrap().0;
    let pool = PgPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _herald_migrations (version, description, installed_on, success, checksum, execution_time) \
         VALUES ($1, 'from the future', now(), true, '\\x00'::bytea, 0)",
    )
    .bind(newest + 1)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let err = PgStore::open(&url, &PgSettings::default()).await.err().expect("refused").to_string();
    assert!(err.contains(&format!("version {}", newest + 1)) && err.contains(&format!("({newest})")), "{err}");
    assert!(herald_store_postgres::migrations::pending(&url).await.is_err());
}

/// An application sharing the database keeps sqlx's `_sqlx_migrations` for its own
/// migrations: Herald moves its rows out of it into `_herald_migrations` and leaves the
/// application's alone.
#[tokio::test]
async fn an_applications_own_sqlx_migrations_are_left_alone() {
    let Some(db) = TestDb::create("an_applications_own_sqlx_migrations_are_left_alone").await else { return };
    let url = db.url.clone();
    let app = PgPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
    // An earlier Herald migrated into the same `_sqlx_migrations` the app uses for its own.
    let legacy = sqlx::migrate::Migrator { table_name: Cow::Borrowed(LEGACY_TABLE), ..migrator() };
    legacy.run(&app).await.unwrap();
    let mut conn = app.acquire().await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
         VALUES (20260101000000, 'the app', CURRENT_TIMESTAMP, true, '\\x01'::bytea, 0)",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    drop(conn);
    let store = PgStore::open(&url, &PgSettings::default()).await.expect("Herald opens beside the app's migrations");
    drop(store);
    let theirs: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations").fetch_all(&app).await.unwrap();
    assert_eq!(theirs, vec![20260101000000]);
    let ours: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _herald_migrations").fetch_one(&app).await.unwrap();
    assert_eq!(ours as usize, known().len());
    app.close().await;
}
