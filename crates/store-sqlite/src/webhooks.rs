//! Webhooks: create (within the account limit), read, patch, delete, rotate the secret.
//!
//! The `webhooks` table also holds each agent's own endpoint (`agent` set; see `agents.rs`
//! and ARCHITECTURE.md), so every query here that serves `/webhooks` says
//! `agent IS NULL`. The one exception is `rotate_secret`: an agent's secret is rotated
//! through it (by target id, which is never shown).

use crate::idempotency::{find_answer, save_answer};
use crate::rows::*;
use crate::{SqliteStore, unavailable};
use async_trait::async_trait;
use herald_domain::{AccountId, WebhookId, to_millis};
use herald_store::codec::to_json as json;
use herald_store::control::{ControlColumns, PatchColumns};
use herald_store::*;
use time::OffsetDateTime;

#[async_trait]
impl Webhooks for SqliteStore {
    async fn create_webhook(&self, new: NewWebhook, limit: u32) -> StoreResult<Webhook> {
        let now = to_millis(new.created_at);
        let control = ControlColumns::of(&new.control);
        let mut tx = self.begin().await?;
        // The single writer makes count-then-insert atomic.
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE account_id = ? AND agent IS NULL")
            .bind(new.account_id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
        if n >= i64::from(limit) {
            return Err(StoreError::LimitReached);
        }
        sqlx::query(
            "INSERT INTO webhooks (id, account_id, url, description, events, filters, enabled, max_in_flight, \
             secret, created_at, updated_at, concurrency, effective_max_in_flight, rate_limit_per_second, ordering, \
             on_final_failure, retry_schedule, max_age_ms, signature) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(new.id.as_str())
        .bind(new.account_id.as_str())
        .bind(&new.url)
        .bind(&new.description)
        .bind(json(&new.events))
        .bind(json(&new.filters))
        .bind(new.enabled)
        .bind(i64::from(new.max_in_flight))
        .bind(herald_store::codec::seal(self.cipher.as_deref(), new.secret.expose()))
        .bind(now)
        .bind(now)
        .bind(control.concurrency)
        .bind(i64::from(new.max_in_flight))
        .bind(control.rate_limit_per_second)
        .bind(control.ordering)
        .bind(control.on_final_failure)
        .bind(control.retry_schedule)
        .bind(control.max_age_ms)
        .bind(new.signature.as_str())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Webhook {
            id: new.id,
            account_id: new.account_id,
            url: new.url,
            description: new.description,
            events: new.events,
            filters: new.filters,
            enabled: new.enabled,
            disabled_reason: None,
            auto_disabled_at: None,
            max_in_flight: new.max_in_flight,
            effective_max_in_flight: new.max_in_flight,
            control: new.control,
            signature: new.signature,
            created_at: new.created_at,
            updated_at: new.created_at,
            last_delivered_at: None,
        })
    }

    async fn get_webhook(&self, account: &AccountId, id: &WebhookId) -> StoreResult<Option<Webhook>> {
        let sql =
            concat!("SELECT ", webhook_columns!(), " FROM webhooks WHERE account_id = ? AND id = ? AND agent IS NULL");
        let row = sqlx::query(sql)
            .bind(account.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.read)
            .await
            .map_err(unavailable)?;
        row.map(|r| webhook_from_row(&r)).transpose()
    }

    async fn list_webhooks(&self, account: &AccountId, page: Page) -> StoreResult<Vec<Webhook>> {
        let sql = concat!(
            "SELECT ",
            webhook_columns!(),
            " FROM webhooks WHERE account_id = ? AND agent IS NULL AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?",
        );
        let rows = sqlx::query(sql)
            .bind(account.as_str())
            .bind(page.after.as_deref())
            .bind(page.after.as_deref())
            .bind(i64::from(page.limit))
            .fetch_all(&self.read)
            .await
            .map_err(unavailable)?;
        rows.iter().map(webhook_from_row).collect()
    }

    async fn update_webhook(
        &self,
        account: &AccountId,
        id: &WebhookId,
        patch: WebhookPatch,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Webhook>> {
        let enabling = patch.enabled == Some(true);
        let control = PatchColumns::of(&patch);
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE webhooks SET \
               url = COALESCE(?1, url), description = COALESCE(?2, description), events = COALESCE(?3, events), \
               filters = COALESCE(?4, filters), max_in_flight = COALESCE(?5, max_in_flight), \
               enabled = COALESCE(?6, enabled), \
               disabled_reason = CASE WHEN ?7 IS NULL THEN disabled_reason WHEN ?8 THEN NULL ELSE ?9 END, \
               auto_disabled_at = CASE WHEN ?10 THEN NULL ELSE auto_disabled_at END, \
               updated_at = ?11, \
               ready_at = CASE WHEN ?10 OR (?1 IS NOT NULL AND ?1 <> url) THEN 0 ELSE ready_at END, \
               effective_max_in_flight = CASE WHEN COALESCE(?14, concurrency) = concurrency \
                 THEN MAX(1, MIN(effective_max_in_flight, COALESCE(?5, max_in_flight))) \
                 ELSE COALESCE(?5, max_in_flight) END, \
               adaptive_state = CASE WHEN COALESCE(?14, concurrency) = concurrency THEN adaptive_state END, \
               concurrency = COALESCE(?14, concurrency), \
               rate_limit_per_second = CASE WHEN ?15 THEN ?16 ELSE rate_limit_per_second END, \
               ordering = COALESCE(?17, ordering), on_final_failure = COALESCE(?18, on_final_failure), \
               retry_schedule = CASE WHEN ?19 THEN ?20 ELSE retry_schedule END, \
               max_age_ms = CASE WHEN ?21 THEN ?22 ELSE max_age_ms END, \
               signature = COALESCE(?23, signature) \
             WHERE account_id = ?12 AND id = ?13 AND agent IS NULL",
        )
        .bind(patch.url.as_deref())
        .bind(patch.description.as_deref())
        .bind(patch.events.as_ref().map(json))
        .bind(patch.filters.as_ref().map(json))
        .bind(patch.max_in_flight.map(i64::from))
        .bind(patch.enabled)
        .bind(patch.enabled)
        .bind(patch.enabled)
        .bind(herald_domain::DisabledReason::Manual.as_str())
        .bind(enabling)
        .bind(to_millis(now))
        .bind(account.as_str())
        .bind(id.as_str())
        .bind(control.concurrency)
        .bind(control.rate.0)
        .bind(control.rate.1)
        .bind(control.ordering)
        .bind(control.on_final_failure)
        .bind(control.retry_schedule.0)
        .bind(control.retry_schedule.1)
        .bind(control.max_age_ms.0)
        .bind(control.max_age_ms.1)
        .bind(patch.signature.map(|s| s.as_str()))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        lanes_after_patch(&mut tx, id.as_str(), &patch, to_millis(now)).await?;
        let sql = concat!("SELECT ", webhook_columns!(), " FROM webhooks WHERE id = ?");
        let row = sqlx::query(sql).bind(id.as_str()).fetch_one(&mut *tx).await.map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        if patch.frees_work() {
            self.wake();
        }
        webhook_from_row(&row).map(Some)
    }

    async fn delete_webhook(&self, account: &AccountId, id: &WebhookId, now: OffsetDateTime) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM webhooks WHERE account_id = ? AND id = ? AND agent IS NULL")
            .bind(account.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE deliveries SET status = 'failed', last_error = ?, lease_token = NULL, \
             next_retry_at = ? WHERE webhook_id = ? AND status IN ('pending', 'blocked')",
        )
        .bind(herald_domain::delivery::WEBHOOK_DELETED)
        .bind(to_millis(now))
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    async fn rotate_secret(&self, r: Rotation) -> StoreResult<Rotated> {
        // On the one writer connection: the read-modify-write cannot interleave with another.
        let mut tx = self.begin().await?;
        let Some(row) = sqlx::query("SELECT secret, previous_secrets FROM webhooks WHERE account_id = ? AND id = ?")
            .bind(r.account.as_str())
            .bind(r.webhook.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?
        else {
            return Ok(Rotated::NotFound);
        };
        if let Some(i) = &r.idempotency
            && let Some(prior) =
                find_answer(&mut tx, self.cipher.as_deref(), &r.account, &i.scope, &i.key, i.since).await?
        {
            return Ok(Rotated::Replayed(prior));
        }
        let previous = herald_store::codec::rotated(
            &get::<String>(&row, 1)?,
            &get::<String>(&row, 0)?,
            to_millis(r.grace_until),
            to_millis(r.now),
            r.keep,
        )?;
        sqlx::query("UPDATE webhooks SET secret = ?, previous_secrets = ?, updated_at = ? WHERE id = ?")
            .bind(herald_store::codec::seal(self.cipher.as_deref(), r.new_secret.expose()))
            .bind(previous)
            .bind(to_millis(r.now))
            .bind(r.webhook.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        if let Some(i) = &r.idempotency {
            save_answer(&mut tx, self.cipher.as_deref(), &r.account, i, r.now).await?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(Rotated::Applied)
    }
}

/// What a change of `ordering` or `on_final_failure` does to queued deliveries: becoming FIFO
/// gives each queued one a lane of its own (they predate the order, so they go unordered,
/// and a FIFO webhook's claim then only reads lanes); no longer blocking ends blocked ones
/// failed, so their lanes move on.
async fn lanes_after_patch(
    tx: &mut sqlx::SqliteConnection,
    webhook: &str,
    patch: &WebhookPatch,
    now_ms: i64,
) -> StoreResult<()> {
    if patch.ordering == Some(herald_domain::OrderingMode::Fifo) {
        sqlx::query(
            "UPDATE deliveries SET ordering_key = 'queued:' || id \
             WHERE webhook_id = ? AND status = 'pending' AND ordering_key IS NULL",
        )
        .bind(webhook)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    if patch.ordering.is_some() || patch.on_final_failure.is_some() {
        sqlx::query(
            "UPDATE deliveries SET status = 'failed', next_retry_at = ?2 WHERE webhook_id = ?1 AND status = 'blocked' \
             AND NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.id = ?1 AND w.ordering = 'fifo' \
               AND w.on_final_failure = 'block')",
        )
        .bind(webhook)
        .bind(now_ms)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    Ok(())
}
