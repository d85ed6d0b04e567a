//! Row wrappers: turn SQLite rows into store records, keeping sqlx out of the domain.

use herald_domain::{AccountId, DeliveryId, DeliveryStatus, DisabledReason, EventId, WebhookId, from_millis};
use herald_store::{Account, Attempt, Delivery, StoreError, StoreResult, Webhook};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

pub(crate) fn get<'r, T>(r: &'r SqliteRow, i: usize) -> StoreResult<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    r.try_get(i).map_err(|e| StoreError::corrupt("a column", e))
}

pub(crate) use herald_store::codec::parse_json;

/// A stored `what` that does not parse.
pub(crate) fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::corrupt(what, format!("{value:?}"))
}

pub(crate) fn account_from_row(r: &SqliteRow) -> StoreResult<Account> {
    Ok(Account { id: AccountId::from_trusted(get(r, 0)?), name: get(r, 1)?, created_at: from_millis(get(r, 2)?) })
}

pub(crate) fn webhook_from_row(r: &SqliteRow) -> StoreResult<Webhook> {
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
    })
}

pub(crate) fn delivery_from_row(r: &SqliteRow) -> StoreResult<Delivery> {
    let status: String = get(r, 4)?;
    Ok(Delivery {
        id: DeliveryId::from_trusted(get(r, 0)?),
        webhook_id: WebhookId::from_trusted(get(r, 1)?),
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

pub(crate) fn attempt_from_row(r: &SqliteRow) -> StoreResult<Attempt> {
    Ok(Attempt {
        number: get::<i64>(r, 0)? as u32,
        started_at: from_millis(get(r, 1)?),
        duration_ms: get::<i64>(r, 2)? as u64,
        status_code: get::<i64>(r, 3)? as u16,
        error: get(r, 4)?,
        response_body: get(r, 5)?,
    })
}

pub(crate) fn event_from_row(r: &SqliteRow) -> StoreResult<herald_store::Event> {
    Ok(herald_store::Event {
        id: EventId::from_trusted(get(r, 0)?),
        event_type: get(r, 1)?,
        created_at: from_millis(get(r, 2)?),
        deliveries: get::<i64>(r, 3)? as u32,
        agent_id: get(r, 4)?,
        conversation_id: get(r, 5)?,
        labels: parse_json(&get::<String>(r, 6)?)?,
        envelope: get(r, 7)?,
    })
}

/// Column lists shared by the queries that map rows with the functions above.
macro_rules! webhook_columns {
    () => {
        "id, account_id, url, description, events, filters, enabled, disabled_reason, \
         auto_disabled_at, max_in_flight, created_at, updated_at, last_delivered_at"
    };
}

macro_rules! event_columns {
    () => {
        "id, type, created_at, deliveries, agent_id, conversation_id, labels, payload"
    };
}

macro_rules! delivery_columns {
    () => {
        "id, webhook_id, event_id, event_type, status, attempts, max_attempts, \
         last_error, last_status_code, last_attempt_at, next_retry_at, created_at"
    };
}
