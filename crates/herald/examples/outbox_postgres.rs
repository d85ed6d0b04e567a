//! Herald as a library on PostgreSQL, in the app's own database: Herald's tables in a schema
//! of their own (`webhooks`), the app's in `public`. One transaction commits an order and its
//! `order.paid` event; PostgreSQL wakes every Herald (this embedded one, and any `herald
//! serve` replica on the database) with a NOTIFY at commit. A rolled-back transaction leaves
//! nothing and sends nothing.
//!
//! Run: `DATABASE_URL=postgres://user:pw@127.0.0.1/app cargo run -p herald --example outbox_postgres`

use axum::routing::post;
use herald::{Embedded, Settings};
use herald_app::WebhookDraft;
use herald_outbox::EventDraft;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL").map_err(|_| anyhow::anyhow!("set DATABASE_URL=postgres://…"))?;
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

    // The app's pool (its tables in `public`), and one for Herald with its schema first.
    let pool = PgPool::connect(&url).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS orders (id BIGSERIAL PRIMARY KEY, total_cents BIGINT NOT NULL)")
        .execute(&pool)
        .await?;
    let herald_pool = PgPoolOptions::new()
        .connect_with(PgConnectOptions::from_str(&url)?.options([("search_path", "webhooks")]))
        .await?;
    let mut settings = Settings::defaults();
    settings.allow_private_targets = true; // the receiver is on loopback
    let herald = Embedded::start(herald_pool, settings).await?;
    let account = herald.account("default").await?;
    let outbox = herald.outbox(); // this engine's rules, and Herald's schema (from its pool)

    let app = herald.herald();
    if app.create_event_type(&account, "order.paid", "an order was paid").await.is_err() {
        println!("(order.paid is registered already)");
    }
    let draft = WebhookDraft::new(&hook_url, &["order.paid"]);
    let (webhook, _) = app.create_webhook(&account, draft).await?;

    // Commit: the order and its event, atomically; the NOTIFY goes out with the commit.
    let mut tx = pool.begin().await?;
    let order: i64 =
        sqlx::query_scalar("INSERT INTO orders (total_cents) VALUES (4200) RETURNING id").fetch_one(&mut *tx).await?;
    let data = serde_json::value::to_raw_value(&json!({"order_id": order, "total_cents": 4200}))?;
    let event = outbox.publish(&mut tx, &account, EventDraft::new("order.paid", data)).await?.id;
    tx.commit().await?;
    let body = tokio::time::timeout(Duration::from_secs(10), received.recv()).await?.expect("a delivery");
    println!("committed {event}: the receiver got {body}");

    // Roll back: no order, no event, nothing sent.
    let mut tx = pool.begin().await?;
    let data = serde_json::value::to_raw_value(&json!({"order_id": -1}))?;
    let dropped = outbox.publish(&mut tx, &account, EventDraft::new("order.paid", data)).await?.id;
    tx.rollback().await?;
    println!("rolled back {dropped}: stored {}", herald.store().get_event(&account, &dropped).await?.is_some());
    match tokio::time::timeout(Duration::from_secs(2), received.recv()).await {
        Ok(Some(body)) => anyhow::bail!("a rolled-back event was delivered: {body}"),
        _ => println!("nothing was sent for it"),
    }
    app.delete_webhook(&account, &webhook.id).await?;
    herald.stop().await
}
