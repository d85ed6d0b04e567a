//! SQLite implementation of [`herald_store::Store`]: one file, WAL, one writer.
//!
//! Writes go through a pool of exactly one connection, so they queue in the process
//! instead of spinning on SQLite's busy handler; reads use a separate pool. A claim is
//! one write transaction (SQLite has no `SKIP LOCKED`; the single writer serialises
//! claims). Work signals are in-process only: SQLite is a one-process store.
#![forbid(unsafe_code)]

mod rows;

use async_trait::async_trait;
use herald_domain::{AccountId, DeliveryId, DeliveryStatus, EventId, Filters, Verdict, WebhookId, to_millis};
use herald_store::{
    Account, Attempt, Claimed, Delivery, Event, EventFilter, EventTypeRecord, FanoutRules, IdempotentAnswer, NewEvent,
    NewWebhook, Outcome, Page, Published, RECOVER_BATCH, Recovery, Rotated, Rotation, Store, StoreError, StoreResult,
    Webhook, WebhookPatch,
};
use rows::*;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc};

/// How hard a commit tries to reach the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// WAL + `synchronous=NORMAL`: a commit survives a process crash (SIGKILL);
    /// the last commits may be lost on power loss.
    #[default]
    Process,
    /// WAL + `synchronous=FULL`: a commit survives power loss (fsync per commit).
    PowerLoss,
}

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    signal: Arc<Notify>,
    publisher: mpsc::UnboundedSender<PublishJob>,
    cipher: Option<Arc<herald_store::codec::SecretCipher>>,
}

/// One publish waiting for the group commit.
struct PublishJob {
    new: NewEvent,
    rules: FanoutRules,
    reply: tokio::sync::oneshot::Sender<StoreResult<Published>>,
}

