//! Library mode: `herald-outbox` publishes in the caller's own transaction and
//! `herald::Embedded` delivers on the caller's pool. A commit is delivered, a rollback
//! stores and sends nothing, an open transaction is invisible to the engine, and on
//! PostgreSQL Herald's tables can live in a schema of their own in the caller's database
//! (`herald migrate` with `options[search_path]`).

use crate::on_both_stores;
use crate::support::*;
use herald::Embedded;
use herald_app::WebhookDraft;
use herald_outbox::{AccountId, EventDraft, EventId, OutboxError};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;

on_both_stores!(
    a_committed_publish_is_delivered_and_a_rolled_back_one_stores_and_sends_nothing,
    a_publish_in_an_open_transaction_is_invisible_until_the_commit,
);

/// The caller's database: its pool, Herald embedded on it, the scratch files or database.
struct Caller {
    pool: Pool,
    herald: Embedded,
    account: AccountId,
    _dns: herald_testkit::LoopbackDns,
    _dir: tempfile::TempDir,
    _db: Option<herald_store_postgres::test_db::TestDb>,
}

#[derive(Clone)]
enum Pool {
    Pg(sqlx::PgPool),
    Lite(sqlx::SqlitePool),
}

async fn caller(backend: Backend) -> Option<Caller> {
    let dir = tempfile::tempdir().unwrap();
    let dns = herald_testkit::LoopbackDns::start().await;
    let mut settings = test_settings(dir.path());
    settings.dns_server = Some(dns.addr());
    // No poll to fall back on within a test: deliveries come from the wake-ups (NOTIFY at the
    // commit on PostgreSQL, `Embedded::wake` on SQLite).
    settings.poll_interval = std::time::Duration::from_secs(300);
    // Not the default schedule: `Embedded::outbox()` must publish with the engine's (3 attempts).
    settings.retry_schedule = vec![std::time::Duration::from_secs(60), std::time::Duration::from_secs(300)];
    let (pool, db) = match backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}/app.db?mode=rwc", dir.path().display());
            (Pool::Lite(sqlx::SqlitePool::connect(&url).await.unwrap()), None)
        }
        Backend::Postgres => {
            let db = herald_store_postgres::test_db::TestDb::create("library").await?;
            (Pool::Pg(sqlx::PgPool::connect(&db.url).await.unwrap()), Some(db))
        }
    };
    let ddl = "CREATE TABLE orders (id BIGINT PRIMARY KEY, note TEXT NOT NULL)";
    let herald = match &pool {
        Pool::Pg(p) => {
            sqlx::query(ddl).execute(p).await.unwrap();
            Embedded::start(p.clone(), settings).await.unwrap()
        }
        Pool::Lite(p) => {
            sqlx::query(ddl).execute(p).await.unwrap();
            Embedded::start(p.clone(), settings).await.unwrap()
        }
    };
    let account = herald.account("default").await.unwrap();
    herald.herald().create_event_type(&account, "order.paid", "").await.unwrap();
    Some(Caller { pool, herald, account, _dns: dns, _dir: dir, _db: db })
}

fn paid(order: i64) -> EventDraft {
    EventDraft::new("order.paid", serde_json::value::to_raw_value(&json!({"order_id": order})).unwrap())
}

async fn subscribe(c: &Caller, url: String) {
    c.herald.herald().create_webhook(&c.account, WebhookDraft::new(&url, &["order.paid"])).await.unwrap();
}

/// In one transaction of the caller: its order row, then `event` through the outbox; commits
/// when `commit` (also after a refused event: the caller's row stands), else rolls back.
/// Answers the outbox's answer. (SQLite: `BEGIN IMMEDIATE`, as the README advises.)
async fn order(c: &Caller, id: i64, event: EventDraft, commit: bool) -> Result<EventId, OutboxError> {
    macro_rules! in_tx {
        ($tx:expr, $insert:literal) => {{
            let mut tx = $tx;
            sqlx::query($insert).bind(id).bind("paid").execute(&mut *tx).await.unwrap();
            let published = c.herald.outbox().publish(&mut tx, &c.account, event).await.map(|p| p.id);
            if commit {
                tx.commit().await.unwrap();
            } else {
                tx.rollback().await.unwrap();
            }
            published
        }};
    }
    let published = match &c.pool {
        Pool::Pg(p) => in_tx!(p.begin().await.unwrap(), "INSERT INTO orders (id, note) VALUES ($1, $2)"),
        Pool::Lite(p) => {
            in_tx!(p.begin_with("BEGIN IMMEDIATE").await.unwrap(), "INSERT INTO orders (id, note) VALUES (?, ?)")
        }
    };
    // SQLite has no NOTIFY: the caller wakes its engine (PostgreSQL's comes with the commit).
    if matches!(c.pool, Pool::Lite(_)) {
        c.herald.wake();
    }
    published
}

