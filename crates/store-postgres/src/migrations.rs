//! The embedded migrations: what this build knows, what a database still needs, and the
//! refusal to open a database a newer Herald migrated.

use crate::unavailable;
use herald_store::{StoreResult, schema};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::str::FromStr;

/// The embedded migrator (public for the upgrade tests, which apply a prefix of it).
pub fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations")
}

/// (version, description) of every embedded migration.
pub fn known() -> Vec<(i64, String)> {
    migrator().iter().map(|m| (m.version, m.description.to_string())).collect()
}

/// Creates the schema Herald's tables go to when it does not exist yet: the first entry of
/// the connection's `search_path` (set with `?options[search_path]=herald` in the URL, to
/// keep Herald's tables apart in a database the caller owns). Nothing to do when an entry of
/// the path exists already (`public`, by default).
pub(crate) async fn ensure_schema(conn: &mut PgConnection) -> StoreResult<()> {
    let current: Option<String> =
        sqlx::query_scalar("SELECT current_schema()").fetch_one(&mut *conn).await.map_err(unavailable)?;
    if current.is_some() {
        return Ok(());
    }
    // PostgreSQL quotes the name (`%I`): the statement is built by the server, not here.
    let create: Option<String> = sqlx::query_scalar(
        "SELECT format('CREATE SCHEMA IF NOT EXISTS %I', trim(both '\"' from trim(split_part(current_setting('search_path'), ',', 1)))) \
         WHERE trim(split_part(current_setting('search_path'), ',', 1)) NOT IN ('', '\"$user\"', '$user')",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(unavailable)?;
    if let Some(create) = create {
        sqlx::raw_sql(sqlx::AssertSqlSafe(create)).execute(&mut *conn).await.map_err(unavailable)?;
    }
    Ok(())
}

/// The versions applied to the database on `conn` (none before the first migration).
pub(crate) async fn applied(conn: &mut PgConnection) -> StoreResult<Vec<i64>> {
    let has_table: Option<String> = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
        .fetch_one(&mut *conn)
        .await
        .map_err(unavailable)?;
    if has_table.is_none() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(conn).await.map_err(unavailable)
}

/// The migrations the database at `url` still needs (`herald migrate --dry-run`); an error
/// when a newer Herald migrated it. Changes nothing.
pub async fn pending(url: &str) -> StoreResult<Vec<(i64, String)>> {
    let mut conn = PgConnectOptions::from_str(url).map_err(unavailable)?.connect().await.map_err(unavailable)?;
    let done = applied(&mut conn).await?;
    conn.close().await.map_err(unavailable)?;
    schema::pending(&done, &known())
}

/// A migration failure as the store reports it: a migration this build does not have is
/// named in words.
pub(crate) fn refused(e: sqlx::migrate::MigrateError) -> herald_store::StoreError {
    match e {
        sqlx::migrate::MigrateError::VersionMissing(v) => schema::unknown_migration(v),
        e => herald_store::StoreError::Unavailable(Box::new(e)),
    }
}
