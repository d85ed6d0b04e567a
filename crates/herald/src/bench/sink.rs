//! `herald bench-sink` (hidden): the loopback receiver of `herald bench`, in a process of its
//! own. It answers 200 to every POST (or, with `--capacity`, 503 to those beyond that many at
//! once on one path) and notes when each event (by `data.seq`, which
//! `herald bench-load` puts there) arrived, in wall-clock microseconds. It prints
//! `bench-sink listening on http://ADDR` first; `GET /__stats` answers the count so far and
//! `GET /__received` every `[seq, received_us]`. It exits when its stdin closes.

use super::measure::wall_micros;
use axum::extract::State;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(clap::Args, Clone, Debug)]
pub struct SinkArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Requests each path serves at once; beyond, it answers 503 at once (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub capacity: u64,
    /// Milliseconds each request takes before it is answered.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
}

#[derive(Default)]
struct Sink {
    received: Mutex<Vec<(u64, u64)>>,
    count: AtomicU64,
    rejected: AtomicU64,
    capacity: u64,
    delay: std::time::Duration,
    in_flight: Mutex<std::collections::HashMap<String, u64>>,
}

async fn receive(
    State(sink): State<Arc<Sink>>,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let path = uri.path().to_owned();
    if sink.capacity > 0 {
        let mut in_flight = sink.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        let n = in_flight.entry(path.clone()).or_default();
        if *n >= sink.capacity {
            sink.rejected.fetch_add(1, Ordering::Relaxed);
            return axum::http::StatusCode::SERVICE_UNAVAILABLE;
        }
        *n += 1;
    }
    if !sink.delay.is_zero() {
        tokio::time::sleep(sink.delay).await;
    }
    if sink.capacity > 0 {
        *sink.in_flight.lock().unwrap_or_else(|e| e.into_inner()).entry(path).or_default() -= 1;
    }
    let now = wall_micros();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
        && let Some(seq) = v["data"]["seq"].as_u64()
    {
        sink.received.lock().unwrap_or_else(|e| e.into_inner()).push((seq, now));
    }
    sink.count.fetch_add(1, Ordering::Relaxed);
    axum::http::StatusCode::OK
}

async fn stats(State(sink): State<Arc<Sink>>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"count": sink.count.load(Ordering::Relaxed)}))
}

async fn received(State(sink): State<Arc<Sink>>) -> axum::Json<serde_json::Value> {
    let received = sink.received.lock().unwrap_or_else(|e| e.into_inner()).clone();
    axum::Json(serde_json::json!({"count": sink.count.load(Ordering::Relaxed),
        "rejected": sink.rejected.load(Ordering::Relaxed), "received": received}))
}

pub async fn run(args: SinkArgs) -> anyhow::Result<()> {
    let sink = Arc::new(Sink {
        capacity: args.capacity,
        delay: std::time::Duration::from_millis(args.delay_ms),
        ..Sink::default()
    });
    let app = axum::Router::new()
        .route("/__stats", axum::routing::get(stats))
        .route("/__received", axum::routing::get(received))
        .fallback(receive)
        .with_state(sink);
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("bench-sink listening on http://{}", listener.local_addr()?);
    let (closed_tx, closed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        drop(closed_tx);
    });
    tokio::select! {
        r = axum::serve(listener, app) => r?,
        _ = closed => {}
    }
    Ok(())
}