async fn order_exists(c: &Caller, id: i64) -> bool {
    let n: i64 = match &c.pool {
        Pool::Pg(p) => sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE id = $1").bind(id).fetch_one(p).await,
        Pool::Lite(p) => sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE id = ?").bind(id).fetch_one(p).await,
    }
    .unwrap();
    n > 0
}

fn order_ids(got: &[Received]) -> Vec<i64> {
    got.iter().map(|r| r.json()["data"]["order_id"].as_i64().unwrap()).collect()
}

async fn a_committed_publish_is_delivered_and_a_rolled_back_one_stores_and_sends_nothing(backend: Backend) {
    let Some(c) = caller(backend).await else { return };
    let rx = Receiver::start().await;
    subscribe(&c, rx.url("orders")).await;

    let first = order(&c, 1, paid(1), true).await.unwrap();
    let got = rx.wait_for("orders", 1).await;
    assert_eq!(got[0].header("webhook-id"), first.as_str());
    assert_eq!(got[0].json()["type"], "order.paid");
    assert!(!got[0].header("x-e2a-signature").is_empty(), "signed like every delivery");

    let dropped = order(&c, 2, paid(2), false).await.unwrap();
    assert!(!order_exists(&c, 2).await, "the caller's row rolled back");
    assert!(c.herald.store().get_event(&c.account, &dropped).await.unwrap().is_none(), "no event stored");
    // A later commit is delivered; the rolled-back event, which never existed, never is.
    order(&c, 3, paid(3), true).await.unwrap();
    let got = rx.wait_for("orders", 2).await;
    assert_eq!(order_ids(&got), vec![1, 3]);

    // The API's rules: an unknown type or a non-object `data` is refused, and nothing of the
    // caller's transaction is lost to it (its own row commits).
    let refused = [
        (EventDraft::new("order.unknown", serde_json::value::to_raw_value(&json!({})).unwrap()), "type"),
        (EventDraft::new("order.paid", serde_json::value::to_raw_value(&json!([1])).unwrap()), "data"),
        (EventDraft::new("webhook.disabled", serde_json::value::to_raw_value(&json!({})).unwrap()), "type"),
    ];
    for ((draft, field), id) in refused.into_iter().zip(40..) {
        match order(&c, id, draft, true).await {
            Err(OutboxError::Invalid(errs)) => assert_eq!(errs[0].field, field, "{errs:?}"),
            other => panic!("expected a refusal on {field}, got {other:?}"),
        }
        assert!(order_exists(&c, id).await, "the caller's own row committed");
    }
    // An account that does not exist gets nothing stored.
    let nobody = AccountId::generate();
    macro_rules! for_nobody {
        ($tx:expr) => {{
            let mut tx = $tx;
            let refused = herald_outbox::publish(&mut tx, &nobody, paid(50)).await;
            tx.commit().await.unwrap();
            refused
        }};
    }
    let refused = match &c.pool {
        Pool::Pg(p) => for_nobody!(p.begin().await.unwrap()),
        Pool::Lite(p) => for_nobody!(p.begin_with("BEGIN IMMEDIATE").await.unwrap()),
    };
    assert!(matches!(refused, Err(OutboxError::UnknownAccount(_))), "{refused:?}");
    let filter = herald_store::EventFilter::default();
    let theirs = c.herald.store().list_events(&nobody, filter, herald_store::Page { after: None, limit: 10 }).await;
    assert!(theirs.unwrap().is_empty(), "nothing stored for an unknown account");
    // An idempotency key answers the first event, also from another transaction.
    let keyed = || EventDraft { idempotency_key: Some("order-5".into()), ..paid(5) };
    let a = order(&c, 5, keyed(), true).await.unwrap();
    let b = order(&c, 6, keyed(), true).await.unwrap();
    assert_eq!(a, b);
    let got = rx.wait_for("orders", 3).await;
    assert_eq!(order_ids(&got), vec![1, 3, 5]);
    let (event, deliveries) = c.herald.store().get_event(&c.account, &a).await.unwrap().unwrap();
    assert_eq!((event.deliveries, deliveries.len()), (1, 1));
    assert_eq!(deliveries[0].max_attempts, 3, "the engine's schedule, not the default one");
}

