//! `herald bench`: Herald on a fresh temporary database, a loopback sink, and concurrent HTTP
//! publishers — by default each in its own process (`herald serve`,
//! `herald bench-load`, `herald bench-sink`), with `--in-process` all in this one. Reports
//! publish rate, delivery rate, publish→receive latency and peak RSS (and, with separate
//! processes, CPU per process and machine idle), with the conditions.

mod child;
pub mod load;
pub(crate) mod measure;
mod separate;
pub mod sink;

use crate::{Application, Deps, Settings};
use anyhow::Context;
use axum::extract::State;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {
    /// Which workload: `a` (burst, 1 webhook), `b` (paced), `c` (fan-out), `all` (a, b and c),
    /// `d` (10 webhooks on receivers that serve `--receiver-capacity` requests at once and
    /// answer 503 beyond: adaptive, then fixed, concurrency), `e` (a FIFO webhook, events over
    /// `--keys` ordering keys), or `smtp` (inbound mail to an agent; see the `--smtp-*` options).
    /// d and e run in separate processes only.
    #[arg(long, default_value = "all", value_parser = ["a", "b", "c", "all", "d", "e", "smtp"])]
    pub workload: String,
    /// Workload d: requests each receiver serves at once (503 beyond).
    #[arg(long, default_value_t = 8)]
    pub receiver_capacity: u64,
    /// Workload d: how long each receiver takes to answer, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub receiver_delay_ms: u64,
    /// Workload e: ordering keys (FIFO lanes) the events are spread over.
    #[arg(long, default_value_t = 100)]
    pub keys: u64,
    /// Events published in workloads a and b.
    #[arg(long, default_value_t = 20_000)]
    pub events: u64,
    /// Pending deliveries of a dead endpoint (a closed loopback port), not due for an hour,
    /// written into the database before workloads a, b and c start (separate processes only):
    /// does a backlog slow a healthy webhook? (0: none.)
    #[arg(long, default_value_t = 0, conflicts_with = "in_process")]
    pub backlog: u64,
    /// Keep events and deliveries this long (`HERALD_RETENTION`, e.g. `20s`) with the janitor
    /// running every second, so it deletes a stream of expired rows while the load runs
    /// (separate processes only; the bench sets a 1 s retry schedule, never used by its
    /// healthy sink, so a retention of 16 s or more passes Herald's check). Default: Herald's
    /// 30 days (nothing expires during a run).
    #[arg(long, conflicts_with = "in_process")]
    pub retention: Option<String>,
    /// Webhooks the backlog is spread over (the dead one and copies of it; every one enabled,
    /// so each claim must skip them all).
    #[arg(long, default_value_t = 1)]
    pub backlog_webhooks: u64,
    /// Accounts those webhooks belong to (the bench's own and new ones).
    #[arg(long, default_value_t = 1)]
    pub backlog_accounts: u64,
    /// Events published in workload c (each fans out to `--fanout` webhooks).
    #[arg(long, default_value_t = 2_000)]
    pub fanout_events: u64,
    /// Concurrent HTTP publishers.
    #[arg(long, default_value_t = 32)]
    pub clients: u64,
    /// Webhooks in workload c.
    #[arg(long, default_value_t = 100)]
    pub webhooks: u64,
    /// Webhooks each event reaches in workload c.
    #[arg(long, default_value_t = 10)]
    pub fanout: u64,
    /// Events per second in workload b.
    #[arg(long, default_value_t = 400)]
    pub rate: u64,
    /// `max_in_flight` of each webhook.
    #[arg(long, default_value_t = 64)]
    pub webhook_max_in_flight: u32,
    /// How the webhooks sign: `hmac` (the default) or `ed25519` (the account's key).
    #[arg(long, default_value = "hmac", value_parser = ["hmac", "ed25519"])]
    pub signature: String,
    /// Run against PostgreSQL: a server URL; each workload gets a fresh scratch database
    /// there (dropped afterwards). Default: a fresh temporary SQLite file.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Herald replicas sharing the database (PostgreSQL only); publishers spread over them.
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// SQLite durability: `normal` or `full`.
    #[arg(long, default_value = "normal", value_parser = ["normal", "full"])]
    pub sqlite_synchronous: String,
    /// Run Herald, the sink and the publishers in this one process (workloads a, b, c) instead
    /// of separate processes talking HTTP over loopback.
    #[arg(long)]
    pub in_process: bool,
    #[command(flatten)]
    pub smtp: crate::bench_smtp::SmtpBenchArgs,
}

struct Sink {
    sent: Vec<AtomicU64>,
    received: Mutex<Vec<u64>>,
    count: AtomicU64,
    origin: Instant,
}

