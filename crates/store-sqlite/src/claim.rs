//! The engine's queue: lease due work (per-webhook caps counted as live leases), give
//! leases back, and find the next due time. Outcomes are in `outcomes.rs`.

use crate::round::WriteJob;
use crate::rows::*;
use crate::{SqliteStore, unavailable};
use async_trait::async_trait;
use herald_domain::{AccountId, DeliveryId, EventId, WebhookId, to_millis};
use herald_store::codec::SecretCipher;
use herald_store::*;
use sqlx::SqliteConnection;
use std::time::Duration;
use time::OffsetDateTime;

#[async_trait]
impl Queue for SqliteStore {
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
        let cipher = self.cipher.clone();
        let finished = finished.to_vec();
        self.rounds.run(|reply| WriteJob::Claim { now, lease, limit, finished, cipher, reply }).await
    }

    async fn record_batch(&self, outcomes: &[Outcome], now: OffsetDateTime) -> StoreResult<Recorded> {
        let outcomes = outcomes.to_vec();
        self.rounds.run(|reply| WriteJob::Outcomes { outcomes, now, reply }).await
    }

    async fn release_leases(&self, leases: &[(DeliveryId, String)], now: OffsetDateTime) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        for (id, token) in leases {
            sqlx::query(
                "UPDATE deliveries SET next_retry_at = ?, lease_token = NULL \
                 WHERE id = ? AND lease_token = ? AND status = 'pending'",
            )
            .bind(to_millis(now))
            .bind(id.as_str())
            .bind(token)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(())
    }

    async fn next_due_after(&self, now: OffsetDateTime) -> StoreResult<Option<OffsetDateTime>> {
        // One probe per enabled webhook on `deliveries_webhook_due` (a disabled webhook's rows
        // are not claimable; enabling it raises the work signal).
        let ms: Option<i64> = sqlx::query_scalar(
            "SELECT MIN((SELECT d.next_retry_at FROM deliveries d WHERE d.webhook_id = w.id \
               AND d.status = 'pending' AND d.next_retry_at > ?1 ORDER BY d.next_retry_at LIMIT 1)) \
             FROM webhooks w WHERE w.enabled = 1",
        )
        .bind(to_millis(now))
        .fetch_one(&self.read)
        .await
        .map_err(unavailable)?;
        Ok(ms.map(herald_domain::from_millis))
    }

    fn work_signal(&self) -> WorkSignal {
        self.signal.clone()
    }
}

