//! The embedded migrations: what this build knows, what a database still needs, and the
//! refusal to open a database a newer Herald migrated.

use crate::unavailable;
use herald_store::{StoreResult, schema};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use std::str::FromStr;

/// Where Herald records its migrations: a table of its own, so an application sharing the
/// database (library mode) keeps sqlx's `_sqlx_migrations` for its own.
pub const TABLE: &str = "_herald_migrations";

/// Where Herald recorded them before (sqlx's default).
pub const LEGACY_TABLE: &str = "_sqlx_migrations";

/// The embedded migrator (public for the upgrade tests, which apply a prefix of it).
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut m = sqlx::migrate!("./migrations");
    m.dangerous_set_table_name(TABLE);
    m
}

/// Herald's rows of `_sqlx_migrations` (version and checksum both Herald's), by version.
async fn legacy_rows(conn: &mut PgConnection) -> StoreResult<Option<(Vec<i64>, usize)>> {
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(LEGACY_TABLE)
        .fetch_one(&mut *conn)
        .await
        .map_err(unavailable)?;
    if exists.is_none() {
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
/// old table is dropped when nothing else was in it. Serialised across replicas.
pub(crate) async fn adopt_legacy(conn: &mut PgConnection) -> StoreResult<()> {
    use sqlx::migrate::Migrate;
    sqlx::query("SELECT pg_advisory_lock(hashtext('herald: adopt _sqlx_migrations'))")
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
    let adopted = async {
        let has_own: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(TABLE)
            .fetch_one(&mut *conn)
            .await
            .map_err(unavailable)?;
        let Some((ours, all)) = legacy_rows(conn).await? else { return Ok(()) };
        if has_own.is_some() || ours.is_empty() {
            return Ok(());
        }
        conn.ensure_migrations_table(TABLE).await.map_err(|e| herald_store::StoreError::Unavailable(Box::new(e)))?;
        sqlx::query(
            "INSERT INTO _herald_migrations (version, description, installed_on, success, checksum, execution_time) \
             SELECT version, description, installed_on, success, checksum, execution_time FROM _sqlx_migrations \
             WHERE version = ANY($1) ON CONFLICT DO NOTHING",
        )
        .bind(&ours)
        .execute(&mut *conn)
        .await
        .map_err(unavailable)?;
        // Herald's rows leave the application's table (its own migrator would not know them).
        if ours.len() == all {
            sqlx::query("DROP TABLE _sqlx_migrations").execute(&mut *conn).await.map_err(unavailable)?;
        } else {
            sqlx::query("DELETE FROM _sqlx_migrations WHERE version = ANY($1)")
                .bind(&ours)
                .execute(&mut *conn)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }
    .await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock(hashtext('herald: adopt _sqlx_migrations'))")
        .execute(&mut *conn)
        .await
        .map_err(unavailable);
    adopted.and(unlocked.map(|_| ()))
}

/// (version, description) of every embedded migration.
pub fn known() -> Vec<(i64, String)> {
    migrator().iter().map(|m| (m.version, m.description.to_string())).collect()
}

/// Creates the schema Herald's tables go to when it does not exist yet: the first entry of
/// the connection's `search_path` (set with `?options[search_path]=herald` in the URL, to
/// keep Herald's tables apart in a database the caller owns), named as PostgreSQL resolves
/// it (unquoted names fold to lower case). Nothing to do for `"$user"` or a schema that
/// exists; a replica creating it at the same moment is not an error.
pub(crate) async fn ensure_schema(conn: &mut PgConnection) -> StoreResult<()> {
    // PostgreSQL builds the statement and quotes the name (`%I`): nothing is spliced here.
    let create: Option<String> = sqlx::query_scalar(
        "SELECT format('CREATE SCHEMA IF NOT EXISTS %I', n) FROM ( \
           SELECT CASE WHEN e LIKE '\"%\"' THEN replace(substr(e, 2, length(e) - 2), '\"\"', '\"') ELSE lower(e) END AS n \
           FROM (SELECT trim(split_part(current_setting('search_path'), ',', 1)) AS e) first \
         ) named WHERE n NOT IN ('', '$user') AND NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = n)",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(unavailable)?;
    if let Some(create) = create {
        match sqlx::raw_sql(sqlx::AssertSqlSafe(create)).execute(&mut *conn).await.map_err(unavailable) {
            Ok(_) | Err(herald_store::StoreError::AlreadyExists) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The versions applied to the database on `conn` (none before the first migration;
/// Herald's rows of `_sqlx_migrations` count while they have not moved to [`TABLE`]).
pub(crate) async fn applied(conn: &mut PgConnection) -> StoreResult<Vec<i64>> {
    let has_table: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(TABLE)
        .fetch_one(&mut *conn)
        .await
        .map_err(unavailable)?;
    if has_table.is_none() {
        return Ok(legacy_rows(conn).await?.map(|(ours, _)| ours).unwrap_or_default());
    }
    sqlx::query_scalar("SELECT version FROM _herald_migrations WHERE success")
        .fetch_all(conn)
        .await
        .map_err(unavailable)
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

/// Brings the database on `conn` to this build's schema: creates Herald's schema if the
/// `search_path` names a missing one, refuses a database a newer Herald migrated, moves
/// rows of an earlier `_sqlx_migrations`, and applies what is missing (under sqlx's
/// migration lock, so replicas starting together take turns).
pub(crate) async fn apply(conn: &mut PgConnection) -> StoreResult<()> {
    ensure_schema(conn).await?;
    schema::pending(&applied(conn).await?, &known())?;
    adopt_legacy(conn).await?;
    migrator().run(conn).await.map_err(refused)?;
    Ok(())
}
