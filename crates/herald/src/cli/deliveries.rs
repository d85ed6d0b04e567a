//! `herald deliveries …`

use super::ClientArgs;
use reqwest::Method;

const COLUMNS: &[&str] =
    &["id", "event_type", "status", "attempts", "max_attempts", "last_status_code", "last_error", "next_retry_at"];

#[derive(clap::Subcommand, Debug)]
pub enum DeliveriesCommand {
    /// List a webhook's deliveries.
    List {
        /// The webhook (`wh_…`).
        webhook: String,
        #[arg(long, value_parser = ["pending", "delivered", "failed", "blocked"])]
        status: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show a delivery with its attempt log.
    Show { id: String },
    /// Retry a failed (or blocked) delivery once more.
    Retry { id: String },
    /// Skip a pending or blocked delivery: it ends failed and the next of its FIFO lane may go.
    Skip { id: String },
}

pub async fn run(c: &ClientArgs, cmd: DeliveriesCommand) -> anyhow::Result<()> {
    match cmd {
        DeliveriesCommand::List { webhook, status, limit, cursor } => {
            let mut q = vec![];
            if let Some(s) = status {
                q.push(format!("status={s}"));
            }
            if let Some(l) = limit {
                q.push(format!("limit={l}"));
            }
            if let Some(cur) = cursor {
                q.push(format!("cursor={cur}"));
            }
            let v =
                c.call(Method::GET, &format!("/api/v1/webhooks/{webhook}/deliveries?{}", q.join("&")), None).await?;
            c.print(&v, COLUMNS);
        }
        DeliveriesCommand::Show { id } => {
            let v = c.call(Method::GET, &format!("/api/v1/deliveries/{id}"), None).await?;
            c.print(&v, COLUMNS);
            if !c.json {
                println!();
                let log: Vec<&serde_json::Value> =
                    v["attempt_log"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
                super::client::print_table(&log, &["number", "started_at", "duration_ms", "status_code", "error"]);
            }
        }
        DeliveriesCommand::Retry { id } => {
            let v = c.call(Method::POST, &format!("/api/v1/deliveries/{id}/retry"), None).await?;
            c.print(&v, COLUMNS);
        }
        DeliveriesCommand::Skip { id } => {
            let v = c.call(Method::POST, &format!("/api/v1/deliveries/{id}/skip"), None).await?;
            c.print(&v, COLUMNS);
        }
    }
    Ok(())
}
