//! The API client shared by the CLI commands: server, key, output format.

use anyhow::Context;
use serde_json::Value;

/// Where and as whom to call the API.
#[derive(clap::Args, Clone, Debug)]
pub struct ClientArgs {
    /// Base URL of a running Herald.
    #[arg(long, env = "HERALD_SERVER", default_value = "http://127.0.0.1:8080", global = true)]
    pub server: String,
    /// API key (`hk_…`).
    #[arg(long, env = "HERALD_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,
    /// Print the JSON the API returned instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

impl ClientArgs {
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        self.call_keyed(method, path, body, None).await
    }

    /// [`ClientArgs::call`] with an optional `Idempotency-Key` header.
    pub async fn call_keyed(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<Value> {
        let key = self.api_key.as_deref().context("an API key is needed: --api-key or HERALD_API_KEY")?;
        let mut req = reqwest::Client::new()
            .request(method, format!("{}{path}", self.server.trim_end_matches('/')))
            .bearer_auth(key);
        if let Some(k) = idempotency_key {
            req = req.header("idempotency-key", k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.with_context(|| format!("calling {}", self.server))?;
        let status = resp.status();
        let text = resp.text().await?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let detail =
                value.get("detail").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| value.to_string());
            anyhow::bail!("{status}: {detail}");
        }
        Ok(value)
    }

    /// Prints `value` as JSON, or as a table of `columns` of its `items` (or of itself).
    pub fn print(&self, value: &Value, columns: &[&str]) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
            return;
        }
        let rows: Vec<&Value> = match value.get("items").and_then(Value::as_array) {
            Some(items) => items.iter().collect(),
            None => vec![value],
        };
        print_table(&rows, columns);
        if let Some(c) = value.get("next_cursor").and_then(Value::as_str) {
            println!("(more: --cursor {c})");
        }
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

pub fn print_table(rows: &[&Value], columns: &[&str]) {
    let cells: Vec<Vec<String>> =
        rows.iter().map(|r| columns.iter().map(|c| cell(r.get(*c).unwrap_or(&Value::Null))).collect()).collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| cells.iter().map(|r| r[i].chars().count()).chain([c.len()]).max().unwrap_or(0))
        .collect();
    let line = |vals: Vec<String>| {
        let parts: Vec<String> = vals.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(columns.iter().map(|c| c.to_uppercase()).collect());
    for r in cells {
        line(r);
    }
}
