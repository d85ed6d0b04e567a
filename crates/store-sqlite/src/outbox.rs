//! Library mode (`herald-outbox`): what a publish does, on a connection whose transaction the
//! caller owns, so its own rows and the event commit or roll back together.

use herald_domain::AccountId;
use herald_store::{FanoutRules, NewEvent, Published, StoreResult};
use sqlx::SqliteConnection;

/// Publishes `new` on `conn` (inside the caller's transaction): the event and one delivery per
/// matching enabled subscription, idempotency keys honoured — the fan-out of every publish.
/// Wakes nothing: a Herald on this file finds the work at its next poll, or at once when the
/// caller wakes its in-process engine (`herald::Embedded::wake`).
pub async fn publish_on(conn: &mut SqliteConnection, new: &NewEvent, rules: &FanoutRules) -> StoreResult<Published> {
    let mut published = crate::publish::publish_in(conn, std::iter::once((new, rules))).await?;
    Ok(published.remove(0))
}

/// Whether `name` is one of the account's registered event types, read on `conn`.
pub async fn custom_event_type_exists_on(
    conn: &mut SqliteConnection,
    account: &AccountId,
    name: &str,
) -> StoreResult<bool> {
    crate::events::custom_type_exists(conn, account, name).await
}

/// Whether `account` exists, read on `conn` (a publish for an unknown account is refused).
pub async fn account_exists_on(conn: &mut SqliteConnection, account: &AccountId) -> StoreResult<bool> {
    crate::accounts::account_exists(conn, account).await
}
