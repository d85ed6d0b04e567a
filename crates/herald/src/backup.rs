//! `herald backup` and `herald restore` for the SQLite store, and the lock by which a
//! running `herald serve` says it holds its database file.

use crate::Settings;
use anyhow::{Context, bail};
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

/// The database file of a `sqlite:` URL (`None` for another store).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the lock of the database file `db` (a `.lock` file beside it), held while the
/// returned file is open; the OS drops it when the process ends, however it ends.
pub fn lock_database(db: &Path) -> anyhow::Result<File> {
    let path = lock_path(db);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => {
            bail!("a running `herald serve` holds {} (its lock {} is taken)", db.display(), path.display())
        }
        Err(TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

fn sqlite_db(settings: &Settings) -> anyhow::Result<PathBuf> {
    let url = settings.database_url();
    sqlite_path(&url).with_context(|| {
        format!(
            "backup and restore are for the SQLite store; for PostgreSQL use pg_dump ({})",
            settings.database_url_redacted()
        )
    })
}

/// Writes a consistent copy of the live database to `dest` (a new file).
pub async fn backup(settings: &Settings, dest: &Path) -> anyhow::Result<()> {
    let db = sqlite_db(settings)?;
    if !db.exists() {
        bail!("no database at {}", db.display());
    }
    herald_store_sqlite::backup::backup(&settings.database_url(), dest)
        .await
        .with_context(|| format!("backing up {} to {}", db.display(), dest.display()))?;
    let check = herald_store_sqlite::backup::integrity_check(dest).await?;
    if check != "ok" {
        bail!("the copy at {} fails its integrity check: {check}", dest.display());
    }
    Ok(())
}

/// Replaces the database with the copy at `src`, unless a running server holds it. The
/// copy must pass `PRAGMA integrity_check`, be a Herald database, and not be newer than
/// this binary; the database it replaces is kept beside it as `<name>.before-restore`.
pub async fn restore(settings: &Settings, src: &Path) -> anyhow::Result<PathBuf> {
    let db = sqlite_db(settings)?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let _lock = lock_database(&db).context("restore refused")?;
    if !src.is_file() {
        bail!("no backup at {}", src.display());
    }
    let check = herald_store_sqlite::backup::integrity_check(src)
        .await
        .with_context(|| format!("{} is not a readable SQLite database", src.display()))?;
    if check != "ok" {
        bail!("{} fails its integrity check: {check}", src.display());
    }
    let Some(version) = herald_store_sqlite::backup::schema_version(src).await? else {
        bail!("{} is not a Herald database (no migrations applied)", src.display());
    };
    let known = herald_store_sqlite::newest_migration();
    if version > known {
        bail!(
            "{} has schema version {version}, newer than this binary knows ({known}): use a newer herald",
            src.display()
        );
    }
    let staged = db.with_extension("restoring");
    std::fs::copy(src, &staged).with_context(|| format!("copying {} to {}", src.display(), staged.display()))?;
    File::open(&staged)?.sync_all()?;
    let kept = db.with_extension("db.before-restore");
    if db.exists() {
        std::fs::rename(&db, &kept).with_context(|| format!("keeping {} as {}", db.display(), kept.display()))?;
    }
    for suffix in ["-wal", "-shm"] {
        let mut side = db.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(side));
    }
    std::fs::rename(&staged, &db).with_context(|| format!("moving the copy into {}", db.display()))?;
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(sqlite_path("sqlite://./herald-data/herald.db"), Some("./herald-data/herald.db".into()));
        assert_eq!(sqlite_path("sqlite:///var/lib/h.db?mode=rwc"), Some("/var/lib/h.db".into()));
        assert_eq!(sqlite_path("postgres://x/y"), None);
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }

    #[test]
    fn a_database_is_locked_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("h.db");
        let held = lock_database(&db).unwrap();
        let err = lock_database(&db).unwrap_err().to_string();
        assert!(err.contains("running `herald serve`"), "{err}");
        drop(held);
        lock_database(&db).unwrap();
    }
}
