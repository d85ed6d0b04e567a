//! Library mode (`herald-outbox`): what a publish does, on a connection whose transaction the
//! caller owns, so its own rows and the event commit or roll back together.

use crate::unavailable;
use herald_domain::AccountId;
use herald_store::{FanoutRules, NewEvent, Published, StoreResult};
use sqlx::PgConnection;

/// Publishes `new` on `conn` (inside the caller's transaction): the event and one delivery per
/// matching enabled subscription, idempotency keys honoured — the fan-out of every publish —
/// and, when it made deliveries, a `NOTIFY` that PostgreSQL delivers to every running replica
/// only if the caller commits.
pub async fn publish_and_notify(conn: &mut PgConnection, new: NewEvent, rules: &FanoutRules) -> StoreResult<Published> {
    // The API's two paths: one statement without an idempotency key, serialised per key with one.
    let published = match new.idempotency_key {
        None => crate::publish::publish_one_statement_on(&mut *conn, new, rules).await?,
        Some(_) => crate::publish::publish_on(&mut *conn, new, rules).await?,
    };
    if published.deliveries > 0 && !published.replayed {
        sqlx::query("SELECT pg_notify($1, '')").bind(crate::CHANNEL).execute(&mut *conn).await.map_err(unavailable)?;
    }
    Ok(published)
}

/// Whether `name` is one of the account's registered event types, read on `conn`.
pub async fn custom_event_type_exists_on(
    conn: &mut PgConnection,
    account: &AccountId,
    name: &str,
) -> StoreResult<bool> {
    crate::events::custom_type_exists(conn, account, name).await
}

/// Runs `f` on `conn` with `search_path` set to `schema` (Herald's tables in a schema of
/// their own) for the caller's transaction, then puts the caller's `search_path` back, also
/// when `f` fails.
pub async fn with_search_path<T>(
    conn: &mut PgConnection,
    schema: Option<&str>,
    f: impl AsyncFnOnce(&mut PgConnection) -> StoreResult<T>,
) -> StoreResult<T> {
    let Some(schema) = schema else { return f(conn).await };
    let before: String =
        sqlx::query_scalar("SELECT current_setting('search_path')").fetch_one(&mut *conn).await.map_err(unavailable)?;
    sqlx::query("SELECT set_config('search_path', quote_ident($1), true)")
        .bind(schema)
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    let out = f(&mut *conn).await;
    let restored = sqlx::query("SELECT set_config('search_path', $1, true)")
        .bind(&before)
        .execute(&mut *conn)
        .await
        .map_err(unavailable);
    let out = out?;
    restored?;
    Ok(out)
}

/// Whether `account` exists, read on `conn` (a publish for an unknown account is refused).
pub async fn account_exists_on(conn: &mut PgConnection, account: &AccountId) -> StoreResult<bool> {
    crate::accounts::account_exists(conn, account).await
}
