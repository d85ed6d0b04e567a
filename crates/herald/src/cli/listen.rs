//! `herald listen`: a local receiver for people writing theirs. Verifies both signature
//! schemes with the given secret and prints every delivery.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use herald_domain::SigningSecret;
use herald_domain::signing::{verify_e2a, verify_standard};
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct ListenArgs {
    /// The webhook's signing secret (`whsec_…`).
    #[arg(long, env = "HERALD_WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Port on 127.0.0.1 to listen on.
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
    /// Largest accepted age of `webhook-timestamp`, in seconds.
    #[arg(long, default_value_t = 300)]
    pub tolerance: i64,
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Checks one request; returns what a receiver should conclude.
pub fn check(secret: &SigningSecret, headers: &HeaderMap, body: &[u8], now: i64, tolerance: i64) -> Result<(), String> {
    let e2a = verify_e2a(header(headers, "x-e2a-signature"), body, secret);
    let (id, ts) = (header(headers, "webhook-id"), header(headers, "webhook-timestamp"));
    let std_ok = verify_standard(header(headers, "webhook-signature"), id, ts, body, secret);
    let fresh = ts.parse::<i64>().is_ok_and(|t| (now - t).abs() <= tolerance);
    match (e2a, std_ok, fresh) {
        (true, true, true) => Ok(()),
        (_, _, false) => Err("timestamp missing or outside the tolerance".into()),
        (false, _, _) => Err("X-E2A-Signature does not verify".into()),
        (_, false, _) => Err("webhook-signature does not verify".into()),
    }
}

async fn receive(
    State(cfg): State<Arc<(SigningSecret, i64)>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, &'static str) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let verdict = check(&cfg.0, &headers, &body, now, cfg.1);
    let pretty = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    println!(
        "--- {} {} attempt {} delivery {} : {}",
        header(&headers, "x-e2a-event-type"),
        header(&headers, "webhook-id"),
        header(&headers, "x-e2a-attempt"),
        header(&headers, "x-e2a-delivery-id"),
        match &verdict {
            Ok(()) => "signatures OK".to_owned(),
            Err(e) => format!("REJECTED: {e}"),
        }
    );
    println!("{pretty}");
    match verdict {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(_) => (StatusCode::UNAUTHORIZED, "signature check failed"),
    }
}

pub async fn run(args: ListenArgs) -> anyhow::Result<()> {
    let secret = SigningSecret::from_stored(args.secret);
    let app = axum::Router::new().fallback(axum::routing::post(receive)).with_state(Arc::new((secret, args.tolerance)));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("listening on http://{} — point a webhook here; Ctrl-C to stop", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await?;
    Ok(())
}
