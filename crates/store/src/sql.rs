//! Plumbing the SQL backends share, written once and expanded in each backend for its sqlx
//! row type (so this crate needs no sqlx): error classification, reading a column, the row
//! → record mappers, and the column lists those mappers expect.

/// Column lists of the queries whose rows the mappers of [`sql_rows!`](crate::sql_rows) read.
#[macro_export]
macro_rules! webhook_columns {
    () => {
        "id, account_id, url, description, events, filters, enabled, disabled_reason, \
         auto_disabled_at, max_in_flight, created_at, updated_at, last_delivered_at, concurrency, \
         effective_max_in_flight, rate_limit_per_second, ordering, on_final_failure, retry_schedule, max_age_ms, \
         signature"
    };
}

#[macro_export]
macro_rules! event_columns {
    () => {
        "id, type, created_at, deliveries, agent_id, conversation_id, labels, payload, ordering_key"
    };
}

#[macro_export]
macro_rules! delivery_columns {
    () => {
        "id, webhook_id, event_id, event_type, status, attempts, max_attempts, \
         last_error, last_status_code, last_attempt_at, next_retry_at, created_at, agent"
    };
}

/// The columns of an agent: `agents a JOIN webhooks w ON w.id = a.target_id`.
#[macro_export]
macro_rules! agent_columns {
    () => {
        "a.address, a.account_id, a.name, w.url, w.max_in_flight, a.created_at, a.target_id, w.enabled, \
         w.disabled_reason, w.signature"
    };
}

#[macro_export]
macro_rules! message_columns {
    () => {
        "id, account_id, agent, conversation_id, parsed, auth, size, received_at"
    };
}

