//! Upkeep: delete expired rows in batches, auto-disable failing webhooks, prune secrets.

use crate::rows::*;
use crate::{PgStore, unavailable};
use async_trait::async_trait;
use herald_domain::{AccountId, WebhookId, to_millis};
use herald_store::*;
use time::OffsetDateTime;

/// The expiry deletes after deliveries (and their attempts), each of at most `$2` rows
/// expired at `$1`.
const EXPIRED: [&str; 3] = [
    // An event outlives every delivery that references it (a recovered or retried delivery
    // may live longer than its event's own expiry).
    "DELETE FROM events WHERE id IN (SELECT id FROM events e WHERE e.expires_at <= $1 \
       AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id) \
     ORDER BY e.expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
    "DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE expires_at <= $1 \
     ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
    // A portal link and the session it became end together.
    "DELETE FROM portal_sessions WHERE link_hash IN (SELECT link_hash FROM portal_sessions \
     WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
];

#[async_trait]
impl Maintenance for PgStore {
    async fn delete_expired(&self, now: OffsetDateTime, batch: u32) -> StoreResult<u64> {
        let now_ms = to_millis(now);
        let mut total = 0;
        loop {
            let mut tx = self.begin().await?;
            let gone: Vec<String> = sqlx::query_scalar(
                "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE expires_at <= $1 \
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id",
            )
            .bind(now_ms)
            .bind(i64::from(batch))
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
            if !gone.is_empty() {
                sqlx::query("DELETE FROM attempts WHERE delivery_id = ANY($1)")
                    .bind(&gone)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            }
            let mut deleted = [gone.len() as u64, 0, 0, 0];
            for (n, sql) in deleted[1..].iter_mut().zip(EXPIRED) {
                let done = sqlx::query(sql).bind(now_ms).bind(i64::from(batch)).execute(&mut *tx).await;
                *n = done.map_err(unavailable)?.rows_affected();
            }
            tx.commit().await.map_err(unavailable)?;
            total += deleted.iter().sum::<u64>();
            if deleted.iter().all(|&n| n < u64::from(batch)) {
                return Ok(total);
            }
        }
    }

    async fn auto_disable(
        &self,
        since: OffsetDateTime,
        threshold: u32,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<(AccountId, WebhookId)>> {
        let ids: Vec<(String, String)> = sqlx::query_as(
            "UPDATE webhooks SET enabled = false, disabled_reason = $4, auto_disabled_at = $1, updated_at = $1 \
             WHERE enabled AND agent IS NULL AND id IN (SELECT webhook_id FROM deliveries WHERE created_at >= $2 \
               GROUP BY webhook_id HAVING COUNT(*) FILTER (WHERE status IN ('failed', 'blocked')) >= $3 AND COUNT(*) FILTER (WHERE status = 'delivered') = 0) \
             RETURNING account_id, id",
        )
        .bind(to_millis(now))
        .bind(to_millis(since))
        .bind(i64::from(threshold))
        .bind(herald_domain::DisabledReason::Failing.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(ids.into_iter().map(|(a, w)| (AccountId::from_trusted(a), WebhookId::from_trusted(w))).collect())
    }

    async fn prune_secrets(&self, now: OffsetDateTime) -> StoreResult<u64> {
        // Signing keys whose grace has ended sign nothing and are no longer published.
        sqlx::query("DELETE FROM signing_keys WHERE expires_at <= $1")
            .bind(to_millis(now))
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        let rows = sqlx::query("SELECT id, previous_secrets FROM webhooks WHERE previous_secrets <> '[]'")
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        let mut changed = 0;
        for r in &rows {
            let before: String = get(r, 1)?;
            if let Some(p) = herald_store::codec::pruned(&before, to_millis(now))? {
                // Compare-and-set: a rotation in between wins; the next pass prunes again.
                let done =
                    sqlx::query("UPDATE webhooks SET previous_secrets = $1 WHERE id = $2 AND previous_secrets = $3")
                        .bind(p)
                        .bind(get::<String>(r, 0)?)
                        .bind(&before)
                        .execute(&self.pool)
                        .await
                        .map_err(unavailable)?;
                changed += done.rows_affected();
            }
        }
        Ok(changed)
    }
}
