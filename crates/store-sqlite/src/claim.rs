//! The engine's queue: lease due work (per-webhook caps counted as live leases), give
//! leases back, and find the next due time. Outcomes are in `outcomes.rs`.

use crate::round::WriteJob;
use crate::rows::*;
use crate::{SqliteStore, unavailable};
use async_trait::async_trait;
use herald_domain::{AccountId, DeliveryId, EventId, SignatureScheme, WebhookId, to_millis};
use herald_store::codec::SecretCipher;
use herald_store::control::ClaimControl;
use herald_store::*;
use sqlx::SqliteConnection;
use std::time::Duration;
use time::OffsetDateTime;

/// A webhook's in-flight limit in SQL (`webhooks w`): the adaptive limit, or `max_in_flight`.
/// Keep it the same as PostgreSQL's (`store-postgres/src/claim.rs`) and `control::effective_limit`.
macro_rules! limit_sql {
    () => {
        "(CASE WHEN w.concurrency = 'adaptive' THEN MAX(1, MIN(w.effective_max_in_flight, w.max_in_flight)) \
          ELSE w.max_in_flight END)"
    };
}

/// What a leasing statement returns, in this order.
macro_rules! leased {
    () => {
        " RETURNING id, event_id, event_type, attempts, max_attempts, lease_token, \
         COALESCE(body, (SELECT payload FROM events e WHERE e.id = deliveries.event_id)), \
         agent IS NOT NULL, (SELECT raw FROM messages m WHERE m.id = deliveries.message_id), account_id, created_at, \
         ordering_key IS NOT NULL"
    };
}

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
        // And a webhook with due work that waits (a pause, or its next token) is due when it is ready.
        let ms: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(t) FROM ( \
               SELECT (SELECT d.next_retry_at FROM deliveries d WHERE d.webhook_id = w.id \
                 AND d.status = 'pending' AND d.next_retry_at > ?1 ORDER BY d.next_retry_at LIMIT 1) AS t \
               FROM webhooks w WHERE w.enabled = 1 \
               UNION ALL \
               SELECT w.ready_at FROM webhooks w WHERE w.enabled = 1 AND w.ready_at > ?1 AND EXISTS (SELECT 1 \
                 FROM deliveries d WHERE d.webhook_id = w.id AND d.status = 'pending' AND d.next_retry_at <= ?1))",
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

/// Leases up to `limit` due deliveries inside the round's transaction: webhooks with due work,
/// ready (no pause, a token when rate-limited) and a free slot under their in-flight limit
/// (live leases count against it, less the caller's `finished` ones), walked from a different
/// one each time.
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
    let rows = sqlx::query(concat!(
        "SELECT w.id, w.url, w.secret, w.previous_secrets, ",
        limit_sql!(),
        " - (SELECT COUNT(*) FROM deliveries l WHERE l.webhook_id = w.id AND l.status = 'pending' \
              AND l.lease_token IS NOT NULL AND l.next_retry_at > ?1) AS free, \
           w.rate_limit_per_second, w.rate_tokens, w.rate_refilled_at, w.ordering, w.on_final_failure, \
           w.retry_schedule, w.max_age_ms, w.signature \
         FROM webhooks w WHERE w.enabled = 1 AND w.ready_at <= ?1 AND EXISTS (SELECT 1 FROM deliveries d \
           WHERE d.webhook_id = w.id AND d.status = 'pending' AND d.next_retry_at <= ?1 AND d.expires_at > ?1)",
    ))
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await
    .map_err(unavailable)?;
    let mut candidates = rows.iter().map(Candidate::of).collect::<StoreResult<Vec<_>>>()?;
    if !finished.is_empty() {
        for (webhook, n) in finished_per_webhook(conn, finished, now_ms).await? {
            if let Some(c) = candidates.iter_mut().find(|c| c.id == webhook) {
                c.free += n;
            }
        }
    }
    for c in &mut candidates {
        c.free = c.free.min(c.control.allowed(now_ms));
    }
    candidates.retain(|c| c.free > 0);
    // Fairness: start the walk at a different webhook each claim.
    if candidates.len() > 1 {
        let k = (now_ms as usize ^ rand_offset()) % candidates.len();
        candidates.rotate_left(k);
    }
    lease_rows(conn, cipher, candidates, limit, now_ms, lease_until).await
}