/// Leases up to `limit` due deliveries inside the round's transaction: webhooks with due work
/// and a free slot (live leases count against the cap, less the caller's `finished` ones),
/// walked from a different one each time.
pub(crate) async fn claim_in(
    conn: &mut SqliteConnection,
    cipher: Option<&SecretCipher>,
    now: OffsetDateTime,
    lease: Duration,
    limit: u32,
    finished: &[(DeliveryId, String)],
) -> StoreResult<Vec<Claimed>> {
    let now_ms = to_millis(now);
    let lease_until = now_ms + lease.as_millis() as i64;
    let candidates = sqlx::query(
        "SELECT w.id, w.url, w.secret, w.previous_secrets, w.max_in_flight - \
           (SELECT COUNT(*) FROM deliveries l WHERE l.webhook_id = w.id AND l.status = 'pending' \
              AND l.lease_token IS NOT NULL AND l.next_retry_at > ?1) AS free \
         FROM webhooks w WHERE w.enabled = 1 AND EXISTS (SELECT 1 FROM deliveries d \
           WHERE d.webhook_id = w.id AND d.status = 'pending' AND d.next_retry_at <= ?1 AND d.expires_at > ?1)",
    )
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await
    .map_err(unavailable)?;
    let mut candidates: Vec<_> = candidates
        .iter()
        .map(|r| -> StoreResult<_> {
            Ok((
                get::<String>(r, 0)?,
                get::<String>(r, 1)?,
                get::<String>(r, 2)?,
                get::<String>(r, 3)?,
                get::<i64>(r, 4)?,
            ))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    if !finished.is_empty() {
        for (webhook, n) in finished_per_webhook(conn, finished, now_ms).await? {
            if let Some(c) = candidates.iter_mut().find(|c| c.0 == webhook) {
                c.4 += n;
            }
        }
    }
    candidates.retain(|c| c.4 > 0);
    // Fairness: start the walk at a different webhook each claim.
    if candidates.len() > 1 {
        let k = (now_ms as usize ^ rand_offset()) % candidates.len();
        candidates.rotate_left(k);
    }
    lease_rows(conn, cipher, candidates, limit, now_ms, lease_until).await
}

/// How many of `finished` are live leases still holding their token, per webhook: the ones
/// the cap count included although their requests have ended — at most the webhook's
/// `max_in_flight`, so a stalled recorder cannot let it run on (its unrecorded outcomes stay
/// under twice its cap). Keep the live-lease condition the same as the cap count's above and
/// PostgreSQL's (`store-postgres/src/claim.rs`).
async fn finished_per_webhook(
    conn: &mut SqliteConnection,
    finished: &[(DeliveryId, String)],
    now_ms: i64,
) -> StoreResult<Vec<(String, i64)>> {
    let pairs: Vec<(&str, &str)> = finished.iter().map(|(id, token)| (id.as_str(), token.as_str())).collect();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT d.webhook_id, min(COUNT(DISTINCT d.id), w.max_in_flight) FROM json_each(?1) a \
         JOIN deliveries d ON d.id = a.value ->> 0 AND d.lease_token = a.value ->> 1 \
         JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.status = 'pending' AND d.next_retry_at > ?2 GROUP BY d.webhook_id",
    )
    .bind(herald_store::codec::to_json(&pairs))
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await
    .map_err(unavailable)?;
    Ok(rows)
}

/// Leases due rows of each candidate webhook (id, url, secret, previous, free slots).
async fn lease_rows(
    conn: &mut SqliteConnection,
    cipher: Option<&SecretCipher>,
    candidates: Vec<(String, String, String, String, i64)>,
    limit: u32,
    now_ms: i64,
    lease_until: i64,
) -> StoreResult<Vec<Claimed>> {
    let mut claimed = Vec::new();
    let mut left = i64::from(limit);
    for (wh, url, secret, prev, free) in candidates {
        if left <= 0 {
            break;
        }
        let take = free.min(left);
        // The envelope comes back with the lease: no second round trip for bodies.
        // `LIMIT ? + 0`, not `LIMIT ?`: a bare parameter as the limit makes SQLite
        // re-prepare the statement whenever the bound value changes (4 % of the CPU).
        let rows = sqlx::query(
            "UPDATE deliveries SET next_retry_at = ?, lease_token = lower(hex(randomblob(8))) \
             WHERE id IN (SELECT id FROM deliveries WHERE webhook_id = ? AND status = 'pending' \
               AND next_retry_at <= ? AND expires_at > ? ORDER BY next_retry_at LIMIT ? + 0) \
             RETURNING id, event_id, event_type, attempts, max_attempts, lease_token, \
               COALESCE(body, (SELECT payload FROM events e WHERE e.id = deliveries.event_id)), \
               agent IS NOT NULL, (SELECT raw FROM messages m WHERE m.id = deliveries.message_id), account_id",
        )
        .bind(lease_until)
        .bind(&wh)
        .bind(now_ms)
        .bind(now_ms)
        .bind(take)
        .fetch_all(&mut *conn)
        .await
        .map_err(unavailable)?;
        left -= rows.len() as i64;
        let filled_webhook = rows.len() as i64 >= free;
        let secrets = herald_store::codec::open_for_claim(cipher, &wh, secret, &prev);
        for r in &rows {
            claimed.push(Claimed {
                delivery_id: DeliveryId::from_trusted(get(r, 0)?),
                webhook_id: WebhookId::from_trusted(wh.clone()),
                account_id: AccountId::from_trusted(get(r, 9)?),
                event_id: EventId::from_trusted(get(r, 1)?),
                event_type: get(r, 2)?,
                url: url.clone(),
                secrets: secrets.clone(),
                body: get::<Option<Vec<u8>>>(r, 6)?,
                agent_payload: get(r, 7)?,
                message_raw: get::<Option<Vec<u8>>>(r, 8)?,
                attempt: get::<i64>(r, 3)? as u32 + 1,
                max_attempts: get::<i64>(r, 4)? as u32,
                lease_token: get(r, 5)?,
                filled_webhook,
            });
        }
    }
    Ok(claimed)
}

fn rand_offset() -> usize {
    uuid::Uuid::now_v7().as_u128() as usize
}
