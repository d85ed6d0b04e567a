//! `herald agents …`

use super::ClientArgs;
use super::signing_keys::print_signing;
use reqwest::Method;
use serde_json::{Value, json};

const COLUMNS: &[&str] = &["address", "name", "webhook_url", "max_in_flight", "signature", "created_at"];

#[derive(clap::Subcommand, Debug)]
pub enum AgentsCommand {
    /// Create an agent (an address on an accepted domain); prints its signing secret (shown once).
    Create {
        /// The address, `local@domain`.
        address: String,
        #[arg(long)]
        name: Option<String>,
        /// Where the agent's deliveries go (without one they wait until it is set).
        #[arg(long)]
        webhook_url: Option<String>,
        #[arg(long)]
        max_in_flight: Option<u32>,
        /// `hmac` (default: a shared secret) or `ed25519` (the account's signing key).
        #[arg(long, value_parser = ["hmac", "ed25519"])]
        signature: Option<String>,
    },
    /// List agents.
    List {
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one agent.
    Get { address: String },
    /// Change an agent's name, webhook URL or concurrency.
    #[command(group = clap::ArgGroup::new("change").required(true).multiple(true))]
    Update {
        address: String,
        #[arg(long, group = "change")]
        name: Option<String>,
        #[arg(long, group = "change", conflicts_with = "no_webhook_url")]
        webhook_url: Option<String>,
        /// Remove the webhook URL (deliveries wait until one is set again).
        #[arg(long, group = "change")]
        no_webhook_url: bool,
        #[arg(long, group = "change")]
        max_in_flight: Option<u32>,
        /// `hmac` or `ed25519`; switching to `hmac` prints a fresh secret (shown once).
        #[arg(long, group = "change", value_parser = ["hmac", "ed25519"])]
        signature: Option<String>,
    },
    /// Delete an agent (its pending deliveries end as failed).
    Delete { address: String },
    /// Rotate the signing secret; the old one signs for the grace period too.
    Rotate {
        address: String,
        #[arg(long)]
        grace_period_seconds: Option<u64>,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
}

pub async fn run(c: &ClientArgs, cmd: AgentsCommand) -> anyhow::Result<()> {
    match cmd {
        AgentsCommand::Create { address, name, webhook_url, max_in_flight, signature } => {
            let mut body = json!({"address": address});
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            if let Some(u) = webhook_url {
                body["webhook_url"] = json!(u);
            }
            if let Some(m) = max_in_flight {
                body["max_in_flight"] = json!(m);
            }
            if let Some(s) = signature {
                body["signature"] = json!(s);
            }
            let v = c.call(Method::POST, "/api/v1/agents", Some(body)).await?;
            c.print(&v, COLUMNS);
            print_signing(c, &v);
        }
        AgentsCommand::List { limit, cursor } => {
            let mut q = vec![];
            if let Some(l) = limit {
                q.push(format!("limit={l}"));
            }
            if let Some(cur) = cursor {
                // The cursor is an address, which may hold `&`, `+`, `#` or `%`.
                q.push(format!("cursor={}", encode(&cur)));
            }
            let v = c.call(Method::GET, &format!("/api/v1/agents?{}", q.join("&")), None).await?;
            c.print(&v, COLUMNS);
        }
        AgentsCommand::Get { address } => {
            let v = c.call(Method::GET, &agent_path(&address), None).await?;
            c.print(&v, COLUMNS);
        }
        AgentsCommand::Update { address, name, webhook_url, no_webhook_url, max_in_flight, signature } => {
            let mut body = json!({});
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            if let Some(u) = webhook_url {
                body["webhook_url"] = json!(u);
            } else if no_webhook_url {
                body["webhook_url"] = Value::Null;
            }
            if let Some(m) = max_in_flight {
                body["max_in_flight"] = json!(m);
            }
            if let Some(s) = signature {
                body["signature"] = json!(s);
            }
            let v = c.call(Method::PATCH, &agent_path(&address), Some(body)).await?;
            c.print(&v, COLUMNS);
            print_signing(c, &v);
        }
        AgentsCommand::Delete { address } => {
            // 204: the API returns no body, so say what was done.
            c.call(Method::DELETE, &agent_path(&address), None).await?;
            if c.json {
                println!("{}", serde_json::to_string_pretty(&json!({"address": address, "deleted": true}))?);
            } else {
                println!("agent {address} deleted");
            }
        }
        AgentsCommand::Rotate { address, grace_period_seconds, idempotency_key } => {
            let body = grace_period_seconds.map(|g| json!({"grace_period_seconds": g}));
            let path = format!("{}/rotate-secret", agent_path(&address));
            let v = c.call_keyed(Method::POST, &path, body, idempotency_key.as_deref()).await?;
            c.print(&v, &["signing_secret", "previous_secret_expires_at"]);
        }
    }
    Ok(())
}

/// `/api/v1/agents/{address}` with the address as one percent-encoded path segment.
fn agent_path(address: &str) -> String {
    format!("/api/v1/agents/{}", encode(address))
}

/// Percent-encodes everything but RFC 3986 unreserved characters: an address's local part
/// may hold `/`, `?`, `#`, `%`, `+` and `&`, and `@` is encoded too, so the result is one
/// path segment or one query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
