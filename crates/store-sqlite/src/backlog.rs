//! `herald bench --backlog`: a dead endpoint's pending deliveries, written straight into the
//! database before the load starts (a million through the API would take minutes).

use crate::unavailable;
use herald_domain::{DeliveryId, EventId, WebhookId, to_millis};
use herald_store::StoreResult;
use herald_store::codec::to_json as json;
use sqlx::Connection;
use time::OffsetDateTime;

/// Rows per transaction while seeding.
const CHUNK: u64 = 20_000;

/// Writes `count` pending deliveries of `webhook` (one `bench.backlog` event of its account), first attempt failed, next due at
/// `due`, into the SQLite database at `url`.
pub async fn seed_backlog(
    url: &str,
    webhook: &WebhookId,
    count: u64,
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
    let event = EventId::generate();
    sqlx::query(
        "INSERT INTO events (id, account_id, type, payload, labels, deliveries, created_at, expires_at) \
         VALUES (?, ?, 'bench.backlog', CAST('{}' AS BLOB), '[]', ?, ?, ?)",
    )
    .bind(event.as_str())
    .bind(&account)
    .bind(count as i64)
    .bind(now)
    .bind(expires)
    .execute(&mut conn)
    .await
    .map_err(unavailable)?;
    let mut left = count;
    while left > 0 {
        let n = left.min(CHUNK);
        let ids: Vec<String> = (0..n).map(|_| DeliveryId::generate().as_str().to_owned()).collect();
        let mut tx = conn.begin().await.map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO deliveries (id, account_id, webhook_id, event_id, event_type, status, attempts, \
             max_attempts, last_attempt_at, next_retry_at, created_at, expires_at) \
             SELECT value, ?, ?, ?, 'bench.backlog', 'pending', 1, 8, ?, ?, ?, ? FROM json_each(?)",
        )
        .bind(&account)
        .bind(webhook.as_str())
        .bind(event.as_str())
        .bind(now)
        .bind(due)
        .bind(now)
        .bind(expires)
        .bind(json(&ids))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        left -= n;
    }
    // Settle before the load starts: the WAL copied back into the database file (best
    // effort: with `herald serve` reading at the same moment it may copy only part).
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut conn).await.map_err(unavailable)?;
    Ok(())
}
