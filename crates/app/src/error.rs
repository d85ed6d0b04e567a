//! What a use case can answer instead of its result, named for what the caller can do.

use herald_store::StoreError;

/// One invalid field of an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Why a use case did not happen. Adapters map it once (HTTP: 404, 400, 409, 503/500).
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No such resource in the caller's account.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The input is invalid; nothing was changed.
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// The resource's state does not allow it now.
    #[error("{0}")]
    Conflict(String),
    /// The adapter's admission (a rate limit) refused it: try again after this long.
    #[error("rate limited")]
    RateLimited(std::time::Duration),
    /// The store failed (see [`StoreError`] for what can be retried).
    #[error(transparent)]
    Store(#[from] StoreError),
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
