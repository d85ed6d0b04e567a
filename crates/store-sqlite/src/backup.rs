//! Copies of a live database: `VACUUM INTO` on a connection of its own (a consistent
//! snapshot of one read transaction; the server goes on writing), and the checks a restore
//! makes of a copy before it replaces anything.

use crate::unavailable;
use herald_store::{StoreError, StoreResult};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

async fn connect(url: &str, read_only: bool) -> StoreResult<sqlx::SqliteConnection> {
    open_options(SqliteConnectOptions::from_str(url).map_err(unavailable)?, read_only).await
}

/// A connection to the database file at `path` (taken as is: no URL decoding).
async fn connect_file(path: &Path, read_only: bool) -> StoreResult<sqlx::SqliteConnection> {
    open_options(SqliteConnectOptions::new().filename(path), read_only).await
}

async fn open_options(opts: SqliteConnectOptions, read_only: bool) -> StoreResult<sqlx::SqliteConnection> {
    opts.read_only(read_only).busy_timeout(Duration::from_secs(10)).connect().await.map_err(unavailable)
}

/// Writes a consistent copy of the database at `url` to `dest` (which must not exist),
/// while other processes keep reading and writing it.
pub async fn backup(url: &str, dest: &Path) -> StoreResult<()> {
    if dest.exists() {
        return Err(StoreError::Misconfigured(format!("{} already exists", dest.display())));
    }
    let dest = dest.to_str().ok_or_else(|| StoreError::Misconfigured("the backup path is not UTF-8".into()))?;
    let mut conn = connect(url, false).await?;
    sqlx::query("VACUUM INTO ?").bind(dest).execute(&mut conn).await.map_err(unavailable)?;
    conn.close().await.map_err(unavailable)
}

/// `PRAGMA integrity_check` of the database file at `path` (opened read-only): `ok`, or
/// what SQLite found. A file that is no SQLite database is an error.
pub async fn integrity_check(path: &Path) -> StoreResult<String> {
    let mut conn = connect_file(path, true).await?;
    let rows: Vec<String> =
        sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&mut conn).await.map_err(unavailable)?;
    conn.close().await.map_err(unavailable)?;
    Ok(rows.join("; "))
}

/// The newest migration applied to the database file at `path`, if it is a Herald database.
pub async fn schema_version(path: &Path) -> StoreResult<Option<i64>> {
    let mut conn = connect_file(path, true).await?;
    let applied = crate::migrations::applied(&mut conn).await?;
    conn.close().await.map_err(unavailable)?;
    Ok(applied.into_iter().max())
}

/// The database file a `sqlite:` URL names, decoded as sqlx decodes it (`None` for an
/// in-memory database or another scheme).
pub fn database_file(url: &str) -> Option<std::path::PathBuf> {
    if !url.starts_with("sqlite:") || url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    let opts = SqliteConnectOptions::from_str(url).ok()?;
    let file = opts.get_filename();
    (!file.as_os_str().is_empty() && file != Path::new(":memory:")).then(|| file.to_path_buf())
}

/// Moves everything the WAL of the database at `path` holds into the database file and
/// empties the WAL (`wal_checkpoint(TRUNCATE)`): the file alone is then the whole database.
/// Only for a database no server has open.
pub async fn checkpoint_into_file(path: &Path) -> StoreResult<()> {
    let mut conn = connect_file(path, false).await?;
    let (busy, _, _): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&mut conn).await.map_err(unavailable)?;
    conn.close().await.map_err(unavailable)?;
    if busy != 0 {
        return Err(StoreError::Misconfigured(format!(
            "{} is in use: its WAL could not be checkpointed",
            path.display()
        )));
    }
    Ok(())
}
