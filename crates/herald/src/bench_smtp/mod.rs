//! `herald bench --workload smtp`: inbound mail end to end, all in this process. Herald on a
//! fresh temporary SQLite database with its SMTP listener on loopback, a loopback DNS server
//! holding the sender's SPF, DKIM and DMARC records, one agent whose `webhook_url` is a
//! loopback sink, and concurrent SMTP sessions sending unique DKIM-signed messages.
//!
//! Three runs on the same Herald: one large message alone (peak RSS), a burst (accepted and
//! delivered messages/s) and a paced run (latency at a given rate). Latency is measured from
//! the moment just before the client writes the final `.` of `DATA` to the moment the sink
//! receives the agent's Payload; the message is found by the sequence number in its
//! `Message-ID`, read back from the Payload's `raw_message`.

use crate::bench::BenchArgs;
use crate::{Application, Deps, Settings};
use anyhow::Context;
use axum::extract::State;
use axum::http::HeaderMap;
use base64::Engine as _;
use herald_domain::inbound::{Payload, header};
use herald_testkit::LoopbackDns;
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{DkimSigner, Done};
use serde_json::json;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::sync::CancellationToken;

mod mail_client;

use mail_client::{Mails, SmtpSession};

const SENDER_DOMAIN: &str = "sender.bench";
const SENDER: &str = "alice@sender.bench";
const AGENT_DOMAIN: &str = "agents.bench";
const AGENT: &str = "bot@agents.bench";
const SELECTOR: &str = "bench";
const HELO: &str = "client.sender.bench";
const HOSTNAME: &str = "mx.herald.bench";

/// Options of the `smtp` workload.
#[derive(clap::Args, Clone, Debug)]
pub struct SmtpBenchArgs {
    /// smtp: messages sent in the burst run.
    #[arg(long, default_value_t = 5_000)]
    pub smtp_messages: u64,
    /// smtp: concurrent SMTP sessions.
    #[arg(long, default_value_t = 16)]
    pub smtp_sessions: u64,
    /// smtp: body size of each message, in bytes.
    #[arg(long, default_value_t = 10_000)]
    pub smtp_message_size: usize,
    /// smtp: messages per second of the paced run (0 skips it).
    #[arg(long, default_value_t = 200)]
    pub smtp_rate: u64,
    /// smtp: messages sent in the paced run.
    #[arg(long, default_value_t = 2_000)]
    pub smtp_paced_messages: u64,
    /// smtp: body size of the one large message sent for the peak RSS figure (0 skips it).
    #[arg(long, default_value_t = 10_000_000)]
    pub smtp_large_message_size: usize,
    /// smtp: TTL of the loopback DNS server's answers, in seconds (0: no caching).
    #[arg(long, default_value_t = 300)]
    pub smtp_dns_ttl: u32,
}

/// What the sessions and the sink record, by message sequence number (µs since `origin`;
/// 0: not yet).
struct Sink {
    origin: Instant,
    /// Just before the client wrote the final `.` of `DATA`.
    dot: Vec<AtomicU64>,
    /// When the `250` after the data arrived.
    accepted: Vec<AtomicU64>,
    /// When the sink first received the agent's Payload.
    received: Vec<AtomicU64>,
    /// The Payload (and the request's header) said `X-E2A-Auth-Verified: true`.
    verified: Vec<AtomicBool>,
    /// Every request, repeats included.
    hits: AtomicU64,
    /// Requests for a message already received (an at-least-once repeat).
    repeats: AtomicU64,
    /// Requests the sink could not match to a message.
    unmatched: AtomicU64,
}

impl Sink {
    fn micros(&self) -> u64 {
        (self.origin.elapsed().as_micros() as u64).max(1)
    }
}

