//! `herald backup` and `herald restore` for the SQLite store, and the lock by which a
//! running `herald serve` says it holds its database file.

use crate::Settings;
use anyhow::{Context, bail};
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

/// The database file of a `sqlite:` URL, decoded as the store decodes it (`None` for
/// another store).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    herald_store_sqlite::backup::database_file(url)
}

fn lock_path(db: &Path) -> PathBuf {
    side_file(db, ".lock")
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
/// this binary; the database it replaces is kept whole (its WAL checkpointed into it)
/// beside it as `<name>.before-restore-<unix time>`.
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
    // The copy goes beside the database first, then replaces it in one rename: at no
    // moment is there no database (a crash leaves the old one or the new one).
    let staged = side_file(&db, ".restoring");
    std::fs::copy(src, &staged).with_context(|| format!("copying {} to {}", src.display(), staged.display()))?;
    File::open(&staged)?.sync_all()?;
    let kept = side_file(&db, &format!(".before-restore-{}", time::OffsetDateTime::now_utc().unix_timestamp()));
    if db.exists() {
        // Everything the old database's WAL holds goes into its file, which is then kept whole.
        herald_store_sqlite::backup::checkpoint_into_file(&db)
            .await
            .context("checkpointing the database it replaces")?;
        std::fs::hard_link(&db, &kept)
            .or_else(|_| std::fs::copy(&db, &kept).map(|_| ()))
            .with_context(|| format!("keeping {} as {}", db.display(), kept.display()))?;
    }
    for suffix in ["-wal", "-shm"] {
        match std::fs::remove_file(side_file(&db, suffix)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}{suffix}", db.display()));
            }
            _ => {}
        }
    }
    std::fs::rename(&staged, &db).with_context(|| format!("moving the copy into {}", db.display()))?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(kept)
}

/// `db` with `suffix` appended to its file name.
fn side_file(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(sqlite_path("sqlite://./herald-data/herald.db"), Some("./herald-data/herald.db".into()));
        assert_eq!(sqlite_path("sqlite:///var/lib/h.db?mode=rwc"), Some("/var/lib/h.db".into()));
        assert_eq!(sqlite_path("sqlite:///var/lib/my%20herald/h.db"), Some("/var/lib/my herald/h.db".into()));
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
