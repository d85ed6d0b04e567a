//! Deliveries as an account sees them: list, inspect, retry by hand.

use crate::rows::*;
use crate::{SqliteStore, unavailable};
use async_trait::async_trait;
use herald_domain::{AccountId, DeliveryId, to_millis};
use herald_store::*;
use time::OffsetDateTime;

#[async_trait]
impl Deliveries for SqliteStore {
    async fn list_deliveries(&self, query: DeliveryQuery) -> StoreResult<Vec<Delivery>> {
        let DeliveryQuery { account, webhook, status, page } = query;
        let sql = concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE account_id = ? AND webhook_id = ? AND (? IS NULL OR status = ?) \
              AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?",
        );
        let st = status.map(|s| s.as_str());
        let rows = sqlx::query(sql)
            .bind(account.as_str())
            .bind(webhook.as_str())
            .bind(st)
            .bind(st)
            .bind(page.after.as_deref())
            .bind(page.after.as_deref())
            .bind(i64::from(page.limit))
            .fetch_all(&self.read)
            .await
            .map_err(unavailable)?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn get_delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
    ) -> StoreResult<Option<(Delivery, Vec<Attempt>)>> {
        let sql = concat!("SELECT ", delivery_columns!(), " FROM deliveries WHERE account_id = ? AND id = ?");
        let Some(row) = sqlx::query(sql)
            .bind(account.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.read)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let d = delivery_from_row(&row)?;
        let attempts = sqlx::query(
            "SELECT number, started_at, duration_ms, status_code, error, response_body, kind FROM attempts \
             WHERE delivery_id = ? ORDER BY number",
        )
        .bind(id.as_str())
        .fetch_all(&self.read)
        .await
        .map_err(unavailable)?;
        let attempts = attempts.iter().map(attempt_from_row).collect::<StoreResult<Vec<_>>>()?;
        Ok(Some((d, attempts)))
    }

    async fn retry_delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Delivery>> {
        let mut tx = self.begin().await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM deliveries WHERE account_id = ? AND id = ?")
                .bind(account.as_str())
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        let Some(status) = status else { return Ok(None) };
        let status =
            herald_domain::DeliveryStatus::parse(&status).ok_or_else(|| corrupt("delivery status", &status))?;
        let exists: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhooks w JOIN deliveries d ON d.webhook_id = w.id WHERE d.id = ?",
        )
        .bind(id.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        herald_domain::delivery::check_manual_retry(status, exists > 0)?;
        sqlx::query(
            "UPDATE deliveries SET status = 'pending', max_attempts = attempts + 1, next_retry_at = ?, \
             lease_token = NULL, expires_at = MAX(expires_at, ?), ordering_key = CASE \
               WHEN status = 'failed' AND ordering_key IS NOT NULL THEN 'retry:' || id ELSE ordering_key END \
             WHERE id = ? AND status IN ('failed', 'blocked')",
        )
        .bind(to_millis(now))
        .bind(to_millis(now + herald_domain::delivery::MANUAL_RETRY_LIFETIME))
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        // The event lives at least as long as the delivery (its body is sent from it).
        sqlx::query(
            "UPDATE events SET expires_at = MAX(expires_at, (SELECT expires_at FROM deliveries WHERE id = ?1)) \
             WHERE id = (SELECT event_id FROM deliveries WHERE id = ?1)",
        )
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let sql = concat!("SELECT ", delivery_columns!(), " FROM deliveries WHERE id = ?");
        let row = sqlx::query(sql).bind(id.as_str()).fetch_one(&mut *tx).await.map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        self.wake();
        delivery_from_row(&row).map(Some)
    }

    async fn skip_delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Delivery>> {
        let mut tx = self.begin().await?;
        let found: Option<(String, bool)> = sqlx::query_as(
            "SELECT status, lease_token IS NOT NULL AND next_retry_at > ? FROM deliveries \
             WHERE account_id = ? AND id = ?",
        )
        .bind(to_millis(now))
        .bind(account.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        let Some((status, in_flight)) = found else { return Ok(None) };
        let status =
            herald_domain::DeliveryStatus::parse(&status).ok_or_else(|| corrupt("delivery status", &status))?;
        herald_domain::delivery::check_skip(status, in_flight)?;
        let sql = concat!(
            "UPDATE deliveries SET status = 'failed', last_error = ?, lease_token = NULL, next_retry_at = ? \
             WHERE id = ? AND status IN ('pending', 'blocked') RETURNING ",
            delivery_columns!()
        );
        let row = sqlx::query(sql)
            .bind(herald_domain::delivery::SKIPPED)
            .bind(to_millis(now))
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        // The next delivery of its lane may go now.
        self.wake();
        delivery_from_row(&row).map(Some)
    }
}
