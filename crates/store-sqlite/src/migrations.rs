//! The embedded migrations: what this build knows, what a database still needs, and the
//! refusal to open a database a newer Herald migrated.

use crate::unavailable;
use herald_store::{StoreResult, schema};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use std::str::FromStr;

/// The embedded migrator (public for the upgrade tests, which apply a prefix of it).
pub fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations")
}

/// (version, description) of every embedded migration.
pub fn known() -> Vec<(i64, String)> {
    migrator().iter().map(|m| (m.version, m.description.to_string())).collect()
}

/// The versions applied to the database on `conn` (none before the first migration).
pub(crate) async fn applied(conn: &mut SqliteConnection) -> StoreResult<Vec<i64>> {
    let has_table: Option<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
            .fetch_optional(&mut *conn)
            .await
            .map_err(unavailable)?;
    if has_table.is_none() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success").fetch_all(conn).await.map_err(unavailable)
}

/// The migrations the database at `url` still needs (`herald migrate --dry-run`); an error
/// when a newer Herald migrated it. Changes nothing (a database that does not exist yet
/// needs them all).
pub async fn pending(url: &str) -> StoreResult<Vec<(i64, String)>> {
    let opts = SqliteConnectOptions::from_str(url).map_err(unavailable)?;
    let exists = opts.get_filename().exists();
    if !exists {
        return schema::pending(&[], &known());
    }
    let mut conn = opts.read_only(true).connect().await.map_err(unavailable)?;
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
