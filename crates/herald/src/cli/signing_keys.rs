//! `herald signing-keys …`: the account's Ed25519 keys (public parts) and their rotation.

use super::ClientArgs;
use reqwest::Method;
use serde_json::{Value, json};

const COLUMNS: &[&str] = &["kid", "public_key", "current", "created_at", "expires_at"];

#[derive(clap::Subcommand, Debug)]
pub enum SigningKeysCommand {
    /// The current key and those still in grace, newest first, and the JWK Set's address.
    List,
    /// Make a fresh key current; the replaced one signs beside it for the grace period.
    Rotate {
        /// How long the replaced key keeps signing (default 86400; 0 cuts it off now).
        #[arg(long)]
        grace_period_seconds: Option<u64>,
    },
}

pub async fn run(c: &ClientArgs, cmd: SigningKeysCommand) -> anyhow::Result<()> {
    let v = match cmd {
        SigningKeysCommand::List => c.call(Method::GET, "/api/v1/signing-keys", None).await?,
        SigningKeysCommand::Rotate { grace_period_seconds } => {
            let body = grace_period_seconds.map(|g| json!({"grace_period_seconds": g}));
            c.call(Method::POST, "/api/v1/signing-keys/rotate", body).await?
        }
    };
    if c.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    c.print(&json!({"items": v["keys"].clone()}), COLUMNS);
    println!("public keys (JWK Set): {}", v["jwks_url"].as_str().unwrap_or("-"));
    Ok(())
}

/// After a create or an update of a webhook or agent: the secret shown this once (HMAC), or
/// where receivers find the public keys (Ed25519).
pub(crate) fn print_signing(c: &ClientArgs, v: &Value) {
    if c.json {
        return;
    }
    if let Some(secret) = v["signing_secret"].as_str() {
        println!("signing secret (shown once): {secret}");
    } else if let Some(jwks) = v["jwks_url"].as_str() {
        println!("signed with the account's Ed25519 key; public keys: {jwks}");
    }
}
