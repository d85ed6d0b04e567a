//! `herald webhooks …`

use super::ClientArgs;
use super::signing_keys::print_signing;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

const COLUMNS: &[&str] = &[
    "id",
    "url",
    "events",
    "enabled",
    "disabled_reason",
    "max_in_flight",
    "concurrency",
    "effective_max_in_flight",
    "rate_limit_per_second",
    "ordering",
    "on_final_failure",
    "retry_schedule",
    "max_age",
    "signature",
    "last_delivered_at",
];

/// The delivery controls and the signing scheme of `create` and `update`; a field is sent
/// only when its flag is given.
#[derive(clap::Args, Debug)]
pub struct ControlArgs {
    /// `adaptive`: the in-flight limit moves between 1 and `--max-in-flight` with the
    /// receiver's answers; `fixed`: it is `--max-in-flight`.
    #[arg(long, value_parser = ["adaptive", "fixed"])]
    concurrency: Option<String>,
    /// Most attempts started per second; 0 removes the limit.
    #[arg(long)]
    rate_limit: Option<u32>,
    /// `fifo`: events of one ordering key are delivered in publish order, one at a time.
    #[arg(long, value_parser = ["none", "fifo"])]
    ordering: Option<String>,
    /// With `--ordering fifo`, what a lane does after a final failure: `block` (it waits for
    /// a retry or a skip) or `skip`.
    #[arg(long, value_parser = ["block", "skip"])]
    on_final_failure: Option<String>,
    /// Waits between attempts, comma-separated (`30s,5m,1h`); an empty value goes back to
    /// the server's schedule.
    #[arg(long, value_name = "30s,5m,1h")]
    retry_schedule: Option<String>,
    /// No attempt after a delivery is this old (`3d`); `0s` removes the limit.
    #[arg(long, value_name = "3d")]
    max_age: Option<String>,
    /// `hmac` (a shared secret) or `ed25519` (the account's signing key; receivers verify
    /// with the public keys at the webhook's `jwks_url`).
    #[arg(long, value_parser = ["hmac", "ed25519"])]
    signature: Option<String>,
}

