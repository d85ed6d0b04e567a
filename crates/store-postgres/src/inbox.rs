//! Inbound messages: ingest (message, `email.received` event with its fan-out, per-agent
//! delivery) in one transaction, and reading them back. Duplicates are decided by the
//! unique (agent, dedupe key) index, so concurrent copies of one message (two MTAs, two
//! replicas) store it once.

use crate::publish::publish_in;
use crate::rows::*;
use crate::{PgStore, unavailable};
use async_trait::async_trait;
use herald_domain::{AccountId, AgentAddress, MessageId, to_millis};
use herald_store::codec::to_json as json;
use herald_store::*;

#[async_trait]
impl Inbox for PgStore {
    async fn ingest(&self, items: Vec<InboundItem>, rules: &InboundRules) -> StoreResult<Vec<Ingested>> {
        let mut tx = self.begin().await?;
        let mut out = Vec::with_capacity(items.len());
        let mut wake = false;
        for item in &items {
            let m = &item.message;
            let now = to_millis(m.received_at);
            // The agent must still be the one looked up; the share lock holds a concurrent
            // delete off until this commits (its pending-delivery sweep then sees ours).
            let current: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM agents WHERE address = $1 AND account_id = $2 AND target_id = $3 FOR SHARE",
            )
            .bind(m.agent.as_str())
            .bind(m.account_id.as_str())
            .bind(m.target.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
            if current.is_none() {
                out.push(Ingested::AgentGone);
                continue;
            }
            let insert = || {
                sqlx::query(
                    "INSERT INTO messages (id, account_id, agent, conversation_id, message_id_header, dedupe_key, \
                     parsed, auth, raw, size, received_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (account_id, agent, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING",
                )
                .bind(m.id.as_str())
                .bind(m.account_id.as_str())
                .bind(m.agent.as_str())
                .bind(&m.conversation_id)
                .bind(m.parsed.message_id.as_deref())
                .bind(&m.dedupe_key)
                .bind(json(&m.parsed))
                .bind(json(&m.auth))
                .bind(&m.raw)
                .bind(m.raw.len() as i64)
                .bind(now)
                .bind(now.saturating_add(rules.message_ttl.as_millis() as i64))
            };
            let mut stored = insert().execute(&mut *tx).await.map_err(unavailable)?.rows_affected() == 1;
            if !stored {
                // A copy exists (perhaps committed a moment ago by another session).
                let r =
                    sqlx::query("SELECT id, received_at FROM messages WHERE agent = $1 AND dedupe_key = $2 FOR UPDATE")
                        .bind(m.agent.as_str())
                        .bind(&m.dedupe_key)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(unavailable)?;
                let id: String = get(&r, 0)?;
                if now - get::<i64>(&r, 1)? < rules.dedupe_window.as_millis() as i64 {
                    out.push(Ingested::Duplicate { message: MessageId::from_trusted(id) });
                    continue;
                }
                sqlx::query("UPDATE messages SET dedupe_key = NULL WHERE id = $1")
                    .bind(&id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                stored = insert().execute(&mut *tx).await.map_err(unavailable)?.rows_affected() == 1;
            }
            if !stored {
                return Err(
                    StoreError::Unavailable("a concurrent copy of the message is being stored".into()).counted()
                );
            }
            let deliveries = publish_in(&mut tx, &item.event, &rules.fanout).await?;
            wake |= deliveries > 0;
            if let Some(d) = &item.agent_delivery {
                sqlx::query(
                    "INSERT INTO deliveries (id, account_id, webhook_id, event_id, event_type, body, status, \
                     attempts, max_attempts, next_retry_at, created_at, expires_at, agent, message_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8, $8, $9, $10, $11)",
                )
                .bind(d.id.as_str())
                .bind(m.account_id.as_str())
                .bind(d.target.as_str())
                .bind(item.event.id.as_str())
                .bind(&item.event.event_type)
                .bind(&d.payload)
                .bind(i64::from(rules.fanout.max_attempts))
                .bind(now)
                .bind(now.saturating_add(rules.agent_delivery_ttl.as_millis() as i64))
                .bind(m.agent.as_str())
                .bind(m.id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
                wake = true;
            }
            out.push(Ingested::Stored {
                message: m.id.clone(),
                event: item.event.id.clone(),
                deliveries,
                agent_delivery: item.agent_delivery.as_ref().map(|d| d.id.clone()),
            });
        }
        tx.commit().await.map_err(unavailable)?;
        if wake {
            self.wake_local();
            self.notify_soon();
        }
        Ok(out)
    }

    async fn conversation_of(
        &self,
        account: &AccountId,
        agent: &AgentAddress,
        message_ids: &[String],
    ) -> StoreResult<Option<String>> {
        if message_ids.is_empty() {
            return Ok(None);
        }
        sqlx::query_scalar(
            "SELECT conversation_id FROM messages WHERE account_id = $1 AND agent = $2 \
               AND message_id_header = ANY($3) ORDER BY received_at DESC LIMIT 1",
        )
        .bind(account.as_str())
        .bind(agent.as_str())
        .bind(message_ids)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)
    }

    async fn list_messages(&self, account: &AccountId, agent: &AgentAddress, page: Page) -> StoreResult<Vec<Message>> {
        let sql = concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE account_id = $1 AND agent = $2 AND ($3::text IS NULL OR id < $3) \
              ORDER BY id DESC LIMIT $4"
        );
        let rows = sqlx::query(sql)
            .bind(account.as_str())
            .bind(agent.as_str())
            .bind(page.after.as_deref())
            .bind(i64::from(page.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(message_from_row).collect()
    }

    async fn get_message(&self, account: &AccountId, id: &MessageId) -> StoreResult<Option<Message>> {
        let sql = concat!("SELECT ", message_columns!(), " FROM messages WHERE account_id = $1 AND id = $2");
        let row = sqlx::query(sql)
            .bind(account.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| message_from_row(&r)).transpose()
    }

    async fn raw_message(&self, account: &AccountId, id: &MessageId) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT raw FROM messages WHERE account_id = $1 AND id = $2")
            .bind(account.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)
    }
}
