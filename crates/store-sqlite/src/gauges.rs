//! The queue's gauges (`/metrics`), read on a read connection.

use crate::{SqliteStore, unavailable};
use async_trait::async_trait;
use herald_domain::{from_millis, to_millis};
use herald_store::{QueueGauges, QueueState, StoreResult};
use time::OffsetDateTime;

#[async_trait]
impl QueueState for SqliteStore {
    async fn queue_gauges(&self, now: OffsetDateTime) -> StoreResult<QueueGauges> {
        let mut conn = self.read.acquire().await.map_err(unavailable)?;
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'pending'")
            .fetch_one(&mut *conn)
            .await
            .map_err(unavailable)?;
        // One probe per enabled webhook on `deliveries_webhook_due`.
        let earliest: Option<i64> = sqlx::query_scalar(
            "SELECT MIN((SELECT d.next_retry_at FROM deliveries d WHERE d.webhook_id = w.id \
               AND d.status = 'pending' AND d.expires_at > ?1 ORDER BY d.next_retry_at LIMIT 1)) \
             FROM webhooks w WHERE w.enabled = 1",
        )
        .bind(to_millis(now))
        .fetch_one(&mut *conn)
        .await
        .map_err(unavailable)?;
        let disabled: Vec<(Option<String>, i64)> = sqlx::query_as(
            "SELECT disabled_reason, count(*) FROM webhooks WHERE enabled = 0 AND url <> '' GROUP BY disabled_reason",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(unavailable)?;
        Ok(QueueGauges {
            pending: pending as u64,
            oldest_due: earliest.filter(|&ms| ms <= to_millis(now)).map(from_millis),
            disabled: herald_store::disabled_by_reason(disabled),
        })
    }
}