impl ControlArgs {
    /// Writes the given controls into `body`.
    fn apply(self, body: &mut Value) {
        if let Some(cc) = self.concurrency {
            body["concurrency"] = json!(cc);
        }
        if let Some(r) = self.rate_limit {
            body["rate_limit_per_second"] = json!(r);
        }
        if let Some(o) = self.ordering {
            body["ordering"] = json!(o);
        }
        if let Some(f) = self.on_final_failure {
            body["on_final_failure"] = json!(f);
        }
        if let Some(s) = self.retry_schedule {
            let steps: Vec<&str> = s.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
            body["retry_schedule"] = json!(steps);
        }
        if let Some(a) = self.max_age {
            body["max_age"] = json!(a);
        }
        if let Some(s) = self.signature {
            body["signature"] = json!(s);
        }
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum WebhooksCommand {
    /// List webhooks.
    List {
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Create a webhook; prints its signing secret (shown once).
    Create {
        url: String,
        /// Event types, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        max_in_flight: Option<u32>,
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Show one webhook.
    Get { id: String },
    /// Change a webhook's URL, events, description, concurrency or delivery controls.
    Update {
        id: String,
        #[arg(long)]
        url: Option<String>,
        /// Event types, comma-separated.
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<String>>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        max_in_flight: Option<u32>,
        #[command(flatten)]
        control: ControlArgs,
    },
    /// Rotate the signing secret; the old one signs for the grace period too.
    Rotate {
        id: String,
        #[arg(long)]
        grace_period_seconds: Option<u64>,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Send a test event and print the first attempt's outcome.
    Test {
        id: String,
        #[arg(long = "type")]
        event_type: Option<String>,
    },
    /// Re-deliver stored events of a time window; shows progress until they are delivered.
    Recover {
        id: String,
        /// RFC 3339 start of the window.
        #[arg(long)]
        since: String,
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        dry_run: bool,
        /// Do not wait for the re-deliveries to finish.
        #[arg(long)]
        no_wait: bool,
    },
    /// Enable a webhook (deferred deliveries resume at once).
    Enable { id: String },
    /// Disable a webhook (its deliveries wait without using attempts).
    Disable { id: String },
}

pub async fn run(c: &ClientArgs, cmd: WebhooksCommand) -> anyhow::Result<()> {
    match cmd {
        WebhooksCommand::List { limit, cursor } => {
            let mut q = vec![];
            if let Some(l) = limit {
                q.push(format!("limit={l}"));
            }
            if let Some(cur) = cursor {
                q.push(format!("cursor={cur}"));
            }
            let v = c.call(Method::GET, &format!("/api/v1/webhooks?{}", q.join("&")), None).await?;
            c.print(&v, COLUMNS);
        }
        WebhooksCommand::Create { url, events, description, max_in_flight, control } => {
            let mut body = json!({"url": url, "events": events});
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if let Some(m) = max_in_flight {
                body["max_in_flight"] = json!(m);
            }
            control.apply(&mut body);
            let v = c.call(Method::POST, "/api/v1/webhooks", Some(body)).await?;
            c.print(&v, COLUMNS);
            print_signing(c, &v);
        }
        WebhooksCommand::Get { id } => {
            let v = c.call(Method::GET, &format!("/api/v1/webhooks/{id}"), None).await?;
            c.print(&v, COLUMNS);
        }
        WebhooksCommand::Update { id, url, events, description, max_in_flight, control } => {
            let mut body = json!({});
            if let Some(u) = url {
                body["url"] = json!(u);
            }
            if let Some(e) = events {
                body["events"] = json!(e);
            }
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if let Some(m) = max_in_flight {
                body["max_in_flight"] = json!(m);
            }
            control.apply(&mut body);
            let changes = body.as_object().map_or(0, |o| o.len());
            anyhow::ensure!(changes > 0, "nothing to change: give at least one flag");
            let v = c.call(Method::PATCH, &format!("/api/v1/webhooks/{id}"), Some(body)).await?;
            c.print(&v, COLUMNS);
            print_signing(c, &v);
        }
        WebhooksCommand::Rotate { id, grace_period_seconds, idempotency_key } => {
            let body = grace_period_seconds.map(|g| json!({"grace_period_seconds": g}));
            let path = format!("/api/v1/webhooks/{id}/rotate-secret");
            let v = c.call_keyed(Method::POST, &path, body, idempotency_key.as_deref()).await?;
            c.print(&v, &["signing_secret", "previous_secret_expires_at"]);
        }
        WebhooksCommand::Test { id, event_type } => {
            let body = event_type.map(|t| json!({"type": t}));
            let v = c.call(Method::POST, &format!("/api/v1/webhooks/{id}/test?wait=true"), body).await?;
            c.print(&v, &["delivery_id", "success", "status_code", "duration_ms", "error"]);
        }
        WebhooksCommand::Recover { id, since, until, dry_run, no_wait } => {
            let mut body = json!({"since": since, "dry_run": dry_run});
            if let Some(u) = until {
                body["until"] = json!(u);
            }
            let v = c.call(Method::POST, &format!("/api/v1/webhooks/{id}/recover"), Some(body)).await?;
            let count = v["count"].as_u64().unwrap_or(0);
            if dry_run || no_wait || count == 0 || c.json {
                c.print(&v, &["count", "dry_run"]);
                return Ok(());
            }
            let bar = indicatif::ProgressBar::new(count);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} re-deliveries settled {elapsed}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            loop {
                let pending = count_pending(c, &id, count).await?;
                bar.set_position(count.saturating_sub(pending));
                if pending == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            bar.finish();
            println!("{count} events re-delivered");
        }
        WebhooksCommand::Enable { id } => {
            let v = c.call(Method::PATCH, &format!("/api/v1/webhooks/{id}"), Some(json!({"enabled": true}))).await?;
            c.print(&v, COLUMNS);
        }
        WebhooksCommand::Disable { id } => {
            let v = c.call(Method::PATCH, &format!("/api/v1/webhooks/{id}"), Some(json!({"enabled": false}))).await?;
            c.print(&v, COLUMNS);
        }
    }
    Ok(())
}

/// Pending deliveries of the webhook, counted up to `cap` (the newest pages hold the
/// re-deliveries).
async fn count_pending(c: &ClientArgs, id: &str, cap: u64) -> anyhow::Result<u64> {
    let mut n = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/webhooks/{id}/deliveries?status=pending&limit=100");
        if let Some(cur) = &cursor {
            path.push_str(&format!("&cursor={cur}"));
        }
        let v = c.call(Method::GET, &path, None).await?;
        n += v["items"].as_array().map(|a| a.len() as u64).unwrap_or(0);
        match v["next_cursor"].as_str() {
            Some(cur) if n < cap => cursor = Some(cur.to_owned()),
            _ => return Ok(n),
        }
    }
}
