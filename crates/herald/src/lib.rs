//! Herald: durable, signed webhook delivery — the wiring of store, engine and API.
//!
//! [`Application::build`] opens the store, bootstraps the first account, binds the
//! listener and returns; [`Application::run_until_stopped`] serves until the token is
//! cancelled, then stops accepting, finishes in-flight attempts and releases leases.
#![forbid(unsafe_code)]

pub mod backup;
pub mod bench;
pub mod bench_smtp;
pub mod cli;
pub mod config_check;
mod embedded;
pub mod prometheus;
pub mod settings;
mod settings_check;

pub use embedded::{CallerPool, Embedded};
pub use settings::Settings;

use anyhow::Context;
use herald_api::{ApiConfig, AppState};
use herald_app::{AppConfig, Herald, InboundConfig, TargetCheck};
use herald_delivery::{Engine, EngineConfig, GuardedResolver, HickoryLookup, Lookup, Sender, SenderConfig};
use herald_domain::{ApiKey, Clock, IpPolicy, TargetUrl, UrlError};
use herald_store::{FanoutRules, Store};
use herald_store_sqlite::SqliteStore;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Wraps the opened store (fault injection in tests).
pub type StoreWrapper = Box<dyn FnOnce(Arc<dyn Store>) -> Arc<dyn Store> + Send>;

/// Dependencies that tests (and library mode) replace: the clock, the DNS lookup, a store
/// decorator, a store already opened (on the caller's pool), whether to serve the API.
pub struct Deps {
    pub clock: Arc<dyn Clock>,
    pub lookup: Option<Arc<dyn Lookup>>,
    pub wrap_store: Option<StoreWrapper>,
    /// Run on this store instead of opening `HERALD_DATABASE_URL`.
    pub store: Option<Arc<dyn Store>>,
    /// Serve the HTTP API (and portal) on `--listen`; without it the engine runs (and SMTP,
    /// when `--smtp-listen` is set).
    pub serve_api: bool,
}

impl Default for Deps {
    fn default() -> Self {
        Self {
            clock: Arc::new(herald_domain::SystemClock),
            lookup: None,
            wrap_store: None,
            store: None,
            serve_api: true,
        }
    }
}

/// A built, not yet running, Herald.
pub struct Application {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    store: Arc<dyn Store>,
    /// The application layer the API serves (library mode uses it directly).
    app: Herald,
    router: axum::Router,
    serve_api: bool,
    engine: Engine,
    smtp: Option<SmtpListener>,
    shutdown_grace: std::time::Duration,
    /// The key of the `default` account when this start created it without a bootstrap key.
    pub created_key: Option<ApiKey>,
    /// `HERALD_PUBLIC_URL`, or `http://` and the bound address.
    public_url: String,
    /// The SQLite database's lock, held while this server runs.
    _db_lock: Option<std::fs::File>,
}

/// The bound SMTP listener and what it serves.
struct SmtpListener {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    config: herald_smtp::SmtpConfig,
    inbound: Arc<dyn herald_smtp::Inbound>,
}

struct UrlVetter {
    resolver: GuardedResolver,
    require_https: bool,
}

impl TargetCheck for UrlVetter {
    fn check<'a>(&'a self, url: &'a str) -> Pin<Box<dyn Future<Output = Result<TargetUrl, UrlError>> + Send + 'a>> {
        Box::pin(async move {
            let t = TargetUrl::parse(url, self.require_https, self.resolver.policy())?;
            self.resolver.vet(&t).await?;
            Ok(t)
        })
    }
}

/// The embedded migrations the database of `settings` still needs (none is applied); an
/// error when a newer Herald migrated it.
pub async fn pending_migrations(settings: &Settings) -> anyhow::Result<Vec<(i64, String)>> {
    let url = settings.database_url();
    if url.starts_with("sqlite:") {
        Ok(herald_store_sqlite::migrations::pending(&url).await?)
    } else {
        Ok(herald_store_postgres::migrations::pending(&url).await?)
    }
}

/// The cipher of `HERALD_SECRET_KEY`, when set.
pub(crate) fn secret_cipher(settings: &Settings) -> anyhow::Result<Option<Arc<herald_store::codec::SecretCipher>>> {
    settings
        .secret_key
        .as_ref()
        .map(|k| herald_store::codec::SecretCipher::from_key_text(k.expose()).map(Arc::new).map_err(anyhow::Error::msg))
        .transpose()
}

/// The PostgreSQL settings of `settings`.
pub(crate) fn pg_settings(settings: &Settings) -> herald_store_postgres::PgSettings {
    herald_store_postgres::PgSettings {
        pool_size: settings.pg_pool_size,
        statement_timeout: settings.pg_statement_timeout,
        acquire_timeout: settings.pg_acquire_timeout,
    }
}

/// Opens the store named by the settings.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let url = settings.database_url();
    let cipher = secret_cipher(settings)?;
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
        let store = SqliteStore::open(&url, settings.sqlite_durability())
            .await
            .with_context(|| format!("opening {url}"))?
            .with_cipher(cipher);
        Ok(Arc::new(store))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let store = herald_store_postgres::PgStore::open(&url, &pg_settings(settings))
            .await
            .context("opening PostgreSQL (check HERALD_DATABASE_URL)")?
            .with_cipher(cipher);
        Ok(Arc::new(store))
    } else {
        anyhow::bail!("unsupported database URL {}: expected sqlite:// or postgres://", settings::redact_url(&url))
    }
}

