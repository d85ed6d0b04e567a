//! Herald as a library: publish webhook events inside your own database transaction.
//!
//! A platform that keeps its data in the same PostgreSQL or SQLite database as Herald can
//! commit "order paid" and "send `order.paid` webhooks" atomically (the transactional
//! outbox): [`publish`] writes the event and its fan-out — one delivery per matching enabled
//! webhook, with the same checks and matching rules as `POST /api/v1/events` — on the
//! caller's transaction. Commit, and Herald delivers; roll back, and nothing was stored and
//! nothing is sent. Until the commit the engine cannot see the rows.
//!
//! Wake-ups: on PostgreSQL the publish queues a `NOTIFY`, which PostgreSQL delivers to every
//! running Herald only when the transaction commits. On SQLite a Herald in another process
//! finds the work at its next poll (`HERALD_POLL_INTERVAL`, 1 s); one embedded in this
//! process (`herald::Embedded`) is woken at once with `Embedded::wake` after the commit.
//!
//! ```no_run
//! # async fn f(pool: sqlx::PgPool, account: herald_outbox::AccountId) -> Result<(), Box<dyn std::error::Error>> {
//! use herald_outbox::{EventDraft, publish};
//! let mut tx = pool.begin().await?;
//! sqlx::query("UPDATE orders SET paid = true WHERE id = $1").bind(42_i64).execute(&mut *tx).await?;
//! let data = serde_json::value::to_raw_value(&serde_json::json!({"order_id": 42}))?;
//! publish(&mut tx, &account, EventDraft::new("order.paid", data)).await?;
//! tx.commit().await?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

use herald_domain::EventType;
use herald_domain::input::{FieldError, TypeName, check_event_draft};
use herald_store::NewEvent;

pub use herald_domain::input::{EventDraft, FieldError as InvalidField};
pub use herald_domain::{AccountId, EventId};
pub use herald_store::{FanoutRules, Published, StoreError};

/// Why a publish did not happen. A refused event ([`OutboxError::Invalid`],
/// [`OutboxError::UnknownAccount`]) wrote nothing and leaves the caller's transaction usable;
/// after [`OutboxError::Store`] roll it back (on PostgreSQL it is aborted).
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The event is not valid (the same rules as the API's 400); nothing was written.
    #[error("invalid event: {}", describe(.0))]
    Invalid(Vec<FieldError>),
    /// No account has this id; nothing was written.
    #[error("no account {0}")]
    UnknownAccount(AccountId),
    /// The database refused or failed a statement.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn describe(errs: &[FieldError]) -> String {
    errs.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
}

/// What a publish needs to know that the running server knows from its settings: the fan-out
/// rules (attempts of the server's retry schedule, retention, idempotency window) and, on
/// PostgreSQL, the schema Herald's tables live in.
#[derive(Clone, Debug, Default)]
pub struct Outbox {
    rules: FanoutRules,
    schema: Option<String>,
}

impl Outbox {
    /// The server's defaults (`HERALD_RETRY_SCHEDULE`, `HERALD_RETENTION` unset).
    pub fn new() -> Self {
        Self::default()
    }

    /// Fan-out rules matching the server's settings (its retry schedule's attempts, its
    /// retention).
    pub fn with_rules(mut self, rules: FanoutRules) -> Self {
        self.rules = rules;
        self
    }

    /// PostgreSQL: Herald's tables are in `schema` (migrated with `search_path` set to it),
    /// named as PostgreSQL stores it (lower case, unless it was created quoted); the caller's
    /// transaction keeps its own `search_path` for its own statements.
    pub fn in_schema(mut self, schema: &str) -> Self {
        self.schema = Some(schema.to_owned());
        self
    }

    /// Checks `draft` and publishes it on the caller's transaction `tx`.
    pub async fn publish<DB: OutboxDatabase>(
        &self,
        tx: &mut sqlx::Transaction<'_, DB>,
        account: &AccountId,
        draft: EventDraft,
    ) -> Result<Published, OutboxError> {
        DB::publish_on(&mut *tx, self, account, draft).await
    }
}