fn unavailable(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::AlreadyExists,
        _ => StoreError::Unavailable(Box::new(e)),
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`) and applies
    /// the embedded migrations.
    pub async fn open(url: &str, durability: Durability) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(unavailable)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::Process => SqliteSynchronous::Normal,
                Durability::PowerLoss => SqliteSynchronous::Full,
            })
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-65536");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .connect_with(opts.clone())
            .await
            .map_err(unavailable)?;
        sqlx::migrate!("./migrations").run(&write).await.map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(opts.read_only(true))
            .await
            .map_err(unavailable)?;
        let signal = Arc::new(Notify::new());
        let (publisher, jobs) = mpsc::unbounded_channel();
        tokio::spawn(publish_loop(write.clone(), signal.clone(), jobs));
        Ok(Self { write, read, signal, publisher, cipher: None })
    }

    /// Encrypts signing secrets at rest with `cipher` from now on.
    pub fn with_cipher(mut self, cipher: Option<Arc<herald_store::codec::SecretCipher>>) -> Self {
        self.cipher = cipher;
        self
    }

    /// Leases due rows of each candidate webhook (id, url, secret, previous, free slots).
    async fn lease_rows(
        &self,
        conn: &mut sqlx::SqliteConnection,
        candidates: Vec<(String, String, String, String, i64)>,
        limit: u32,
        now_ms: i64,
        lease_until: i64,
    ) -> StoreResult<Vec<Claimed>> {
        let mut claimed = Vec::new();
        let mut left = i64::from(limit);
        for (wh, url, secret, prev, free) in candidates {
            if left <= 0 {
                break;
            }
            let take = free.min(left);
            // The envelope comes back with the lease: no second round trip for bodies.
            let rows = sqlx::query(
                "UPDATE deliveries SET next_retry_at = ?, lease_token = lower(hex(randomblob(8))) \
                 WHERE id IN (SELECT id FROM deliveries WHERE webhook_id = ? AND status = 'pending' \
                   AND next_retry_at <= ? AND expires_at > ? ORDER BY next_retry_at LIMIT ?) \
                 RETURNING id, event_id, event_type, attempts, max_attempts, lease_token, \
                   COALESCE(body, (SELECT payload FROM events e WHERE e.id = deliveries.event_id))",
            )
            .bind(lease_until)
            .bind(&wh)
            .bind(now_ms)
            .bind(now_ms)
            .bind(take)
            .fetch_all(&mut *conn)
            .await
            .map_err(unavailable)?;
            left -= rows.len() as i64;
            let secrets = herald_store::codec::open_secret_set(self.cipher.as_deref(), secret, &prev)?;
            for r in &rows {
                claimed.push(Claimed {
                    delivery_id: DeliveryId::from_trusted(get(r, 0)?),
                    webhook_id: WebhookId::from_trusted(wh.clone()),
                    event_id: EventId::from_trusted(get(r, 1)?),
                    event_type: get(r, 2)?,
                    url: url.clone(),
                    secrets: secrets.clone(),
                    body: get::<Option<Vec<u8>>>(r, 6)?,
                    attempt: get::<i64>(r, 3)? as u32 + 1,
                    max_attempts: get::<i64>(r, 4)? as u32,
                    lease_token: get(r, 5)?,
                });
            }
        }
        Ok(claimed)
    }

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

    /// Applies migrations only (`herald migrate`).
    pub async fn migrate(url: &str) -> StoreResult<()> {
        Self::open(url, Durability::Process).await.map(|_| ())
    }

    async fn begin(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.write.begin().await.map_err(unavailable)
    }

    fn wake(&self) {
        self.signal.notify_one();
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

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await.map_err(unavailable)?;
        Ok(())
    }

    async fn create_account(&self, name: &str, key_hash: &str, now: OffsetDateTime) -> StoreResult<Account> {
        let id = AccountId::generate();
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)")
            .bind(id.as_str())
            .bind(name)
            .bind(to_millis(now))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query("INSERT INTO api_keys (key_hash, account_id, created_at) VALUES (?, ?, ?)")
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
        sqlx::query("INSERT INTO api_keys (key_hash, account_id, created_at) VALUES (?, ?, ?)")
            .bind(key_hash)
            .bind(account.as_str())
            .bind(to_millis(now))
            .execute(&self.write)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn account_count(&self) -> StoreResult<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM accounts").fetch_one(&self.write).await.map_err(unavailable)?;
        Ok(n as u64)
    }

    async fn account_by_key_hash(&self, key_hash: &str) -> StoreResult<Option<Account>> {
        let row = sqlx::query(
            "SELECT a.id, a.name, a.created_at FROM api_keys k JOIN accounts a ON a.id = k.account_id \
             WHERE k.key_hash = ?",
        )
        .bind(key_hash)
        .fetch_optional(&self.read)
        .await
        .map_err(unavailable)?;
        row.map(|r| account_from_row(&r)).transpose()
    }

    async fn account_by_name(&self, name: &str) -> StoreResult<Option<Account>> {
        let row = sqlx::query("SELECT id, name, created_at FROM accounts WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(unavailable)?;
        row.map(|r| account_from_row(&r)).transpose()
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

    async fn create_webhook(&self, new: NewWebhook, limit: u32) -> StoreResult<Webhook> {
        let now = to_millis(new.created_at);
        let mut tx = self.begin().await?;
        // The single writer makes count-then-insert atomic.
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE account_id = ?")
            .bind(new.account_id.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
        if n >= i64::from(limit) {
            return Err(StoreError::LimitReached);
        }
        sqlx::query(
            "INSERT INTO webhooks (id, account_id, url, description, events, filters, enabled, max_in_flight, \
             secret, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        let sql = concat!("SELECT ", webhook_columns!(), " FROM webhooks WHERE account_id = ? AND id = ?");
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
            " FROM webhooks WHERE account_id = ? AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?",
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
        let mut tx = self.begin().await?;
        let done = sqlx::query(
            "UPDATE webhooks SET \
               url = COALESCE(?, url), description = COALESCE(?, description), events = COALESCE(?, events), \
               filters = COALESCE(?, filters), max_in_flight = COALESCE(?, max_in_flight), \
               enabled = COALESCE(?, enabled), \
               disabled_reason = CASE WHEN ? IS NULL THEN disabled_reason WHEN ? THEN NULL ELSE 'manual' END, \
               auto_disabled_at = CASE WHEN ? THEN NULL ELSE auto_disabled_at END, \
               updated_at = ? \
             WHERE account_id = ? AND id = ?",
        )
        .bind(patch.url.as_deref())
        .bind(patch.description.as_deref())
        .bind(patch.events.as_ref().map(json))
        .bind(patch.filters.as_ref().map(json))
        .bind(patch.max_in_flight.map(i64::from))
        .bind(patch.enabled)
        .bind(patch.enabled)
        .bind(patch.enabled)
        .bind(enabling)
        .bind(to_millis(now))
        .bind(account.as_str())
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let sql = concat!("SELECT ", webhook_columns!(), " FROM webhooks WHERE id = ?");
        let row = sqlx::query(sql).bind(id.as_str()).fetch_one(&mut *tx).await.map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        if enabling || patch.max_in_flight.is_some() {
            self.wake();
        }
        webhook_from_row(&row).map(Some)
    }

    async fn delete_webhook(&self, account: &AccountId, id: &WebhookId, now: OffsetDateTime) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = sqlx::query("DELETE FROM webhooks WHERE account_id = ? AND id = ?")
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
             next_retry_at = ? WHERE webhook_id = ? AND status = 'pending'",
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
        let (reply, rx) = tokio::sync::oneshot::channel();
        let job = PublishJob { new, rules: rules.clone(), reply };
        if self.publisher.send(job).is_err() {
            return Err(StoreError::Unavailable("the store is closed".into()));
        }
        rx.await.map_err(|_| StoreError::Unavailable("the store is closed".into()))?
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
            " FROM deliveries WHERE account_id = ? AND webhook_id = ? AND (? IS NULL OR status = ?) \
              AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?",
        );
        let st = status.map(|s| s.as_str());
        let rows = sqlx::query(sql)
            .bind(account.as_str())
            .bind(webhook.as_str())
            .bind(st)
            .bind(st)
            .bind(page.after.as_deref())
            .bind(page.after.as_deref())
            .bind(i64::from(page.limit))
            .fetch_all(&self.read)
            .await
            .map_err(unavailable)?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn get_delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
    ) -> StoreResult<Option<(Delivery, Vec<Attempt>)>> {
        let sql = concat!("SELECT ", delivery_columns!(), " FROM deliveries WHERE account_id = ? AND id = ?");
        let Some(row) = sqlx::query(sql)
            .bind(account.as_str())
            .bind(id.as_str())
            .fetch_optional(&self.read)
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let d = delivery_from_row(&row)?;
        let attempts = sqlx::query(
            "SELECT number, started_at, duration_ms, status_code, error, response_body FROM attempts \
             WHERE delivery_id = ? ORDER BY number",
        )
        .bind(id.as_str())
        .fetch_all(&self.read)
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
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM deliveries WHERE account_id = ? AND id = ?")
                .bind(account.as_str())
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        match status.as_deref() {
            None => return Ok(None),
            Some("failed") => {}
            Some(other) => {
                return Err(StoreError::Conflict(format!(
                    "delivery is {other}, only failed deliveries can be retried"
                )));
            }
        }
        let exists: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhooks w JOIN deliveries d ON d.webhook_id = w.id WHERE d.id = ?",
        )
        .bind(id.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        if exists == 0 {
            return Err(StoreError::Conflict("the webhook of this delivery was deleted".into()));
        }
        sqlx::query(
            "UPDATE deliveries SET status = 'pending', max_attempts = attempts + 1, next_retry_at = ?, \
             lease_token = NULL, expires_at = MAX(expires_at, ?) WHERE id = ? AND status = 'failed'",
        )
        .bind(to_millis(now))
        .bind(to_millis(now) + 86_400_000)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        // The event lives at least as long as the delivery (its body is sent from it).
        sqlx::query(
            "UPDATE events SET expires_at = MAX(expires_at, (SELECT expires_at FROM deliveries WHERE id = ?1)) \
             WHERE id = (SELECT event_id FROM deliveries WHERE id = ?1)",
        )
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let sql = concat!("SELECT ", delivery_columns!(), " FROM deliveries WHERE id = ?");
        let row = sqlx::query(sql).bind(id.as_str()).fetch_one(&mut *tx).await.map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        self.wake();
        delivery_from_row(&row).map(Some)
    }

    async fn claim_due(&self, now: OffsetDateTime, lease: Duration, limit: u32) -> StoreResult<Vec<Claimed>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let now_ms = to_millis(now);
        let lease_until = now_ms + lease.as_millis() as i64;
        let mut conn = self.write.acquire().await.map_err(unavailable)?;
        // Webhooks with due work and a free slot; live leases count against the cap.
        let candidates = sqlx::query(
            "SELECT w.id, w.url, w.secret, w.previous_secrets, w.max_in_flight - \
               (SELECT COUNT(*) FROM deliveries l WHERE l.webhook_id = w.id AND l.status = 'pending' \
                  AND l.lease_token IS NOT NULL AND l.next_retry_at > ?1) AS free \
             FROM webhooks w WHERE w.enabled = 1 AND EXISTS (SELECT 1 FROM deliveries d \
               WHERE d.webhook_id = w.id AND d.status = 'pending' AND d.next_retry_at <= ?1 AND d.expires_at > ?1)",
        )
        .bind(now_ms)
        .fetch_all(&mut *conn)
        .await
        .map_err(unavailable)?;
        let mut candidates: Vec<_> = candidates
            .iter()
            .map(|r| -> StoreResult<_> {
                Ok((
                    get::<String>(r, 0)?,
                    get::<String>(r, 1)?,
                    get::<String>(r, 2)?,
                    get::<String>(r, 3)?,
                    get::<i64>(r, 4)?,
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        candidates.retain(|c| c.4 > 0);
        // Fairness: start the walk at a different webhook each claim.
        if candidates.len() > 1 {
            let k = (now_ms as usize ^ rand_offset()) % candidates.len();
            candidates.rotate_left(k);
        }
        // One webhook (the common case under load): the lease is a single autocommitted
        // statement on the one writer connection. Several: one transaction, one commit.
        let claimed = if candidates.len() > 1 {
            let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(unavailable)?;
            let claimed = self.lease_rows(&mut tx, candidates, limit, now_ms, lease_until).await?;
            tx.commit().await.map_err(unavailable)?;
            claimed
        } else {
            self.lease_rows(&mut conn, candidates, limit, now_ms, lease_until).await?
        };
        Ok(claimed)
    }

    async fn record_outcomes(&self, outcomes: &[Outcome], now: OffsetDateTime) -> StoreResult<Vec<bool>> {
        let mut seen = std::collections::HashSet::new();
        if !outcomes.iter().all(|o| seen.insert(o.delivery_id.as_str())) {
            // Two outcomes of one delivery (its lease was taken over): record one at a time,
            // so each is compared with the current lease on its own.
            let mut applied = Vec::with_capacity(outcomes.len());
            for o in outcomes {
                applied.extend(self.record_outcomes(std::slice::from_ref(o), now).await?);
            }
            return Ok(applied);
        }
        let now_ms = to_millis(now);
        // Set-based: one UPDATE for all outcomes (compare-and-set on id, lease token and
        // pending), one INSERT for the attempts of those that applied.
        let rows: Vec<serde_json::Value> = outcomes
            .iter()
            .map(|o| {
                let (status, next) = match &o.verdict {
                    Verdict::Delivered => ("delivered", now_ms),
                    Verdict::RetryAt(at) => ("pending", to_millis(*at)),
                    Verdict::Failed { .. } => ("failed", now_ms),
                };
                let r = &o.result;
                serde_json::json!([
                    o.delivery_id.as_str(),
                    o.lease_token,
                    status,
                    o.attempt,
                    r.error.as_deref().map(herald_domain::text::storable),
                    (r.status_code != 0).then_some(r.status_code),
                    to_millis(r.started_at),
                    next,
                    r.duration.as_millis() as i64,
                    r.status_code,
                    r.response_body.as_deref().map(herald_domain::text::storable),
                ])
            })
            .collect();
        let mut tx = self.begin().await?;
        let applied: Vec<String> = sqlx::query_scalar(
            "UPDATE deliveries SET status = o.value ->> 2, attempts = o.value ->> 3, last_error = o.value ->> 4, \
               last_status_code = o.value ->> 5, last_attempt_at = o.value ->> 6, next_retry_at = o.value ->> 7, \
               lease_token = NULL \
             FROM json_each(?) AS o \
             WHERE deliveries.id = o.value ->> 0 AND deliveries.lease_token = o.value ->> 1 \
               AND deliveries.status = 'pending' \
             RETURNING deliveries.id",
        )
        .bind(json(&rows))
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        // Ids are unique in the batch (checked above), so the returned ids say which applied.
        let applied: std::collections::HashSet<String> = applied.into_iter().collect();
        let was_applied = |o: &Outcome| applied.contains(o.delivery_id.as_str());
        let done: Vec<&serde_json::Value> =
            outcomes.iter().zip(&rows).filter(|(o, _)| was_applied(o)).map(|(_, r)| r).collect();
        if !done.is_empty() {
            sqlx::query(
                "INSERT OR REPLACE INTO attempts (delivery_id, number, started_at, duration_ms, status_code, \
                   error, response_body) \
                 SELECT value ->> 0, value ->> 3, value ->> 6, value ->> 8, value ->> 9, value ->> 4, value ->> 10 \
                 FROM json_each(?)",
            )
            .bind(json(&done))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        let mut delivered: Vec<&str> = Vec::new();
        let mut gone: Vec<&str> = Vec::new();
        for o in outcomes.iter().filter(|o| was_applied(o)) {
            match &o.verdict {
                Verdict::Delivered => delivered.push(o.webhook_id.as_str()),
                Verdict::Failed { gone: true } => gone.push(o.webhook_id.as_str()),
                _ => {}
            }
        }
        delivered.sort_unstable();
        delivered.dedup();
        if !delivered.is_empty() {
            // At most once a second per webhook: no write amplification on busy webhooks.
            sqlx::query(
                "UPDATE webhooks SET last_delivered_at = ?1 WHERE id IN (SELECT value FROM json_each(?2)) \
                 AND (last_delivered_at IS NULL OR last_delivered_at < ?1 - 1000)",
            )
            .bind(now_ms)
            .bind(json(&delivered))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        if !gone.is_empty() {
            sqlx::query(
                "UPDATE webhooks SET enabled = 0, disabled_reason = 'gone', auto_disabled_at = ?, updated_at = ? \
                 WHERE id IN (SELECT value FROM json_each(?))",
            )
            .bind(now_ms)
            .bind(now_ms)
            .bind(json(&gone))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        // Slots were freed: more work of these webhooks may be claimable.
        self.wake();
        Ok(outcomes.iter().map(was_applied).collect())
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
        let ms: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_retry_at) FROM deliveries WHERE status = 'pending' AND next_retry_at > ?",
        )
        .bind(to_millis(now))
        .fetch_one(&self.read)
        .await
        .map_err(unavailable)?;
        Ok(ms.map(herald_domain::from_millis))
    }

    async fn delete_expired(&self, now: OffsetDateTime, batch: u32) -> StoreResult<u64> {
        let now_ms = to_millis(now);
        let mut total = 0;
        loop {
            let mut tx = self.begin().await?;
            sqlx::query(
                "DELETE FROM attempts WHERE delivery_id IN \
                 (SELECT id FROM deliveries WHERE expires_at <= ? ORDER BY expires_at, id LIMIT ?)",
            )
            .bind(now_ms)
            .bind(i64::from(batch))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            let d = sqlx::query(
                "DELETE FROM deliveries WHERE id IN \
                 (SELECT id FROM deliveries WHERE expires_at <= ? ORDER BY expires_at, id LIMIT ?)",
            )
            .bind(now_ms)
            .bind(i64::from(batch))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected();
            // An event outlives every delivery that references it (a recovered or retried
            // delivery may live longer than its event's own expiry).
            let e = sqlx::query(
                "DELETE FROM events WHERE id IN (SELECT id FROM events e WHERE e.expires_at <= ? \
                   AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id) ORDER BY e.expires_at LIMIT ?)",
            )
            .bind(now_ms)
            .bind(i64::from(batch))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?
            .rows_affected();
            tx.commit().await.map_err(unavailable)?;
            total += d + e;
            if d < u64::from(batch) && e < u64::from(batch) {
                return Ok(total);
            }
            // Let other writers in between batches.
            tokio::task::yield_now().await;
        }
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
        if let Some(i) = &r.idempotency {
            let prior: Option<String> = sqlx::query_scalar(
                "SELECT response FROM idempotency WHERE account_id = ? AND scope = ? AND key = ? AND created_at >= ?",
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

    async fn auto_disable(
        &self,
        since: OffsetDateTime,
        threshold: u32,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<WebhookId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE webhooks SET enabled = 0, disabled_reason = 'failing', auto_disabled_at = ?1, updated_at = ?1 \
             WHERE enabled = 1 AND id IN (SELECT webhook_id FROM deliveries WHERE created_at >= ?2 \
               GROUP BY webhook_id HAVING SUM(status = 'failed') >= ?3 AND SUM(status = 'delivered') = 0) \
             RETURNING id",
        )
        .bind(to_millis(now))
        .bind(to_millis(since))
        .bind(i64::from(threshold))
        .fetch_all(&self.write)
        .await
        .map_err(unavailable)?;
        Ok(ids.into_iter().map(WebhookId::from_trusted).collect())
    }

    async fn prune_secrets(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let rows = sqlx::query("SELECT id, previous_secrets FROM webhooks WHERE previous_secrets <> '[]'")
            .fetch_all(&self.read)
            .await
            .map_err(unavailable)?;
        let mut changed = 0;
        for r in &rows {
            let before: String = get(r, 1)?;
            if let Some(p) = herald_store::codec::pruned(&before, to_millis(now))? {
                // Compare-and-set: a rotation in between wins; the next pass prunes again.
                let done =
                    sqlx::query("UPDATE webhooks SET previous_secrets = ? WHERE id = ? AND previous_secrets = ?")
                        .bind(p)
                        .bind(get::<String>(r, 0)?)
                        .bind(&before)
                        .execute(&self.write)
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

    async fn idempotent_response(
        &self,
        account: &AccountId,
        scope: &str,
        key: &str,
        since: OffsetDateTime,
    ) -> StoreResult<Option<String>> {
        sqlx::query_scalar(
            "SELECT response FROM idempotency WHERE account_id = ? AND scope = ? AND key = ? AND created_at >= ?",
        )
        .bind(account.as_str())
        .bind(scope)
        .bind(key)
        .bind(to_millis(since))
        .fetch_optional(&self.write)
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

/// Stores (or replaces) the answer of an idempotent request inside the caller's transaction.
async fn save_answer(
    tx: &mut Transaction<'static, Sqlite>,
    cipher: Option<&herald_store::codec::SecretCipher>,
    account: &AccountId,
    answer: &IdempotentAnswer,
    now: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO idempotency (account_id, scope, key, response, created_at) VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (account_id, scope, key) DO UPDATE SET response = excluded.response, created_at = excluded.created_at",
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

/// Group commit: every publish waiting when the writer is free goes into ONE transaction.
/// Each caller is answered only after that transaction commits; if it fails, each publish of
/// the batch is tried again on its own, so one bad publish fails only its own caller.
async fn publish_loop(write: SqlitePool, signal: Arc<Notify>, mut rx: mpsc::UnboundedReceiver<PublishJob>) {
    let mut jobs = Vec::new();
    while rx.recv_many(&mut jobs, 256).await > 0 {
        match publish_batch(&write, &jobs).await {
            Ok(results) => {
                if results.iter().any(|p| p.deliveries > 0 && !p.replayed) {
                    signal.notify_one();
                }
                for (job, r) in jobs.drain(..).zip(results) {
                    let _ = job.reply.send(Ok(r));
                }
            }
            Err(_) if jobs.len() > 1 => {
                // One bad publish must not fail the others: commit each on its own.
                for job in jobs.drain(..) {
                    let r = publish_batch(&write, std::slice::from_ref(&job)).await.map(|mut v| v.remove(0));
                    if r.as_ref().is_ok_and(|p| p.deliveries > 0 && !p.replayed) {
                        signal.notify_one();
                    }
                    let _ = job.reply.send(r);
                }
            }
            Err(e) => {
                if let Some(job) = jobs.pop() {
                    let _ = job.reply.send(Err(e));
                }
            }
        }
    }
}

async fn publish_batch(write: &SqlitePool, jobs: &[PublishJob]) -> StoreResult<Vec<Published>> {
    use std::collections::HashMap;
    let mut tx = write.begin().await.map_err(unavailable)?;
    let mut subscriptions: HashMap<String, Vec<(String, Vec<String>, Filters)>> = HashMap::new();
    let mut keys_in_batch: HashMap<(String, String), Published> = HashMap::new();
    let mut events = Vec::new();
    let mut deliveries = Vec::new();
    let mut out = Vec::with_capacity(jobs.len());
    for PublishJob { new, rules, .. } in jobs {
        let now = to_millis(new.created_at);
        let account = new.account_id.as_str().to_owned();
        if let Some(key) = &new.idempotency_key {
            if let Some(p) = keys_in_batch.get(&(account.clone(), key.clone())) {
                out.push(Published { replayed: true, ..p.clone() });
                continue;
            }
            let prior = sqlx::query(
                "SELECT id, type, created_at, deliveries FROM events WHERE account_id = ? AND idempotency_key = ?",
            )
            .bind(&account)
            .bind(key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable)?;
            if let Some(r) = prior {
                let created: i64 = get(&r, 2)?;
                if created > now - rules.idempotency_window.as_millis() as i64 {
                    out.push(Published {
                        id: EventId::from_trusted(get(&r, 0)?),
                        event_type: get(&r, 1)?,
                        created_at: herald_domain::from_millis(created),
                        deliveries: get::<i64>(&r, 3)? as u32,
                        replayed: true,
                    });
                    continue;
                }
                // The key's window has passed: it may name a new event.
                sqlx::query("UPDATE events SET idempotency_key = NULL WHERE account_id = ? AND idempotency_key = ?")
                    .bind(&account)
                    .bind(key)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
            }
        }
        if !subscriptions.contains_key(&account) {
            let rows = sqlx::query("SELECT id, events, filters FROM webhooks WHERE account_id = ? AND enabled = 1")
                .bind(&account)
                .fetch_all(&mut *tx)
                .await
                .map_err(unavailable)?;
            let subs = rows
                .iter()
                .map(|r| {
                    Ok((get::<String>(r, 0)?, parse_json(&get::<String>(r, 1)?)?, parse_json(&get::<String>(r, 2)?)?))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            subscriptions.insert(account.clone(), subs);
        }
        let targets: Vec<&String> = subscriptions[&account]
            .iter()
            .filter(|(_, types, filters)| filters.wants(types, &new.event_type, &new.routing))
            .map(|(id, _, _)| id)
            .collect();
        let envelope =
            std::str::from_utf8(new.envelope.as_bytes()).map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        events.push(serde_json::json!([
            new.id.as_str(),
            account,
            new.event_type,
            envelope,
            new.routing.agent_id,
            new.routing.conversation_id,
            json(&new.routing.labels),
            new.idempotency_key,
            targets.len(),
            now,
            now + rules.event_ttl.as_millis() as i64,
        ]));
        for wh in &targets {
            deliveries.push(serde_json::json!([
                DeliveryId::generate().as_str(),
                account,
                wh,
                new.id.as_str(),
                new.event_type,
                rules.max_attempts,
                now,
                now + rules.delivery_ttl.as_millis() as i64,
            ]));
        }
        let p = Published {
            id: new.id.clone(),
            event_type: new.event_type.clone(),
            created_at: new.created_at,
            deliveries: targets.len() as u32,
            replayed: false,
        };
        if let Some(key) = &new.idempotency_key {
            keys_in_batch.insert((account.clone(), key.clone()), p.clone());
        }
        out.push(p);
    }
    if !events.is_empty() {
        sqlx::query(
            "INSERT INTO events (id, account_id, type, payload, agent_id, conversation_id, labels, idempotency_key, \
             deliveries, created_at, expires_at) \
             SELECT value ->> 0, value ->> 1, value ->> 2, CAST(value ->> 3 AS BLOB), value ->> 4, value ->> 5, \
                    value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10 FROM json_each(?)",
        )
        .bind(json(&events))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    if !deliveries.is_empty() {
        sqlx::query(
            "INSERT INTO deliveries (id, account_id, webhook_id, event_id, event_type, status, attempts, \
             max_attempts, next_retry_at, created_at, expires_at) \
             SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, 'pending', 0, \
                    value ->> 5, value ->> 6, value ->> 6, value ->> 7 FROM json_each(?)",
        )
        .bind(json(&deliveries))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    tx.commit().await.map_err(unavailable)?;
    Ok(out)
}

fn rand_offset() -> usize {
    uuid::Uuid::now_v7().as_u128() as usize
}
