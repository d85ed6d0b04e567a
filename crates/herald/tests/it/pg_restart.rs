//! A PostgreSQL restart mid-stream, on a private cluster of this test's own (so the shared
//! test server is never disturbed): publishes during the outage get 503, `/readyz` reports
//! it, and afterwards everything acknowledged is delivered, wake-ups included.

use crate::support::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

fn as_postgres(bin: &Path, tool: &str, args: &[&str]) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(tool))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Cluster {
    /// A fresh cluster on a free loopback port, or `None` (skipped) where this machine
    /// cannot make one (no PostgreSQL binaries or not root). In CI it must work.
    fn create() -> Option<Self> {
        let required = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
        let bin = std::fs::read_dir("/usr/lib/postgresql").ok().and_then(|d| {
            d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).max()
        });
        let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
        let Some(bin) = bin.filter(|_| is_root) else {
            assert!(!required, "PostgreSQL restart test: needs /usr/lib/postgresql/*/bin and root, as in CI");
            eprintln!("pg restart test skipped: needs PostgreSQL binaries and root");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        Command::new("chmod").arg("777").arg(dir.path()).status().unwrap();
        assert!(
            as_postgres(&bin, "initdb", &["-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres"]),
            "initdb"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let c = Self { bin, data, port, _dir: dir };
        assert!(c.start(), "pg_ctl start");
        Some(c)
    }

    fn start(&self) -> bool {
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.data.display());
        as_postgres(&self.bin, "pg_ctl", &["-D", self.data.to_str().unwrap(), "-o", &opts, "-w", "start"])
    }

    fn stop(&self) -> bool {
        as_postgres(&self.bin, "pg_ctl", &["-D", self.data.to_str().unwrap(), "-m", "fast", "-w", "stop"])
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn a_postgres_restart_is_survived_with_503s_during_the_outage_and_no_losses() {
    let Some(pg) = tokio::task::spawn_blocking(Cluster::create).await.unwrap() else {
        return;
    };
    let rx = Receiver::start().await;
    let url = pg.url();
    let app = spawn_app_with(Options {
        tweak: Box::new(move |s| {
            s.database_url = Some(url);
            s.pg_pool_size = 4;
            s.pg_acquire_timeout = Duration::from_millis(500);
            // Delivery after the restart must come from a wake-up, not from the poll.
            s.poll_interval = Duration::from_secs(3600);
        }),
        ..Default::default()
    })
    .await;
    app.webhook(&rx.url("pgr")).await;
    let mut ids = std::collections::HashSet::new();
    for _ in 0..5 {
        ids.insert(app.publish_received().await["id"].as_str().unwrap().to_owned());
    }
    rx.wait_for("pgr", 5).await;

    assert!(
        tokio::task::spawn_blocking({
            let (bin, data) = (pg.bin.clone(), pg.data.clone());
            move || as_postgres(&bin, "pg_ctl", &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"])
        })
        .await
        .unwrap()
    );
    let (status, body) =
        app.call(reqwest::Method::POST, "/api/v1/events", Some(json!({"type": "email.received", "data": {}}))).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["type"], "/problems/unavailable");
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);

    let (bin, data, port) = (pg.bin.clone(), pg.data.clone(), pg.port);
    assert!(
        tokio::task::spawn_blocking(move || {
            let opts = format!("-p {port} -k {} -c listen_addresses=127.0.0.1", data.display());
            as_postgres(&bin, "pg_ctl", &["-D", data.to_str().unwrap(), "-o", &opts, "-w", "start"])
        })
        .await
        .unwrap()
    );
    eventually("/readyz reports the store back", || async {
        let r = app.http.get(app.url("/readyz")).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    // Publish through another process: only the re-established LISTEN can wake this one.
    let other = herald_store_postgres::PgStore::open(&pg.url(), &Default::default()).await.unwrap();
    let account = herald_store::Accounts::account_by_name(&other, "default").await.unwrap().unwrap();
    let id = herald_domain::EventId::generate();
    let now = time::OffsetDateTime::now_utc();
    let data = serde_json::value::RawValue::from_string("{}".into()).unwrap();
    herald_store::EventLog::publish(
        &other,
        herald_store::NewEvent {
            id: id.clone(),
            account_id: account.id,
            event_type: "email.received".into(),
            envelope: herald_domain::Envelope::build(&id, "email.received", now, &data),
            routing: Default::default(),
            ordering_key: None,
            idempotency_key: None,
            created_at: now,
        },
        &Default::default(),
    )
    .await
    .unwrap();
    ids.insert(id.to_string());
    ids.insert(app.publish_received().await["id"].as_str().unwrap().to_owned());
    let got = eventually("every acknowledged event delivered after the restart", || async {
        let got: std::collections::HashSet<String> =
            rx.received("pgr").iter().map(|r| r.header("webhook-id").to_owned()).collect();
        (got.len() == ids.len()).then_some(got)
    })
    .await;
    assert_eq!(got, ids);
}
