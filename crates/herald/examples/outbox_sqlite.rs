//! Herald as a library on SQLite: the app's own database file holds its orders and Herald's
//! tables; one transaction commits an order and its `order.paid` event together, and the
//! embedded engine delivers the webhook to a receiver on loopback. A rolled-back transaction
//! leaves no order, no event, and sends nothing.
//!
//! Run: `cargo run -p herald --example outbox_sqlite`

use axum::routing::post;
use herald::{Embedded, Settings};
use herald_app::WebhookDraft;
use herald_outbox::EventDraft;
use serde_json::json;
use sqlx::SqlitePool;
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A receiver on loopback that hands over every body it gets.
    let (got, mut received) = tokio::sync::mpsc::unbounded_channel::<String>();
    let receiver = axum::Router::new().route(
        "/hooks",
        post(move |body: String| async move {
            let _ = got.send(body);
            "ok"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook_url = format!("http://{}/hooks", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    // The app's database and its pool; Herald migrates its tables into the same file.
    let dir = std::env::temp_dir().join(format!("herald-outbox-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let pool = SqlitePool::connect(&format!("sqlite://{}/app.db?mode=rwc", dir.display())).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, total_cents INTEGER NOT NULL)")
        .execute(&pool)
        .await?;
    let mut settings = Settings::defaults();
    settings.allow_private_targets = true; // the receiver is on loopback
    let herald = Embedded::start(pool.clone(), settings).await?;
    let account = herald.account("default").await?;

    // A webhook for `order.paid` (a type of the app's own, registered once).
    let app = herald.herald();
    if app.create_event_type(&account, "order.paid", "an order was paid").await.is_err() {
        println!("(order.paid is registered already)");
    }
    let draft = WebhookDraft::new(&hook_url, &["order.paid"]);
    let (webhook, _) = app.create_webhook(&account, draft).await?;
    let outbox = herald.outbox(); // this engine's rules

    // Commit: the order and its event, atomically.
    let order = 1 + sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(id), 0) FROM orders").fetch_one(&pool).await?;
    // BEGIN IMMEDIATE: the transaction reads before it writes, and SQLite has one writer.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query("INSERT INTO orders (id, total_cents) VALUES (?, 4200)").bind(order).execute(&mut *tx).await?;
    let data = serde_json::value::to_raw_value(&json!({"order_id": order, "total_cents": 4200}))?;
    let event = outbox.publish(&mut tx, &account, EventDraft::new("order.paid", data)).await?.id;
    tx.commit().await?;
    herald.wake(); // SQLite: wake the engine in this process now (PostgreSQL's NOTIFY does it on commit)
    let body = tokio::time::timeout(Duration::from_secs(10), received.recv()).await?.expect("a delivery");
    println!("committed {event}: the receiver got {body}");

    // Roll back: no order, no event, nothing sent.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query("INSERT INTO orders (id, total_cents) VALUES (?, 100)").bind(order + 1).execute(&mut *tx).await?;
    let data = serde_json::value::to_raw_value(&json!({"order_id": order + 1}))?;
    let dropped = outbox.publish(&mut tx, &account, EventDraft::new("order.paid", data)).await?.id;
    tx.rollback().await?;
    herald.wake();
    let stored = herald.store().get_event(&account, &dropped).await?;
    println!("rolled back {dropped}: stored {}, order stored {}", stored.is_some(), {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE id = ?").bind(order + 1).fetch_one(&pool).await?;
        n > 0
    });
    match tokio::time::timeout(Duration::from_secs(2), received.recv()).await {
        Ok(Some(body)) => anyhow::bail!("a rolled-back event was delivered: {body}"),
        _ => println!("nothing was sent for it"),
    }
    app.delete_webhook(&account, &webhook.id).await?;
    herald.stop().await
}