/// The sequence number in `Message-ID: <bench.{seq}.…>`, looked up in the header section.
fn seq_of(raw: &[u8]) -> Option<usize> {
    const MARK: &[u8] = b"Message-ID: <bench.";
    let head = &raw[..raw.len().min(16 * 1024)];
    let at = head.windows(MARK.len()).position(|w| w == MARK)? + MARK.len();
    let digits: Vec<u8> = head[at..].iter().take_while(|b| b.is_ascii_digit()).copied().collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

async fn agent_handler(State(sink): State<Arc<Sink>>, headers: HeaderMap, body: axum::body::Bytes) -> &'static str {
    let now = sink.micros();
    sink.hits.fetch_add(1, Ordering::Relaxed);
    let Ok(payload) = serde_json::from_slice::<Payload>(&body) else {
        sink.unmatched.fetch_add(1, Ordering::Relaxed);
        return "";
    };
    let Some(seq) = seq_of(&payload.raw_message).filter(|s| *s < sink.received.len()) else {
        sink.unmatched.fetch_add(1, Ordering::Relaxed);
        return "";
    };
    let verified = payload.auth_headers.get(header::VERIFIED).map(String::as_str) == Some("true")
        && headers.get(header::VERIFIED).and_then(|v| v.to_str().ok()) == Some("true");
    if sink.received[seq].compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        sink.verified[seq].store(verified, Ordering::Relaxed);
    } else {
        sink.repeats.fetch_add(1, Ordering::Relaxed);
    }
    ""
}

/// One run: messages `first..first + count`.
struct Run {
    name: &'static str,
    first: u64,
    count: u64,
    sessions: u64,
    body_size: usize,
    rate: Option<u64>,
}

/// What a run measured.
struct Measured {
    accepted_in: Duration,
    delivered_in: Duration,
    delivered: u64,
    verified: u64,
    accept_latency: Vec<u64>,
    latency: Vec<u64>,
    cpu: f64,
    build_micros: u64,
    dns_queries: usize,
    /// Bytes of the largest message on the wire (dot-stuffed, with the final dot).
    wire_size: usize,
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)] as f64 / 1000.0
}

