/// What went wrong in the store, named for what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or failed transiently: try again later.
    /// Never counts as a delivery attempt.
    #[error("store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A per-account limit would be exceeded.
    #[error("limit reached")]
    LimitReached,
    /// A stored value could not be read (a bug, or a database edited by hand): retrying
    /// cannot help; callers report an internal error.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The store cannot work with the settings it was given (e.g. signing secrets encrypted
    /// under another `HERALD_SECRET_KEY`): an operator must act; retrying cannot help.
    #[error("misconfigured: {0}")]
    Misconfigured(String),
    /// A manual retry the delivery's state does not allow.
    #[error("{0}")]
    RetryRefused(#[from] herald_domain::RetryRefused),
    /// A skip the delivery's state does not allow.
    #[error("{0}")]
    SkipRefused(#[from] herald_domain::delivery::SkipRefused),
    /// A uniqueness rule was violated (e.g. account name taken).
    #[error("already exists")]
    AlreadyExists,
    /// The database refused a value (a data error, not an outage): retrying the same
    /// request cannot help. Input is checked before it reaches the store, so this means a
    /// check is missing; callers answer 400 (API) or isolate the row (engine).
    #[error("the store refused a value")]
    Invalid(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// A stored `what` that does not parse.
    pub fn corrupt(what: &str, detail: impl std::fmt::Display) -> Self {
        Self::Corrupt(format!("{what}: {detail}")).counted()
    }

    /// Counts this error in `herald_store_errors_total{kind}` (`unavailable`: the database
    /// failed or could not be reached; `invalid`: it refused a value; `corrupt`: a stored
    /// value did not read back) and returns it.
    pub fn counted(self) -> Self {
        let kind = match &self {
            Self::Unavailable(_) => "unavailable",
            Self::Invalid(_) => "invalid",
            Self::Corrupt(_) => "corrupt",
            _ => return self,
        };
        metrics::counter!("herald_store_errors_total", "kind" => kind).increment(1);
        self
    }
}

/// `error` and every cause under it, joined by ": " (for logs: one field, the whole chain).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
