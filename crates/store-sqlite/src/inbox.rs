//! Inbound messages: ingest (message, `email.received` event with its fan-out, per-agent
//! delivery) in one transaction on the one writer connection, and reading them back.

use crate::publish::publish_in;
use crate::rows::*;
use crate::{SqliteStore, unavailable};
use async_trait::async_trait;
use herald_domain::{AccountId, AgentAddress, MessageId, to_millis};
use herald_store::codec::to_json as json;
use herald_store::*;

#[async_trait]
impl Inbox for SqliteStore {
    async fn ingest(&self, items: Vec<InboundItem>, rules: &InboundRules) -> StoreResult<Vec<Ingested>> {
        let mut tx = self.begin().await?;
        let mut out = Vec::with_capacity(items.len());
        let mut wake = false;
        for item in &items {
            let m = &item.message;
            let now = to_millis(m.received_at);
            // The single writer makes these checks and the inserts atomic.
            let current: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM agents WHERE address = ? AND account_id = ? AND target_id = ?")
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
            let prior = sqlx::query(
                "SELECT id, received_at FROM messages WHERE account_id = ? AND agent = ? AND dedupe_key = ?",
            )
            .bind(m.account_id.as_str())
            .bind(m.agent.as_str())
            .bind(&m.dedupe_key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
            if let Some(r) = prior {
                let id: String = get(&r, 0)?;
                if now - get::<i64>(&r, 1)? < rules.dedupe_window.as_millis() as i64 {
                    out.push(Ingested::Duplicate { message: MessageId::from_trusted(id) });
                    continue;
                }
                sqlx::query("UPDATE messages SET dedupe_key = NULL WHERE id = ?")
                    .bind(&id)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            }
            sqlx::query(
                "INSERT INTO messages (id, account_id, agent, conversation_id, message_id_header, dedupe_key, \
                 parsed, auth, raw, size, received_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            let published = publish_in(&mut tx, std::iter::once((&item.event, &rules.fanout))).await?.remove(0);
            wake |= published.deliveries > 0;
            if let Some(d) = &item.agent_delivery {
                sqlx::query(
                    "INSERT INTO deliveries (id, account_id, webhook_id, event_id, event_type, body, status, \
                     attempts, max_attempts, next_retry_at, created_at, expires_at, agent, message_id) \
                     VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, ?, ?)",
                )
                .bind(d.id.as_str())
                .bind(m.account_id.as_str())
                .bind(d.target.as_str())
                .bind(item.event.id.as_str())
                .bind(&item.event.event_type)
                .bind(&d.payload)
                .bind(i64::from(rules.fanout.max_attempts))
                .bind(now)
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
                deliveries: published.deliveries,
                agent_delivery: item.agent_delivery.as_ref().map(|d| d.id.clone()),
            });
        }
        tx.commit().await.map_err(unavailable)?;
        if wake {
            self.wake();
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
            "SELECT conversation_id FROM messages WHERE account_id = ? AND agent = ? \
               AND message_id_header IN (SELECT value FROM json_each(?)) ORDER BY received_at DESC LIMIT 1",
        )
        .bind(account.as_str())
        .bind(agent.as_str())
        .bind(json(&message_ids))
        .fetch_optional(&self.read)
        .await
        .map_err(unavailable)
    }

    async fn list_messages(&self, account: &AccountId, agent: &AgentAddress, page: Page) -> StoreResult<Vec<Message>> {
        let sql = concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE account_id = ? AND agent = ? AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?"
        );
        let rows = sqlx::query(sql)
            .bind(account.as_str())
            .bind(agent.as_str())
            .bind(page.after.as_deref())
            .bind(page.after.as_deref())
            .bind(i64::from(page.limit))
            .fetch_all(&self.read)
            .await
            .map_err(unavailable)?;
        rows.iter().map(message_from_row).collect()
    }

    async fn get_message(&self, account: &AccountId, id: &MessageId) -> StoreResult<Option<Message>> {
        let sql = concat!("SELECT ", message_columns!(), " FROM messages WHERE account_id = ? AND id = ?");
        let row = sqlx::query(sql)
            .bind(account.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.read)
            .await
            .map_err(unavailable)?;
        row.map(|r| message_from_row(&r)).transpose()
    }

    async fn raw_message(&self, account: &AccountId, id: &MessageId) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT raw FROM messages WHERE account_id = ? AND id = ?")
            .bind(account.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.read)
            .await
            .map_err(unavailable)
    }
}
