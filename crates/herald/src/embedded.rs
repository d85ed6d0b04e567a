//! Library mode: Herald's delivery engine (and optionally its API) inside the caller's
//! process, on the caller's database pool — the other half of `herald-outbox`, whose
//! publishes it delivers.

use crate::{Application, Deps, Settings, pg_settings, secret_cipher};
use anyhow::Context;
use herald_app::Herald;
use herald_domain::{AccountId, ApiKey};
use herald_store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The database a caller's pool connects to.
pub enum CallerPool {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl From<sqlx::PgPool> for CallerPool {
    fn from(p: sqlx::PgPool) -> Self {
        Self::Postgres(p)
    }
}

impl From<sqlx::SqlitePool> for CallerPool {
    fn from(p: sqlx::SqlitePool) -> Self {
        Self::Sqlite(p)
    }
}

/// A running embedded Herald. Dropping it stops the engine; [`Embedded::stop`] waits for
/// attempts in flight and gives leases back first.
pub struct Embedded {
    app: Herald,
    store: Arc<dyn Store>,
    api: Option<SocketAddr>,
    /// PostgreSQL: the schema Herald's tables are in, when not `public`.
    schema: Option<String>,
    /// SQLite: the database's lock, held while this runs.
    _db_lock: Option<std::fs::File>,
    /// The key of the `default` account when this start created it without a bootstrap key.
    pub created_key: Option<ApiKey>,
    cancel: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Embedded {
    /// Migrates the database of `pool` and runs the delivery engine on it, with `settings`
    /// (their database URL is not used; `HERALD_SECRET_KEY`, retry schedule, limits and
    /// the rest are). The `default` account is created on first start as `herald serve`
    /// does. On PostgreSQL, Herald's tables go where the pool's `search_path` points first.
    pub async fn start(pool: impl Into<CallerPool>, settings: Settings) -> anyhow::Result<Self> {
        Self::launch(pool.into(), settings, false).await
    }

    /// [`Embedded::start`], also serving the HTTP API and portal on `settings.listen`.
    pub async fn start_with_api(pool: impl Into<CallerPool>, settings: Settings) -> anyhow::Result<Self> {
        Self::launch(pool.into(), settings, true).await
    }

    async fn launch(pool: CallerPool, mut settings: Settings, serve_api: bool) -> anyhow::Result<Self> {
        if !serve_api {
            // Nothing is served: never hold the configured port.
            settings.listen = "127.0.0.1:0".into();
        }
        let cipher = secret_cipher(&settings)?;
        let mut schema = None;
        let mut db_lock = None;
        let store: Arc<dyn Store> = match pool {
            CallerPool::Postgres(p) => {
                // Where the pool's `search_path` puts Herald's tables: the outbox publishes there.
                let current: Option<String> =
                    sqlx::query_scalar("SELECT current_schema()").fetch_one(&p).await.context("reading search_path")?;
                let store = herald_store_postgres::PgStore::with_pool(p.clone(), &pg_settings(&settings))
                    .await
                    .context("starting on the PostgreSQL pool")?
                    .with_cipher(cipher);
                schema = match current {
                    Some(s) if s != "public" => Some(s),
                    // The schema was made by the migration: read it again.
                    None => sqlx::query_scalar("SELECT current_schema()").fetch_one(&p).await.ok().flatten(),
                    _ => None,
                };
                Arc::new(store)
            }
            CallerPool::Sqlite(p) => {
                let file = p.connect_options().get_filename().to_path_buf();
                anyhow::ensure!(
                    !file.as_os_str().is_empty() && file.as_os_str() != ":memory:",
                    "an in-memory SQLite pool cannot be shared: give Embedded a pool on a database file"
                );
                // One Herald per file, as `herald serve` holds it: `herald restore` sees it held.
                db_lock = Some(crate::backup::lock_database(&file)?);
                Arc::new(
                    herald_store_sqlite::SqliteStore::with_pool(p, settings.sqlite_durability())
                        .await
                        .context("starting on the SQLite pool")?
                        .with_cipher(cipher),
                )
            }
        };
        let deps = Deps { store: Some(store), serve_api, ..Deps::default() };
        let application = Application::build(settings, deps).await?;
        let api = serve_api.then(|| application.local_addr());
        let (app, store, created_key) =
            (application.app().clone(), application.store(), application.created_key.clone());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(application.run_until_stopped(cancel.clone()));
        Ok(Self { app, store, api, schema, created_key, cancel, task: Some(task), _db_lock: db_lock })
    }

    /// An outbox publishing with this engine's rules (its retry schedule's attempts, its
    /// retention and idempotency window) into Herald's tables (on PostgreSQL, the schema the
    /// pool's `search_path` put them in).
    pub fn outbox(&self) -> herald_outbox::Outbox {
        let outbox = herald_outbox::Outbox::new().with_rules(self.app.config.fanout.clone());
        match &self.schema {
            Some(schema) => outbox.in_schema(schema),
            None => outbox,
        }
    }

    /// What the API calls, for this process: create webhooks, rotate keys, read deliveries.
    pub fn herald(&self) -> &Herald {
        &self.app
    }

    /// The store Herald runs on (read deliveries, events, accounts directly).
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Where the API listens, when it is served.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api
    }

    /// The id of the account named `name` (`default` is made on first start).
    pub async fn account(&self, name: &str) -> anyhow::Result<AccountId> {
        let found = self.store.account_by_name(name).await?;
        Ok(found.with_context(|| format!("no account named {name:?}"))?.id)
    }

    /// Wakes the engine at once: call it after committing a publish on SQLite (PostgreSQL's
    /// `NOTIFY` does this by itself on commit). Without it the work is found at the next
    /// poll (`HERALD_POLL_INTERVAL`).
    pub fn wake(&self) {
        self.store.work_signal().raise();
    }

    /// Stops: finishes attempts in flight (up to the shutdown grace) and gives leases back.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.cancel.cancel();
        match self.task.take() {
            Some(t) => t.await?,
            None => Ok(()),
        }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
