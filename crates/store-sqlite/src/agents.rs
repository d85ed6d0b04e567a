//! Agents: each one an `agents` row and the `webhooks` row of its own endpoint (`agent`
//! set), written together on the one writer connection.

use crate::rows::*;
use crate::{SqliteStore, unavailable};
use async_trait::async_trait;
use herald_domain::{AccountId, AgentAddress, Filters, WebhookId, to_millis};
use herald_store::codec::to_json as json;
use herald_store::*;
use time::OffsetDateTime;

/// `SELECT` of agents with their endpoint, followed by `$rest`.
macro_rules! select_agents {
    ($rest:literal) => {
        concat!("SELECT ", agent_columns!(), " FROM agents a JOIN webhooks w ON w.id = a.target_id ", $rest)
    };
}

#[async_trait]
impl Agents for SqliteStore {
    async fn create_agent(&self, new: NewAgent, limit: u32) -> StoreResult<Agent> {
        let now = to_millis(new.created_at);
        let mut tx = self.begin().await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM agents WHERE account_id = ?")
            .bind(new.account_id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
        if n >= i64::from(limit) {
            return Err(StoreError::LimitReached);
        }
        sqlx::query("INSERT INTO agents (address, account_id, name, target_id, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(new.address.as_str())
            .bind(new.account_id.as_str())
            .bind(&new.name)
            .bind(new.target.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO webhooks (id, account_id, url, description, events, filters, enabled, max_in_flight, \
             secret, created_at, updated_at, agent, signature) VALUES (?, ?, ?, '', '[]', ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(new.target.as_str())
        .bind(new.account_id.as_str())
        .bind(new.webhook_url.as_deref().unwrap_or(""))
        .bind(json(&Filters::default()))
        .bind(new.webhook_url.is_some())
        .bind(i64::from(new.max_in_flight))
        .bind(herald_store::codec::seal(self.cipher.as_deref(), new.secret.expose()))
        .bind(now)
        .bind(now)
        .bind(new.address.as_str())
        .bind(new.signature.as_str())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Agent {
            address: new.address,
            account_id: new.account_id,
            name: new.name,
            max_in_flight: new.max_in_flight,
            created_at: new.created_at,
            enabled: new.webhook_url.is_some(),
            webhook_url: new.webhook_url,
            target: new.target,
            disabled_reason: None,
            signature: new.signature,
        })
    }

    async fn get_agent(&self, account: &AccountId, address: &AgentAddress) -> StoreResult<Option<Agent>> {
        let row = sqlx::query(select_agents!("WHERE a.account_id = ? AND a.address = ?"))
            .bind(account.as_str())
            .bind(address.as_str())
            .fetch_optional(&self.read)
            .await
            .map_err(unavailable)?;
        row.map(|r| agent_from_row(&r)).transpose()
    }

    async fn list_agents(&self, account: &AccountId, page: Page) -> StoreResult<Vec<Agent>> {
        let rows = sqlx::query(select_agents!(
            "WHERE a.account_id = ? AND (? IS NULL OR a.address > ?) ORDER BY a.address LIMIT ?"
        ))
        .bind(account.as_str())
        .bind(page.after.as_deref())
        .bind(page.after.as_deref())
        .bind(i64::from(page.limit))
        .fetch_all(&self.read)
        .await
        .map_err(unavailable)?;
        rows.iter().map(agent_from_row).collect()
    }

    async fn update_agent(
        &self,
        account: &AccountId,
        address: &AgentAddress,
        patch: AgentPatch,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Agent>> {
        let mut tx = self.begin().await?;
        let Some(target) = sqlx::query_scalar::<_, String>(
            "UPDATE agents SET name = COALESCE(?, name) WHERE account_id = ? AND address = ? RETURNING target_id",
        )
        .bind(patch.name.as_deref())
        .bind(account.as_str())
        .bind(address.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?
        else {
            return Ok(None);
        };
        // A URL set enables the endpoint; a URL removed parks its deliveries until one is set.
        let url = patch.webhook_url.as_ref().map(|u| u.clone().unwrap_or_default());
        sqlx::query(
            "UPDATE webhooks SET url = COALESCE(?1, url), max_in_flight = COALESCE(?2, max_in_flight), \
               enabled = CASE WHEN ?1 IS NULL THEN enabled ELSE ?1 <> '' END, \
               disabled_reason = CASE WHEN ?1 IS NULL THEN disabled_reason ELSE NULL END, updated_at = ?3, \
               signature = COALESCE(?5, signature) \
             WHERE id = ?4",
        )
        .bind(url.as_deref())
        .bind(patch.max_in_flight.map(i64::from))
        .bind(to_millis(now))
        .bind(&target)
        .bind(patch.signature.map(|s| s.as_str()))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let row = sqlx::query(select_agents!("WHERE a.address = ?"))
            .bind(address.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        if url.as_deref().is_some_and(|u| !u.is_empty()) || patch.max_in_flight.is_some() {
            self.wake();
        }
        agent_from_row(&row).map(Some)
    }

    async fn delete_agent(
        &self,
        account: &AccountId,
        address: &AgentAddress,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let Some(target) = sqlx::query_scalar::<_, String>(
            "DELETE FROM agents WHERE account_id = ? AND address = ? RETURNING target_id",
        )
        .bind(account.as_str())
        .bind(address.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?
        else {
            return Ok(false);
        };
        sqlx::query("DELETE FROM webhooks WHERE id = ?").bind(&target).execute(&mut *tx).await.map_err(unavailable)?;
        sqlx::query(
            "UPDATE deliveries SET status = 'failed', last_error = ?, lease_token = NULL, next_retry_at = ? \
             WHERE webhook_id = ? AND status = 'pending'",
        )
        .bind(herald_domain::inbound::AGENT_DELETED)
        .bind(to_millis(now))
        .bind(&target)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    async fn find_recipient(&self, address: &AgentAddress) -> StoreResult<Option<Recipient>> {
        let row = sqlx::query(
            "SELECT a.address, a.account_id, a.target_id, w.url <> '' FROM agents a \
             JOIN webhooks w ON w.id = a.target_id WHERE a.address = ?",
        )
        .bind(address.as_str())
        .fetch_optional(&self.read)
        .await
        .map_err(unavailable)?;
        row.map(|r| {
            Ok(Recipient {
                address: AgentAddress::from_trusted(get(&r, 0)?),
                account_id: AccountId::from_trusted(get(&r, 1)?),
                target: WebhookId::from_trusted(get(&r, 2)?),
                has_webhook_url: get(&r, 3)?,
            })
        })
        .transpose()
    }
}
