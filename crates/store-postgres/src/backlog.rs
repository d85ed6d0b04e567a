//! `herald bench --backlog`: a dead endpoint's pending deliveries, written straight into the
//! database before the load starts (a million through the API would take minutes).

use crate::unavailable;
use herald_domain::{DeliveryId, EventId, WebhookId, to_millis};
use herald_store::StoreResult;
use herald_store::backlog::Backlog;
use sqlx::Connection;
use time::OffsetDateTime;

/// Rows per transaction while seeding.
const CHUNK: u64 = 50_000;

/// Writes the `shape.rows` pending deliveries of a backlog (one `bench.backlog` event), first
/// attempt failed, next due at `due`, into the PostgreSQL database at `url`, spread over
/// `webhook` and copies of it as [`Backlog`] says.
pub async fn seed_backlog(
    url: &str,
    webhook: &WebhookId,
    shape: &Backlog,
    now: OffsetDateTime,
    due: OffsetDateTime,
) -> StoreResult<()> {
    let mut conn = sqlx::PgConnection::connect(url).await.map_err(unavailable)?;
    let (now, due) = (to_millis(now), to_millis(due));
    let expires = due + 86_400_000 * 30;
    let account: String = sqlx::query_scalar("SELECT account_id FROM webhooks WHERE id = $1")
        .bind(webhook.as_str())
        .fetch_one(&mut conn)
        .await
        .map_err(unavailable)?;
    let (hooks, owners) = herald_store::backlog::spread(webhook, &account, shape);
    let new_accounts: Vec<&String> = owners.iter().skip(1).collect();
    sqlx::query("INSERT INTO accounts (id, name, created_at) SELECT id, 'bench-' || id, $2 FROM UNNEST($1::text[]) id")
        .bind(&new_accounts)
        .bind(now)
        .execute(&mut conn)
        .await
        .map_err(unavailable)?;
    sqlx::query(
        "INSERT INTO webhooks (id, account_id, url, description, events, filters, enabled, max_in_flight, secret, \
           previous_secrets, created_at, updated_at) \
         SELECT c.id, c.account, w.url, w.description, w.events, w.filters, w.enabled, w.max_in_flight, w.secret, \
           w.previous_secrets, w.created_at, w.updated_at \
         FROM webhooks w, UNNEST($1::text[], $2::text[]) AS c(id, account) WHERE w.id = $3",
    )
    .bind(hooks[1..].iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>())
    .bind(hooks[1..].iter().map(|(_, acc)| acc.as_str()).collect::<Vec<_>>())
    .bind(webhook.as_str())
    .execute(&mut conn)
    .await
    .map_err(unavailable)?;
    let event = EventId::generate();
    sqlx::query(
        "INSERT INTO events (id, account_id, type, payload, labels, deliveries, created_at, expires_at) \
         VALUES ($1, $2, 'bench.backlog', convert_to('{}', 'UTF8'), '[]', $3, $4, $5)",
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
        let ids: Vec<String> = (0..n).map(|_| DeliveryId::generate().as_str().to_owned()).collect();
        let of: Vec<&(String, String)> = (done..done + n).map(|k| &hooks[(k % hooks.len() as u64) as usize]).collect();
        let mut tx = conn.begin().await.map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO deliveries (id, account_id, webhook_id, event_id, event_type, status, attempts, \
             max_attempts, last_attempt_at, next_retry_at, created_at, expires_at) \
             SELECT d.id, d.account, d.webhook, $4, 'bench.backlog', 'pending', 1, 8, $5, $6, $5, $7 \
             FROM UNNEST($1::text[], $2::text[], $3::text[]) AS d(id, webhook, account)",
        )
        .bind(&ids)
        .bind(of.iter().map(|(w, _)| w.as_str()).collect::<Vec<_>>())
        .bind(of.iter().map(|(_, a)| a.as_str()).collect::<Vec<_>>())
        .bind(event.as_str())
        .bind(now)
        .bind(due)
        .bind(expires)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        done += n;
    }
    // Settle before the load starts: the one-off cost of writing a million rows (autovacuum
    // of the new rows, dirty pages) would otherwise be measured as the backlog's.
    sqlx::query("VACUUM (ANALYZE) deliveries").execute(&mut conn).await.map_err(unavailable)?;
    // Needs pg_checkpoint or superuser; without it the server's own checkpoints do it later.
    let _ = sqlx::query("CHECKPOINT").execute(&mut conn).await;
    Ok(())
}
