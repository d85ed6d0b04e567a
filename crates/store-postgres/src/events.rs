//! The event log: publish (in `publish.rs`), direct enqueue, recovery in batches, listing,
//! and the account's custom event types.

use crate::rows::*;
use crate::{PgStore, notify, unavailable};
use async_trait::async_trait;
use herald_domain::{AccountId, DeliveryId, EventId, WebhookId, to_millis};
use herald_store::codec::{parse_json, to_json as json};
use herald_store::*;
use time::OffsetDateTime;

#[async_trait]
impl EventLog for PgStore {
    async fn publish(&self, new: NewEvent, rules: &FanoutRules) -> StoreResult<Published> {
        self.publish_event(new, rules).await
    }

    async fn enqueue_direct(
        &self,
        webhook: &WebhookId,
        new: NewEvent,
        rules: &FanoutRules,
    ) -> StoreResult<Option<DeliveryId>> {
        let now = to_millis(new.created_at);
        let mut tx = self.begin().await?;
        let found: Option<String> =
            sqlx::query_scalar("SELECT id FROM webhooks WHERE account_id = $1 AND id = $2 AND agent IS NULL")
                .bind(new.account_id.as_str())
                .bind(webhook.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        if found.is_none() {
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO events (id, account_id, type, payload, labels, deliveries, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, '[]', 1, $5, $6)",
        )
        .bind(new.id.as_str())
        .bind(new.account_id.as_str())
        .bind(&new.event_type)
        .bind(new.envelope.as_bytes())
        .bind(now)
        .bind(rules.event_expiry(now))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let id = DeliveryId::generate();
        // To a FIFO webhook a test send goes in a lane of its own: it never waits for (or
        // blocks) the webhook's events.
        sqlx::query(
            "INSERT INTO deliveries (id, account_id, webhook_id, event_id, event_type, status, attempts, max_attempts, \
             next_retry_at, created_at, expires_at, ordering_key, lane_seq) \
             SELECT $1, $2, $3, $4, $5, 'pending', 0, COALESCE(jsonb_array_length(w.retry_schedule::jsonb) + 1, $6), \
               $7, $8, $9, CASE WHEN w.ordering = 'fifo' THEN 'test:' || $1 END, \
               CASE WHEN w.ordering = 'fifo' THEN nextval('deliveries_lane_seq') END FROM webhooks w WHERE w.id = $3",
        )
        .bind(id.as_str())
        .bind(new.account_id.as_str())
        .bind(webhook.as_str())
        .bind(new.id.as_str())
        .bind(&new.event_type)
        .bind(i64::from(rules.max_attempts))
        .bind(now)
        .bind(now)
        .bind(rules.delivery_expiry(now))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        notify(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        self.wake_local();
        Ok(Some(id))
    }

    async fn events_after(
        &self,
        account: &AccountId,
        cursor: &EventCursor,
        until: OffsetDateTime,
        now: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<EventRouting>> {
        // A range scan from the cursor on (account_id, created_at, id).
        let rows = sqlx::query(
            "SELECT id, type, agent_id, conversation_id, labels, created_at FROM events \
             WHERE account_id = $1 AND (created_at, id) > ($2, $3) AND created_at < $4 AND expires_at > $5 \
             ORDER BY created_at, id LIMIT $6",
        )
        .bind(account.as_str())
        .bind(cursor.created_at_ms)
        .bind(&cursor.id)
        .bind(to_millis(until))
        .bind(to_millis(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                Ok(EventRouting {
                    id: EventId::from_trusted(get(row, 0)?),
                    event_type: get(row, 1)?,
                    routing: herald_domain::RoutingAttributes {
                        agent_id: get(row, 2)?,
                        conversation_id: get(row, 3)?,
                        labels: parse_json(&get::<String>(row, 4)?)?,
                    },
                    created_at_ms: get(row, 5)?,
                })
            })
            .collect()
    }

    async fn enqueue_recovered(
        &self,
        account: &AccountId,
        webhook: &WebhookId,
        batch: RecoveredBatch,
        now: OffsetDateTime,
    ) -> StoreResult<Option<u64>> {
        let pairs: Vec<serde_json::Value> =
            batch.deliveries.iter().map(|(d, e)| serde_json::json!([d.as_str(), e.as_str()])).collect();
        let n = self.insert_recovered(account, webhook, &pairs, batch.max_attempts, batch.expires_ms, now).await?;
        if n.is_some_and(|n| n > 0) {
            self.wake_local();
            self.notify_soon();
        }
        Ok(n)
    }

    async fn list_events(&self, account: &AccountId, filter: EventFilter, page: Page) -> StoreResult<Vec<Event>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE account_id = $1 AND ($2::text IS NULL OR type = $2) AND ($3::bigint IS NULL OR created_at >= $3) \
              AND ($4::bigint IS NULL OR created_at < $4) AND ($5::text IS NULL OR id < $5) ORDER BY id DESC LIMIT $6"
        ))
        .bind(account.as_str())
        .bind(filter.event_type.as_deref())
        .bind(filter.since.map(to_millis))
        .bind(filter.until.map(to_millis))
        .bind(page.after.as_deref())
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn get_event(&self, account: &AccountId, id: &EventId) -> StoreResult<Option<(Event, Vec<Delivery>)>> {
        let Some(row) =
            sqlx::query(concat!("SELECT ", event_columns!(), " FROM events WHERE account_id = $1 AND id = $2"))
                .bind(account.as_str())
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let deliveries = sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE account_id = $1 AND event_id = $2 ORDER BY id"
        ))
        .bind(account.as_str())
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(Some((event_from_row(&row)?, deliveries.iter().map(delivery_from_row).collect::<StoreResult<_>>()?)))
    }

    async fn custom_event_type_exists(&self, account: &AccountId, name: &str) -> StoreResult<bool> {
        custom_type_exists(&self.pool, account, name).await
    }

    async fn create_event_type(
        &self,
        account: &AccountId,
        name: &str,
        description: &str,
        now: OffsetDateTime,
    ) -> StoreResult<EventTypeRecord> {
        sqlx::query("INSERT INTO event_types (account_id, name, description, created_at) VALUES ($1, $2, $3, $4)")
            .bind(account.as_str())
            .bind(name)
            .bind(description)
            .bind(to_millis(now))
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(EventTypeRecord { name: name.to_owned(), description: description.to_owned(), created_at: now })
    }

    async fn list_event_types(&self, account: &AccountId) -> StoreResult<Vec<EventTypeRecord>> {
        let rows =
            sqlx::query("SELECT name, description, created_at FROM event_types WHERE account_id = $1 ORDER BY name")
                .bind(account.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
        rows.iter()
            .map(|r| {
                Ok(EventTypeRecord {
                    name: get(r, 0)?,
                    description: get(r, 1)?,
                    created_at: herald_domain::from_millis(get(r, 2)?),
                })
            })
            .collect()
    }
}