impl Sink {
    fn micros(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }
}

async fn sink_handler(State(sink): State<Arc<Sink>>, body: axum::body::Bytes) -> &'static str {
    let now = sink.micros();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
        && let Some(seq) = v["data"]["seq"].as_u64()
    {
        let sent = sink.sent.get(seq as usize).map(|s| s.load(Ordering::Relaxed)).unwrap_or(now);
        sink.received.lock().unwrap_or_else(|e| e.into_inner()).push(now.saturating_sub(sent));
    }
    sink.count.fetch_add(1, Ordering::Relaxed);
    ""
}

struct Workload {
    name: &'static str,
    events: u64,
    webhooks: u64,
    fanout: u64,
    rate: Option<u64>,
    /// Delivery controls every webhook of the workload gets (merged into its create body).
    controls: serde_json::Value,
    /// Each webhook its own receiver path, serving this many requests at once (503 beyond).
    receiver_capacity: Option<u64>,
    receiver_delay_ms: u64,
    /// Ordering keys the events are spread over (0: none).
    keys: u64,
}

impl Workload {
    fn plain(name: &'static str, events: u64, webhooks: u64, fanout: u64, rate: Option<u64>) -> Self {
        Self {
            name,
            events,
            webhooks,
            fanout,
            rate,
            controls: json!({"concurrency": "fixed"}),
            receiver_capacity: None,
            receiver_delay_ms: 0,
            keys: 0,
        }
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.backlog > 0 || (args.backlog_webhooks <= 1 && args.backlog_accounts <= 1),
        "--backlog-webhooks and --backlog-accounts spread a --backlog: give --backlog N too"
    );
    if let Some(r) = &args.retention {
        herald_domain::retry::parse_duration(r).map_err(|e| anyhow::anyhow!("--retention: {e}"))?;
    }
    if args.workload == "smtp" {
        return crate::bench_smtp::run(&args).await;
    }
    let mut list = Vec::new();
    let w = args.workload.as_str();
    if w == "a" || w == "all" {
        list.push(Workload::plain("a (burst, 1 webhook)", args.events, 1, 1, None));
    }
    if w == "b" || w == "all" {
        list.push(Workload::plain("b (paced, 1 webhook)", args.events, 1, 1, Some(args.rate)));
    }
    if w == "c" || w == "all" {
        list.push(Workload::plain(
            "c (fan-out)",
            args.fanout_events,
            args.webhooks,
            args.fanout.min(args.webhooks).max(1),
            None,
        ));
    }
    if w == "d" {
        for (name, concurrency) in [
            ("d (10 receivers of limited capacity, adaptive)", "adaptive"),
            ("d (10 receivers of limited capacity, fixed)", "fixed"),
        ] {
            list.push(Workload {
                controls: json!({"concurrency": concurrency, "retry_schedule": vec!["1s"; 20]}),
                receiver_capacity: Some(args.receiver_capacity),
                receiver_delay_ms: args.receiver_delay_ms,
                ..Workload::plain(name, args.fanout_events, 10, 10, None)
            });
        }
    }
    if w == "e" {
        list.push(Workload {
            controls: json!({"concurrency": "fixed", "ordering": "fifo"}),
            keys: args.keys,
            ..Workload::plain("e (FIFO lanes, 1 webhook)", args.events, 1, 1, None)
        });
    }
    anyhow::ensure!(args.replicas >= 1, "--replicas must be at least 1");
    anyhow::ensure!(
        args.replicas == 1 || args.database_url.is_some(),
        "--replicas needs --database-url postgres://… (SQLite is a one-process store)"
    );
    if !args.in_process {
        return separate::run(&args, list).await;
    }
    anyhow::ensure!(w != "d" && w != "e", "workloads d and e run in separate processes only (drop --in-process)");
    let store = match &args.database_url {
        Some(_) => format!("PostgreSQL (fresh database per workload), {} replica(s)", args.replicas),
        None => format!("SQLite synchronous={}", args.sqlite_synchronous),
    };
    println!(
        "herald bench — {} cores, {store}, {} publishers, webhook max_in_flight={}, signature={}, loopback sink, \
         all in one process",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        args.clients,
        args.webhook_max_in_flight,
        args.signature
    );
    for wl in list {
        run_one(&args, wl).await?;
    }
    Ok(())
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
    let cancel = CancellationToken::new();
    let mut bases = Vec::new();
    let mut servers = Vec::new();
    for _ in 0..args.replicas {
        let mut settings = Settings::defaults();
        settings.listen = "127.0.0.1:0".into();
        settings.data_dir = dir.path().to_path_buf();
        settings.database_url = scratch.as_ref().map(|d| d.url.clone());
        settings.allow_private_targets = true;
        settings.sqlite_synchronous = args.sqlite_synchronous.clone();
        settings.max_webhooks_per_account = settings.max_webhooks_per_account.max(wl.webhooks as u32);
        settings.bootstrap_api_key = Some(crate::settings::SecretText::new(key.expose()));
        let app = Application::build(settings, Deps::default()).await?;
        bases.push(format!("http://{}", app.local_addr()));
        servers.push(tokio::spawn(app.run_until_stopped(cancel.clone())));
    }
    let base = bases[0].clone();

