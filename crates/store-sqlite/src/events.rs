//! The event log: publish (through the group commit), direct enqueue, recovery in batches,
//! listing, and the account's custom event types.

use crate::publish::PublishJob;
use crate::rows::*;
use crate::{SqliteStore, unavailable};
use async_trait::async_trait;
use herald_domain::{AccountId, DeliveryId, EventId, Filters, WebhookId, to_millis};
use herald_store::codec::{parse_json, to_json as json};
use herald_store::*;
use time::OffsetDateTime;

#[async_trait]
impl EventLog for SqliteStore {
    async fn publish(&self, new: NewEvent, rules: &FanoutRules) -> StoreResult<Published> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let job = PublishJob { new, rules: rules.clone(), reply };
        if self.publisher.send(job).is_err() {
            return Err(StoreError::Unavailable("the store is closed".into()));
        }
        rx.await.map_err(|_| StoreError::Unavailable("the store is closed".into()))?
    }

    async fn enqueue_direct(
        &self,
        webhook: &WebhookId,
        new: NewEvent,
        rules: &FanoutRules,
    ) -> StoreResult<Option<DeliveryId>> {
        let now = to_millis(new.created_at);
        let mut tx = self.begin().await?;
        let found: Option<String> = sqlx::query_scalar("SELECT id FROM webhooks WHERE account_id = ? AND id = ?")
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
             VALUES (?, ?, ?, ?, '[]', 1, ?, ?)",
        )
        .bind(new.id.as_str())
        .bind(new.account_id.as_str())
        .bind(&new.event_type)
        .bind(new.envelope.as_bytes())
        .bind(now)
        .bind(now + rules.event_ttl.as_millis() as i64)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let id = DeliveryId::generate();
        sqlx::query(
            "INSERT INTO deliveries (id, account_id, webhook_id, event_id, event_type, status, attempts, max_attempts, \
             next_retry_at, created_at, expires_at) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?)",
        )
        .bind(id.as_str())
        .bind(new.account_id.as_str())
        .bind(webhook.as_str())
        .bind(new.id.as_str())
        .bind(&new.event_type)
        .bind(i64::from(rules.max_attempts))
        .bind(now)
        .bind(now)
        .bind(now + rules.delivery_ttl.as_millis() as i64)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        self.wake();
        Ok(Some(id))
    }

    async fn recover(&self, r: Recovery, rules: &FanoutRules) -> StoreResult<Option<u64>> {
        let Some(w) = sqlx::query("SELECT events, filters FROM webhooks WHERE account_id = ? AND id = ?")
            .bind(r.account.as_str())
            .bind(r.webhook.as_str())
            .fetch_optional(&self.read)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let types: Vec<String> = parse_json(&get::<String>(&w, 0)?)?;
        let filters: Filters = parse_json(&get::<String>(&w, 1)?)?;
        let now_ms = to_millis(r.now);
        let (mut after_at, mut after_id) = (to_millis(r.since), String::new());
        let mut total = 0u64;
        loop {
            // A range scan from the cursor on (account_id, created_at, id), on the read pool:
            // each batch costs its own rows, and the writer is taken only for the insert.
            let rows = sqlx::query(
                "SELECT id, type, agent_id, conversation_id, labels, created_at FROM events \
                 WHERE account_id = ?1 AND (created_at, id) > (?2, ?3) AND created_at < ?4 AND expires_at > ?5 \
                 ORDER BY created_at, id LIMIT ?6",
            )
            .bind(r.account.as_str())
            .bind(after_at)
            .bind(&after_id)
            .bind(to_millis(r.until))
            .bind(now_ms)
            .bind(i64::from(RECOVER_BATCH))
            .fetch_all(&self.read)
            .await
            .map_err(unavailable)?;
            let Some(last) = rows.last() else { break };
            (after_at, after_id) = (get(last, 5)?, get(last, 0)?);
            let mut matching = Vec::new();
            for row in &rows {
                let ty: String = get(row, 1)?;
                let routing = herald_domain::RoutingAttributes {
                    agent_id: get(row, 2)?,
                    conversation_id: get(row, 3)?,
                    labels: parse_json(&get::<String>(row, 4)?)?,
                };
                if filters.wants(&types, &ty, &routing) {
                    matching.push(serde_json::json!([DeliveryId::generate().as_str(), get::<String>(row, 0)?, ty]));
                }
            }
            if r.dry_run {
                total += matching.len() as u64;
            } else if !matching.is_empty() {
                let expires = now_ms + rules.delivery_ttl.as_millis() as i64;
                let Some(n) = self.enqueue_recovered(&r, &matching, rules.max_attempts, expires).await? else { break };
                total += n;
                self.wake();
            }
            tracing::debug!(webhook_id = %r.webhook, matched = total, "recovery batch done");
            if rows.len() < RECOVER_BATCH as usize {
                break;
            }
        }
        Ok(Some(total))
    }

    async fn list_events(&self, account: &AccountId, filter: EventFilter, page: Page) -> StoreResult<Vec<Event>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE account_id = ?1 AND (?2 IS NULL OR type = ?2) AND (?3 IS NULL OR created_at >= ?3) \
              AND (?4 IS NULL OR created_at < ?4) AND (?5 IS NULL OR id < ?5) ORDER BY id DESC LIMIT ?6"
        ))
        .bind(account.as_str())
        .bind(filter.event_type.as_deref())
        .bind(filter.since.map(to_millis))
        .bind(filter.until.map(to_millis))
        .bind(page.after.as_deref())
        .bind(i64::from(page.limit))
        .fetch_all(&self.read)
        .await
        .map_err(unavailable)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn get_event(&self, account: &AccountId, id: &EventId) -> StoreResult<Option<(Event, Vec<Delivery>)>> {
        let Some(row) =
            sqlx::query(concat!("SELECT ", event_columns!(), " FROM events WHERE account_id = ? AND id = ?"))
                .bind(account.as_str())
                .bind(id.as_str())
                .fetch_optional(&self.read)
                .await
                .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let deliveries = sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE account_id = ? AND event_id = ? ORDER BY id"
        ))
        .bind(account.as_str())
        .bind(id.as_str())
        .fetch_all(&self.read)
        .await
        .map_err(unavailable)?;
        Ok(Some((event_from_row(&row)?, deliveries.iter().map(delivery_from_row).collect::<StoreResult<_>>()?)))
    }

    async fn custom_event_type_exists(&self, account: &AccountId, name: &str) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM event_types WHERE account_id = ? AND name = ?")
            .bind(account.as_str())
            .bind(name)
            .fetch_one(&self.read)
            .await
            .map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn create_event_type(
        &self,
        account: &AccountId,
        name: &str,
        description: &str,
        now: OffsetDateTime,
    ) -> StoreResult<EventTypeRecord> {
        sqlx::query("INSERT INTO event_types (account_id, name, description, created_at) VALUES (?, ?, ?, ?)")
            .bind(account.as_str())
            .bind(name)
            .bind(description)
            .bind(to_millis(now))
            .execute(&self.write)
            .await
            .map_err(unavailable)?;
        Ok(EventTypeRecord { name: name.to_owned(), description: description.to_owned(), created_at: now })
    }

    async fn list_event_types(&self, account: &AccountId) -> StoreResult<Vec<EventTypeRecord>> {
        let rows =
            sqlx::query("SELECT name, description, created_at FROM event_types WHERE account_id = ? ORDER BY name")
                .bind(account.as_str())
                .fetch_all(&self.read)
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

impl SqliteStore {
    /// One recovery batch in one short write transaction: the events' expiry is extended to
    /// the deliveries' (so the janitor keeps them) and a delivery is inserted for each event
    /// still there. `None` if the webhook was deleted meanwhile.
    async fn enqueue_recovered(
        &self,
        r: &Recovery,
        matching: &[serde_json::Value],
        max_attempts: u32,
        expires: i64,
    ) -> StoreResult<Option<u64>> {
        let mut tx = self.begin().await?;
        let alive: Option<String> = sqlx::query_scalar("SELECT id FROM webhooks WHERE id = ?")
            .bind(r.webhook.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
        if alive.is_none() {
            return Ok(None);
        }
        let batch = json(matching);
        sqlx::query(
            "UPDATE events SET expires_at = MAX(expires_at, ?1) WHERE id IN (SELECT value ->> 1 FROM json_each(?2))",
        )
        .bind(expires)
        .bind(&batch)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let n = sqlx::query(
            "INSERT INTO deliveries (id, account_id, webhook_id, event_id, event_type, status, attempts, \
             max_attempts, next_retry_at, created_at, expires_at) \
             SELECT v.value ->> 0, ?1, ?2, e.id, e.type, 'pending', 0, ?3, ?4, ?4, ?5 \
             FROM json_each(?6) AS v JOIN events e ON e.id = v.value ->> 1",
        )
        .bind(r.account.as_str())
        .bind(r.webhook.as_str())
        .bind(i64::from(max_attempts))
        .bind(to_millis(r.now))
        .bind(expires)
        .bind(&batch)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected();
        tx.commit().await.map_err(unavailable)?;
        Ok(Some(n))
    }
}
