//! `herald bench` as a user sees Herald: `herald serve` (one per replica), the publishers
//! (`herald bench-load`) and the receiver (`herald bench-sink`) each in a process of its own,
//! talking HTTP over loopback. Reports delivery and publish rates, publish→receive latency,
//! the Herald process's peak RSS, CPU per process and how idle the machine was.

use super::child::{Child, command};
use super::measure::{Watch, peak_rss_mib};
use super::{BenchArgs, Workload};
use anyhow::Context;
use serde_json::json;
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn run(args: &BenchArgs, list: Vec<Workload>) -> anyhow::Result<()> {
    let store = match &args.database_url {
        Some(_) => format!("PostgreSQL (fresh database per workload), {} replica(s)", args.replicas),
        None => format!("SQLite synchronous={}", args.sqlite_synchronous),
    };
    println!(
        "herald bench — {} cores, {store}, {} publishers, webhook max_in_flight={}, signature={}; separate \
         processes: herald serve, herald bench-load (publishers), herald bench-sink (receiver), HTTP over loopback",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        args.clients,
        args.webhook_max_in_flight,
        args.signature
    );
    for wl in list {
        run_one(args, wl).await?;
    }
    Ok(())
}

/// What `herald bench-load` prints when every event is acknowledged.
#[derive(serde::Deserialize)]
struct Published {
    start_us: u64,
    end_us: u64,
    sent_us: Vec<u64>,
}

/// What `herald bench-sink` answers on `/__received`.
#[derive(serde::Deserialize)]
struct Received {
    count: u64,
    /// Requests answered 503 (beyond a receiver's capacity).
    #[serde(default)]
    rejected: u64,
    received: Vec<(u64, u64)>,
}

