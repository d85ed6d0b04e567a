//! PostgreSQL implementation of [`herald_store::Store`]: any number of replicas on one
//! database.
//!
//! * Claims lock the candidate webhooks `FOR UPDATE SKIP LOCKED`, then lease deliveries
//!   in one statement (`FOR UPDATE SKIP LOCKED`) that counts live leases against each
//!   webhook's cap. The webhook lock is taken by its own statement first so the claim's
//!   snapshot sees every lease committed before the lock was granted: the per-webhook cap
//!   holds across replicas.
//! * Outcomes are one set-based compare-and-set `UPDATE … FROM UNNEST(…)`.
//! * Wake-ups: publishes, outcomes and recovery batches ask for one coalesced `NOTIFY
//!   herald_work` after their commit; rarer writes (enable, retry, test send, lease release)
//!   notify inside their transaction. Every replica LISTENs (reconnecting by itself) and
//!   also polls as a fallback.
#![forbid(unsafe_code)]

mod rows;

use rows::unavailable;
mod accounts;
mod backlog;
pub use backlog::seed_backlog;
mod agents;
mod claim;
mod deliveries;
mod events;
mod gauges;
mod idempotency;
mod inbox;
mod janitor;
mod listener;
pub mod migrations;
pub mod outbox;
mod outcomes;
mod portal;
mod publish;
mod signing_keys;
mod stats;
pub mod test_db;
mod webhooks;

use async_trait::async_trait;
use herald_store::{Health, StoreResult, WorkSignal};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Postgres, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

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
    pub(crate) pool: PgPool,
    /// Connections with `synchronous_commit=off`, for the engine's soft state.
    pub(crate) soft: PgPool,
    /// Coalesced post-commit wake-ups for the hot paths (publish, outcomes).
    pub(crate) notifier: tokio::sync::mpsc::Sender<()>,
    pub(crate) signal: WorkSignal,
    /// Stops the LISTEN task when the last clone of the store is dropped.
    pub(crate) _listening: Arc<tokio_util::sync::DropGuard>,
    pub(crate) cipher: Option<Arc<herald_store::codec::SecretCipher>>,
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
        // Migrations run on a connection of their own, without `statement_timeout`: waiting
        // for another replica's migration lock, or building an index on a large table, may
        // take longer than any request should. A database a newer Herald migrated is
        // refused before anything runs on it.
        {
            let mut conn =
                PgConnectOptions::from_str(url).map_err(unavailable)?.connect().await.map_err(unavailable)?;
            migrations::apply(&mut conn).await?;
            let _ = conn.close().await;
        }
        Ok(Self::started(pool, opts, settings))
    }

    /// On the caller's pool (library mode, `herald::Embedded`): applies the embedded
    /// migrations on one of its connections (they wait for another replica's migration lock)
    /// and starts the LISTEN task. Herald's tables are wherever the pool's `search_path`
    /// points first.
    pub async fn with_pool(pool: PgPool, settings: &PgSettings) -> StoreResult<Self> {
        {
            // A connection taken out of the pool and closed after: a failed migration may
            // leave session locks on it, which must not go back to the caller's pool.
            let mut conn = pool.acquire().await.map_err(unavailable)?.detach();
            let migrated = migrations::apply(&mut conn).await;
            let _ = conn.close().await;
            migrated?;
        }
        let opts = (*pool.connect_options()).clone();
        Ok(Self::started(pool, opts, settings))
    }

    /// The store on `pool`: the soft-commit pool beside it, LISTEN and NOTIFY tasks.
    fn started(pool: PgPool, opts: PgConnectOptions, settings: &PgSettings) -> Self {
        let signal = WorkSignal::new();
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(listener::listen(pool.clone(), signal.clone(), stop.clone()));
        let soft = PgPoolOptions::new()
            .max_connections((settings.pool_size / 2).max(2))
            .acquire_timeout(settings.acquire_timeout)
            .connect_lazy_with(opts.options([("synchronous_commit", "off")]));
        let (notifier, wanted) = tokio::sync::mpsc::channel(1);
        tokio::spawn(listener::notify_loop(pool.clone(), wanted));
        Self { pool, soft, notifier, signal, _listening: Arc::new(stop.drop_guard()), cipher: None }
    }

    /// Encrypts signing secrets at rest with `cipher` from now on.
    pub fn with_cipher(mut self, cipher: Option<Arc<herald_store::codec::SecretCipher>>) -> Self {
        self.cipher = cipher;
        self
    }

    pub(crate) async fn begin(&self) -> StoreResult<Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(unavailable)
    }

    /// A transaction for the engine's soft state (leases, attempt outcomes): its commit does
    /// not wait for the WAL flush. Losing one to a database crash only means an attempt is
    /// made again (at-least-once); acknowledged events always commit synchronously.
    pub(crate) async fn begin_soft(&self) -> StoreResult<Transaction<'static, Postgres>> {
        self.soft.begin().await.map_err(unavailable)
    }

    /// Asks for one `NOTIFY` after the caller's commit; requests made while one is pending
    /// are folded into it. (If the process dies first, other replicas find the work on
    /// their next poll.)
    pub(crate) fn notify_soon(&self) {
        let _ = self.notifier.try_send(());
    }

    pub(crate) fn wake_local(&self) {
        self.signal.raise();
    }
}

pub(crate) async fn notify(tx: &mut Transaction<'static, Postgres>) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(&mut **tx).await.map_err(unavailable)?;
    Ok(())
}

#[async_trait]
impl Health for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(unavailable)?;
        Ok(())
    }
}