/// A webhook the claim may take rows of, and what each of its attempts needs.
struct Candidate {
    id: String,
    url: String,
    secret: String,
    previous: String,
    /// Rows it may take: free slots, then at most its tokens.
    free: i64,
    control: ClaimControl,
    signature: SignatureScheme,
}

impl Candidate {
    fn of(r: &sqlx::sqlite::SqliteRow) -> StoreResult<Self> {
        Ok(Self {
            id: get(r, 0)?,
            url: get(r, 1)?,
            secret: get(r, 2)?,
            previous: get(r, 3)?,
            free: get(r, 4)?,
            control: ClaimControl::from_columns(
                get(r, 5)?,
                get(r, 6)?,
                get(r, 7)?,
                &get::<String>(r, 8)?,
                &get::<String>(r, 9)?,
                get(r, 10)?,
                get(r, 11)?,
            )?,
            signature: {
                let s: String = get(r, 12)?;
                SignatureScheme::parse(&s).ok_or_else(|| corrupt("signature", &s))?
            },
        })
    }
}

/// How many of `finished` are live leases still holding their token, per webhook: the ones
/// the cap count included although their requests have ended — at most the webhook's
/// limit, so a stalled recorder cannot let it run on (its unrecorded outcomes stay under
/// twice its cap). Keep the live-lease condition the same as the cap count's above and
/// PostgreSQL's (`store-postgres/src/claim.rs`).
async fn finished_per_webhook(
    conn: &mut SqliteConnection,
    finished: &[(DeliveryId, String)],
    now_ms: i64,
) -> StoreResult<Vec<(String, i64)>> {
    let pairs: Vec<(&str, &str)> = finished.iter().map(|(id, token)| (id.as_str(), token.as_str())).collect();
    let rows: Vec<(String, i64)> = sqlx::query_as(concat!(
        "SELECT d.webhook_id, min(COUNT(DISTINCT d.id), ",
        limit_sql!(),
        ") FROM json_each(?1) a \
         JOIN deliveries d ON d.id = a.value ->> 0 AND d.lease_token = a.value ->> 1 \
         JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.status = 'pending' AND d.next_retry_at > ?2 GROUP BY d.webhook_id",
    ))
    .bind(herald_store::codec::to_json(&pairs))
    .bind(now_ms)
    .fetch_all(&mut *conn)
    .await
    .map_err(unavailable)?;
    Ok(rows)
}

