//! A webhook's attempts counted into time buckets by outcome and duration (the stats API).

use crate::rows::*;
use crate::{SqliteStore, unavailable};
use async_trait::async_trait;
use herald_domain::to_millis;
use herald_store::*;
use sqlx::sqlite::SqliteRow;

#[async_trait]
impl AttemptStats for SqliteStore {
    async fn attempt_counts(&self, window: &AttemptWindow) -> StoreResult<Vec<AttemptCount>> {
        // Durations to three significant digits (exact below 1 s): percentiles within 1 %,
        // and at most ~2,000 rows per bucket and outcome however varied the durations.
        // Walks the webhook's retained deliveries (`deliveries_by_webhook`; no index serves
        // `last_attempt_at`), joining attempts only for those with `last_attempt_at >= since`:
        // every recorded attempt sets it to its own start, so none in the window is missed.
        let rows = sqlx::query(
            "SELECT (a.started_at - ?3) / ?5 AS bucket, \
               CAST(CASE WHEN a.status_code BETWEEN 200 AND 299 THEN 1 ELSE 0 END AS BIGINT) AS ok, \
               CASE WHEN a.duration_ms < 1000 THEN a.duration_ms \
                    WHEN a.duration_ms < 10000 THEN a.duration_ms / 10 * 10 \
                    ELSE a.duration_ms / 100 * 100 END AS ms, COUNT(*) \
             FROM deliveries d JOIN attempts a ON a.delivery_id = d.id \
             WHERE d.account_id = ?1 AND d.webhook_id = ?2 AND d.last_attempt_at >= ?3 \
               AND a.started_at >= ?3 AND a.started_at < ?4 \
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .bind(window.account.as_str())
        .bind(window.webhook.as_str())
        .bind(to_millis(window.since))
        .bind(to_millis(window.until))
        .bind(bucket_ms(window))
        .fetch_all(&self.read)
        .await
        .map_err(unavailable)?;
        rows.iter().map(count_from_row).collect()
    }
}

/// A row of `account_id, read_only, expires_at`.
/// The window's bucket in milliseconds, at least 1.
fn bucket_ms(window: &AttemptWindow) -> i64 {
    i64::try_from(window.bucket.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// A row of `bucket, ok, duration_ms, count`.
fn count_from_row(r: &SqliteRow) -> StoreResult<AttemptCount> {
    let bucket: i64 = get(r, 0)?;
    Ok(AttemptCount {
        // Only a window of more than 2³² buckets gets here: the request is at fault.
        bucket: u32::try_from(bucket)
            .map_err(|_| StoreError::Invalid(format!("attempt bucket {bucket}").into()).counted())?,
        success: get::<i64>(r, 1)? != 0,
        duration_ms: get::<i64>(r, 2)?.max(0) as u64,
        count: get::<i64>(r, 3)?.max(0) as u64,
    })
}
