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
    /// The request conflicts with the current state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A uniqueness rule was violated (e.g. account name taken).
    #[error("already exists")]
    AlreadyExists,
    /// The database refused a value (a data error, not an outage): retrying the same
    /// request cannot help. Input is checked before it reaches the store, so this means a
    /// check is missing; callers answer 400 (API) or isolate the row (engine).
    #[error("the store refused a value")]
    Invalid(#[source] Box<dyn std::error::Error + Send + Sync>),
}
