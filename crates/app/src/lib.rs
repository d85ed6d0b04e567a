//! Herald's application layer: what a request means, once, for every adapter.
//!
//! The HTTP API, the SMTP listener and the portal are thin adapters (the CLI talks
//! to a running server over HTTP): they parse their wire format into the inputs here, call [`Herald`],
//! and render its answers or [`AppError`]s. Validation, event-type checks, the re-enable
//! cooldown, idempotent rotation and "wait for the first attempt" live here; persistence
//! lives behind the store traits; pure rules live in `herald-domain`.
#![forbid(unsafe_code)]

mod agents;
mod control;
mod deliveries;
mod error;
mod events;
mod inbound;
mod notices;
mod portal;
mod recovery;
mod signing_keys;
mod stats;
mod test_sends;
pub mod validate;
mod webhooks;

pub use agents::{AgentChange, AgentDraft};
pub use control::ControlChange;
pub use error::{Admit, AppError, AppResult, Conflict, FieldError};
pub use events::{EventDraft, EventTypeView};
pub use herald_mail::SmtpClient;
pub use inbound::Injected;
pub use portal::{DEFAULT_PORTAL_LINK_TTL, MAX_PORTAL_LINK_TTL, OpenedSession, PortalLink, new_portal_link};
pub use recovery::RecoveryRequest;
pub use stats::{StatsBucket, WebhookStats};
pub use test_sends::{TestSend, TestSent};
pub use webhooks::{MAX_GRACE, RotateAnswer, WebhookChange, WebhookDraft};

use herald_domain::{AcceptedDomains, Clock, TargetUrl, UrlError};
use herald_store::{FanoutRules, InboundRules, Store};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Checks a webhook URL at registration: shape, scheme, and every resolved address.
pub trait TargetCheck: Send + Sync + 'static {
    fn check<'a>(&'a self, url: &'a str) -> Pin<Box<dyn Future<Output = Result<TargetUrl, UrlError>> + Send + 'a>>;
}

/// The rules the application enforces (all settings).
#[derive(Clone, Debug)]
pub struct AppConfig {
    pub webhooks_per_account: u32,
    pub max_in_flight_limit: u32,
    pub fanout: FanoutRules,
    /// Re-enabling within this long after an automatic disable is refused.
    pub reenable_cooldown: Duration,
    /// How long a test send with `wait` waits for the first attempt.
    pub test_wait: Duration,
    /// How many previous signing secrets a webhook keeps.
    pub previous_secrets_kept: usize,
    pub inbound: InboundConfig,
    /// The server's retry schedule (`HERALD_RETRY_SCHEDULE`): what a webhook without its own shows.
    pub retry_schedule: Vec<Duration>,
}

/// The rules of inbound mail.
#[derive(Clone, Debug)]
pub struct InboundConfig {
    /// The domains agents may be created on and mail is accepted for.
    pub domains: AcceptedDomains,
    /// This server's name (SMTP greeting, `Authentication-Results`).
    pub hostname: String,
    pub max_message_size: usize,
    pub agents_per_account: u32,
    /// Messages parsed, authenticated and committed at once; more wait. Each costs a few
    /// times its size in memory (the raw bytes, the event's and the Payload's base64).
    pub concurrent_ingests: usize,
    /// Dedupe window and retention; the fan-out part is taken from [`AppConfig::fanout`].
    pub rules: InboundRules,
}

impl Default for InboundConfig {
    fn default() -> Self {
        Self {
            domains: AcceptedDomains::default(),
            hostname: "localhost".into(),
            max_message_size: 10 * 1024 * 1024,
            agents_per_account: 1000,
            concurrent_ingests: 4,
            rules: InboundRules::default(),
        }
    }
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            webhooks_per_account: 50,
            max_in_flight_limit: 256,
            fanout: FanoutRules::default(),
            reenable_cooldown: Duration::from_secs(300),
            test_wait: Duration::from_secs(20),
            previous_secrets_kept: 5,
            inbound: InboundConfig::default(),
            retry_schedule: herald_domain::RetryPolicy::default().schedule,
        }
    }
}

/// The application: every use case, over one store. Cheap to clone.
#[derive(Clone)]
pub struct Herald {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    targets: Arc<dyn TargetCheck>,
    pub config: Arc<AppConfig>,
    /// SPF/DKIM/DMARC for inbound mail; without one, every result is `none`.
    mail: Option<Arc<herald_mail::Authenticator>>,
    /// Bounds the memory of inbound mail being accepted ([`InboundConfig::concurrent_ingests`]).
    ingests: Arc<tokio::sync::Semaphore>,
}

impl Herald {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, targets: Arc<dyn TargetCheck>, config: AppConfig) -> Self {
        let ingests = Arc::new(tokio::sync::Semaphore::new(config.inbound.concurrent_ingests.max(1)));
        Self { store, clock, targets, config: Arc::new(config), mail: None, ingests }
    }

    /// The server's retry schedule (what a webhook without its own uses).
    pub fn server_retry_schedule(&self) -> &[Duration] {
        &self.config.retry_schedule
    }

    /// Authenticates inbound mail with `mail` (its DNS answers decide SPF, DKIM and DMARC).
    pub fn with_authenticator(mut self, mail: Arc<herald_mail::Authenticator>) -> Self {
        self.mail = Some(mail);
        self
    }
}
