//! Upkeep: delete expired rows in batches, auto-disable failing webhooks, prune secrets.

use crate::rows::*;
use crate::{SqliteStore, unavailable};
use async_trait::async_trait;
use herald_domain::{AccountId, WebhookId, to_millis};
use herald_store::*;
use time::OffsetDateTime;

/// The expiry deletes, in order, each of at most `?2` rows expired at `?1`.
const EXPIRED: [&str; 5] = [
    "DELETE FROM attempts WHERE delivery_id IN \
     (SELECT id FROM deliveries WHERE expires_at <= ?1 ORDER BY expires_at, id LIMIT ?2)",
    "DELETE FROM deliveries WHERE id IN \
     (SELECT id FROM deliveries WHERE expires_at <= ?1 ORDER BY expires_at, id LIMIT ?2)",
    // An event outlives every delivery that references it (a recovered or retried delivery
    // may live longer than its event's own expiry).
    "DELETE FROM events WHERE id IN (SELECT id FROM events e WHERE e.expires_at <= ?1 \
       AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id) ORDER BY e.expires_at LIMIT ?2)",
    "DELETE FROM messages WHERE id IN \
     (SELECT id FROM messages WHERE expires_at <= ?1 ORDER BY expires_at, id LIMIT ?2)",
    // A portal link and the session it became end together.
    "DELETE FROM portal_sessions WHERE link_hash IN \
     (SELECT link_hash FROM portal_sessions WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)",
];

#[async_trait]
impl Maintenance for SqliteStore {
    async fn delete_expired(&self, now: OffsetDateTime, batch: u32) -> StoreResult<u64> {
        let now_ms = to_millis(now);
        let mut total = 0;
        loop {
            let mut tx = self.begin().await?;
            let mut deleted = [0u64; EXPIRED.len()];
            for (n, sql) in deleted.iter_mut().zip(EXPIRED) {
                let done = sqlx::query(sql).bind(now_ms).bind(i64::from(batch)).execute(&mut *tx).await;
                *n = done.map_err(unavailable)?.rows_affected();
            }
            tx.commit().await.map_err(unavailable)?;
            // The first statement deletes the attempts of the deliveries the second deletes.
            total += deleted[1..].iter().sum::<u64>();
            if deleted[1..].iter().all(|&n| n < u64::from(batch)) {
                return Ok(total);
            }
            // Let other writers in between batches.
            tokio::task::yield_now().await;
        }
    }

    async fn auto_disable(
        &self,
        since: OffsetDateTime,
        threshold: u32,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<(AccountId, WebhookId)>> {
        // The window's deliveries are counted on a READ connection: with a large table this
        // scan takes a while, and on the writer it would hold up every publish and claim.
        let failing: Vec<String> = sqlx::query_scalar(
            "SELECT webhook_id FROM deliveries WHERE created_at >= ?1 GROUP BY webhook_id \
             HAVING SUM(status IN ('failed', 'blocked')) >= ?2 AND SUM(status = 'delivered') = 0",
        )
        .bind(to_millis(since))
        .bind(i64::from(threshold))
        .fetch_all(&self.read)
        .await
        .map_err(unavailable)?;
        if failing.is_empty() {
            return Ok(Vec::new());
        }
        // A delivery recorded since the count was taken keeps its webhook enabled:
        // `last_delivered_at` is kept to within `LAST_DELIVERED_RESOLUTION_MS`, so one
        // recorded after the count shows as `last_delivered_at ≥ now − resolution`.
        let ids: Vec<(String, String)> = sqlx::query_as(
            "UPDATE webhooks SET enabled = 0, disabled_reason = ?4, auto_disabled_at = ?1, updated_at = ?1 \
             WHERE enabled = 1 AND agent IS NULL AND id IN (SELECT value FROM json_each(?3)) \
               AND (last_delivered_at IS NULL OR last_delivered_at < ?1 - ?5) \
             RETURNING account_id, id",
        )
        .bind(to_millis(now))
        .bind(to_millis(since))
        .bind(herald_store::codec::to_json(&failing))
        .bind(herald_domain::DisabledReason::Failing.as_str())
        .bind(herald_store::plan::LAST_DELIVERED_RESOLUTION_MS)
        .fetch_all(&self.write)
        .await
        .map_err(unavailable)?;
        Ok(ids.into_iter().map(|(a, w)| (AccountId::from_trusted(a), WebhookId::from_trusted(w))).collect())
    }

    async fn prune_secrets(&self, now: OffsetDateTime) -> StoreResult<u64> {
        // Signing keys whose grace has ended sign nothing and are no longer published.
        sqlx::query("DELETE FROM signing_keys WHERE expires_at <= ?")
            .bind(to_millis(now))
            .execute(&self.write)
            .await
            .map_err(unavailable)?;
        let rows = sqlx::query("SELECT id, previous_secrets FROM webhooks WHERE previous_secrets <> '[]'")
            .fetch_all(&self.read)
            .await
            .map_err(unavailable)?;
        let mut changed = 0;
        for r in &rows {
            let before: String = get(r, 1)?;
            if let Some(p) = herald_store::codec::pruned(&before, to_millis(now))? {
                // Compare-and-set: a rotation in between wins; the next pass prunes again.
                let done =
                    sqlx::query("UPDATE webhooks SET previous_secrets = ? WHERE id = ? AND previous_secrets = ?")
                        .bind(p)
                        .bind(get::<String>(r, 0)?)
                        .bind(&before)
                        .execute(&self.write)
                        .await
                        .map_err(unavailable)?;
                changed += done.rows_affected();
            }
        }
        Ok(changed)
    }
}
