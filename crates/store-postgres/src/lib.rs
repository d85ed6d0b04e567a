//! PostgreSQL implementation of [`herald_store::Store`]: any number of replicas on one
//! database.
//!
//! * Claims lock the candidate webhooks `FOR UPDATE SKIP LOCKED`, then lease deliveries
//!   in one statement (`FOR UPDATE SKIP LOCKED`) that counts live leases against each
//!   webhook's cap. The webhook lock is taken by its own statement first so the claim's
//!   snapshot sees every lease committed before the lock was granted: the per-webhook cap
//!   holds across replicas.
//! * Outcomes are one set-based compare-and-set `UPDATE … FROM UNNEST(…)`.
//! * Wake-ups: writes that create claimable work `NOTIFY herald_work` inside their
//!   transaction; every replica LISTENs (reconnecting by itself) and also polls as a fallback.
#![forbid(unsafe_code)]

mod listener;
mod rows;
pub mod test_db;

use async_trait::async_trait;
use herald_domain::{AccountId, DeliveryId, DeliveryStatus, EventId, Filters, Verdict, WebhookId, to_millis};
use herald_store::{
    Account, Attempt, Claimed, Delivery, Event, EventFilter, EventTypeRecord, FanoutRules, IdempotentAnswer, NewEvent,
    NewWebhook, Outcome, Page, Published, RECOVER_BATCH, Recovery, Rotated, Rotation, Store, StoreError, StoreResult,
    Webhook, WebhookPatch,
};
use rows::*;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::Notify;

/// The channel every replica listens on.
pub const CHANNEL: &str = "herald_work";

/// Connection settings.
#[derive(Clone, Debug)]
pub struct PgSettings {
    pub pool_size: u32,
    pub statement_timeout: Duration,
    /// How long a request waits for a connection before the store reports unavailable.
    pub acquire_timeout: Duration,
}

impl Default for PgSettings {
    fn default() -> Self {
        Self { pool_size: 16, statement_timeout: Duration::from_secs(5), acquire_timeout: Duration::from_secs(3) }
    }
}

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Connections with `synchronous_commit=off`, for the engine's soft state.
    soft: PgPool,
    /// Coalesced post-commit wake-ups for the hot paths (publish, outcomes).
    notifier: tokio::sync::mpsc::Sender<()>,
    signal: Arc<Notify>,
    /// Stops the LISTEN task when the last clone of the store is dropped.
    _listening: Arc<tokio_util::sync::DropGuard>,
    cipher: Option<Arc<herald_store::codec::SecretCipher>>,
}

fn unavailable(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::AlreadyExists,
        // SQLSTATE class 22, data exception (NUL in TEXT, a bad jsonb escape…): the value is
        // at fault, not the database; retrying cannot help.
        sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("22")) => StoreError::Invalid(Box::new(e)),
        sqlx::Error::Encode(_) => StoreError::Invalid(Box::new(e)),
        _ => StoreError::Unavailable(Box::new(e)),
    }
}

use herald_store::codec::{parse_json, to_json as json};

macro_rules! webhook_columns {
    () => {
        "id, account_id, url, description, events, filters, enabled, disabled_reason, \
         auto_disabled_at, max_in_flight, created_at, updated_at, last_delivered_at"
    };
}

macro_rules! event_columns {
    () => {
        "id, type, created_at, deliveries, agent_id, conversation_id, labels, payload"
    };
}

macro_rules! delivery_columns {
    () => {
        "id, webhook_id, event_id, event_type, status, attempts, max_attempts, \
         last_error, last_status_code, last_attempt_at, next_retry_at, created_at"
    };
}

