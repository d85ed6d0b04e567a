//! The engine's queue: lease due work (webhook locks first, then one leasing statement),
//! give leases back, and find the next due time. Outcomes are in `outcomes.rs`.

use crate::rows::*;
use crate::{PgStore, notify, unavailable};
use async_trait::async_trait;
use herald_domain::{AccountId, DeliveryId, EventId, SignatureScheme, WebhookId, to_millis};
use herald_store::control::ClaimControl;
use herald_store::*;
use std::collections::HashMap;
use std::time::Duration;
use time::OffsetDateTime;

/// A webhook's in-flight limit in SQL (`webhooks w`): the adaptive limit, or `max_in_flight`.
/// Keep it the same as SQLite's (`store-sqlite/src/claim.rs`) and `control::effective_limit`.
macro_rules! limit_sql {
    () => {
        "(CASE WHEN w.concurrency = 'adaptive' THEN GREATEST(1, LEAST(w.effective_max_in_flight, w.max_in_flight)) \
          ELSE w.max_in_flight END)"
    };
}

/// What a leasing statement returns, in this order (`d` the delivery, `picked.free` its
/// webhook's free slots).
macro_rules! leased {
    () => {
        " RETURNING d.id, d.webhook_id, d.event_id, d.event_type, d.attempts, d.max_attempts, d.lease_token, \
           COALESCE(d.body, (SELECT e.payload FROM events e WHERE e.id = d.event_id)), \
           w.url, w.secret, w.previous_secrets, d.agent IS NOT NULL, \
           (SELECT m.raw FROM messages m WHERE m.id = d.message_id), picked.free, d.account_id, d.created_at, \
           d.ordering_key IS NOT NULL, w.signature"
    };
}

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
        // 1. Lock webhooks with due work that are ready (no pause, no wait for a token); another
        //    replica claiming for one of them skips it. Those without a whole token now are
        //    dropped after the lock (their bucket is read under it).
        //    LATERAL … LIMIT 1 keeps this a probe per webhook: as a semi-join the planner may
        //    instead read every due row and group them, so a claim costs as much as the due
        //    backlog is long. `ORDER BY d.webhook_id, d.next_retry_at` (webhook_id is fixed,
        //    so this is the due order) matches `deliveries_webhook_due` and steers the planner
        //    to it; with statistics taken before the rows fell due it walked `deliveries_due` (an index since dropped)
        //    (every due row of every webhook) instead. `FOR UPDATE OF w`: only the webhook
        //    rows are locked, as before; the deliveries are locked in step 2.
        let locked = sqlx::query(
            "SELECT w.id, w.rate_limit_per_second, w.rate_tokens, w.rate_refilled_at, w.ordering, \
               w.on_final_failure, w.retry_schedule, w.max_age_ms \
             FROM webhooks w CROSS JOIN LATERAL (SELECT 1 FROM deliveries d \
               WHERE d.webhook_id = w.id AND d.status = 'pending' AND d.next_retry_at <= $1 AND d.expires_at > $1 \
               ORDER BY d.webhook_id, d.next_retry_at LIMIT 1) due \
             WHERE w.enabled AND w.ready_at <= $1 ORDER BY random() FOR UPDATE OF w SKIP LOCKED",
        )
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        let locked = locked.iter().map(Locked::of).collect::<StoreResult<Vec<_>>>()?;
        let locked: Vec<Locked> = locked.into_iter().filter(|w| w.control.allowed(now_ms) > 0).collect();
        if locked.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = locked.iter().map(|w| w.id.as_str()).collect();
        let allowed: Vec<i64> = locked.iter().map(|w| w.control.allowed(now_ms)).collect();
        let fifo: Vec<bool> = locked.iter().map(|w| w.control.fifo).collect();
        // 2. One statement: free slots per webhook (live leases counted in a snapshot taken
        //    after the locks, less the caller's finished ones still live with their token — at
        //    most its limit, so a stalled recorder cannot let a webhook run on: its unrecorded
        //    outcomes stay under twice its cap; at most its tokens), the due rows within them
        //    (by `deliveries_webhook_due`, as above; none of a FIFO webhook: all its rows are in
        //    lanes, step 3),
        //    leased with fresh tokens.
        let (finished_ids, finished_tokens): (Vec<&str>, Vec<&str>) =
            finished.iter().map(|(id, token)| (id.as_str(), token.as_str())).unzip();
        //    `cap` is MATERIALIZED: its `free` is read per picked row, and inlined it would
        //    count the leases again for each one.
        let mut rows = sqlx::query(concat!(
            "WITH finished AS MATERIALIZED ( \
               SELECT x.webhook_id, COUNT(*) AS n FROM (SELECT DISTINCT * FROM UNNEST($5::text[], $6::text[])) \
                 AS a(id, token) \
               JOIN deliveries x ON x.id = a.id AND x.lease_token = a.token AND x.status = 'pending' \
                 AND x.next_retry_at > $1 AND x.webhook_id = ANY($2) GROUP BY x.webhook_id \
             ), cap AS MATERIALIZED ( \
               SELECT w.id, a.fifo, LEAST(a.allowed, ",
            limit_sql!(),
            " - (SELECT COUNT(*) FROM deliveries l WHERE l.webhook_id = w.id \
                 AND l.status = 'pending' AND l.lease_token IS NOT NULL AND l.next_retry_at > $1) \
                 + LEAST(COALESCE((SELECT n FROM finished WHERE finished.webhook_id = w.id), 0), ",
            limit_sql!(),
            ")) AS free \
               FROM webhooks w JOIN UNNEST($2::text[], $7::bigint[], $8::boolean[]) AS a(id, allowed, fifo) \
                 ON a.id = w.id \
             ), picked AS ( \
               SELECT p.id, cap.id AS webhook_id, cap.free FROM cap CROSS JOIN LATERAL ( \
                 SELECT d.id FROM deliveries d WHERE d.webhook_id = cap.id AND d.status = 'pending' \
                   AND d.next_retry_at <= $1 AND d.expires_at > $1 AND NOT cap.fifo \
                 ORDER BY d.webhook_id, d.next_retry_at LIMIT GREATEST(cap.free, 0) FOR UPDATE SKIP LOCKED) p \
               LIMIT $3 \
             ) \
             UPDATE deliveries d SET next_retry_at = $4, lease_token = md5(random()::text || clock_timestamp()::text) \
             FROM picked JOIN webhooks w ON w.id = picked.webhook_id WHERE d.id = picked.id",
            leased!()
        ))
        .bind(now_ms)
        .bind(&ids)
        .bind(i64::from(limit))
        .bind(now_ms + lease.as_millis() as i64)
        .bind(&finished_ids)
        .bind(&finished_tokens)
        .bind(&allowed)
        .bind(&fifo)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        // 3. FIFO webhooks: the due heads of their lanes, within what is left.
        for w in locked.iter().filter(|w| w.control.fifo) {
            let left = i64::from(limit) - rows.len() as i64;
            if left <= 0 {
                break;
            }
            // Step 2 took none of its rows (all are in lanes): its tokens are all still there.
            let take = left.min(w.control.allowed(now_ms));
            if take <= 0 {
                continue;
            }
            let heads =
                lease_lane_heads(&mut tx, &w.id, take, now_ms, now_ms + lease.as_millis() as i64, finished).await?;
            rows.extend(heads);
        }
        // Rows taken per webhook, against its free slots: all taken means it may have more.
        let mut taken: HashMap<String, i64> = HashMap::new();
        for r in &rows {
            *taken.entry(get(r, 1)?).or_default() += 1;
        }
        // 4. Rate-limited webhooks pay their tokens.
        for w in &locked {
            if let (Some(rate), Some(n)) = (w.control.rate, taken.get(&w.id)) {
                let (bucket, ready_at) = w.control.bucket.take(rate, now_ms, *n as u32);
                sqlx::query(
                    "UPDATE webhooks SET rate_tokens = $1, rate_refilled_at = $2, ready_at = GREATEST(ready_at, $3) \
                     WHERE id = $4",
                )
                .bind(bucket.tokens)
                .bind(bucket.refilled_at_ms)
                .bind(ready_at)
                .bind(&w.id)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            }
        }
        // 5. Ed25519 deliveries need their accounts' keys: read in this transaction, so a
        //    failure gives every lease back rather than stranding them until they expire.
        let mut ed25519_accounts: Vec<String> = Vec::new();
        for r in &rows {
            if get::<String>(r, 17)? == SignatureScheme::Ed25519.as_str() {
                ed25519_accounts.push(get(r, 14)?);
            }
        }
        ed25519_accounts.sort();
        ed25519_accounts.dedup();
        let rings = match ed25519_accounts.is_empty() {
            true => HashMap::new(),
            false => crate::signing_keys::key_rings(&mut tx, self.cipher.as_deref(), &ed25519_accounts, now_ms).await?,
        };
        tx.commit().await.map_err(unavailable)?;
        let by_id: HashMap<&str, &Locked> = locked.iter().map(|w| (w.id.as_str(), w)).collect();
        let mut secrets_of: HashMap<String, Option<herald_domain::SecretSet>> = Default::default();
        let mut claimed = rows
            .iter()
            .map(|r| {
                let wh: String = get(r, 1)?;
                let signature = {
                    let s: String = get(r, 17)?;
                    SignatureScheme::parse(&s).ok_or_else(|| corrupt("signature", &s))?
                };
                let secrets = match secrets_of.get(&wh) {
                    Some(s) => s.clone(),
                    None => {
                        let s = herald_store::codec::open_for_claim(
                            self.cipher.as_deref(),
                            &wh,
                            signature,
                            get(r, 9)?,
                            &get::<String>(r, 10)?,
                        );
                        secrets_of.insert(wh.clone(), s.clone());
                        s
                    }
                };
                let w = by_id[wh.as_str()];
                let url: String = get(r, 8)?;
                let filled_webhook = taken[&wh] >= get::<i64>(r, 13)?;
                let in_lane: bool = get(r, 16)?;
                Ok(Claimed {
                    delivery_id: DeliveryId::from_trusted(get(r, 0)?),
                    webhook_id: WebhookId::from_trusted(wh),
                    account_id: AccountId::from_trusted(get(r, 14)?),
                    event_id: EventId::from_trusted(get(r, 2)?),
                    event_type: get(r, 3)?,
                    url,
                    secrets,
                    signature,
                    keys: None,
                    agent_payload: get(r, 11)?,
                    message_raw: get::<Option<Vec<u8>>>(r, 12)?,
                    attempt: get::<i64>(r, 4)? as u32 + 1,
                    max_attempts: get::<i64>(r, 5)? as u32,
                    retry_schedule: w.control.retry_schedule.clone(),
                    deadline: w.control.deadline(get(r, 15)?),
                    in_lane: in_lane && w.control.fifo,
                    blocks_lane: in_lane && w.control.blocks,
                    lease_token: get(r, 6)?,
                    body: get::<Option<Vec<u8>>>(r, 7)?,
                    filled_webhook,
                })
            })
            .collect::<StoreResult<Vec<Claimed>>>()?;
        for c in claimed.iter_mut().filter(|c| c.signature == SignatureScheme::Ed25519) {
            c.keys = rings.get(c.account_id.as_str()).cloned().flatten();
        }
        Ok(claimed)
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
        // And a webhook with due work that waits (a pause, or its next token) is due when it is ready.
        let ms: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(t) FROM ( \
               SELECT n.next_retry_at AS t FROM webhooks w CROSS JOIN LATERAL (SELECT d.next_retry_at \
                 FROM deliveries d WHERE d.webhook_id = w.id AND d.status = 'pending' AND d.next_retry_at > $1 \
                 ORDER BY d.webhook_id, d.next_retry_at LIMIT 1) n WHERE w.enabled \
               UNION ALL \
               SELECT w.ready_at FROM webhooks w WHERE w.enabled AND w.ready_at > $1 AND EXISTS (SELECT 1 \
                 FROM deliveries d WHERE d.webhook_id = w.id AND d.status = 'pending' AND d.next_retry_at <= $1) \
             ) t",
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