async fn run_one(args: &BenchArgs, wl: Workload) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let scratch = match &args.database_url {
        Some(url) => Some(
            herald_store_postgres::test_db::TestDb::create_at(url, "herald_bench")
                .await
                .context("creating a scratch database for the bench")?,
        ),
        None => None,
    };
    let key = herald_domain::ApiKey::generate();
    let mut heralds = Vec::new();
    let mut bases = Vec::new();
    for i in 0..args.replicas {
        let mut cmd = command("serve")?;
        cmd.env("HERALD_LISTEN", "127.0.0.1:0")
            .env("HERALD_DATA_DIR", dir.path())
            .env("HERALD_ALLOW_PRIVATE_TARGETS", "true")
            .env("HERALD_BOOTSTRAP_API_KEY", key.expose())
            .env("HERALD_RETRY_JITTER", "0")
            .env("HERALD_SQLITE_SYNCHRONOUS", &args.sqlite_synchronous)
            .env("HERALD_MAX_WEBHOOKS_PER_ACCOUNT", (wl.webhooks.max(50) + 1).to_string());
        if let Some(db) = &scratch {
            cmd.env("HERALD_DATABASE_URL", &db.url);
        }
        if let Some(retention) = &args.retention {
            // The sink never fails, so no retry is ever due: a one-second schedule lets a short
            // retention pass Herald's check that it outlasts every retry.
            cmd.env("HERALD_RETENTION", retention)
                .env("HERALD_JANITOR_INTERVAL", "1s")
                .env("HERALD_RETRY_SCHEDULE", "1s");
        }
        let name = if args.replicas > 1 { format!("herald serve #{}", i + 1) } else { "herald serve".into() };
        let mut child = Child::spawn(&name, cmd, dir.path().join(format!("serve-{i}.log")))?;
        bases.push(child.line_after("herald listening on ", START_TIMEOUT).await?);
        heralds.push(child);
    }
    let mut cmd = command("bench-sink")?;
    cmd.args(["--listen", "127.0.0.1:0"]);
    if let Some(capacity) = wl.receiver_capacity {
        cmd.args(["--capacity", &capacity.to_string(), "--delay-ms", &wl.receiver_delay_ms.to_string()]);
    }
    let mut sink = Child::spawn("herald bench-sink", cmd, dir.path().join("sink.log"))?;
    let sink_base = sink.line_after("bench-sink listening on ", START_TIMEOUT).await?;

    let http = reqwest::Client::new();
    let groups = (wl.webhooks / wl.fanout).max(1);
    for i in 0..wl.webhooks {
        // With a receiver capacity, each webhook its own receiver (a path of the sink).
        let path = if wl.receiver_capacity.is_some() { format!("sink/{i}") } else { "sink".into() };
        let mut body = json!({"url": format!("{sink_base}/{path}"), "events": ["email.received"],
            "max_in_flight": args.webhook_max_in_flight, "signature": args.signature});
        if wl.webhooks > 1 {
            body["filters"] = json!({"labels": [format!("g{}", i % groups)]});
        }
        for (k, v) in wl.controls.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        let r = http.post(format!("{}/api/v1/webhooks", bases[0])).bearer_auth(key.expose()).json(&body).send().await?;
        anyhow::ensure!(r.status() == 201, "creating webhook: {}", r.text().await?);
    }

    if args.backlog > 0 {
        let shape = herald_store::backlog::Backlog {
            rows: args.backlog,
            webhooks: args.backlog_webhooks,
            accounts: args.backlog_accounts,
        };
        let postgres = scratch.as_ref().map(|d| d.url.clone());
        seed_backlog(&http, &bases[0], &key, &shape, postgres, dir.path()).await?;
    }

    let mut cmd = command("bench-load")?;
    cmd.env("HERALD_API_KEY", key.expose());
    for base in &bases {
        cmd.args(["--target", base]);
    }
    cmd.args(["--clients", &args.clients.to_string(), "--events", &wl.events.to_string()]);
    cmd.args(["--groups", &groups.to_string(), "--keys", &wl.keys.to_string()]);
    if let Some(rate) = wl.rate {
        cmd.args(["--rate", &rate.to_string()]);
    }
    let mut load = Child::spawn("herald bench-load", cmd, dir.path().join("load.log"))?;
    load.line_after("bench-load ready", START_TIMEOUT).await?;

    let mut processes: Vec<(String, u32)> = heralds.iter().map(|h| (h.name.clone(), h.pid)).collect();
    processes.push((load.name.clone(), load.pid));
    processes.push((sink.name.clone(), sink.pid));
    processes.push(("herald bench (this process)".into(), std::process::id()));
    let watch = Watch { processes, postgres: args.database_url.is_some() };

    let expected = wl.events * wl.fanout;
    let bar = indicatif::ProgressBar::new(expected);
    bar.set_style(
        indicatif::ProgressStyle::with_template("  {bar:40} {pos}/{len} deliveries {per_sec}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let before = watch.sample();
    load.send_line("go").await?;
    let poll = tokio::spawn(wait_for_deliveries(http.clone(), sink_base.clone(), expected, bar.clone()));
    let published = match load.next_line().await {
        Ok(Some(line)) => serde_json::from_str::<Published>(&line).context("reading bench-load's report"),
        Ok(None) => Err(load.failed(anyhow::anyhow!("exited before reporting"))),
        Err(e) => Err(e),
    };
    let published = match published {
        Ok(p) => p,
        Err(e) => {
            poll.abort();
            return Err(e);
        }
    };
    poll.await.context("waiting for deliveries")??;
    let after = watch.sample();
    bar.finish_and_clear();

    let r: Received = http.get(format!("{sink_base}/__received")).send().await?.error_for_status()?.json().await?;
    let rss: Vec<(String, Option<f64>)> = heralds.iter().map(|h| (h.name.clone(), peak_rss_mib(h.pid))).collect();
    load.stop(false, Duration::from_secs(10)).await;
    sink.stop(false, Duration::from_secs(10)).await;
    for h in heralds {
        h.stop(true, Duration::from_secs(20)).await;
    }
    if let Some(db) = scratch {
        db.drop_now().await;
    }

    let mut lat: Vec<u64> = r
        .received
        .iter()
        .map(|&(seq, at)| at.saturating_sub(published.sent_us.get(seq as usize).copied().unwrap_or(at)))
        .collect();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0
    };
    let last_receive = r.received.iter().map(|&(_, at)| at).max().unwrap_or(published.end_us);
    let published_in = (published.end_us.saturating_sub(published.start_us)) as f64 / 1e6;
    let delivered_in = (last_receive.max(published.end_us) - published.start_us) as f64 / 1e6;
    let delivered = r.count;
    println!("workload {} — separate processes", wl.name);
    println!(
        "  conditions: {} events, {} webhook(s), fan-out {}, {}",
        wl.events,
        wl.webhooks,
        wl.fanout,
        match wl.rate {
            Some(r) => format!("paced at {r} events/s"),
            None => format!("{} concurrent publishers, unpaced", args.clients),
        }
    );
    if let Some(retention) = &args.retention {
        println!("  retention {retention}, janitor every 1 s (expired rows deleted during the run)");
    }
    println!(
        "  publish rate:  {:>9.0} events/s ({} in {published_in:.2} s)",
        wl.events as f64 / published_in.max(1e-9),
        wl.events
    );
    println!(
        "  delivery rate: {:>9.0} deliveries/s ({delivered}/{expected} in {delivered_in:.2} s, first publish to last receive)",
        delivered as f64 / delivered_in.max(1e-9)
    );
    println!("  publish→receive latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", pct(0.50), pct(0.99), pct(1.0));
    if let Some(capacity) = wl.receiver_capacity {
        println!(
            "  receivers: {capacity} at once each, {} ms per request; 503s answered: {} ({:.2} per delivery); controls {}",
            wl.receiver_delay_ms,
            r.rejected,
            r.rejected as f64 / delivered.max(1) as f64,
            wl.controls
        );
    } else if wl.keys > 0 {
        println!("  {} ordering keys; controls {}", wl.keys, wl.controls);
    }
    for (name, mib) in rss {
        println!("  peak RSS of {name}: {}", mib.map(|m| format!("{m:.0} MiB")).unwrap_or_else(|| "?".into()));
    }
    watch.print(&before, &after);
    anyhow::ensure!(delivered >= expected, "only {delivered} of {expected} deliveries arrived");
    Ok(())
}