impl PgStore {
    /// Connects, applies the embedded migrations and starts the LISTEN task.
    pub async fn open(url: &str, settings: &PgSettings) -> StoreResult<Self> {
        let timeout_ms = settings.statement_timeout.as_millis().to_string();
        let opts =
            PgConnectOptions::from_str(url).map_err(unavailable)?.options([("statement_timeout", timeout_ms.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_size)
            .acquire_timeout(settings.acquire_timeout)
            .connect_with(opts.clone())
            .await
            .map_err(unavailable)?;
        // Replicas starting together must not run migrations twice at once.
        sqlx::migrate!("./migrations").run(&pool).await.map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        let signal = Arc::new(Notify::new());
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(listener::listen(pool.clone(), signal.clone(), stop.clone()));
        let soft = PgPoolOptions::new()
            .max_connections((settings.pool_size / 2).max(2))
            .acquire_timeout(settings.acquire_timeout)
            .connect_lazy_with(opts.options([("synchronous_commit", "off")]));
        let (notifier, wanted) = tokio::sync::mpsc::channel(1);
        tokio::spawn(listener::notify_loop(pool.clone(), wanted));
        Ok(Self { pool, soft, notifier, signal, _listening: Arc::new(stop.drop_guard()), cipher: None })
    }

    /// Encrypts signing secrets at rest with `cipher` from now on.
    pub fn with_cipher(mut self, cipher: Option<Arc<herald_store::codec::SecretCipher>>) -> Self {
        self.cipher = cipher;
        self
    }

    async fn begin(&self) -> StoreResult<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(unavailable)
    }

    /// A transaction for the engine's soft state (leases, attempt outcomes): its commit does
    /// not wait for the WAL flush. Losing one to a database crash only means an attempt is
    /// made again (at-least-once); acknowledged events always commit synchronously.
    async fn begin_soft(&self) -> StoreResult<Transaction<'static, Postgres>> {
        self.soft.begin().await.map_err(unavailable)
    }

    /// A publish without an idempotency key as ONE statement (atomic on its own): match the
    /// subscriptions (the same rules as `Filters::matches`, in SQL), insert the event and its
    /// deliveries. Delivery ids are made in SQL in the same shape as `DeliveryId::generate`
    /// (millisecond time first, so they sort by creation).
    async fn publish_one_statement(&self, new: NewEvent, rules: &FanoutRules) -> StoreResult<Published> {
        let now = to_millis(new.created_at);
        let n: i64 = sqlx::query_scalar(
            "WITH w AS ( \
               SELECT id FROM webhooks WHERE account_id = $1 AND enabled AND events::jsonb ? $2 \
                 AND (jsonb_array_length(filters::jsonb -> 'agent_ids') = 0 OR (filters::jsonb -> 'agent_ids') ? $3) \
                 AND (jsonb_array_length(filters::jsonb -> 'conversation_ids') = 0 \
                      OR (filters::jsonb -> 'conversation_ids') ? $4) \
                 AND (jsonb_array_length(filters::jsonb -> 'labels') = 0 OR (filters::jsonb -> 'labels') ?| $5::text[]) \
             ), ev AS ( \
               INSERT INTO events (id, account_id, type, payload, agent_id, conversation_id, labels, deliveries, \
                 created_at, expires_at) \
               SELECT $6, $1, $2, $7, $3, $4, $8, (SELECT COUNT(*) FROM w), $9, $10 RETURNING deliveries \
             ), d AS ( \
               INSERT INTO deliveries (id, account_id, webhook_id, event_id, event_type, status, attempts, \
                 max_attempts, next_retry_at, created_at, expires_at) \
               SELECT 'whd_' || lpad(to_hex($9::bigint), 12, '0') || '7' || substr(md5(random()::text || w.id), 1, 19), \
                 $1, w.id, $6, $2, 'pending', 0, $11, $9, $9, $12 FROM w \
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
        .bind(now + rules.event_ttl.as_millis() as i64)
        .bind(i64::from(rules.max_attempts))
        .bind(now + rules.delivery_ttl.as_millis() as i64)
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        if n > 0 {
            self.wake_local();
            self.notify_soon();
        }
        Ok(Published {
            id: new.id,
            event_type: new.event_type,
            created_at: new.created_at,
            deliveries: n as u32,
            replayed: false,
        })
    }

    /// One recovery batch in one short transaction: the webhook row is share-locked (a
    /// concurrent delete waits, then ends these deliveries too), the events' expiry is
    /// extended to the deliveries' (so the janitor keeps them: it also skips locked rows),
    /// and a delivery is inserted for each event still there. `None` if the webhook is gone.
    async fn enqueue_recovered(
        &self,
        r: &Recovery,
        matching: &[serde_json::Value],
        max_attempts: u32,
        expires: i64,
    ) -> StoreResult<Option<u64>> {
        let mut tx = self.begin().await?;
        let alive: Option<String> = sqlx::query_scalar("SELECT id FROM webhooks WHERE id = $1 FOR KEY SHARE")
            .bind(r.webhook.as_str())
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
             max_attempts, next_retry_at, created_at, expires_at) \
             SELECT v ->> 0, $1, $2, e.id, e.type, 'pending', 0, $3, $4, $4, $5 \
             FROM jsonb_array_elements($6::jsonb) AS v JOIN events e ON e.id = v ->> 1",
        )
        .bind(r.account.as_str())
        .bind(r.webhook.as_str())
        .bind(i64::from(max_attempts))
        .bind(to_millis(r.now))
        .bind(expires)
        .bind(json(matching))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected();
        tx.commit().await.map_err(unavailable)?;
        Ok(Some(n))
    }

    /// Asks for one `NOTIFY` after the caller's commit; requests made while one is pending
    /// are folded into it. (If the process dies first, other replicas find the work on
    /// their next poll.)
    fn notify_soon(&self) {
        let _ = self.notifier.try_send(());
    }

    fn wake_local(&self) {
        self.signal.notify_one();
    }
}