/// Expands, in a backend's `rows.rs`, to `unavailable` (sqlx error → `StoreError`), `get`
/// (one column, a decode failure is `Corrupt`), `corrupt`, and the row mappers
/// `account_from_row`, `webhook_from_row`, `delivery_from_row`, `attempt_from_row`,
/// `event_from_row` for the backend's row type `$row` of database `$db`.
#[macro_export]
macro_rules! sql_rows {
    ($row:ty, $db:ty) => {
        use $crate::__private::*;

        /// Maps a sqlx error: a unique violation is `AlreadyExists`; an SQLSTATE data
        /// exception (class 22: NUL in TEXT, a bad jsonb escape…) or an encode failure is
        /// `Invalid` (the value is at fault, retrying cannot help); anything else is
        /// `Unavailable` (retry later).
        /// Counted in `herald_store_errors_total` (a unique violation is an answer, not an error).
        pub(crate) fn unavailable(e: sqlx::Error) -> StoreError {
            let error = match &e {
                sqlx::Error::Database(d) if d.is_unique_violation() => return StoreError::AlreadyExists,
                sqlx::Error::Database(d) if d.code().is_some_and(|c| c.len() == 5 && c.starts_with("22")) => {
                    StoreError::Invalid(Box::new(e))
                }
                sqlx::Error::Encode(_) => StoreError::Invalid(Box::new(e)),
                _ => StoreError::Unavailable(Box::new(e)),
            };
            error.counted()
        }

        pub(crate) fn get<'r, T>(r: &'r $row, i: usize) -> StoreResult<T>
        where
            T: sqlx::Decode<'r, $db> + sqlx::Type<$db>,
        {
            sqlx::Row::try_get(r, i).map_err(|e| StoreError::corrupt("a column", e))
        }

        pub(crate) use $crate::codec::parse_json;

        /// A stored `what` that does not parse.
        pub(crate) fn corrupt(what: &str, value: &str) -> StoreError {
            StoreError::corrupt(what, format!("{value:?}"))
        }

        pub(crate) fn account_from_row(r: &$row) -> StoreResult<Account> {
            Ok(Account {
                id: AccountId::from_trusted(get(r, 0)?),
                name: get(r, 1)?,
                created_at: from_millis(get(r, 2)?),
            })
        }

        /// A row of [`webhook_columns!`]($crate::webhook_columns).
        pub(crate) fn webhook_from_row(r: &$row) -> StoreResult<Webhook> {
            Ok(Webhook {
                id: WebhookId::from_trusted(get(r, 0)?),
                account_id: AccountId::from_trusted(get(r, 1)?),
                url: get(r, 2)?,
                description: get(r, 3)?,
                events: parse_json(&get::<String>(r, 4)?)?,
                filters: parse_json(&get::<String>(r, 5)?)?,
                enabled: get(r, 6)?,
                disabled_reason: get::<Option<String>>(r, 7)?
                    .map(|s| DisabledReason::parse(&s).ok_or_else(|| corrupt("disabled reason", &s)))
                    .transpose()?,
                auto_disabled_at: get::<Option<i64>>(r, 8)?.map(from_millis),
                max_in_flight: get::<i64>(r, 9)? as u32,
                created_at: from_millis(get(r, 10)?),
                updated_at: from_millis(get(r, 11)?),
                last_delivered_at: get::<Option<i64>>(r, 12)?.map(from_millis),
                effective_max_in_flight: $crate::control::effective_limit(
                    named(&get::<String>(r, 13)?, "concurrency", Concurrency::parse)?,
                    get::<i64>(r, 9)? as u32,
                    Some(get::<i64>(r, 14)? as u32),
                ),
                control: DeliveryControl {
                    concurrency: named(&get::<String>(r, 13)?, "concurrency", Concurrency::parse)?,
                    rate_limit_per_second: get::<Option<i64>>(r, 15)?.map(|n| n as u32),
                    ordering: named(&get::<String>(r, 16)?, "ordering", OrderingMode::parse)?,
                    on_final_failure: named(&get::<String>(r, 17)?, "on_final_failure", OnFinalFailure::parse)?,
                    retry_schedule: get::<Option<String>>(r, 18)?
                        .map(|s| $crate::control::schedule_from_json(&s))
                        .transpose()?,
                    max_age: get::<Option<i64>>(r, 19)?.map(|ms| std::time::Duration::from_millis(ms as u64)),
                },
                signature: named(&get::<String>(r, 20)?, "signature", SignatureScheme::parse)?,
            })
        }

        /// A stored name of one of the delivery-control enums.
        fn named<T>(s: &str, what: &str, parse: impl Fn(&str) -> Option<T>) -> StoreResult<T> {
            parse(s).ok_or_else(|| corrupt(what, s))
        }

        /// A row of [`delivery_columns!`]($crate::delivery_columns).
        pub(crate) fn delivery_from_row(r: &$row) -> StoreResult<Delivery> {
            let status: String = get(r, 4)?;
            Ok(Delivery {
                id: DeliveryId::from_trusted(get(r, 0)?),
                webhook_id: WebhookId::from_trusted(get(r, 1)?),
                agent: get(r, 12)?,
                event_id: EventId::from_trusted(get(r, 2)?),
                event_type: get(r, 3)?,
                status: DeliveryStatus::parse(&status).ok_or_else(|| corrupt("delivery status", &status))?,
                attempts: get::<i64>(r, 5)? as u32,
                max_attempts: get::<i64>(r, 6)? as u32,
                last_error: get(r, 7)?,
                last_status_code: get::<Option<i64>>(r, 8)?.map(|c| c as u16),
                last_attempt_at: get::<Option<i64>>(r, 9)?.map(from_millis),
                next_retry_at: from_millis(get(r, 10)?),
                created_at: from_millis(get(r, 11)?),
            })
        }

        /// A row of `number, started_at, duration_ms, status_code, error, response_body, kind`.
        pub(crate) fn attempt_from_row(r: &$row) -> StoreResult<Attempt> {
            Ok(Attempt {
                number: get::<i64>(r, 0)? as u32,
                kind: get::<Option<String>>(r, 6)?
                    .map(|k| AttemptKind::parse(&k).ok_or_else(|| corrupt("attempt kind", &k)))
                    .transpose()?,
                started_at: from_millis(get(r, 1)?),
                duration_ms: get::<i64>(r, 2)? as u64,
                status_code: get::<i64>(r, 3)? as u16,
                error: get(r, 4)?,
                response_body: get(r, 5)?,
            })
        }

        /// A row of [`agent_columns!`]($crate::agent_columns).
        pub(crate) fn agent_from_row(r: &$row) -> StoreResult<Agent> {
            let url: String = get(r, 3)?;
            Ok(Agent {
                address: AgentAddress::from_trusted(get(r, 0)?),
                account_id: AccountId::from_trusted(get(r, 1)?),
                name: get(r, 2)?,
                webhook_url: (!url.is_empty()).then_some(url),
                max_in_flight: get::<i64>(r, 4)? as u32,
                created_at: from_millis(get(r, 5)?),
                target: WebhookId::from_trusted(get(r, 6)?),
                enabled: get(r, 7)?,
                disabled_reason: get::<Option<String>>(r, 8)?
                    .map(|s| DisabledReason::parse(&s).ok_or_else(|| corrupt("disabled reason", &s)))
                    .transpose()?,
                signature: named(&get::<String>(r, 9)?, "signature", SignatureScheme::parse)?,
            })
        }

        /// A row of [`message_columns!`]($crate::message_columns).
        pub(crate) fn message_from_row(r: &$row) -> StoreResult<Message> {
            Ok(Message {
                id: MessageId::from_trusted(get(r, 0)?),
                account_id: AccountId::from_trusted(get(r, 1)?),
                agent: get(r, 2)?,
                conversation_id: get(r, 3)?,
                parsed: parse_json(&get::<String>(r, 4)?)?,
                auth: parse_json(&get::<String>(r, 5)?)?,
                size: get::<i64>(r, 6)? as u64,
                received_at: from_millis(get(r, 7)?),
            })
        }

        /// A row of [`event_columns!`]($crate::event_columns).
        pub(crate) fn event_from_row(r: &$row) -> StoreResult<Event> {
            Ok(Event {
                id: EventId::from_trusted(get(r, 0)?),
                event_type: get(r, 1)?,
                created_at: from_millis(get(r, 2)?),
                deliveries: get::<i64>(r, 3)? as u32,
                agent_id: get(r, 4)?,
                conversation_id: get(r, 5)?,
                labels: parse_json(&get::<String>(r, 6)?)?,
                envelope: get(r, 7)?,
                ordering_key: get(r, 8)?,
            })
        }
    };
}

/// What [`sql_rows!`](crate::sql_rows) expansions name (not an API).
#[doc(hidden)]
pub mod __private {
    pub use crate::{Account, Agent, Attempt, Delivery, Event, Message, StoreError, StoreResult, Webhook};
    pub use herald_domain::{
        AccountId, AgentAddress, AttemptKind, Concurrency, DeliveryControl, DeliveryId, DeliveryStatus, DisabledReason,
        EventId, MessageId, OnFinalFailure, OrderingMode, SignatureScheme, WebhookId, from_millis,
    };
}
