//! Fresh, dropped-afterwards databases for tests (`HERALD_TEST_DATABASE_URL`) and benches.
//!
//! Without the variable a test is skipped with a message — unless `CI` is set, where a
//! missing PostgreSQL fails the test: in CI the PostgreSQL tests must run.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// A database that exists for one test (or one bench workload).
pub struct TestDb {
    pub url: String,
    admin_url: String,
    name: String,
    dropped: bool,
}

impl TestDb {
    /// Creates a new empty database, or `None` (after saying so) when no server is configured.
    pub async fn create(test: &str) -> Option<Self> {
        let Ok(admin_url) = std::env::var("HERALD_TEST_DATABASE_URL") else {
            if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
                panic!("{test}: HERALD_TEST_DATABASE_URL is not set, and in CI the PostgreSQL tests must run");
            }
            eprintln!("{test}: skipped (set HERALD_TEST_DATABASE_URL=postgres://… to run the PostgreSQL tests)");
            return None;
        };
        Some(Self::create_at(&admin_url, "herald_t").await.expect("create a test database"))
    }

    /// Creates a scratch database `<prefix>_<random>` on the server of `admin_url`.
    pub async fn create_at(admin_url: &str, prefix: &str) -> Result<Self, sqlx::Error> {
        let suffix = herald_domain::EventId::generate().as_str().trim_start_matches("evt_").to_owned();
        let name = format!("{prefix}_{suffix}");
        let mut admin = PgConnection::connect(admin_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await?;
        let _ = admin.close().await;
        let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin_url);
        Ok(Self { url: format!("{base}/{name}"), admin_url: admin_url.to_owned(), name, dropped: false })
    }

    /// Drops the database now, from the caller's runtime (so its own connections keep being
    /// served while the server terminates them). `Drop` does it otherwise.
    pub async fn drop_now(mut self) {
        if let Ok(mut admin) = PgConnection::connect(&self.admin_url).await {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            if sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await.is_ok() {
                self.dropped = true;
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside async; use a small runtime of its own on a thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
    }
}
