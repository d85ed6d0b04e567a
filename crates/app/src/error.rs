//! What a use case can answer instead of its result, named for what the caller can do.
//! Adapters map these, and only these, to their protocol (HTTP 404/400/409/429/503/500).

use herald_domain::{DisabledReason, RetryRefused};
use herald_store::StoreError;
use std::time::Duration;

pub use herald_domain::input::FieldError;

/// Why the resource's state does not allow the request now.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("an account may have at most {limit} webhooks")]
    WebhookLimit { limit: u32 },
    #[error(
        "the webhook was disabled automatically ({}) {since_secs} s ago; it can be re-enabled {cooldown_secs} s after that",
        reason.map_or("automatic", |r| r.as_str())
    )]
    ReenableCooldown { reason: Option<DisabledReason>, since_secs: i64, cooldown_secs: u64 },
    #[error("the webhook is disabled; enable it to send a test")]
    WebhookDisabled,
    #[error("event type {0} already exists")]
    EventTypeExists(String),
    #[error("{0}")]
    Retry(#[from] RetryRefused),
    #[error("{0}")]
    Skip(#[from] herald_domain::delivery::SkipRefused),
    #[error("already exists")]
    AlreadyExists,
    #[error("an account may have at most {limit} agents")]
    AgentLimit { limit: u32 },
    #[error("this address is already an agent (addresses are unique across the server)")]
    AddressTaken,
    #[error(
        "this {0} signs with ed25519 and has no shared secret: rotate the account's signing key \
         (POST /api/v1/signing-keys/rotate), or set \"signature\": \"hmac\" first"
    )]
    NoSharedSecret(&'static str),
}

/// Why a use case did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No such resource in the caller's account.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The input is invalid; nothing was changed.
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// The resource's state does not allow it now.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The adapter's admission (a rate limit) refused it: try again after this long.
    #[error("rate limited")]
    RateLimited(Duration),
    /// The store is unreachable or failed transiently: nothing was changed, try again.
    #[error("the store is unavailable")]
    Unavailable(#[source] StoreError),
    /// Herald cannot serve this (unreadable stored data, a misconfiguration): an operator
    /// must act; retrying does not help.
    #[error("internal error")]
    Internal(#[source] StoreError),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::RetryRefused(why) => Conflict::Retry(why).into(),
            StoreError::SkipRefused(why) => Conflict::Skip(why).into(),
            StoreError::AlreadyExists => Conflict::AlreadyExists.into(),
            StoreError::Invalid(_) => AppError::field("body", "a value in the request cannot be stored"),
            e @ StoreError::Unavailable(_) => AppError::Unavailable(e),
            e @ (StoreError::LimitReached | StoreError::Corrupt(_) | StoreError::Misconfigured(_)) => {
                AppError::Internal(e)
            }
        }
    }
}

impl AppError {
    /// An input error on one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError { field: field.into(), message: message.into() }])
    }
}

pub type AppResult<T> = Result<T, AppError>;

/// The adapter's say, asked once every check has passed and before anything is written:
/// a rate limit counts only requests that would otherwise succeed.
pub trait Admit: FnOnce() -> AppResult<()> + Send {}

impl<F: FnOnce() -> AppResult<()> + Send> Admit for F {}
