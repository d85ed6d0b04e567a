//! The engine's queue: lease due work (webhook locks first, then one leasing statement),
//! give leases back, and find the next due time. Outcomes are in `outcomes.rs`.

use crate::rows::*;
use crate::{PgStore, notify, unavailable};
use async_trait::async_trait;
use herald_domain::{AccountId, DeliveryId, EventId, WebhookId, to_millis};
use herald_store::*;
use std::time::Duration;
use time::OffsetDateTime;

#[async_trait]
impl Queue for PgStore {
    async fn claim_due_with_finished(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
        finished: &[(DeliveryId, String)],
    ) -> StoreResult<Vec<Claimed>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now_ms = to_millis(now);
        let mut tx = self.begin_soft().await?;
        // 1. Lock webhooks with due work; another replica claiming for one of them skips it.
        //    LATERAL … LIMIT 1 keeps this a probe per webhook: as a semi-join the planner may
        //    instead read every due row and group them, so a claim costs as much as the due
        //    backlog is long. `ORDER BY d.webhook_id, d.next_retry_at` (webhook_id is fixed,
        //    so this is the due order) matches `deliveries_webhook_due` and steers the planner
        //    to it; with statistics taken before the rows fell due it walked `deliveries_due` (an index since dropped)
        //    (every due row of every webhook) instead. `FOR UPDATE OF w`: only the webhook
        //    rows are locked, as before; the deliveries are locked in step 2.
        let locked: Vec<String> = sqlx::query_scalar(
            "SELECT w.id FROM webhooks w CROSS JOIN LATERAL (SELECT 1 FROM deliveries d \
               WHERE d.webhook_id = w.id AND d.status = 'pending' AND d.next_retry_at <= $1 AND d.expires_at > $1 \
               ORDER BY d.webhook_id, d.next_retry_at LIMIT 1) due \
             WHERE w.enabled ORDER BY random() FOR UPDATE OF w SKIP LOCKED",
        )
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        if locked.is_empty() {
            return Ok(Vec::new());
        }
        // 2. One statement: free slots per webhook (live leases counted in a snapshot taken
        //    after the locks, less the caller's finished ones still live with their token — at
        //    most `max_in_flight` of them, so a stalled recorder cannot let a webhook run on:
        //    its unrecorded outcomes stay under twice its cap),
        //    the due rows within them (by `deliveries_webhook_due`, as above), leased with
        //    fresh tokens.
        let (finished_ids, finished_tokens): (Vec<&str>, Vec<&str>) =
            finished.iter().map(|(id, token)| (id.as_str(), token.as_str())).unzip();
        //    `cap` is MATERIALIZED: its `free` is read per picked row, and inlined it would
        //    count the leases again for each one.
        let rows = sqlx::query(
            "WITH finished AS MATERIALIZED ( \
               SELECT x.webhook_id, COUNT(*) AS n FROM (SELECT DISTINCT * FROM UNNEST($5::text[], $6::text[])) \
                 AS a(id, token) \
               JOIN deliveries x ON x.id = a.id AND x.lease_token = a.token AND x.status = 'pending' \
                 AND x.next_retry_at > $1 AND x.webhook_id = ANY($2) GROUP BY x.webhook_id \
             ), cap AS MATERIALIZED ( \
               SELECT w.id, w.max_in_flight - (SELECT COUNT(*) FROM deliveries l WHERE l.webhook_id = w.id \
                 AND l.status = 'pending' AND l.lease_token IS NOT NULL AND l.next_retry_at > $1) \
                 + LEAST(COALESCE((SELECT n FROM finished WHERE finished.webhook_id = w.id), 0), w.max_in_flight) \
                 AS free \
               FROM webhooks w WHERE w.id = ANY($2) \
             ), picked AS ( \
               SELECT p.id, cap.id AS webhook_id, cap.free FROM cap CROSS JOIN LATERAL ( \
                 SELECT d.id FROM deliveries d WHERE d.webhook_id = cap.id AND d.status = 'pending' \
                   AND d.next_retry_at <= $1 AND d.expires_at > $1 \
                 ORDER BY d.webhook_id, d.next_retry_at LIMIT GREATEST(cap.free, 0) FOR UPDATE SKIP LOCKED) p \
               LIMIT $3 \
             ) \
             UPDATE deliveries d SET next_retry_at = $4, lease_token = md5(random()::text || clock_timestamp()::text) \
             FROM picked JOIN webhooks w ON w.id = picked.webhook_id WHERE d.id = picked.id \
             RETURNING d.id, d.webhook_id, d.event_id, d.event_type, d.attempts, d.max_attempts, d.lease_token, \
               COALESCE(d.body, (SELECT e.payload FROM events e WHERE e.id = d.event_id)), \
               w.url, w.secret, w.previous_secrets, d.agent IS NOT NULL, \
               (SELECT m.raw FROM messages m WHERE m.id = d.message_id), picked.free, d.account_id",
        )
        .bind(now_ms)
        .bind(&locked)
        .bind(i64::from(limit))
        .bind(now_ms + lease.as_millis() as i64)
        .bind(&finished_ids)
        .bind(&finished_tokens)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        let mut secrets_of: std::collections::HashMap<String, Option<herald_domain::SecretSet>> = Default::default();
        // Rows taken per webhook, against its free slots: all taken means it may have more.
        let mut taken: std::collections::HashMap<String, i64> = Default::default();
        for r in &rows {
            *taken.entry(get(r, 1)?).or_default() += 1;
        }
        rows.iter()
            .map(|r| {
                let wh: String = get(r, 1)?;
                let secrets = match secrets_of.get(&wh) {
                    Some(s) => s.clone(),
                    None => {
                        let s = herald_store::codec::open_for_claim(
                            self.cipher.as_deref(),
                            &wh,
                            get(r, 9)?,
                            &get::<String>(r, 10)?,
                        );
                        secrets_of.insert(wh.clone(), s.clone());
                        s
                    }
                };
                let url: String = get(r, 8)?;
                let filled_webhook = taken[&wh] >= get::<i64>(r, 13)?;
                Ok(Claimed {
                    delivery_id: DeliveryId::from_trusted(get(r, 0)?),
                    webhook_id: WebhookId::from_trusted(wh),
                    account_id: AccountId::from_trusted(get(r, 14)?),
                    event_id: EventId::from_trusted(get(r, 2)?),
                    event_type: get(r, 3)?,
                    url,
                    secrets,
                    agent_payload: get(r, 11)?,
                    message_raw: get::<Option<Vec<u8>>>(r, 12)?,
                    attempt: get::<i64>(r, 4)? as u32 + 1,
                    max_attempts: get::<i64>(r, 5)? as u32,
                    lease_token: get(r, 6)?,
                    body: get::<Option<Vec<u8>>>(r, 7)?,
                    filled_webhook,
                })
            })
            .collect()
    }

    async fn record_batch(&self, outcomes: &[Outcome], now: OffsetDateTime) -> StoreResult<Recorded> {
        self.apply_outcomes(outcomes, now).await
    }

    async fn release_leases(&self, leases: &[(DeliveryId, String)], now: OffsetDateTime) -> StoreResult<()> {
        let ids: Vec<String> = leases.iter().map(|(id, _)| id.to_string()).collect();
        let tokens: Vec<String> = leases.iter().map(|(_, t)| t.clone()).collect();
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE deliveries d SET next_retry_at = $1, lease_token = NULL \
             FROM UNNEST($2::text[], $3::text[]) AS l(id, token) \
             WHERE d.id = l.id AND d.lease_token = l.token AND d.status = 'pending'",
        )
        .bind(to_millis(now))
        .bind(&ids)
        .bind(&tokens)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        notify(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        Ok(())
    }

    async fn next_due_after(&self, now: OffsetDateTime) -> StoreResult<Option<OffsetDateTime>> {
        // One probe per enabled webhook on `deliveries_webhook_due` (a disabled webhook's rows
        // are not claimable; enabling it raises the work signal).
        let ms: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(n.next_retry_at) FROM webhooks w CROSS JOIN LATERAL (SELECT d.next_retry_at \
               FROM deliveries d WHERE d.webhook_id = w.id AND d.status = 'pending' AND d.next_retry_at > $1 \
               ORDER BY d.webhook_id, d.next_retry_at LIMIT 1) n WHERE w.enabled",
        )
        .bind(to_millis(now))
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(ms.map(herald_domain::from_millis))
    }

    fn work_signal(&self) -> WorkSignal {
        self.signal.clone()
    }
}
