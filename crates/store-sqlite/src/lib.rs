//! SQLite implementation of [`herald_store::Store`]: one file, WAL, one writer of Herald's.
//!
//! Herald's writes go through a pool of exactly one connection, so they queue in the process
//! instead of spinning on SQLite's busy handler; reads use a separate pool. Publishes,
//! claims and outcomes meet in write rounds (`round.rs`): everything waiting when the
//! writer is free commits in one transaction (SQLite has no `SKIP LOCKED`; the single
//! writer serialises claims). The other writes (API changes, ingest, janitor, lease release
//! at shutdown) take the same one-connection pool directly, between rounds. Work signals are
//! in-process only: one Herald per file. In library mode (`outbox.rs`, `with_pool`) the
//! caller's connections write to the file as well; each side waits for the other's write
//! lock through the busy timeout.
#![forbid(unsafe_code)]

mod rows;

use rows::unavailable;
mod accounts;
mod backlog;
pub mod backup;
pub use backlog::seed_backlog;
mod agents;
mod checkpoint;
mod claim;
mod deliveries;
mod events;
mod gauges;
mod idempotency;
mod inbox;
mod janitor;
pub mod migrations;
pub mod outbox;
mod outcomes;
mod portal;
mod publish;
mod round;
mod signing_keys;
mod stats;
mod webhooks;

use async_trait::async_trait;
use herald_store::{Health, StoreResult, WorkSignal};
use round::Rounds;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// How the writer opens a transaction: it takes the write lock at once, so a transaction that
/// reads before it writes never finds its snapshot outdated by another connection's commit
/// (library mode: the caller's connections write to the same file).
pub(crate) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

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
    pub(crate) write: SqlitePool,
    pub(crate) read: SqlitePool,
    pub(crate) signal: WorkSignal,
    /// Publishes, claims and outcomes: one transaction per round (`round.rs`).
    pub(crate) rounds: Rounds,
    pub(crate) cipher: Option<Arc<herald_store::codec::SecretCipher>>,
    /// Stops the checkpoint task when the last handle is dropped.
    _checkpoints: Arc<tokio_util::sync::DropGuard>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`) and applies
    /// the embedded migrations.
    pub async fn open(url: &str, durability: Durability) -> StoreResult<Self> {
        Self::open_with(SqliteConnectOptions::from_str(url).map_err(unavailable)?, durability).await
    }

    /// On the caller's database (library mode, `herald::Embedded`): the file `pool` connects
    /// to, opened with its options (WAL is switched on) through pools of the store's own — one
    /// writer, taking the write lock at `BEGIN` — so the caller's writes and the store's wait
    /// for each other through SQLite's busy timeout.
    pub async fn with_pool(pool: sqlx::SqlitePool, durability: Durability) -> StoreResult<Self> {
        Self::open_with((*pool.connect_options()).clone(), durability).await
    }

    async fn open_with(opts: SqliteConnectOptions, durability: Durability) -> StoreResult<Self> {
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::Process => SqliteSynchronous::Normal,
                Durability::PowerLoss => SqliteSynchronous::Full,
            })
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-65536");
        // The writer never checkpoints (see `checkpoint.rs`); a task of its own does.
        let writer_opts = opts.clone().pragma("wal_autocheckpoint", "0");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .connect_with(writer_opts)
            .await
            .map_err(unavailable)?;
        {
            // A database a newer Herald migrated is refused before anything runs on it.
            let mut conn = write.acquire().await.map_err(unavailable)?;
            herald_store::schema::pending(&migrations::applied(&mut conn).await?, &migrations::known())?;
            migrations::adopt_legacy(&mut conn).await?;
        }
        migrations::migrator().run(&write).await.map_err(migrations::refused)?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(opts.clone().read_only(true))
            .await
            .map_err(unavailable)?;
        let signal = WorkSignal::new();
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(checkpoint::run(opts, write.clone(), stop.clone()));
        let rounds = Rounds::start(write.clone(), signal.clone());
        Ok(Self { write, read, signal, rounds, cipher: None, _checkpoints: Arc::new(stop.drop_guard()) })
    }

    /// Encrypts signing secrets at rest with `cipher` from now on.
    pub fn with_cipher(mut self, cipher: Option<Arc<herald_store::codec::SecretCipher>>) -> Self {
        self.cipher = cipher;
        self
    }

    /// Applies migrations only (`herald migrate`).
    pub async fn migrate(url: &str) -> StoreResult<()> {
        Self::open(url, Durability::Process).await.map(|_| ())
    }

    pub(crate) async fn begin(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.write.begin_with(BEGIN_WRITE).await.map_err(unavailable)
    }

    pub(crate) fn wake(&self) {
        self.signal.raise();
    }
}

#[async_trait]
impl Health for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await.map_err(unavailable)?;
        Ok(())
    }
}

/// The newest schema version this build knows (the last embedded migration).
pub fn newest_migration() -> i64 {
    migrations::known().iter().map(|m| m.0).max().unwrap_or(0)
}