/// Stores (or replaces) the answer of an idempotent request inside the caller's transaction.
async fn save_answer(
    tx: &mut Transaction<'static, Postgres>,
    cipher: Option<&herald_store::codec::SecretCipher>,
    account: &AccountId,
    answer: &IdempotentAnswer,
    now: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO idempotency (account_id, scope, key, response, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (account_id, scope, key) DO UPDATE SET response = EXCLUDED.response, created_at = EXCLUDED.created_at",
    )
    .bind(account.as_str())
    .bind(&answer.scope)
    .bind(&answer.key)
    .bind(herald_store::codec::seal(cipher, &answer.response))
    .bind(to_millis(now))
    .execute(&mut **tx)
    .await
    .map_err(unavailable)?;
    Ok(())
}

async fn notify(tx: &mut Transaction<'static, Postgres>) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(&mut **tx).await.map_err(unavailable)?;
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(unavailable)?;
        Ok(())
    }

    async fn create_account(&self, name: &str, key_hash: &str, now: OffsetDateTime) -> StoreResult<Account> {
        let id = AccountId::generate();
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(id.as_str())
            .bind(name)
            .bind(to_millis(now))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query("INSERT INTO api_keys (key_hash, account_id, created_at) VALUES ($1, $2, $3)")
            .bind(key_hash)
            .bind(id.as_str())
            .bind(to_millis(now))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Account { id, name: name.to_owned(), created_at: now })
    }

    async fn add_api_key(&self, account: &AccountId, key_hash: &str, now: OffsetDateTime) -> StoreResult<()> {
        sqlx::query("INSERT INTO api_keys (key_hash, account_id, created_at) VALUES ($1, $2, $3)")
            .bind(key_hash)
            .bind(account.as_str())
            .bind(to_millis(now))
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn account_count(&self) -> StoreResult<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM accounts").fetch_one(&self.pool).await.map_err(unavailable)?;
        Ok(n as u64)
    }

    async fn account_by_key_hash(&self, key_hash: &str) -> StoreResult<Option<Account>> {
        let row = sqlx::query(
            "SELECT a.id, a.name, a.created_at FROM api_keys k JOIN accounts a ON a.id = k.account_id \
             WHERE k.key_hash = $1",
        )
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.map(|r| account_from_row(&r)).transpose()
    }

    async fn account_by_name(&self, name: &str) -> StoreResult<Option<Account>> {
        let row = sqlx::query("SELECT id, name, created_at FROM accounts WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| account_from_row(&r)).transpose()
    }

    async fn custom_event_type_exists(&self, account: &AccountId, name: &str) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM event_types WHERE account_id = $1 AND name = $2")
            .bind(account.as_str())
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn create_webhook(&self, new: NewWebhook, limit: u32) -> StoreResult<Webhook> {
        let now = to_millis(new.created_at);
        let mut tx = self.begin().await?;
        // Serialise creations of one account so the limit holds across replicas.
        sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
            .bind(new.account_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE account_id = $1")
            .bind(new.account_id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
        if n >= i64::from(limit) {
            return Err(StoreError::LimitReached);
        }
        sqlx::query(
            "INSERT INTO webhooks (id, account_id, url, description, events, filters, enabled, max_in_flight, \
             secret, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
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
            created_at: new.created_at,
            updated_at: new.created_at,
            last_delivered_at: None,
        })
    }

    async fn get_webhook(&self, account: &AccountId, id: &WebhookId) -> StoreResult<Option<Webhook>> {
        let sql = concat!("SELECT ", webhook_columns!(), " FROM webhooks WHERE account_id = $1 AND id = $2");
        let row = sqlx::query(sql)
            .bind(account.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?;
        row.map(|r| webhook_from_row(&r)).transpose()
    }

    async fn list_webhooks(&self, account: &AccountId, page: Page) -> StoreResult<Vec<Webhook>> {
        let sql = concat!(
            "SELECT ",
            webhook_columns!(),
            " FROM webhooks WHERE account_id = $1 AND ($2::text IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        );
        let rows = sqlx::query(sql)
            .bind(account.as_str())
            .bind(page.after.as_deref())
            .bind(i64::from(page.limit))
            .fetch_all(&self.pool)
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
        let mut tx = self.begin().await?;
        let sql = concat!(
            "UPDATE webhooks SET \
               url = COALESCE($1, url), description = COALESCE($2, description), events = COALESCE($3, events), \
               filters = COALESCE($4, filters), max_in_flight = COALESCE($5, max_in_flight), \
               enabled = COALESCE($6, enabled), \
               disabled_reason = CASE WHEN $6::boolean IS NULL THEN disabled_reason WHEN $6 THEN NULL ELSE 'manual' END, \
               auto_disabled_at = CASE WHEN $7 THEN NULL ELSE auto_disabled_at END, \
               updated_at = $8 \
             WHERE account_id = $9 AND id = $10 RETURNING ",
            webhook_columns!()
        );
        let row = sqlx::query(sql)
            .bind(patch.url.as_deref())
            .bind(patch.description.as_deref())
            .bind(patch.events.as_ref().map(json))
            .bind(patch.filters.as_ref().map(json))
            .bind(patch.max_in_flight.map(i64::from))
            .bind(patch.enabled)
            .bind(enabling)
            .bind(to_millis(now))
            .bind(account.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
        let Some(row) = row else { return Ok(None) };
        let woke = enabling || patch.max_in_flight.is_some();
        if woke {
            notify(&mut tx).await?;
        }
        tx.commit().await.map_err(unavailable)?;
        if woke {
            self.wake_local();
        }
        webhook_from_row(&row).map(Some)
    }

    async fn delete_webhook(&self, account: &AccountId, id: &WebhookId, now: OffsetDateTime) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM webhooks WHERE account_id = $1 AND id = $2")
            .bind(account.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE deliveries SET status = 'failed', last_error = 'webhook deleted', lease_token = NULL, \
             next_retry_at = $1 WHERE webhook_id = $2 AND status = 'pending'",
        )
        .bind(to_millis(now))
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    async fn publish(&self, new: NewEvent, rules: &FanoutRules) -> StoreResult<Published> {
        if new.idempotency_key.is_none() {
            return self.publish_one_statement(new, rules).await;
        }
        let now = to_millis(new.created_at);
        let account = new.account_id.as_str();
        let mut tx = self.begin().await?;
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
                if created > now - rules.idempotency_window.as_millis() as i64 {
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
        let subs = sqlx::query("SELECT id, events, filters FROM webhooks WHERE account_id = $1 AND enabled")
            .bind(account)
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
        let mut targets = Vec::new();
        for r in &subs {
            let types: Vec<String> = parse_json(&get::<String>(r, 1)?)?;
            let filters: Filters = parse_json(&get::<String>(r, 2)?)?;
            if filters.wants(&types, &new.event_type, &new.routing) {
                targets.push(get::<String>(r, 0)?);
            }
        }
        sqlx::query(
            "INSERT INTO events (id, account_id, type, payload, agent_id, conversation_id, labels, idempotency_key, \
             deliveries, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
        .bind(now + rules.event_ttl.as_millis() as i64)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        if !targets.is_empty() {
            let ids: Vec<String> = targets.iter().map(|_| DeliveryId::generate().to_string()).collect();
            sqlx::query(
                "INSERT INTO deliveries (id, account_id, webhook_id, event_id, event_type, status, attempts, \
                 max_attempts, next_retry_at, created_at, expires_at) \
                 SELECT d.id, $3, d.webhook_id, $4, $5, 'pending', 0, $6, $7, $7, $8 \
                 FROM UNNEST($1::text[], $2::text[]) AS d(id, webhook_id)",
            )
            .bind(&ids)
            .bind(&targets)
            .bind(account)
            .bind(new.id.as_str())
            .bind(&new.event_type)
            .bind(i64::from(rules.max_attempts))
            .bind(now)
            .bind(now + rules.delivery_ttl.as_millis() as i64)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        if !targets.is_empty() {
            self.wake_local();
            self.notify_soon();
        }
        Ok(Published {
            id: new.id,
            event_type: new.event_type,
            created_at: new.created_at,
            deliveries: targets.len() as u32,
            replayed: false,
        })
    }

    async fn list_deliveries(
        &self,
        account: &AccountId,
        webhook: &WebhookId,
        status: Option<DeliveryStatus>,
        page: Page,
    ) -> StoreResult<Vec<Delivery>> {
        let sql = concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE account_id = $1 AND webhook_id = $2 AND ($3::text IS NULL OR status = $3) \
              AND ($4::text IS NULL OR id < $4) ORDER BY id DESC LIMIT $5"
        );
        let rows = sqlx::query(sql)
            .bind(account.as_str())
            .bind(webhook.as_str())
            .bind(status.map(|s| s.as_str()))
            .bind(page.after.as_deref())
            .bind(i64::from(page.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn get_delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
    ) -> StoreResult<Option<(Delivery, Vec<Attempt>)>> {
        let sql = concat!("SELECT ", delivery_columns!(), " FROM deliveries WHERE account_id = $1 AND id = $2");
        let Some(row) = sqlx::query(sql)
            .bind(account.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let d = delivery_from_row(&row)?;
        let attempts = sqlx::query(
            "SELECT number, started_at, duration_ms, status_code, error, response_body FROM attempts \
             WHERE delivery_id = $1 ORDER BY number",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        let attempts = attempts.iter().map(attempt_from_row).collect::<StoreResult<Vec<_>>>()?;
        Ok(Some((d, attempts)))
    }

    async fn retry_delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Delivery>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "SELECT d.status, w.id IS NOT NULL FROM deliveries d LEFT JOIN webhooks w ON w.id = d.webhook_id \
             WHERE d.account_id = $1 AND d.id = $2 FOR UPDATE OF d",
        )
        .bind(account.as_str())
        .bind(id.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        let Some(row) = row else { return Ok(None) };
        let status: String = get(&row, 0)?;
        let webhook_exists: bool = get(&row, 1)?;
        if status != "failed" {
            return Err(StoreError::Conflict(format!("delivery is {status}, only failed deliveries can be retried")));
        }
        if !webhook_exists {
            return Err(StoreError::Conflict("the webhook of this delivery was deleted".into()));
        }
        let sql = concat!(
            "UPDATE deliveries SET status = 'pending', max_attempts = attempts + 1, next_retry_at = $1, \
             lease_token = NULL, expires_at = GREATEST(expires_at, $2) WHERE id = $3 RETURNING ",
            delivery_columns!()
        );
        let row = sqlx::query(sql)
            .bind(to_millis(now))
            .bind(to_millis(now) + 86_400_000)
            .bind(id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
        // The event lives at least as long as the delivery (its body is sent from it).
        sqlx::query(
            "UPDATE events e SET expires_at = GREATEST(e.expires_at, d.expires_at) FROM deliveries d \
             WHERE d.id = $1 AND e.id = d.event_id",
        )
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        notify(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        self.wake_local();
        delivery_from_row(&row).map(Some)
    }

    async fn claim_due(&self, now: OffsetDateTime, lease: Duration, limit: u32) -> StoreResult<Vec<Claimed>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now_ms = to_millis(now);
        let mut tx = self.begin_soft().await?;
        // 1. Lock webhooks with due work; another replica claiming for one of them skips it.
        let locked: Vec<String> = sqlx::query_scalar(
            "SELECT w.id FROM webhooks w WHERE w.enabled AND EXISTS (SELECT 1 FROM deliveries d \
               WHERE d.webhook_id = w.id AND d.status = 'pending' AND d.next_retry_at <= $1 AND d.expires_at > $1) \
             ORDER BY random() FOR UPDATE SKIP LOCKED",
        )
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        if locked.is_empty() {
            return Ok(Vec::new());
        }
        // 2. One statement: free slots per webhook (live leases counted in a snapshot taken
        //    after the locks), the due rows within them, leased with fresh tokens.
        let rows = sqlx::query(
            "WITH cap AS ( \
               SELECT w.id, w.max_in_flight - (SELECT COUNT(*) FROM deliveries l WHERE l.webhook_id = w.id \
                 AND l.status = 'pending' AND l.lease_token IS NOT NULL AND l.next_retry_at > $1) AS free \
               FROM webhooks w WHERE w.id = ANY($2) \
             ), picked AS ( \
               SELECT p.id, cap.id AS webhook_id FROM cap CROSS JOIN LATERAL ( \
                 SELECT d.id FROM deliveries d WHERE d.webhook_id = cap.id AND d.status = 'pending' \
                   AND d.next_retry_at <= $1 AND d.expires_at > $1 \
                 ORDER BY d.next_retry_at LIMIT GREATEST(cap.free, 0) FOR UPDATE SKIP LOCKED) p \
               LIMIT $3 \
             ) \
             UPDATE deliveries d SET next_retry_at = $4, lease_token = md5(random()::text || clock_timestamp()::text) \
             FROM picked JOIN webhooks w ON w.id = picked.webhook_id WHERE d.id = picked.id \
             RETURNING d.id, d.webhook_id, d.event_id, d.event_type, d.attempts, d.max_attempts, d.lease_token, \
               COALESCE(d.body, (SELECT e.payload FROM events e WHERE e.id = d.event_id)), \
               w.url, w.secret, w.previous_secrets",
        )
        .bind(now_ms)
        .bind(&locked)
        .bind(i64::from(limit))
        .bind(now_ms + lease.as_millis() as i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        let mut secrets_of: std::collections::HashMap<String, herald_domain::SecretSet> = Default::default();
        rows.iter()
            .map(|r| {
                let wh: String = get(r, 1)?;
                let secrets = match secrets_of.get(&wh) {
                    Some(s) => s.clone(),
                    None => {
                        let s = herald_store::codec::open_secret_set(
                            self.cipher.as_deref(),
                            get(r, 9)?,
                            &get::<String>(r, 10)?,
                        )?;
                        secrets_of.insert(wh.clone(), s.clone());
                        s
                    }
                };
                let url: String = get(r, 8)?;
                Ok(Claimed {
                    delivery_id: DeliveryId::from_trusted(get(r, 0)?),
                    webhook_id: WebhookId::from_trusted(wh),
                    event_id: EventId::from_trusted(get(r, 2)?),
                    event_type: get(r, 3)?,
                    url,
                    secrets,
                    attempt: get::<i64>(r, 4)? as u32 + 1,
                    max_attempts: get::<i64>(r, 5)? as u32,
                    lease_token: get(r, 6)?,
                    body: get::<Option<Vec<u8>>>(r, 7)?,
                })
            })
            .collect()
    }

    async fn record_outcomes(&self, outcomes: &[Outcome], now: OffsetDateTime) -> StoreResult<Vec<bool>> {
        let now_ms = to_millis(now);
        let mut ids = Vec::new();
        let mut tokens = Vec::new();
        let mut statuses = Vec::new();
        let mut attempts = Vec::new();
        let mut errors: Vec<Option<String>> = Vec::new();
        let mut codes: Vec<i64> = Vec::new();
        let mut started = Vec::new();
        let mut nexts = Vec::new();
        let mut durations = Vec::new();
        let mut bodies: Vec<Option<String>> = Vec::new();
        for o in outcomes {
            let (status, next) = match &o.verdict {
                Verdict::Delivered => ("delivered", now_ms),
                Verdict::RetryAt(at) => ("pending", to_millis(*at)),
                Verdict::Failed { .. } => ("failed", now_ms),
            };
            ids.push(o.delivery_id.to_string());
            tokens.push(o.lease_token.clone());
            statuses.push(status.to_owned());
            attempts.push(i64::from(o.attempt));
            errors.push(o.result.error.as_deref().map(herald_domain::text::storable));
            codes.push(i64::from(o.result.status_code));
            started.push(to_millis(o.result.started_at));
            nexts.push(next);
            durations.push(o.result.duration.as_millis() as i64);
            bodies.push(o.result.response_body.as_deref().map(herald_domain::text::storable));
        }
        let mut tx = self.begin_soft().await?;
        let applied: Vec<(String, String)> = sqlx::query_as(
            "WITH o AS (SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], \
               $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[]) \
               AS o(id, token, status, attempt, error, code, started, next, duration, body)), \
             upd AS ( \
               UPDATE deliveries d SET status = o.status, attempts = o.attempt, last_error = o.error, \
                 last_status_code = NULLIF(o.code, 0), last_attempt_at = o.started, next_retry_at = o.next, \
                 lease_token = NULL \
               FROM o WHERE d.id = o.id AND d.lease_token = o.token AND d.status = 'pending' \
               RETURNING d.id, o.token), \
             ins AS ( \
               INSERT INTO attempts (delivery_id, number, started_at, duration_ms, status_code, error, response_body) \
               SELECT o.id, o.attempt, o.started, o.duration, o.code, o.error, o.body FROM o JOIN upd ON upd.id = o.id AND upd.token = o.token \
               ON CONFLICT (delivery_id, number) DO UPDATE SET started_at = EXCLUDED.started_at, \
                 duration_ms = EXCLUDED.duration_ms, status_code = EXCLUDED.status_code, error = EXCLUDED.error, \
                 response_body = EXCLUDED.response_body) \
             SELECT id, token FROM upd",
        )
        .bind(&ids)
        .bind(&tokens)
        .bind(&statuses)
        .bind(&attempts)
        .bind(&errors)
        .bind(&codes)
        .bind(&started)
        .bind(&nexts)
        .bind(&durations)
        .bind(&bodies)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        // Keyed by (id, lease token): two outcomes of one delivery in a batch (a lease taken
        // over) never both count.
        let applied: std::collections::HashSet<(String, String)> = applied.into_iter().collect();
        let was_applied = |o: &Outcome| applied.contains(&(o.delivery_id.to_string(), o.lease_token.clone()));
        let mut delivered: Vec<String> = Vec::new();
        let mut gone: Vec<String> = Vec::new();
        for o in outcomes.iter().filter(|o| was_applied(o)) {
            let list = match &o.verdict {
                Verdict::Delivered => &mut delivered,
                Verdict::Failed { gone: true } => &mut gone,
                _ => continue,
            };
            if !list.iter().any(|w| w == o.webhook_id.as_str()) {
                list.push(o.webhook_id.to_string());
            }
        }
        if !delivered.is_empty() {
            // At most once a second per webhook: the row is hot (claims lock it).
            sqlx::query(
                "UPDATE webhooks SET last_delivered_at = $1 WHERE id = ANY($2) \
                 AND (last_delivered_at IS NULL OR last_delivered_at < $1 - 1000)",
            )
            .bind(now_ms)
            .bind(&delivered)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        if !gone.is_empty() {
            sqlx::query(
                "UPDATE webhooks SET enabled = false, disabled_reason = 'gone', auto_disabled_at = $1, \
                 updated_at = $1 WHERE id = ANY($2)",
            )
            .bind(now_ms)
            .bind(&gone)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        // Slots were freed: any replica may claim more of these webhooks.
        self.wake_local();
        self.notify_soon();
        Ok(outcomes.iter().map(was_applied).collect())
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
        let ms: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_retry_at) FROM deliveries WHERE status = 'pending' AND next_retry_at > $1",
        )
        .bind(to_millis(now))
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(ms.map(herald_domain::from_millis))
    }

    async fn delete_expired(&self, now: OffsetDateTime, batch: u32) -> StoreResult<u64> {
        let now_ms = to_millis(now);
        let mut total = 0;
        loop {
            let mut tx = self.begin().await?;
            let gone: Vec<String> = sqlx::query_scalar(
                "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries WHERE expires_at <= $1 \
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id",
            )
            .bind(now_ms)
            .bind(i64::from(batch))
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
            if !gone.is_empty() {
                sqlx::query("DELETE FROM attempts WHERE delivery_id = ANY($1)")
                    .bind(&gone)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            }
            // An event outlives every delivery that references it (a recovered or retried
            // delivery may live longer than its event's own expiry).
            let e = sqlx::query(
                "DELETE FROM events WHERE id IN (SELECT id FROM events e WHERE e.expires_at <= $1 \
                   AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id) \
                 ORDER BY e.expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
            )
            .bind(now_ms)
            .bind(i64::from(batch))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected();
            tx.commit().await.map_err(unavailable)?;
            let d = gone.len() as u64;
            total += d + e;
            if d < u64::from(batch) && e < u64::from(batch) {
                return Ok(total);
            }
        }
    }

    async fn rotate_secret(&self, r: Rotation) -> StoreResult<Rotated> {
        let mut tx = self.begin().await?;
        // The row lock makes the read-modify-write atomic: concurrent rotations queue here.
        let Some(row) =
            sqlx::query("SELECT secret, previous_secrets FROM webhooks WHERE account_id = $1 AND id = $2 FOR UPDATE")
                .bind(r.account.as_str())
                .bind(r.webhook.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?
        else {
            return Ok(Rotated::NotFound);
        };
        if let Some(i) = &r.idempotency {
            let prior: Option<String> = sqlx::query_scalar(
                "SELECT response FROM idempotency WHERE account_id = $1 AND scope = $2 AND key = $3 AND created_at >= $4",
            )
            .bind(r.account.as_str())
            .bind(&i.scope)
            .bind(&i.key)
            .bind(to_millis(i.since))
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
            if let Some(prior) = prior {
                return Ok(Rotated::Replayed(herald_store::codec::open(self.cipher.as_deref(), prior)?));
            }
        }
        let previous = herald_store::codec::rotated(
            &get::<String>(&row, 1)?,
            &get::<String>(&row, 0)?,
            to_millis(r.grace_until),
            to_millis(r.now),
            r.keep,
        )?;
        sqlx::query("UPDATE webhooks SET secret = $1, previous_secrets = $2, updated_at = $3 WHERE id = $4")
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

    async fn auto_disable(
        &self,
        since: OffsetDateTime,
        threshold: u32,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<WebhookId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE webhooks SET enabled = false, disabled_reason = 'failing', auto_disabled_at = $1, updated_at = $1 \
             WHERE enabled AND id IN (SELECT webhook_id FROM deliveries WHERE created_at >= $2 \
               GROUP BY webhook_id HAVING COUNT(*) FILTER (WHERE status = 'failed') >= $3 AND COUNT(*) FILTER (WHERE status = 'delivered') = 0) \
             RETURNING id",
        )
        .bind(to_millis(now))
        .bind(to_millis(since))
        .bind(i64::from(threshold))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(ids.into_iter().map(WebhookId::from_trusted).collect())
    }

    async fn prune_secrets(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let rows = sqlx::query("SELECT id, previous_secrets FROM webhooks WHERE previous_secrets <> '[]'")
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        let mut changed = 0;
        for r in &rows {
            let before: String = get(r, 1)?;
            if let Some(p) = herald_store::codec::pruned(&before, to_millis(now))? {
                // Compare-and-set: a rotation in between wins; the next pass prunes again.
                let done =
                    sqlx::query("UPDATE webhooks SET previous_secrets = $1 WHERE id = $2 AND previous_secrets = $3")
                        .bind(p)
                        .bind(get::<String>(r, 0)?)
                        .bind(&before)
                        .execute(&self.pool)
                        .await
                        .map_err(unavailable)?;
                changed += done.rows_affected();
            }
        }
        Ok(changed)
    }

    async fn enqueue_direct(
        &self,
        webhook: &WebhookId,
        new: NewEvent,
        rules: &FanoutRules,
    ) -> StoreResult<Option<DeliveryId>> {
        let now = to_millis(new.created_at);
        let mut tx = self.begin().await?;
        let found: Option<String> = sqlx::query_scalar("SELECT id FROM webhooks WHERE account_id = $1 AND id = $2")
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
        .bind(now + rules.event_ttl.as_millis() as i64)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let id = DeliveryId::generate();
        sqlx::query(
            "INSERT INTO deliveries (id, account_id, webhook_id, event_id, event_type, status, attempts, max_attempts, \
             next_retry_at, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $7, $8, $9)",
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
        notify(&mut tx).await?;
        tx.commit().await.map_err(unavailable)?;
        self.wake_local();
        Ok(Some(id))
    }

    async fn recover(&self, r: Recovery, rules: &FanoutRules) -> StoreResult<Option<u64>> {
        let Some(w) = sqlx::query("SELECT events, filters FROM webhooks WHERE account_id = $1 AND id = $2")
            .bind(r.account.as_str())
            .bind(r.webhook.as_str())
            .fetch_optional(&self.pool)
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
            // A range scan from the cursor on (account_id, created_at, id): each batch
            // costs its own rows, whatever the window's size.
            let rows = sqlx::query(
                "SELECT id, type, agent_id, conversation_id, labels, created_at FROM events \
                 WHERE account_id = $1 AND (created_at, id) > ($2, $3) AND created_at < $4 AND expires_at > $5 \
                 ORDER BY created_at, id LIMIT $6",
            )
            .bind(r.account.as_str())
            .bind(after_at)
            .bind(&after_id)
            .bind(to_millis(r.until))
            .bind(now_ms)
            .bind(i64::from(RECOVER_BATCH))
            .fetch_all(&self.pool)
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
                self.wake_local();
                self.notify_soon();
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

    async fn idempotent_response(
        &self,
        account: &AccountId,
        scope: &str,
        key: &str,
        since: OffsetDateTime,
    ) -> StoreResult<Option<String>> {
        sqlx::query_scalar(
            "SELECT response FROM idempotency WHERE account_id = $1 AND scope = $2 AND key = $3 AND created_at >= $4",
        )
        .bind(account.as_str())
        .bind(scope)
        .bind(key)
        .bind(to_millis(since))
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?
        .map(|stored: String| herald_store::codec::open(self.cipher.as_deref(), stored))
        .transpose()
    }

    async fn save_idempotent_response(
        &self,
        account: &AccountId,
        scope: &str,
        key: &str,
        response: &str,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let answer = IdempotentAnswer {
            scope: scope.to_owned(),
            key: key.to_owned(),
            since: now,
            response: response.to_owned(),
        };
        save_answer(&mut tx, self.cipher.as_deref(), account, &answer, now).await?;
        tx.commit().await.map_err(unavailable)
    }

    fn work_signal(&self) -> Arc<Notify> {
        self.signal.clone()
    }
}
