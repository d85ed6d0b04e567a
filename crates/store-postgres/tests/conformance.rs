//! The shared store conformance suite against a fresh PostgreSQL database per test.

use herald_store_postgres::test_db::TestDb;
use herald_store_postgres::{PgSettings, PgStore};

async fn fresh(test: &str) -> Option<(PgStore, TestDb)> {
    let db = TestDb::create(test).await?;
    let settings = PgSettings { pool_size: 6, ..PgSettings::default() };
    Some((PgStore::open(&db.url, &settings).await.unwrap(), db))
}

herald_store::conformance_tests!(fresh);