/// Creates the `default` account on first start. Returns the key when it was generated.
pub async fn bootstrap(store: &dyn Store, settings: &Settings, clock: &dyn Clock) -> anyhow::Result<Option<ApiKey>> {
    if store.account_count().await? > 0 {
        return Ok(None);
    }
    let (key, generated) = match &settings.bootstrap_api_key {
        Some(k) => (
            ApiKey::parse(k.expose())
                .context("HERALD_BOOTSTRAP_API_KEY must be hk_ followed by 48 lowercase hex characters")?,
            false,
        ),
        None => (ApiKey::generate(), true),
    };
    match store.create_account("default", &key.hash(), clock.now()).await {
        Ok(_) => Ok(generated.then_some(key)),
        // Another replica starting at the same moment created it first.
        Err(herald_store::StoreError::AlreadyExists) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

impl Application {
    pub async fn build(settings: Settings, deps: Deps) -> anyhow::Result<Self> {
        settings.validate().map_err(anyhow::Error::msg)?;
        // One server per SQLite file: `herald restore` and a second `serve` see it held.
        // (A store handed in runs on the caller's database, whose file is the caller's.)
        let db_lock = match backup::sqlite_path(&settings.database_url()).filter(|_| deps.store.is_none()) {
            Some(db) => {
                std::fs::create_dir_all(&settings.data_dir)
                    .with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
                Some(backup::lock_database(&db)?)
            }
            None => None,
        };
        let mut store = match deps.store {
            Some(store) => store,
            None => open_store(&settings).await?,
        };
        if let Some(wrap) = deps.wrap_store {
            store = wrap(store);
        }
        let created_key = bootstrap(store.as_ref(), &settings, deps.clock.as_ref()).await?;
        let policy = IpPolicy { allow_private: settings.allow_private_targets, allow: settings.allow_cidrs.clone() };
        let lookup: Arc<dyn Lookup> = match deps.lookup {
            Some(l) => l,
            None => Arc::new(
                match settings.dns_server {
                    Some(server) => HickoryLookup::with_server(server),
                    None => HickoryLookup::from_system(),
                }
                .map_err(|e| anyhow::anyhow!("DNS resolver: {e}"))?,
            ),
        };
        let resolver = GuardedResolver::new(lookup, policy);
        let sender = Sender::new(
            resolver.clone(),
            deps.clock.clone(),
            SenderConfig {
                require_https: settings.require_https,
                timeout: settings.attempt_timeout,
                ..SenderConfig::default()
            },
        )?;
        let retry = settings.retry_policy();
        let fanout = FanoutRules {
            max_attempts: retry.max_attempts(),
            event_ttl: settings.retention,
            delivery_ttl: settings.retention,
            // A key is remembered by its event: no longer than the event is kept.
            idempotency_window: FanoutRules::default().idempotency_window.min(settings.retention),
        };
        let engine = Engine::new(
            store.clone(),
            Arc::new(sender),
            deps.clock.clone(),
            EngineConfig {
                max_in_flight: settings.max_in_flight,
                lease: settings.lease,
                poll_interval: settings.poll_interval,
                retry: retry.clone(),
                auto_disable_interval: settings.auto_disable_interval,
                auto_disable_window: settings.auto_disable_window,
                auto_disable_threshold: settings.auto_disable_threshold,
                shutdown_grace: settings.shutdown_grace,
                janitor_interval: settings.janitor_interval,
                metrics_per_webhook: settings.metrics_per_webhook,
                gauges_interval: settings.queue_gauges_interval,
                fanout: fanout.clone(),
                ..EngineConfig::default()
            },
        );
        let authenticator = herald_mail::Authenticator::new(settings.dns_server)
            .map_err(|e| anyhow::anyhow!("mail authentication: {e}"))?;
        let app = Herald::new(
            store.clone(),
            deps.clock.clone(),
            Arc::new(UrlVetter { resolver, require_https: settings.require_https }),
            AppConfig {
                fanout,
                webhooks_per_account: settings.max_webhooks_per_account,
                reenable_cooldown: settings.reenable_cooldown,
                retry_schedule: settings.retry_schedule.clone(),
                inbound: InboundConfig {
                    domains: herald_domain::AcceptedDomains::parse(&settings.smtp_domains),
                    hostname: settings.smtp_hostname.clone(),
                    max_message_size: settings.smtp_max_message_size,
                    ..InboundConfig::default()
                },
                ..AppConfig::default()
            },
        )
        .with_authenticator(Arc::new(authenticator));
        let smtp = match settings.smtp_listen {
            Some(at) => {
                let tls = match (&settings.smtp_tls_cert, &settings.smtp_tls_key) {
                    (Some(cert), Some(key)) => Some(herald_smtp::load_tls(cert, key).context("STARTTLS certificate")?),
                    _ => None,
                };
                let listener =
                    tokio::net::TcpListener::bind(at).await.with_context(|| format!("binding SMTP on {at}"))?;
                Some(SmtpListener {
                    addr: listener.local_addr()?,
                    listener,
                    config: herald_smtp::SmtpConfig {
                        hostname: settings.smtp_hostname.clone(),
                        max_message_size: settings.smtp_max_message_size,
                        idle_timeout: settings.smtp_idle_timeout,
                        max_connections: settings.smtp_max_connections,
                        max_connections_per_ip: settings.smtp_max_connections_per_ip,
                        max_recipients: settings.smtp_max_recipients,
                        max_session: settings.smtp_max_session,
                        tls,
                    },
                    inbound: Arc::new(herald_smtp::AppInbound { app: app.clone() }),
                })
            }
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let portal = herald_api::PortalConfig {
            public_url: settings.public_url_or(addr),
            frame_ancestors: settings.frame_ancestors().map_err(|e| anyhow::anyhow!(e))?,
        };
        let state = AppState::new(
            app.clone(),
            ApiConfig {
                recover_interval: settings.recover_interval,
                test_sends_per_minute: settings.test_sends_per_minute,
                rotations_per_minute: settings.rotations_per_minute,
                recoveries_per_minute: settings.recoveries_per_minute,
                injects_per_minute: settings.injects_per_minute,
                portal: portal.clone(),
                ..ApiConfig::default()
            },
            // Library mode without the API leaves the process's metrics recorder to its owner.
            if deps.serve_api { prometheus::handle() } else { None },
        );
        let router = herald_api::router(state).layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(
            // Neither the path (agent addresses, ids) nor the query (portal tokens): the
            // request's own log line names the route template.
            |req: &axum::http::Request<axum::body::Body>| tracing::debug_span!("request", method = %req.method()),
        ));
        let shutdown_grace = settings.shutdown_grace;
        Ok(Self {
            listener,
            addr,
            store,
            app,
            router,
            serve_api: deps.serve_api,
            engine,
            smtp,
            shutdown_grace,
            created_key,
            public_url: portal.public_url,
            _db_lock: db_lock,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL users reach this server at (`HERALD_PUBLIC_URL`, or the bound address).
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The SMTP listener's address, when one is configured.
    pub fn smtp_addr(&self) -> Option<SocketAddr> {
        self.smtp.as_ref().map(|s| s.addr)
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// The application layer (what the API calls): webhooks, events, keys.
    pub fn app(&self) -> &Herald {
        &self.app
    }

    /// Serves API and engine until `cancel`; then drains gracefully.
    pub async fn run_until_stopped(self, cancel: CancellationToken) -> anyhow::Result<()> {
        if let Some(handle) = self.serve_api.then(prometheus::handle).flatten() {
            prometheus::spawn_upkeep(handle);
        }
        let engine = self.engine.start(cancel.clone());
        let smtp = self.smtp.map(|s| tokio::spawn(herald_smtp::serve(s.listener, s.config, s.inbound, cancel.clone())));
        let shutdown = cancel.clone();
        if self.serve_api {
            axum::serve(self.listener, self.router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await?;
        } else {
            drop(self.listener);
            shutdown.cancelled().await;
        }
        if let Some(smtp) = smtp {
            // Open sessions answer 421 after their current command; a message being
            // committed finishes first. A client trickling bytes is not waited for past
            // the grace.
            let _ = tokio::time::timeout(self.shutdown_grace, smtp).await;
        }
        engine.stopped().await;
        Ok(())
    }
}

/// A one-time portal link for the account named `account` (`herald portal`): made in the
/// store directly, under `HERALD_PUBLIC_URL` (or `http://` and `--listen`).
pub async fn portal_link(
    settings: &Settings,
    account: &str,
    expires_in_seconds: u64,
    read_only: bool,
) -> anyhow::Result<(String, time::OffsetDateTime)> {
    settings.validate().map_err(|e| anyhow::anyhow!(e))?;
    let store = open_store(settings).await?;
    let Some(acc) = store.account_by_name(account).await? else {
        anyhow::bail!("no account named {account:?} (see `herald accounts create`)");
    };
    let now = time::OffsetDateTime::now_utc();
    let link = herald_app::new_portal_link(store.as_ref(), now, &acc.id, Some(expires_in_seconds), read_only)
        .await
        .map_err(|e| match e {
            herald_app::AppError::Invalid(errs) => {
                anyhow::anyhow!("{}", errs.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; "))
            }
            e => anyhow::Error::new(e),
        })?;
    // Not bound here: the address `herald serve` is told to listen on (port 0 cannot be reached).
    let listen: SocketAddr = settings
        .listen
        .parse()
        .map_err(|_| anyhow::anyhow!("--listen {:?} is not an address; set HERALD_PUBLIC_URL", settings.listen))?;
    if settings.public_url.is_none() && listen.port() == 0 {
        anyhow::bail!("--listen has port 0: set HERALD_PUBLIC_URL to where the server is reached");
    }
    Ok((herald_api::portal_link(&settings.public_url_or(listen), link.token.expose()), link.expires_at))
}
