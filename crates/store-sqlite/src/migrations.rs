//! The embedded migrations: what this build knows, what a database still needs, and the
//! refusal to open a database a newer Herald migrated.

use crate::unavailable;
use herald_store::{StoreResult, schema};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use std::str::FromStr;

/// Where Herald records its migrations: a table of its own, so an application sharing the
/// file (library mode) keeps sqlx's `_sqlx_migrations` for its own.
pub const TABLE: &str = "_herald_migrations";

/// Where Herald recorded them before (sqlx's default).
pub const LEGACY_TABLE: &str = "_sqlx_migrations";

/// The embedded migrator (public for the upgrade tests, which apply a prefix of it).
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut m = sqlx::migrate!("./migrations");
    m.dangerous_set_table_name(TABLE);
    m
}

async fn has_table(conn: &mut SqliteConnection, name: &str) -> StoreResult<bool> {
    let found: Option<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?")
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(unavailable)?;
    Ok(found.is_some())
}

/// Herald's rows of `_sqlx_migrations` (version and checksum both Herald's), and how many
/// rows it has in all; `None` without that table.
async fn legacy_rows(conn: &mut SqliteConnection) -> StoreResult<Option<(Vec<i64>, usize)>> {
    if !has_table(conn, LEGACY_TABLE).await? {
        return Ok(None);
    }
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as("SELECT version, checksum FROM _sqlx_migrations")
        .fetch_all(&mut *conn)
        .await
        .map_err(unavailable)?;
    let known = migrator();
    let ours = rows
        .iter()
        .filter(|(v, sum)| known.iter().any(|m| m.version == *v && *m.checksum == **sum))
        .map(|(v, _)| *v)
        .collect();
    Ok(Some((ours, rows.len())))
}

/// A database migrated before Herald had its own table: its rows move from
/// `_sqlx_migrations` into [`TABLE`] (only Herald's: same version and checksum), and the
/// old table is dropped when nothing else was in it. One transaction.
pub(crate) async fn adopt_legacy(conn: &mut SqliteConnection) -> StoreResult<()> {
    use sqlx::migrate::Migrate;
    if has_table(conn, TABLE).await? {
        return Ok(());
    }
    let Some((ours, all)) = legacy_rows(conn).await? else { return Ok(()) };
    if ours.is_empty() {
        return Ok(());
    }
    conn.ensure_migrations_table(TABLE).await.map_err(|e| herald_store::StoreError::Unavailable(Box::new(e)))?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(unavailable)?;
    for v in &ours {
        sqlx::query(
            "INSERT OR IGNORE INTO _herald_migrations (version, description, installed_on, success, checksum, \
             execution_time) SELECT version, description, installed_on, success, checksum, execution_time \
             FROM _sqlx_migrations WHERE version = ?",
        )
        .bind(v)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    // Herald's rows leave the application's table (its own migrator would not know them).
    if ours.len() == all {
        sqlx::query("DROP TABLE _sqlx_migrations").execute(&mut *tx).await.map_err(unavailable)?;
    } else {
        for v in &ours {
            sqlx::query("DELETE FROM _sqlx_migrations WHERE version = ?")
                .bind(v)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        }
    }
    tx.commit().await.map_err(unavailable)
}

/// (version, description) of every embedded migration.
pub fn known() -> Vec<(i64, String)> {
    migrator().iter().map(|m| (m.version, m.description.to_string())).collect()
}

/// The versions applied to the database on `conn` (none before the first migration;
/// Herald's rows of `_sqlx_migrations` count while they have not moved to [`TABLE`]).
pub(crate) async fn applied(conn: &mut SqliteConnection) -> StoreResult<Vec<i64>> {
    if !has_table(conn, TABLE).await? {
        return Ok(legacy_rows(conn).await?.map(|(ours, _)| ours).unwrap_or_default());
    }
    sqlx::query_scalar("SELECT version FROM _herald_migrations WHERE success")
        .fetch_all(conn)
        .await
        .map_err(unavailable)
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
