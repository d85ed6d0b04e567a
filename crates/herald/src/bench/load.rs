//! `herald bench-load` (hidden): the publishers of `herald bench`, in a process of their own.
//! `--clients` HTTP publishers `POST /api/v1/events` — closed loop, or paced at `--rate` —
//! each event carrying its sequence number in `data.seq`, and note when each was sent
//! (wall-clock microseconds, the clock `herald bench-sink` uses too).
//!
//! Protocol on stdio: prints `bench-load ready`, starts on a line (or EOF) on stdin, prints one
//! JSON line `{"start_us", "end_us", "sent_us": [...]}` when every event is acknowledged, then
//! exits when stdin closes (so the parent can read this process's CPU time before it ends).

use super::measure::wall_micros;
use anyhow::Context;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone, Debug)]
pub struct LoadArgs {
    /// Base URL of a Herald; repeat it for replicas (publishers take them in turn).
    #[arg(long, required = true)]
    pub target: Vec<String>,
    /// The API key to publish with.
    #[arg(long, env = "HERALD_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// Concurrent HTTP publishers.
    #[arg(long, default_value_t = 32)]
    pub clients: u64,
    /// Events to publish.
    #[arg(long, default_value_t = 20_000)]
    pub events: u64,
    /// Events per second (paced); without it each publisher sends as soon as its last is acknowledged.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Label event `seq` with `g{seq % groups}` (the fan-out workload's webhook filters).
    #[arg(long, default_value_t = 1)]
    pub groups: u64,
    /// Give event `seq` the ordering key `k{seq % keys}` (0: no key).
    #[arg(long, default_value_t = 0)]
    pub keys: u64,
}

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.groups >= 1 && args.clients >= 1, "--groups and --clients must be at least 1");
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..args.events).map(|_| AtomicU64::new(0)).collect());
    let next = Arc::new(AtomicU64::new(0));
    println!("bench-load ready");
    // Lines of stdin, read on a thread of its own; the channel closes at EOF.
    let (line_tx, mut stdin) = tokio::sync::mpsc::unbounded_channel::<()>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            if line.is_err() || line_tx.send(()).is_err() {
                break;
            }
        }
    });
    let _ = stdin.recv().await;

    let start = Instant::now();
    let start_us = wall_micros();
    let mut publishers = Vec::new();
    for c in 0..args.clients {
        let url = format!("{}/api/v1/events", args.target[c as usize % args.target.len()]);
        let (http, key, next, sent) = (http.clone(), args.api_key.clone(), next.clone(), sent.clone());
        let (events, rate, groups, keys) = (args.events, args.rate, args.groups, args.keys);
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
                sent[seq as usize].store(wall_micros(), Ordering::Relaxed);
                let mut body =
                    json!({"type": "email.received", "data": {"seq": seq}, "labels": [format!("g{}", seq % groups)]});
                if keys > 0 {
                    body["ordering_key"] = json!(format!("k{}", seq % keys));
                }
                let r = http.post(&url).bearer_auth(&key).json(&body).send().await?;
                anyhow::ensure!(r.status() == 202, "publish failed: {}", r.status());
            }
        }));
    }
    for p in publishers {
        p.await.context("publisher")??;
    }
    let end_us = wall_micros();
    let sent_us: Vec<u64> = sent.iter().map(|s| s.load(Ordering::Relaxed)).collect();
    println!("{}", json!({"start_us": start_us, "end_us": end_us, "sent_us": sent_us}));
    while stdin.recv().await.is_some() {}
    Ok(())
}