/// A webhook locked for this claim, with what its rows need.
struct Locked {
    id: String,
    control: ClaimControl,
}

impl Locked {
    fn of(r: &sqlx::postgres::PgRow) -> StoreResult<Self> {
        Ok(Self {
            id: get(r, 0)?,
            control: ClaimControl::from_columns(
                get(r, 1)?,
                get(r, 2)?,
                get(r, 3)?,
                &get::<String>(r, 4)?,
                &get::<String>(r, 5)?,
                get(r, 6)?,
                get(r, 7)?,
            )?,
        })
    }
}

/// Leases up to `take` due heads of `webhook`'s lanes within its free slots: a lane's head
/// is its first row (by `lane_seq`) that is pending or blocked, so a lane whose head is
/// leased, waiting for a retry or blocked offers nothing. The lanes are found by a skip scan
/// of `deliveries_lane` (one probe per lane, not one per queued row). The webhook is locked.
async fn lease_lane_heads(
    tx: &mut sqlx::PgConnection,
    webhook: &str,
    take: i64,
    now_ms: i64,
    lease_until: i64,
    finished: &[(DeliveryId, String)],
) -> StoreResult<Vec<sqlx::postgres::PgRow>> {
    let (finished_ids, finished_tokens): (Vec<&str>, Vec<&str>) =
        finished.iter().map(|(id, token)| (id.as_str(), token.as_str())).unzip();
    sqlx::query(concat!(
        "WITH RECURSIVE lane(k) AS ( \
           (SELECT ordering_key FROM deliveries WHERE webhook_id = $2 AND ordering_key IS NOT NULL \
              AND status IN ('pending', 'blocked') ORDER BY ordering_key LIMIT 1) \
           UNION ALL \
           SELECT (SELECT ordering_key FROM deliveries WHERE webhook_id = $2 AND ordering_key > lane.k \
              AND ordering_key IS NOT NULL AND status IN ('pending', 'blocked') ORDER BY ordering_key LIMIT 1) \
           FROM lane WHERE lane.k IS NOT NULL \
         ), head AS ( \
           SELECT (SELECT h.id FROM deliveries h WHERE h.webhook_id = $2 AND h.ordering_key = lane.k \
              AND h.ordering_key IS NOT NULL AND h.status IN ('pending', 'blocked') ORDER BY h.lane_seq LIMIT 1) AS id \
           FROM lane WHERE lane.k IS NOT NULL \
         ), cap AS MATERIALIZED ( \
           SELECT LEAST($3, ",
        limit_sql!(),
        " - (SELECT COUNT(*) FROM deliveries l WHERE l.webhook_id = w.id AND l.status = 'pending' \
              AND l.lease_token IS NOT NULL AND l.next_retry_at > $1) \
            + LEAST((SELECT COUNT(*) FROM (SELECT DISTINCT * FROM UNNEST($5::text[], $6::text[])) AS a(id, token) \
                JOIN deliveries x ON x.id = a.id AND x.lease_token = a.token AND x.status = 'pending' \
                AND x.next_retry_at > $1 AND x.webhook_id = w.id), ",
        limit_sql!(),
        ")) AS free FROM webhooks w WHERE w.id = $2 \
         ), picked AS ( \
           SELECT d.id, cap.free FROM head JOIN deliveries d ON d.id = head.id CROSS JOIN cap \
           WHERE d.status = 'pending' AND d.next_retry_at <= $1 AND d.expires_at > $1 \
           ORDER BY d.next_retry_at LIMIT (SELECT GREATEST(free, 0) FROM cap) FOR UPDATE OF d SKIP LOCKED \
         ) \
         UPDATE deliveries d SET next_retry_at = $4, lease_token = md5(random()::text || clock_timestamp()::text) \
         FROM picked JOIN webhooks w ON w.id = $2 WHERE d.id = picked.id",
        leased!()
    ))
    .bind(now_ms)
    .bind(webhook)
    .bind(take)
    .bind(lease_until)
    .bind(&finished_ids)
    .bind(&finished_tokens)
    .fetch_all(&mut *tx)
    .await
    .map_err(unavailable)
}