/// Leases due rows of each candidate: of a FIFO webhook only the heads of its lanes (all its
/// rows are in lanes); of a rate-limited one, as many as it has tokens, which are then taken.
async fn lease_rows(
    conn: &mut SqliteConnection,
    cipher: Option<&SecretCipher>,
    candidates: Vec<Candidate>,
    limit: u32,
    now_ms: i64,
    lease_until: i64,
) -> StoreResult<Vec<Claimed>> {
    let mut claimed = Vec::new();
    let mut left = i64::from(limit);
    for c in candidates {
        if left <= 0 {
            break;
        }
        let take = c.free.min(left);
        let mut rows = Vec::new();
        if c.control.fifo {
            rows = lease_lane_heads(conn, &c.id, take, now_ms, lease_until).await?;
        }
        // A FIFO webhook's deliveries all have lanes (`webhooks.rs`, `lanes_after_patch`).
        if !c.control.fifo {
            // The envelope comes back with the lease: no second round trip for bodies.
            // `LIMIT ? + 0`, not `LIMIT ?`: a bare parameter as the limit makes SQLite
            // re-prepare the statement whenever the bound value changes (4 % of the CPU).
            let sql = concat!(
                "UPDATE deliveries SET next_retry_at = ?1, lease_token = lower(hex(randomblob(8))) \
                 WHERE id IN (SELECT id FROM deliveries WHERE webhook_id = ?2 AND status = 'pending' \
                   AND next_retry_at <= ?3 AND expires_at > ?3 ORDER BY next_retry_at LIMIT ?4 + 0)",
                leased!()
            );
            rows.extend(
                sqlx::query(sql)
                    .bind(lease_until)
                    .bind(&c.id)
                    .bind(now_ms)
                    .bind(take)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(unavailable)?,
            );
        }
        left -= rows.len() as i64;
        if let Some(rate) = c.control.rate
            && !rows.is_empty()
        {
            let (bucket, ready_at) = c.control.bucket.take(rate, now_ms, rows.len() as u32);
            sqlx::query(
                "UPDATE webhooks SET rate_tokens = ?, rate_refilled_at = ?, ready_at = MAX(ready_at, ?) WHERE id = ?",
            )
            .bind(bucket.tokens)
            .bind(bucket.refilled_at_ms)
            .bind(ready_at)
            .bind(&c.id)
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
        }
        let filled_webhook = rows.len() as i64 >= c.free;
        let secrets = herald_store::codec::open_for_claim(cipher, &c.id, c.signature, c.secret.clone(), &c.previous);
        for r in &rows {
            let in_lane: bool = get(r, 11)?;
            claimed.push(Claimed {
                delivery_id: DeliveryId::from_trusted(get(r, 0)?),
                webhook_id: WebhookId::from_trusted(c.id.clone()),
                account_id: AccountId::from_trusted(get(r, 9)?),
                event_id: EventId::from_trusted(get(r, 1)?),
                event_type: get(r, 2)?,
                url: c.url.clone(),
                secrets: secrets.clone(),
                signature: c.signature,
                keys: None,
                body: get::<Option<Vec<u8>>>(r, 6)?,
                agent_payload: get(r, 7)?,
                message_raw: get::<Option<Vec<u8>>>(r, 8)?,
                attempt: get::<i64>(r, 3)? as u32 + 1,
                max_attempts: get::<i64>(r, 4)? as u32,
                retry_schedule: c.control.retry_schedule.clone(),
                deadline: c.control.deadline(get(r, 10)?),
                in_lane: in_lane && c.control.fifo,
                blocks_lane: in_lane && c.control.blocks,
                lease_token: get(r, 5)?,
                filled_webhook,
            });
        }
    }
    // Ed25519 deliveries get their account's keys (one read per account).
    let accounts: Vec<String> =
        claimed.iter().filter(|c| c.signature == SignatureScheme::Ed25519).map(|c| c.account_id.to_string()).collect();
    if !accounts.is_empty() {
        let refs: Vec<&str> = accounts.iter().map(String::as_str).collect();
        let rings = crate::signing_keys::key_rings(conn, cipher, &refs, now_ms).await?;
        for c in claimed.iter_mut().filter(|c| c.signature == SignatureScheme::Ed25519) {
            c.keys = rings.get(c.account_id.as_str()).cloned().flatten();
        }
    }
    Ok(claimed)
}

/// Leases up to `take` due heads of `webhook`'s lanes: a lane's head is its oldest row that
/// is pending or blocked, so a lane whose head is leased, waiting for a retry or blocked
/// offers nothing. The lanes are found by a skip scan of `deliveries_lane` (one probe per
/// lane, not one per queued row).
async fn lease_lane_heads(
    conn: &mut SqliteConnection,
    webhook: &str,
    take: i64,
    now_ms: i64,
    lease_until: i64,
) -> StoreResult<Vec<sqlx::sqlite::SqliteRow>> {
    let sql = concat!(
        "WITH RECURSIVE lane(k) AS ( \
           SELECT (SELECT MIN(ordering_key) FROM deliveries WHERE webhook_id = ?2 \
             AND ordering_key IS NOT NULL AND status IN ('pending', 'blocked')) \
           UNION ALL \
           SELECT (SELECT MIN(ordering_key) FROM deliveries WHERE webhook_id = ?2 AND ordering_key > lane.k \
             AND ordering_key IS NOT NULL AND status IN ('pending', 'blocked')) FROM lane WHERE lane.k IS NOT NULL \
         ), head(id) AS ( \
           SELECT (SELECT h.id FROM deliveries h WHERE h.webhook_id = ?2 AND h.ordering_key = lane.k \
             AND h.ordering_key IS NOT NULL AND h.status IN ('pending', 'blocked') ORDER BY h.rowid LIMIT 1) \
           FROM lane WHERE lane.k IS NOT NULL \
         ) \
         UPDATE deliveries SET next_retry_at = ?1, lease_token = lower(hex(randomblob(8))) \
         WHERE id IN (SELECT d.id FROM head JOIN deliveries d ON d.id = head.id WHERE d.status = 'pending' \
           AND d.next_retry_at <= ?3 AND d.expires_at > ?3 ORDER BY d.next_retry_at LIMIT ?4 + 0)",
        leased!()
    );
    sqlx::query(sql)
        .bind(lease_until)
        .bind(webhook)
        .bind(now_ms)
        .bind(take)
        .fetch_all(&mut *conn)
        .await
        .map_err(unavailable)
}

fn rand_offset() -> usize {
    uuid::Uuid::now_v7().as_u128() as usize
}
