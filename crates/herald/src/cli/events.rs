//! `herald events …`

use super::ClientArgs;
use anyhow::Context;
use reqwest::Method;
use serde_json::json;

#[derive(clap::Subcommand, Debug)]
pub enum EventsCommand {
    /// Publish an event.
    Send {
        /// Event type, e.g. `email.received`.
        #[arg(long = "type")]
        event_type: String,
        /// The `data` object, as JSON.
        #[arg(long, default_value = "{}")]
        data: String,
        #[arg(long)]
        idempotency_key: Option<String>,
        #[arg(long)]
        agent_id: Option<String>,
        #[arg(long)]
        conversation_id: Option<String>,
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
        /// The FIFO lane of the event in webhooks with `ordering: fifo`.
        #[arg(long)]
        ordering_key: Option<String>,
    },
    /// List published events.
    List {
        #[arg(long = "type")]
        event_type: Option<String>,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        cursor: Option<String>,
    },
}

pub async fn run(c: &ClientArgs, cmd: EventsCommand) -> anyhow::Result<()> {
    match cmd {
        EventsCommand::Send { event_type, data, idempotency_key, agent_id, conversation_id, labels, ordering_key } => {
            let data: serde_json::Value = serde_json::from_str(&data).context("--data must be JSON")?;
            let mut body = json!({"type": event_type, "data": data});
            if let Some(k) = idempotency_key {
                body["idempotency_key"] = json!(k);
            }
            if let Some(a) = agent_id {
                body["agent_id"] = json!(a);
            }
            if let Some(cv) = conversation_id {
                body["conversation_id"] = json!(cv);
            }
            if !labels.is_empty() {
                body["labels"] = json!(labels);
            }
            if let Some(o) = ordering_key {
                body["ordering_key"] = json!(o);
            }
            let v = c.call(Method::POST, "/api/v1/events", Some(body)).await?;
            c.print(&v, &["id", "type", "created_at", "deliveries"]);
        }
        EventsCommand::List { event_type, since, until, limit, cursor } => {
            let mut q = vec![];
            for (k, v) in [("type", event_type), ("since", since), ("until", until), ("cursor", cursor)] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", urlencode(&v)));
                }
            }
            if let Some(l) = limit {
                q.push(format!("limit={l}"));
            }
            let v = c.call(Method::GET, &format!("/api/v1/events?{}", q.join("&")), None).await?;
            c.print(&v, &["id", "type", "created_at", "deliveries"]);
        }
    }
    Ok(())
}

/// Percent-encodes a query value (RFC 3339 times carry `:` and `+`).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