/// Creates a webhook on a closed loopback port and writes `shape.rows` of its deliveries
/// (spread as `shape` says), due in an hour, straight into the database.
async fn seed_backlog(
    http: &reqwest::Client,
    base: &str,
    key: &herald_domain::ApiKey,
    shape: &herald_store::backlog::Backlog,
    postgres: Option<String>,
    data_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let r = http
        .post(format!("{base}/api/v1/event-types"))
        .bearer_auth(key.expose())
        .json(&json!({"name": "bench.backlog", "description": "herald bench --backlog"}))
        .send()
        .await?;
    anyhow::ensure!(r.status() == 201, "creating the backlog's event type: {}", r.text().await?);
    let dead = herald_testkit::unused_loopback_addr();
    // Subscribed to a type the load never publishes: the load's events reach only the
    // healthy webhook(s); the dead one has just its backlog.
    let body = json!({"url": format!("http://{dead}/dead"), "events": ["bench.backlog"]});
    let r = http.post(format!("{base}/api/v1/webhooks")).bearer_auth(key.expose()).json(&body).send().await?;
    anyhow::ensure!(r.status() == 201, "creating the dead webhook: {}", r.text().await?);
    let id: serde_json::Value = r.json().await?;
    let webhook = herald_domain::WebhookId::from_trusted(id["id"].as_str().context("webhook id")?.to_owned());
    let now = time::OffsetDateTime::now_utc();
    let due = now + time::Duration::hours(1);
    let started = Instant::now();
    match postgres {
        Some(url) => herald_store_postgres::seed_backlog(&url, &webhook, shape, now, due).await?,
        None => {
            let url = format!("sqlite://{}", data_dir.join("herald.db").display());
            herald_store_sqlite::seed_backlog(&url, &webhook, shape, now, due).await?
        }
    }
    println!(
        "  backlog: {} pending deliveries of a dead endpoint, due in an hour, over {} webhook(s) of {} account(s) (written in {:.1} s)",
        shape.rows,
        shape.webhooks.max(1),
        shape.accounts.max(1),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Polls the sink's count until `expected` deliveries arrived (or ten minutes passed).
async fn wait_for_deliveries(
    http: reqwest::Client,
    sink_base: String,
    expected: u64,
    bar: indicatif::ProgressBar,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let v: serde_json::Value = http.get(format!("{sink_base}/__stats")).send().await?.json().await?;
        let n = v["count"].as_u64().unwrap_or(0);
        bar.set_position(n);
        if n >= expected || Instant::now() > deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
