//! Deliveries as an account sees them: list, inspect, retry by hand.

use crate::rows::*;
use crate::{PgStore, notify, unavailable};
use async_trait::async_trait;
use herald_domain::{AccountId, DeliveryId, to_millis};
use herald_store::*;
use time::OffsetDateTime;

#[async_trait]
impl Deliveries for PgStore {
    async fn list_deliveries(&self, query: DeliveryQuery) -> StoreResult<Vec<Delivery>> {
        let DeliveryQuery { account, webhook, status, page } = query;
        let sql = concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE account_id = $1 AND webhook_id = $2 AND ($3::text IS NULL OR status = $3) \
              AND ($4::text IS NULL OR id < $4) ORDER BY id DESC LIMIT $5"
        );
        let rows = sqlx::query(sql)
            .bind(account.as_str())
            .bind(webhook.as_str())
            .bind(status.map(|s| s.as_str()))
            .bind(page.after.as_deref())
            .bind(i64::from(page.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn get_delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
    ) -> StoreResult<Option<(Delivery, Vec<Attempt>)>> {
        let sql = concat!("SELECT ", delivery_columns!(), " FROM deliveries WHERE account_id = $1 AND id = $2");
        let Some(row) = sqlx::query(sql)
            .bind(account.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let d = delivery_from_row(&row)?;
        let attempts = sqlx::query(
            "SELECT number, started_at, duration_ms, status_code, error, response_body, kind FROM attempts \
             WHERE delivery_id = $1 ORDER BY number",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
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
        let row = sqlx::query(
            "SELECT d.status, w.id IS NOT NULL FROM deliveries d LEFT JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.account_id = $1 AND d.id = $2 FOR UPDATE OF d",
        )
        .bind(account.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        let Some(row) = row else { return Ok(None) };
        let status: String = get(&row, 0)?;
        let status =
            herald_domain::DeliveryStatus::parse(&status).ok_or_else(|| corrupt("delivery status", &status))?;
        herald_domain::delivery::check_manual_retry(status, get(&row, 1)?)?;
        let sql = concat!(
            "UPDATE deliveries SET status = 'pending', max_attempts = attempts + 1, next_retry_at = $1, \
             lease_token = NULL, expires_at = GREATEST(expires_at, $2), \
             ordering_key = CASE WHEN status = 'failed' AND ordering_key IS NOT NULL THEN 'retry:' || id \
               ELSE ordering_key END, \
             lane_seq = CASE WHEN status = 'failed' AND ordering_key IS NOT NULL THEN nextval('deliveries_lane_seq') \
               ELSE lane_seq END \
             WHERE id = $3 RETURNING ",
            delivery_columns!()
        );
        let row = sqlx::query(sql)
            .bind(to_millis(now))
            .bind(to_millis(now + herald_domain::delivery::MANUAL_RETRY_LIFETIME))
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
        // The event lives at least as long as the delivery (its body is sent from it).
        sqlx::query(
            "UPDATE events e SET expires_at = GREATEST(e.expires_at, d.expires_at) FROM deliveries d \
             WHERE d.id = $1 AND e.id = d.event_id",
        )
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        notify(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        self.wake_local();
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
            "SELECT status, lease_token IS NOT NULL AND next_retry_at > $3 FROM deliveries \
             WHERE account_id = $1 AND id = $2 FOR UPDATE",
        )
        .bind(account.as_str())
        .bind(id.as_str())
        .bind(to_millis(now))
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        let Some((status, in_flight)) = found else { return Ok(None) };
        let status =
            herald_domain::DeliveryStatus::parse(&status).ok_or_else(|| corrupt("delivery status", &status))?;
        herald_domain::delivery::check_skip(status, in_flight)?;
        let sql = concat!(
            "UPDATE deliveries SET status = 'failed', last_error = $1, lease_token = NULL, next_retry_at = $2 \
             WHERE id = $3 RETURNING ",
            delivery_columns!()
        );
        let row = sqlx::query(sql)
            .bind(herald_domain::delivery::SKIPPED)
            .bind(to_millis(now))
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
        // The next delivery of its lane may go now, on any replica.
        notify(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        self.wake_local();
        delivery_from_row(&row).map(Some)
    }
}
