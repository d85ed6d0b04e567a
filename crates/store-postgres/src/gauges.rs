//! The queue's gauges (`/metrics`).

use crate::{PgStore, unavailable};
use async_trait::async_trait;
use herald_domain::{from_millis, to_millis};
use herald_store::{QueueGauges, QueueState, StoreResult};
use time::OffsetDateTime;

#[async_trait]
impl QueueState for PgStore {
    async fn queue_gauges(&self, now: OffsetDateTime) -> StoreResult<QueueGauges> {
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'pending'")
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        // One probe per enabled webhook on `deliveries_webhook_due`.
        let earliest: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(n.next_retry_at) FROM webhooks w CROSS JOIN LATERAL (SELECT d.next_retry_at \
               FROM deliveries d WHERE d.webhook_id = w.id AND d.status = 'pending' AND d.expires_at > $1 \
               ORDER BY d.webhook_id, d.next_retry_at LIMIT 1) n WHERE w.enabled",
        )
        .bind(to_millis(now))
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        let disabled: Vec<(Option<String>, i64)> = sqlx::query_as(
            "SELECT disabled_reason, count(*) FROM webhooks WHERE NOT enabled AND url <> '' GROUP BY disabled_reason",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(QueueGauges {
            pending: pending as u64,
            oldest_due: earliest.filter(|&ms| ms <= to_millis(now)).map(from_millis),
            disabled: herald_store::disabled_by_reason(disabled),
        })
    }
}