async fn run_messages(
    run: &Run,
    smtp: SocketAddr,
    mails: &Arc<Mails>,
    sink: &Arc<Sink>,
    dns: &LoopbackDns,
) -> anyhow::Result<Measured> {
    let mut sessions = Vec::new();
    for _ in 0..run.sessions.min(run.count).max(1) {
        sessions.push(SmtpSession::connect(smtp).await?);
    }
    let end = run.first + run.count;
    let bar = indicatif::ProgressBar::new(run.count);
    bar.set_style(
        indicatif::ProgressStyle::with_template("  {bar:40} {pos}/{len} delivered to the agent {per_sec}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let dns_before = dns.total_queries();
    let cpu_before = crate::bench::measure::own_cpu_seconds();
    let next = Arc::new(AtomicU64::new(run.first));
    let build_micros = Arc::new(AtomicU64::new(0));
    let wire_size = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let start_micros = sink.micros();
    let mut tasks = Vec::new();
    for mut session in sessions {
        let (next, mails, sink, build_micros, wire_size) =
            (next.clone(), mails.clone(), sink.clone(), build_micros.clone(), wire_size.clone());
        let (first, body_size, rate) = (run.first, run.body_size, run.rate);
        tasks.push(tokio::spawn(async move {
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= end {
                    session.quit().await;
                    return Ok::<(), anyhow::Error>(());
                }
                let t = Instant::now();
                let data = mails.build(seq, body_size)?;
                build_micros.fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                wire_size.fetch_max(data.len() as u64 + 3, Ordering::Relaxed);
                if let Some(rate) = rate {
                    let due = start + Duration::from_secs_f64((seq - first) as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                session.send(&data, seq as usize, &sink).await.with_context(|| format!("message {seq}"))?;
            }
        }));
    }
    for t in tasks {
        t.await.context("SMTP session")??;
    }
    let range = run.first as usize..end as usize;
    let last_accepted = range.clone().map(|i| sink.accepted[i].load(Ordering::Relaxed)).max().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(300);
    let delivered = loop {
        let n = range.clone().filter(|&i| sink.received[i].load(Ordering::Relaxed) != 0).count() as u64;
        bar.set_position(n);
        if n >= run.count || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    bar.finish_and_clear();
    let cpu = crate::bench::measure::own_cpu_seconds() - cpu_before;
    let last_received = range.clone().map(|i| sink.received[i].load(Ordering::Relaxed)).max().unwrap_or(0);
    let mut accept_latency = Vec::with_capacity(run.count as usize);
    let mut latency = Vec::with_capacity(run.count as usize);
    let mut verified = 0;
    for i in range {
        let dot = sink.dot[i].load(Ordering::Relaxed);
        accept_latency.push(sink.accepted[i].load(Ordering::Relaxed).saturating_sub(dot));
        let received = sink.received[i].load(Ordering::Relaxed);
        if received != 0 {
            latency.push(received.saturating_sub(dot));
        }
        verified += u64::from(sink.verified[i].load(Ordering::Relaxed));
    }
    accept_latency.sort_unstable();
    latency.sort_unstable();
    Ok(Measured {
        accepted_in: Duration::from_micros(last_accepted.saturating_sub(start_micros)),
        delivered_in: Duration::from_micros(last_received.saturating_sub(start_micros)),
        delivered,
        verified,
        accept_latency,
        latency,
        cpu,
        build_micros: build_micros.load(Ordering::Relaxed),
        dns_queries: dns.total_queries() - dns_before,
        wire_size: wire_size.load(Ordering::Relaxed) as usize,
    })
}

fn report(run: &Run, m: &Measured) {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!("workload smtp — {}", run.name);
    println!(
        "  conditions: {} message(s), body {} bytes ({} bytes on the wire, DKIM ed25519), 1 recipient, {} SMTP \
         session(s) (PIPELINING), {}",
        run.count,
        run.body_size,
        m.wire_size,
        run.sessions.min(run.count).max(1),
        match run.rate {
            Some(r) => format!("paced at {r} messages/s"),
            None => "unpaced".into(),
        }
    );
    let secs = |d: Duration| d.as_secs_f64().max(1e-6);
    println!(
        "  accepted:  {:>9.0} messages/s ({} 250s in {:.2} s, first MAIL to last 250)",
        run.count as f64 / secs(m.accepted_in),
        run.count,
        m.accepted_in.as_secs_f64()
    );
    println!(
        "  delivered: {:>9.0} messages/s ({}/{} to the agent in {:.2} s, first MAIL to last receive)",
        m.delivered as f64 / secs(m.delivered_in),
        m.delivered,
        run.count,
        m.delivered_in.as_secs_f64()
    );
    let (a, l) = (&m.accept_latency, &m.latency);
    println!(
        "  latency DATA-end → 250:            p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(a, 0.50),
        pct(a, 0.99),
        pct(a, 1.0)
    );
    println!(
        "  latency DATA-end → agent receive:  p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(l, 0.50),
        pct(l, 0.99),
        pct(l, 1.0)
    );
    println!(
        "  verified deliveries (X-E2A-Auth-Verified: true in the Payload and the request): {}/{}",
        m.verified, run.count
    );
    println!(
        "  DNS queries to the loopback server: {:.1} per message; CPU used by the process: {:.2} s = {:.2} of {cores} \
         cores over the run (client message building and signing: {:.0} µs/message)",
        m.dns_queries as f64 / run.count.max(1) as f64,
        m.cpu,
        m.cpu / secs(m.delivered_in.max(m.accepted_in)),
        m.build_micros as f64 / run.count.max(1) as f64
    );
}

pub async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let o = &args.smtp;
    anyhow::ensure!(args.replicas == 1, "the smtp workload runs one Herald (--replicas 1)");
    anyhow::ensure!(o.smtp_sessions >= 1 && o.smtp_messages >= 1, "--smtp-sessions and --smtp-messages must be ≥ 1");
    let store = match &args.database_url {
        Some(_) => "PostgreSQL (fresh database)".to_owned(),
        None => format!("SQLite synchronous={}", args.sqlite_synchronous),
    };
    println!(
        "herald bench — {} cores, {store}, {} SMTP sessions, agent max_in_flight={}, loopback DNS (TTL {} s) and \
         sink, Herald, sink and SMTP clients all in one process sharing the cores",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        o.smtp_sessions,
        args.webhook_max_in_flight,
        o.smtp_dns_ttl
    );

    let dns = LoopbackDns::start().await;
    // A loopback cache, as an operator would run: answers carry a TTL, so Herald's resolver
    // keeps them (`--smtp-dns-ttl 0` makes every message look everything up again).
    dns.set_ttl(o.smtp_dns_ttl);
    let (mails, record) = Mails::new()?;
    let mails = Arc::new(mails);
    dns.add_txt(&format!("{SELECTOR}._domainkey.{SENDER_DOMAIN}"), &record);
    dns.add_txt(SENDER_DOMAIN, "v=spf1 ip4:127.0.0.1 -all");
    dns.add_txt(&format!("_dmarc.{SENDER_DOMAIN}"), "v=DMARC1; p=reject");

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
    let mut settings = Settings::defaults();
    settings.listen = "127.0.0.1:0".into();
    settings.data_dir = dir.path().to_path_buf();
    settings.database_url = scratch.as_ref().map(|d| d.url.clone());
    settings.allow_private_targets = true;
    settings.sqlite_synchronous = args.sqlite_synchronous.clone();
    settings.bootstrap_api_key = Some(crate::settings::SecretText::new(key.expose()));
    settings.smtp_listen = Some("127.0.0.1:0".parse()?);
    settings.smtp_domains = AGENT_DOMAIN.into();
    settings.smtp_hostname = HOSTNAME.into();
    settings.dns_server = Some(dns.addr());
    let max_size = settings.smtp_max_message_size;
    anyhow::ensure!(
        o.smtp_large_message_size + 4096 <= max_size && o.smtp_message_size + 4096 <= max_size,
        "message bodies must leave room for the headers under HERALD_SMTP_MAX_MESSAGE_SIZE ({max_size} bytes)"
    );
    let app = Application::build(settings, Deps::default()).await?;
    let base = format!("http://{}", app.local_addr());
    let smtp = app.smtp_addr().context("the SMTP listener is not bound")?;
    let cancel = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(cancel.clone()));

    let large = u64::from(o.smtp_large_message_size > 0);
    let paced = if o.smtp_rate > 0 { o.smtp_paced_messages } else { 0 };
    let total = (large + o.smtp_messages + paced) as usize;
    let sink = Arc::new(Sink {
        origin: Instant::now(),
        dot: (0..total).map(|_| AtomicU64::new(0)).collect(),
        accepted: (0..total).map(|_| AtomicU64::new(0)).collect(),
        received: (0..total).map(|_| AtomicU64::new(0)).collect(),
        verified: (0..total).map(|_| AtomicBool::new(false)).collect(),
        hits: AtomicU64::new(0),
        repeats: AtomicU64::new(0),
        unmatched: AtomicU64::new(0),
    });
    let sink_app = axum::Router::new()
        .route("/agent", axum::routing::post(agent_handler))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(sink.clone());
    let sink_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink_url = format!("http://{}/agent", sink_listener.local_addr()?);
    let sink_task = tokio::spawn(async move { axum::serve(sink_listener, sink_app).await });

    let http = reqwest::Client::new();
    let body = json!({"address": AGENT, "webhook_url": sink_url, "max_in_flight": args.webhook_max_in_flight});
    let r = http.post(format!("{base}/api/v1/agents")).bearer_auth(key.expose()).json(&body).send().await?;
    anyhow::ensure!(r.status() == 201, "creating the agent: {}", r.text().await?);

    let mut runs = Vec::new();
    let mut first = 0;
    if large == 1 {
        // Alone, on the fresh process, so that the high-water mark is this message's.
        let run = Run {
            name: "one large message (peak RSS)",
            first,
            count: 1,
            sessions: 1,
            body_size: o.smtp_large_message_size,
            rate: None,
        };
        first += 1;
        let rss_before = crate::bench::measure::status_mib("self", "VmRSS:").unwrap_or(0.0);
        let hwm_before = crate::bench::measure::status_mib("self", "VmHWM:").unwrap_or(0.0);
        let m = run_messages(&run, smtp, &mails, &sink, &dns).await?;
        report(&run, &m);
        println!(
            "  peak RSS of the process (Herald + sink + SMTP client) with this message in flight: {:.0} MiB \
             (before it: RSS {:.0} MiB, peak {:.0} MiB)",
            crate::bench::measure::status_mib("self", "VmHWM:").unwrap_or(0.0),
            rss_before,
            hwm_before
        );
        runs.push((run, m));
    }
    let burst = Run {
        name: "burst",
        first,
        count: o.smtp_messages,
        sessions: o.smtp_sessions,
        body_size: o.smtp_message_size,
        rate: None,
    };
    first += burst.count;
    let m = run_messages(&burst, smtp, &mails, &sink, &dns).await?;
    report(&burst, &m);
    let accepted = burst.count as f64 / m.accepted_in.as_secs_f64().max(1e-6);
    let delivered = m.delivered as f64 / m.delivered_in.as_secs_f64().max(1e-6);
    for (what, rate) in [("accepted", accepted), ("delivered", delivered)] {
        if rate >= 1000.0 {
            println!("  target ≥ 1,000 messages/s {what}: met ({rate:.0})");
        } else {
            println!("  target ≥ 1,000 messages/s {what}: MISSED ({rate:.0}, {:.0}% short)", 100.0 - rate / 10.0);
        }
    }
    runs.push((burst, m));
    if paced > 0 {
        let run = Run {
            name: "paced",
            first,
            count: paced,
            sessions: o.smtp_sessions,
            body_size: o.smtp_message_size,
            rate: Some(o.smtp_rate),
        };
        let m = run_messages(&run, smtp, &mails, &sink, &dns).await?;
        report(&run, &m);
        let p99 = pct(&m.latency, 0.99);
        if p99 <= 50.0 {
            println!("  target p99 DATA-end → agent receive ≤ 50 ms at {} messages/s: met ({p99:.2} ms)", o.smtp_rate);
        } else {
            println!(
                "  target p99 DATA-end → agent receive ≤ 50 ms at {} messages/s: MISSED ({p99:.2} ms, {:.2} ms over)",
                o.smtp_rate,
                p99 - 50.0
            );
        }
        runs.push((run, m));
    }
    println!(
        "  sink: {} requests, {} repeats, {} unmatched; peak RSS of the process over all runs: {:.0} MiB",
        sink.hits.load(Ordering::Relaxed),
        sink.repeats.load(Ordering::Relaxed),
        sink.unmatched.load(Ordering::Relaxed),
        crate::bench::measure::status_mib("self", "VmHWM:").unwrap_or(0.0)
    );

    cancel.cancel();
    server.await??;
    if let Some(db) = scratch {
        db.drop_now().await;
    }
    sink_task.abort();
    for (run, m) in &runs {
        anyhow::ensure!(
            m.delivered >= run.count,
            "{}: only {} of {} messages reached the agent",
            run.name,
            m.delivered,
            run.count
        );
        anyhow::ensure!(
            m.verified >= run.count,
            "{}: only {} of {} deliveries were verified",
            run.name,
            m.verified,
            run.count
        );
    }
    Ok(())
}