impl PgStore {
    /// One recovery batch in one short transaction: the webhook row is share-locked (a
    /// concurrent delete waits, then ends these deliveries too), the events' expiry is
    /// extended to the deliveries' (so the janitor keeps them: it also skips locked rows),
    /// and a delivery is inserted for each event still there. `None` if the webhook is gone.
    async fn insert_recovered(
        &self,
        account: &AccountId,
        webhook: &WebhookId,
        matching: &[serde_json::Value],
        max_attempts: u32,
        expires: i64,
        now: OffsetDateTime,
    ) -> StoreResult<Option<u64>> {
        let mut tx = self.begin().await?;
        let alive: Option<String> = sqlx::query_scalar("SELECT id FROM webhooks WHERE id = $1 FOR KEY SHARE")
            .bind(webhook.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
        if alive.is_none() {
            return Ok(None);
        }
        let ids: Vec<&str> = matching.iter().filter_map(|v| v[1].as_str()).collect();
        sqlx::query("UPDATE events SET expires_at = GREATEST(expires_at, $1) WHERE id = ANY($2)")
            .bind(expires)
            .bind(&ids)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let n = sqlx::query(
            "INSERT INTO deliveries (id, account_id, webhook_id, event_id, event_type, status, attempts, \
             max_attempts, next_retry_at, created_at, expires_at, ordering_key, lane_seq) \
             SELECT x.v ->> 0, $1, $2, e.id, e.type, 'pending', 0, \
               COALESCE(jsonb_array_length(w.retry_schedule::jsonb) + 1, $3), $4, $4, $5, \
               CASE WHEN w.ordering = 'fifo' THEN COALESCE(e.ordering_key, '') END, \
               CASE WHEN w.ordering = 'fifo' THEN nextval('deliveries_lane_seq') END \
             FROM (SELECT v, n FROM jsonb_array_elements($6::jsonb) WITH ORDINALITY AS a(v, n) ORDER BY n) AS x(v, n) \
             JOIN events e ON e.id = x.v ->> 1 JOIN webhooks w ON w.id = $2 ORDER BY x.n",
        )
        .bind(account.as_str())
        .bind(webhook.as_str())
        .bind(i64::from(max_attempts))
        .bind(to_millis(now))
        .bind(expires)
        .bind(json(matching))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected();
        tx.commit().await.map_err(unavailable)?;
        Ok(Some(n))
    }
}

/// Whether `name` is one of the account's registered event types, read through `on` (a pool,
/// or the caller's transaction in library mode).
pub(crate) async fn custom_type_exists<'e>(
    on: impl sqlx::Executor<'e, Database = sqlx::Postgres>,
    account: &AccountId,
    name: &str,
) -> StoreResult<bool> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM event_types WHERE account_id = $1 AND name = $2")
        .bind(account.as_str())
        .bind(name)
        .fetch_one(on)
        .await
        .map_err(unavailable)?;
    Ok(n > 0)
}
