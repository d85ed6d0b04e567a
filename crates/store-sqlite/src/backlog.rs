//! `herald bench --backlog`: a dead endpoint's pending deliveries, written straight into the
//! database before the load starts (a million through the API would take minutes).

use crate::unavailable;
use herald_domain::{DeliveryId, EventId, WebhookId, to_millis};
use herald_store::StoreResult;
use herald_store::backlog::Backlog;
use herald_store::codec::to_json as json;
use sqlx::Connection;
use time::OffsetDateTime;

/// Rows per transaction while seeding.
const CHUNK: u64 = 20_000;

/// Writes the `shape.rows` pending deliveries of a backlog (one `bench.backlog` event), first
/// attempt failed, next due at `due`, into the SQLite database at `url`, spread over
/// `webhook` and copies of it as [`Backlog`] says.
pub async fn seed_backlog(
    url: &str,
    webhook: &WebhookId,
    shape: &Backlog,
    now: OffsetDateTime,
    due: OffsetDateTime,
) -> StoreResult<()> {
    let mut conn = sqlx::SqliteConnection::connect(url).await.map_err(unavailable)?;
    let (now, due) = (to_millis(now), to_millis(due));
    let expires = due + 86_400_000 * 30;
    let account: String = sqlx::query_scalar("SELECT account_id FROM webhooks WHERE id = ?")
        .bind(webhook.as_str())
        .fetch_one(&mut conn)
        .await
        .map_err(unavailable)?;
    let (hooks, owners) = herald_store::backlog::spread(webhook, &account, shape);
    sqlx::query("INSERT INTO accounts (id, name, created_at) SELECT value, 'bench-' || value, ? FROM json_each(?)")
        .bind(now)
        .bind(json(&owners[1..]))
        .execute(&mut conn)
        .await
        .map_err(unavailable)?;
    sqlx::query(
        "INSERT INTO webhooks (id, account_id, url, description, events, filters, enabled, max_in_flight, secret, \
           previous_secrets, created_at, updated_at) \
         SELECT c.value ->> 0, c.value ->> 1, w.url, w.description, w.events, w.filters, w.enabled, w.max_in_flight, \
           w.secret, w.previous_secrets, w.created_at, w.updated_at \
         FROM webhooks w, json_each(?) c WHERE w.id = ?",
    )
    .bind(json(&hooks[1..]))
    .bind(webhook.as_str())
    .execute(&mut conn)
    .await
    .map_err(unavailable)?;
    let event = EventId::generate();
    sqlx::query(
        "INSERT INTO events (id, account_id, type, payload, labels, deliveries, created_at, expires_at) \
         VALUES (?, ?, 'bench.backlog', CAST('{}' AS BLOB), '[]', ?, ?, ?)",
    )
    .bind(event.as_str())
    .bind(&account)
    .bind(shape.rows as i64)
    .bind(now)
    .bind(expires)
    .execute(&mut conn)
    .await
    .map_err(unavailable)?;
    let mut done = 0;
    while done < shape.rows {
        let n = (shape.rows - done).min(CHUNK);
        let rows: Vec<(String, &str, &str)> = (done..done + n)
            .map(|k| {
                let (w, a) = &hooks[(k % hooks.len() as u64) as usize];
                (DeliveryId::generate().as_str().to_owned(), w.as_str(), a.as_str())
            })
            .collect();
        let mut tx = conn.begin().await.map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO deliveries (id, account_id, webhook_id, event_id, event_type, status, attempts, \
             max_attempts, last_attempt_at, next_retry_at, created_at, expires_at) \
             SELECT value ->> 0, value ->> 2, value ->> 1, ?, 'bench.backlog', 'pending', 1, 8, ?, ?, ?, ? \
             FROM json_each(?)",
        )
        .bind(event.as_str())
        .bind(now)
        .bind(due)
        .bind(now)
        .bind(expires)
        .bind(json(&rows))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        done += n;
    }
    // Settle before the load starts: the WAL copied back into the database file (best
    // effort: with `herald serve` reading at the same moment it may copy only part).
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut conn).await.map_err(unavailable)?;
    Ok(())
}
