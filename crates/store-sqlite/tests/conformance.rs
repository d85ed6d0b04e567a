//! The shared store conformance suite against a real SQLite file per test.

use herald_store_sqlite::{Durability, SqliteStore};

async fn fresh(_test: &str) -> Option<(SqliteStore, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    Some((SqliteStore::open(&url, Durability::Process).await.unwrap(), dir))
}

herald_store::conformance_tests!(fresh);