async fn a_publish_in_an_open_transaction_is_invisible_until_the_commit(backend: Backend) {
    let Some(c) = caller(backend).await else { return };
    let rx = Receiver::start().await;
    subscribe(&c, rx.url("open")).await;
    match &c.pool {
        Pool::Pg(p) => {
            let mut open = p.begin().await.unwrap();
            let held = herald_outbox::publish(&mut open, &c.account, paid(10)).await.unwrap();
            // Meanwhile another transaction commits and is delivered: the engine has claimed
            // since the open one wrote, and did not see it.
            order(&c, 11, paid(11), true).await.unwrap();
            let got = rx.wait_for("open", 1).await;
            assert_eq!(order_ids(&got), vec![11]);
            assert!(c.herald.store().get_event(&c.account, &held).await.unwrap().is_none());
            open.commit().await.unwrap();
            let got = rx.wait_for("open", 2).await;
            assert_eq!(order_ids(&got), vec![11, 10]);
        }
        Pool::Lite(p) => {
            // SQLite has one writer: the open transaction holds it, so the engine's claims wait
            // (keep such transactions short). Its readers see the last commit only.
            let mut open = p.begin_with("BEGIN IMMEDIATE").await.unwrap();
            let held = herald_outbox::publish(&mut open, &c.account, paid(10)).await.unwrap();
            c.herald.wake();
            assert!(c.herald.store().get_event(&c.account, &held).await.unwrap().is_none());
            let listed = c
                .herald
                .store()
                .list_events(&c.account, Default::default(), herald_store::Page { after: None, limit: 10 })
                .await;
            assert!(listed.unwrap().is_empty(), "the engine's readers see no event yet");
            open.commit().await.unwrap();
            c.herald.wake();
            let got = rx.wait_for("open", 1).await;
            assert_eq!(order_ids(&got), vec![10]);
        }
    }
}

/// The caller owns the database and has an `events` table of its own: `herald migrate` with
/// `options[search_path]=hooks` puts Herald's tables in schema `hooks` (created), the
/// caller's stay as they are, and a publish in the caller's transaction lands in Herald's.
/// (Not `herald`: the test role is named `herald`, and the default `search_path` starts with
/// `"$user"`, so the caller's own statements would resolve to a schema of that name.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_migrate_keeps_its_tables_in_a_schema_of_the_callers_database() {
    let Some(db) = herald_store_postgres::test_db::TestDb::create("library schema").await else { return };
    let app = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query("CREATE TABLE events (id BIGINT PRIMARY KEY, what TEXT NOT NULL)").execute(&app).await.unwrap();
    let herald_url = format!("{}?options[search_path]=hooks", db.url);
    let migrate = |extra: &'static [&'static str]| {
        let url = herald_url.clone();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
                .arg("migrate")
                .args(extra)
                .env("HERALD_DATABASE_URL", &url)
                .output()
                .await
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    assert!(migrate(&["--dry-run"]).await.contains("would apply 0001"));
    migrate(&[]).await;
    assert!(migrate(&["--dry-run"]).await.contains("is up to date"));
    let located: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables \
         WHERE table_name IN ('events', 'deliveries', '_herald_migrations', '_sqlx_migrations') ORDER BY 1, 2",
    )
    .fetch_all(&app)
    .await
    .unwrap();
    let located: Vec<(&str, &str)> = located.iter().map(|(s, t)| (s.as_str(), t.as_str())).collect();
    assert_eq!(
        located,
        vec![("hooks", "_herald_migrations"), ("hooks", "deliveries"), ("hooks", "events"), ("public", "events")]
    );

    // Herald on its own pool (schema first), the caller on the default one.
    let dns = herald_testkit::LoopbackDns::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    settings.dns_server = Some(dns.addr());
    settings.poll_interval = std::time::Duration::from_secs(300);
    let opts = PgConnectOptions::from_str(&db.url).unwrap().options([("search_path", "hooks")]);
    let herald_pool = PgPoolOptions::new().max_connections(4).connect_with(opts).await.unwrap();
    let herald = Embedded::start(herald_pool, settings).await.unwrap();
    let account = herald.account("default").await.unwrap();
    let rx = Receiver::start().await;
    let draft = WebhookDraft::new(&rx.url("schema"), &["email.sent"]);
    herald.herald().create_webhook(&account, draft).await.unwrap();
    let outbox = herald.outbox(); // the engine's rules, in the schema its pool put Herald's tables in
    let mut tx = app.begin().await.unwrap();
    sqlx::query("INSERT INTO events (id, what) VALUES (1, 'mine')").execute(&mut *tx).await.unwrap();
    let data = serde_json::value::to_raw_value(&json!({"n": 1})).unwrap();
    let published = outbox.publish(&mut tx, &account, EventDraft::new("email.sent", data)).await.unwrap();
    // The caller's search_path is its own again within the same transaction.
    sqlx::query("INSERT INTO events (id, what) VALUES (2, 'mine too')").execute(&mut *tx).await.unwrap();
    tx.commit().await.unwrap();
    // No wake call and no poll within the test: PostgreSQL's NOTIFY at the commit brings it.
    let got = rx.wait_for("schema", 1).await;
    assert_eq!(got[0].header("webhook-id"), published.id.as_str());
    let mine: Vec<String> =
        sqlx::query_scalar("SELECT what FROM public.events ORDER BY id").fetch_all(&app).await.unwrap();
    assert_eq!(mine, vec!["mine", "mine too"]);
    let theirs: Value =
        sqlx::query_scalar("SELECT to_jsonb(COUNT(*)) FROM hooks.events").fetch_one(&app).await.unwrap();
    assert_eq!(theirs, json!(1));
    herald.stop().await.unwrap();
}