/// [`Outbox::publish`] with the server's default rules and tables in the default schema;
/// answers the event's id (an idempotency key seen within its window answers the first
/// event's).
pub async fn publish<DB: OutboxDatabase>(
    tx: &mut sqlx::Transaction<'_, DB>,
    account: &AccountId,
    draft: EventDraft,
) -> Result<EventId, OutboxError> {
    Ok(Outbox::default().publish(tx, account, draft).await?.id)
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for sqlx::Postgres {}
    impl Sealed for sqlx::Sqlite {}
}

/// The databases a publish can run on: PostgreSQL and SQLite (implemented here only).
pub trait OutboxDatabase: sqlx::Database + sealed::Sealed {
    /// Checks and publishes `draft` on `conn`, a connection inside the caller's transaction.
    fn publish_on<'a>(
        conn: &'a mut Self::Connection,
        outbox: &'a Outbox,
        account: &'a AccountId,
        draft: EventDraft,
    ) -> impl Future<Output = Result<Published, OutboxError>> + Send + 'a;
}

/// The event `draft` makes once its type resolved to `known`, or the API's 400 reasons.
fn checked(account: &AccountId, draft: EventDraft, known: Option<EventType>) -> Result<NewEvent, OutboxError> {
    let errs = check_event_draft(&draft, known.as_ref());
    match known.filter(|_| errs.is_empty()) {
        Some(t) => Ok(NewEvent::from_draft(account, &t, draft, now())),
        None => Err(OutboxError::Invalid(errs)),
    }
}

fn now() -> time::OffsetDateTime {
    use herald_domain::Clock;
    herald_domain::SystemClock.now()
}

impl OutboxDatabase for sqlx::Postgres {
    fn publish_on<'a>(
        conn: &'a mut sqlx::PgConnection,
        outbox: &'a Outbox,
        account: &'a AccountId,
        draft: EventDraft,
    ) -> impl Future<Output = Result<Published, OutboxError>> + Send + 'a {
        use herald_store_postgres::outbox as pg;
        async move {
            // The store's errors travel outside (the search_path is put back either way); a
            // refusal inside.
            pg::with_search_path(conn, outbox.schema.as_deref(), async |conn| {
                if !pg::account_exists_on(conn, account).await? {
                    return Ok(Err(OutboxError::UnknownAccount(account.clone())));
                }
                let known = match TypeName::of(&draft.event_type) {
                    TypeName::BuiltIn(t) => Some(t),
                    TypeName::Custom(t) => {
                        pg::custom_event_type_exists_on(conn, account, t.as_str()).await?.then_some(t)
                    }
                    TypeName::Invalid => None,
                };
                match checked(account, draft, known) {
                    Ok(new) => pg::publish_and_notify(conn, new, &outbox.rules).await.map(Ok),
                    Err(refused) => Ok(Err(refused)),
                }
            })
            .await?
        }
    }
}

impl OutboxDatabase for sqlx::Sqlite {
    fn publish_on<'a>(
        conn: &'a mut sqlx::SqliteConnection,
        outbox: &'a Outbox,
        account: &'a AccountId,
        draft: EventDraft,
    ) -> impl Future<Output = Result<Published, OutboxError>> + Send + 'a {
        use herald_store_sqlite::outbox as lite;
        async move {
            if !lite::account_exists_on(conn, account).await? {
                return Err(OutboxError::UnknownAccount(account.clone()));
            }
            let known = match TypeName::of(&draft.event_type) {
                TypeName::BuiltIn(t) => Some(t),
                TypeName::Custom(t) => lite::custom_event_type_exists_on(conn, account, t.as_str()).await?.then_some(t),
                TypeName::Invalid => None,
            };
            let new = checked(account, draft, known)?;
            Ok(lite::publish_on(conn, &new, &outbox.rules).await?)
        }
    }
}