    let sink = Arc::new(Sink {
        sent: (0..wl.events).map(|_| AtomicU64::new(0)).collect(),
        received: Mutex::new(Vec::with_capacity((wl.events * wl.fanout) as usize)),
        count: AtomicU64::new(0),
        origin: Instant::now(),
    });
    let sink_app = axum::Router::new().route("/sink", axum::routing::post(sink_handler)).with_state(sink.clone());
    let sink_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink_url = format!("http://{}/sink", sink_listener.local_addr()?);
    let sink_task = tokio::spawn(async move { axum::serve(sink_listener, sink_app).await });

    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let groups = (wl.webhooks / wl.fanout).max(1);
    for i in 0..wl.webhooks {
        let mut body = json!({"url": sink_url, "events": ["email.received"], "max_in_flight": args.webhook_max_in_flight,
            "concurrency": "fixed", "signature": args.signature});
        if wl.webhooks > 1 {
            body["filters"] = json!({"labels": [format!("g{}", i % groups)]});
        }
        let r = http.post(format!("{base}/api/v1/webhooks")).bearer_auth(key.expose()).json(&body).send().await?;
        anyhow::ensure!(r.status() == 201, "creating webhook: {}", r.text().await?);
    }

    let expected = wl.events * wl.fanout;
    let bar = indicatif::ProgressBar::new(expected);
    bar.set_style(
        indicatif::ProgressStyle::with_template("  {bar:40} {pos}/{len} deliveries {per_sec}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut publishers = Vec::new();
    for _ in 0..args.clients {
        let (http, base, key, next, sink) =
            (http.clone(), base.clone(), key.expose().to_owned(), next.clone(), sink.clone());
        let (events, rate, groups) = (wl.events, wl.rate, groups);
        publishers.push(tokio::spawn(async move {
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= events {
                    return Ok::<(), anyhow::Error>(());
                }
                if let Some(rate) = rate {
                    let due = start + Duration::from_secs_f64(seq as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                sink.sent[seq as usize].store(sink.micros(), Ordering::Relaxed);
                let body =
                    json!({"type": "email.received", "data": {"seq": seq}, "labels": [format!("g{}", seq % groups)]});
                let r = http.post(format!("{base}/api/v1/events")).bearer_auth(&key).json(&body).send().await?;
                anyhow::ensure!(r.status() == 202, "publish failed: {}", r.status());
            }
        }));
    }
    for p in publishers {
        p.await.context("publisher")??;
    }
    let published_in = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let n = sink.count.load(Ordering::Relaxed);
        bar.set_position(n);
        if n >= expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered_in = start.elapsed();
    bar.finish_and_clear();
    let delivered = sink.count.load(Ordering::Relaxed);
    let mut lat = sink.received.lock().unwrap_or_else(|e| e.into_inner()).clone();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0
    };
    println!("workload {}", wl.name);
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
    println!(
        "  publish rate:  {:>9.0} events/s ({} in {:.2} s)",
        wl.events as f64 / published_in.as_secs_f64(),
        wl.events,
        published_in.as_secs_f64()
    );
    println!(
        "  delivery rate: {:>9.0} deliveries/s ({delivered}/{expected} in {:.2} s, first publish to last receive)",
        delivered as f64 / delivered_in.as_secs_f64(),
        delivered_in.as_secs_f64()
    );
    println!("  publish→receive latency: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", pct(0.50), pct(0.99), pct(1.0));
    println!(
        "  peak RSS of the process (Herald + sink + publishers): {:.0} MiB",
        measure::status_mib("self", "VmHWM:").unwrap_or(0.0)
    );
    cancel.cancel();
    for s in servers {
        s.await??;
    }
    if let Some(db) = scratch {
        db.drop_now().await;
    }
    sink_task.abort();
    anyhow::ensure!(delivered >= expected, "only {delivered} of {expected} deliveries arrived");
    Ok(())
}
