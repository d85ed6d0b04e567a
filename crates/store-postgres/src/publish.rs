//! Publishing: without an idempotency key ONE statement (subscriptions matched in SQL);
//! with one, a transaction serialised per key. Both run on a connection the caller may own
//! (`outbox.rs`: a library caller's transaction), so the API and the library publish alike.

use crate::rows::*;
use crate::{PgStore, unavailable};
use herald_domain::{DeliveryId, EventId, Filters, to_millis};
use herald_store::codec::{parse_json, to_json as json};
use herald_store::*;

impl PgStore {
    pub(crate) async fn publish_event(&self, new: NewEvent, rules: &FanoutRules) -> StoreResult<Published> {
        if new.idempotency_key.is_none() {
            return self.publish_one_statement(new, rules).await;
        }
        let mut tx = self.begin().await?;
        let published = publish_on(&mut tx, new, rules).await?;
        tx.commit().await.map_err(unavailable)?;
        if published.deliveries > 0 && !published.replayed {
            self.wake_local();
            self.notify_soon();
        }
        Ok(published)
    }
}

/// Publishes `new` on `conn`, inside a transaction the caller owns and commits (this store's
/// own, or a library caller's: `herald-outbox`): an idempotency key is serialised per
/// account and key and answers the earlier event within its window; otherwise the event
/// and one delivery per matching enabled subscription. Wakes nothing.
pub async fn publish_on(tx: &mut sqlx::PgConnection, new: NewEvent, rules: &FanoutRules) -> StoreResult<Published> {
    let now = to_millis(new.created_at);
    let account = new.account_id.as_str();
    if let Some(key) = &new.idempotency_key {
        // Serialise publishes of one key: the unique index would reject the second anyway.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1 || '/' || $2))")
            .bind(account)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let prior = sqlx::query(
            "SELECT id, type, created_at, deliveries FROM events WHERE account_id = $1 AND idempotency_key = $2",
        )
        .bind(account)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        if let Some(r) = prior {
            let created: i64 = get(&r, 2)?;
            if rules.idempotency_holds(created, now) {
                return Ok(Published {
                    id: EventId::from_trusted(get(&r, 0)?),
                    event_type: get(&r, 1)?,
                    created_at: herald_domain::from_millis(created),
                    deliveries: get::<i64>(&r, 3)? as u32,
                    replayed: true,
                });
            }
            sqlx::query("UPDATE events SET idempotency_key = NULL WHERE account_id = $1 AND idempotency_key = $2")
                .bind(account)
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
    }
    let n = publish_in(&mut *tx, &new, rules).await?;
    Ok(Published { id: new.id, event_type: new.event_type, created_at: new.created_at, deliveries: n, replayed: false })
}

impl PgStore {
    /// A publish without an idempotency key as ONE statement (atomic on its own): match the
    /// subscriptions (the same rules as `Filters::wants`, in SQL), insert the event and its
    /// deliveries. Delivery ids are made in SQL in the same shape as `DeliveryId::generate`
    /// (millisecond time first, so they sort by creation).
    async fn publish_one_statement(&self, new: NewEvent, rules: &FanoutRules) -> StoreResult<Published> {
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        let published = publish_one_statement_on(&mut conn, new, rules).await?;
        if published.deliveries > 0 {
            self.wake_local();
            self.notify_soon();
        }
        Ok(published)
    }
}

/// [`PgStore::publish_one_statement`] on `conn` (also a library caller's transaction).
pub(crate) async fn publish_one_statement_on(
    conn: &mut sqlx::PgConnection,
    new: NewEvent,
    rules: &FanoutRules,
) -> StoreResult<Published> {
    {
        let now = to_millis(new.created_at);
        let n: i64 = sqlx::query_scalar(
            "WITH w AS ( \
               SELECT id, retry_schedule, ordering FROM webhooks WHERE account_id = $1 AND enabled AND agent IS NULL AND events::jsonb ? $2 \
                 AND (jsonb_array_length(filters::jsonb -> 'agent_ids') = 0 OR (filters::jsonb -> 'agent_ids') ? $3) \
                 AND (jsonb_array_length(filters::jsonb -> 'conversation_ids') = 0 \
                      OR (filters::jsonb -> 'conversation_ids') ? $4) \
                 AND (jsonb_array_length(filters::jsonb -> 'labels') = 0 OR (filters::jsonb -> 'labels') ?| $5::text[]) \
             ), ev AS ( \
               INSERT INTO events (id, account_id, type, payload, agent_id, conversation_id, labels, deliveries, \
                 created_at, expires_at, ordering_key) \
               SELECT $6, $1, $2, $7, $3, $4, $8, (SELECT COUNT(*) FROM w), $9, $10, $13 RETURNING deliveries \
             ), d AS ( \
               INSERT INTO deliveries (id, account_id, webhook_id, event_id, event_type, status, attempts, \
                 max_attempts, next_retry_at, created_at, expires_at, ordering_key, lane_seq) \
               SELECT 'whd_' || lpad(to_hex($9::bigint), 12, '0') || '7' || substr(md5(random()::text || w.id), 1, 19), \
                 $1, w.id, $6, $2, 'pending', 0, \
                 COALESCE(jsonb_array_length(w.retry_schedule::jsonb) + 1, $11), $9, $9, $12, \
                 CASE WHEN w.ordering = 'fifo' THEN COALESCE($13, '') END, \
                 CASE WHEN w.ordering = 'fifo' THEN nextval('deliveries_lane_seq') END FROM w \
             ) SELECT deliveries FROM ev",
        )
        .bind(new.account_id.as_str())
        .bind(&new.event_type)
        .bind(new.routing.agent_id.as_deref())
        .bind(new.routing.conversation_id.as_deref())
        .bind(&new.routing.labels)
        .bind(new.id.as_str())
        .bind(new.envelope.as_bytes())
        .bind(json(&new.routing.labels))
        .bind(now)
        .bind(rules.event_expiry(now))
        .bind(i64::from(rules.max_attempts))
        .bind(rules.delivery_expiry(now))
        .bind(new.ordering_key.as_deref())
        .fetch_one(&mut *conn)
        .await
        .map_err(unavailable)?;
        Ok(Published {
            id: new.id,
            event_type: new.event_type,
            created_at: new.created_at,
            deliveries: n as u32,
            replayed: false,
        })
    }
}

/// Publishes one event inside the caller's transaction: the event and one delivery per
/// matching enabled subscription; returns how many deliveries.
pub(crate) async fn publish_in(tx: &mut sqlx::PgConnection, new: &NewEvent, rules: &FanoutRules) -> StoreResult<u32> {
    let now = to_millis(new.created_at);
    let account = new.account_id.as_str();
    let subs = sqlx::query(
        "SELECT id, events, filters, retry_schedule, ordering FROM webhooks \
         WHERE account_id = $1 AND enabled AND agent IS NULL",
    )
    .bind(account)
    .fetch_all(&mut *tx)
    .await
    .map_err(unavailable)?;
    let (mut targets, mut max_attempts, mut keys) = (Vec::new(), Vec::new(), Vec::new());
    for r in &subs {
        let types: Vec<String> = parse_json(&get::<String>(r, 1)?)?;
        let filters: Filters = parse_json(&get::<String>(r, 2)?)?;
        if filters.wants(&types, &new.event_type, &new.routing) {
            targets.push(get::<String>(r, 0)?);
            let schedule =
                get::<Option<String>>(r, 3)?.map(|s| herald_store::control::schedule_from_json(&s)).transpose()?;
            max_attempts.push(i64::from(herald_store::control::max_attempts(schedule.as_deref(), rules.max_attempts)));
            let fifo = get::<String>(r, 4)? == herald_domain::OrderingMode::Fifo.as_str();
            keys.push(fifo.then(|| new.ordering_key.clone().unwrap_or_default()));
        }
    }
    sqlx::query(
        "INSERT INTO events (id, account_id, type, payload, agent_id, conversation_id, labels, idempotency_key, \
         deliveries, created_at, expires_at, ordering_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(new.id.as_str())
    .bind(account)
    .bind(&new.event_type)
    .bind(new.envelope.as_bytes())
    .bind(new.routing.agent_id.as_deref())
    .bind(new.routing.conversation_id.as_deref())
    .bind(json(&new.routing.labels))
    .bind(new.idempotency_key.as_deref())
    .bind(targets.len() as i64)
    .bind(now)
    .bind(rules.event_expiry(now))
    .bind(new.ordering_key.as_deref())
    .execute(&mut *tx)
    .await
    .map_err(unavailable)?;
    if !targets.is_empty() {
        let ids: Vec<String> = targets.iter().map(|_| DeliveryId::generate().to_string()).collect();
        sqlx::query(
            "INSERT INTO deliveries (id, account_id, webhook_id, event_id, event_type, status, attempts, \
             max_attempts, next_retry_at, created_at, expires_at, ordering_key, lane_seq) \
             SELECT d.id, $3, d.webhook_id, $4, $5, 'pending', 0, d.max_attempts, $7, $7, $8, d.ordering_key, \
               CASE WHEN d.ordering_key IS NOT NULL THEN nextval('deliveries_lane_seq') END \
             FROM UNNEST($1::text[], $2::text[], $6::bigint[], $9::text[]) AS d(id, webhook_id, max_attempts, ordering_key)",
        )
        .bind(&ids)
        .bind(&targets)
        .bind(account)
        .bind(new.id.as_str())
        .bind(&new.event_type)
        .bind(&max_attempts)
        .bind(now)
        .bind(rules.delivery_expiry(now))
        .bind(&keys)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    Ok(targets.len() as u32)
}
