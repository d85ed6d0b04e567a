//! `herald listen`: a local receiver for people writing theirs. Verifies the signatures of
//! every delivery and prints it: with a webhook's shared secret (`--secret`: both HMAC
//! schemes), or with public keys (`--public-key whpk_…`, or the keys of a JWK Set at
//! `--jwks-url`: the Standard Webhooks `v1a` Ed25519 signature, picked by `webhook-key-id`).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use herald_domain::SigningSecret;
use herald_domain::asymmetric::PublicKey;
use herald_domain::signing::{verify_e2a, verify_standard};
use std::sync::Arc;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("key").required(true).args(["secret", "public_key", "jwks_url"])))]
pub struct ListenArgs {
    /// The webhook's signing secret (`whsec_…`).
    #[arg(long, env = "HERALD_WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// A public key (`whpk_…`) that signs `v1a`; repeat it for keys in rotation.
    #[arg(long)]
    pub public_key: Vec<String>,
    /// A JWK Set of the public keys (`jwks_url` of a webhook): fetched at start, and again
    /// when a delivery names a key it does not hold (after a rotation).
    #[arg(long)]
    pub jwks_url: Option<String>,
    /// Port on 127.0.0.1 to listen on.
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
    /// Largest accepted age of `webhook-timestamp`, in seconds.
    #[arg(long, default_value_t = 300)]
    pub tolerance: i64,
}

/// What a delivery is checked with.
#[derive(Clone, Debug)]
pub enum Verifier {
    /// A shared secret: `X-E2A-Signature` and the `v1` entry of `webhook-signature`.
    Secret(SigningSecret),
    /// Public keys, each with its `kid`: a `v1a` entry of `webhook-signature`.
    Keys(Vec<(String, PublicKey)>),
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Checks one request; returns what a receiver should conclude.
pub fn check(verifier: &Verifier, headers: &HeaderMap, body: &[u8], now: i64, tolerance: i64) -> Result<(), String> {
    let (id, ts) = (header(headers, "webhook-id"), header(headers, "webhook-timestamp"));
    if !ts.parse::<i64>().is_ok_and(|t| now.abs_diff(t) <= tolerance.unsigned_abs()) {
        return Err("timestamp missing or outside the tolerance".into());
    }
    let signature = header(headers, "webhook-signature");
    match verifier {
        Verifier::Secret(secret) => {
            if !verify_e2a(header(headers, "x-e2a-signature"), body, secret) {
                return Err("X-E2A-Signature does not verify".into());
            }
            if !verify_standard(signature, id, ts, body, secret) {
                return Err("webhook-signature does not verify".into());
            }
            Ok(())
        }
        Verifier::Keys(keys) => {
            // The key the header names; when none of ours has that kid (a rotation we have not
            // seen: the replaced key still signs beside the new one during its grace), any.
            let kid = header(headers, "webhook-key-id");
            let named: Vec<_> = keys.iter().filter(|(k, _)| k == kid).collect();
            let candidates = if named.is_empty() { keys.iter().collect() } else { named };
            if candidates.iter().any(|(_, key)| key.verify_v1a(signature, id, ts, body)) {
                Ok(())
            } else if keys.iter().all(|(k, _)| k != kid) && !kid.is_empty() {
                Err(format!("no v1a signature by these keys, and none has webhook-key-id {kid:?}"))
            } else {
                Err("webhook-signature has no v1a signature of these keys".into())
            }
        }
    }
}

/// The keys of the JWK Set at `url` (its Ed25519 keys; others are skipped).
pub async fn fetch_jwks(url: &str) -> anyhow::Result<Vec<(String, PublicKey)>> {
    let set: serde_json::Value = reqwest::get(url).await?.error_for_status()?.json().await?;
    let keys: Vec<(String, PublicKey)> = set["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|jwk| {
            PublicKey::from_jwk(jwk).ok().map(|k| (jwk["kid"].as_str().unwrap_or_default().to_owned(), k))
        })
        .collect();
    anyhow::ensure!(!keys.is_empty(), "{url} has no Ed25519 keys");
    Ok(keys)
}

/// What the receiver checks with; with `--jwks-url` the keys are fetched again on a kid it
/// does not hold.
struct Listening {
    verifier: tokio::sync::RwLock<Verifier>,
    jwks_url: Option<String>,
    tolerance: i64,
}

impl Listening {
    /// Fetches the JWK Set again when `kid` is not among the keys held (errors keep them).
    async fn refresh_for(&self, kid: &str) {
        let Some(url) = &self.jwks_url else { return };
        if kid.is_empty() {
            return;
        }
        if let Verifier::Keys(keys) = &*self.verifier.read().await
            && keys.iter().any(|(k, _)| k == kid)
        {
            return;
        }
        match fetch_jwks(url).await {
            Ok(keys) => *self.verifier.write().await = Verifier::Keys(keys),
            Err(e) => eprintln!("could not fetch {url} again: {e}"),
        }
    }
}

async fn receive(
    State(cfg): State<Arc<Listening>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, &'static str) {
    cfg.refresh_for(header(&headers, "webhook-key-id")).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let verdict = check(&*cfg.verifier.read().await, &headers, &body, now, cfg.tolerance);
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
    // Fetched again on an unknown kid only when the keys came from it.
    let jwks_url = args.jwks_url.clone().filter(|_| args.secret.is_none());
    let verifier = match (args.secret, &args.jwks_url) {
        (Some(secret), _) => Verifier::Secret(SigningSecret::from_stored(secret)),
        (None, Some(url)) => Verifier::Keys(fetch_jwks(url).await?),
        (None, None) => Verifier::Keys(
            args.public_key
                .iter()
                .map(|k| PublicKey::from_whpk(k).map(|p| (p.kid(), p)))
                .collect::<Result<_, _>>()
                .map_err(|e| anyhow::anyhow!("--public-key: {e}"))?,
        ),
    };
    let listening = Listening { verifier: tokio::sync::RwLock::new(verifier), jwks_url, tolerance: args.tolerance };
    let app = axum::Router::new().fallback(axum::routing::post(receive)).with_state(Arc::new(listening));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("listening on http://{} — point a webhook here; Ctrl-C to stop", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            tokio::signal::ctrl_c().await.ok();
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::asymmetric::SigningKeyPair;

    fn signed(key: &SigningKeyPair, kid: Option<&str>, t: i64, body: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", "msg_1".parse().unwrap());
        h.insert("webhook-timestamp", t.to_string().parse().unwrap());
        h.insert("webhook-signature", key.sign_v1a("msg_1", t, body).parse().unwrap());
        if let Some(kid) = kid {
            h.insert("webhook-key-id", kid.parse().unwrap());
        }
        h
    }

    #[test]
    fn v1a_deliveries_verify_with_the_named_public_key() {
        let (current, old) = (SigningKeyPair::generate(), SigningKeyPair::generate());
        let keys = Verifier::Keys(vec![(old.kid(), old.public()), (current.kid(), current.public())]);
        let now = 1_700_000_000;
        assert_eq!(check(&keys, &signed(&current, Some(&current.kid()), now, b"{}"), b"{}", now, 300), Ok(()));
        assert_eq!(check(&keys, &signed(&old, None, now, b"{}"), b"{}", now, 300), Ok(()), "any key without a kid");
        assert!(check(&keys, &signed(&current, Some(&current.kid()), now, b"{}"), b"{x}", now, 300).is_err());
        assert!(check(&keys, &signed(&current, Some(&old.kid()), now, b"{}"), b"{}", now, 300).is_err(), "wrong kid");
        let stranger = SigningKeyPair::generate();
        assert!(
            check(&keys, &signed(&stranger, Some("nope"), now, b"{}"), b"{}", now, 300).unwrap_err().contains("nope")
        );
        // A rotation this receiver has not seen: the header names the new key, and the key it
        // pinned signs beside it during the grace.
        let ring = herald_domain::KeyRing::new(vec![stranger.clone(), current.clone()]).unwrap();
        let mut h = signed(&stranger, Some(&stranger.kid()), now, b"{}");
        h.insert("webhook-signature", ring.sign("msg_1", now, b"{}").parse().unwrap());
        assert_eq!(check(&keys, &h, b"{}", now, 300), Ok(()));
        assert!(check(&keys, &signed(&stranger, None, now, b"{}"), b"{}", now, 300).is_err());
        assert!(
            check(&keys, &signed(&current, None, now - 301, b"{}"), b"{}", now, 300).unwrap_err().contains("timestamp")
        );
    }

    #[tokio::test]
    async fn the_keys_of_a_jwks_url_are_read() {
        let key = SigningKeyPair::generate();
        let set = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}, key.public().jwk()]});
        let app = axum::Router::new().route("/jwks.json", axum::routing::get(move || async move { axum::Json(set) }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let keys = fetch_jwks(&format!("http://{addr}/jwks.json")).await.unwrap();
        assert_eq!(keys, vec![(key.kid(), key.public())]);
        assert!(fetch_jwks(&format!("http://{addr}/missing")).await.is_err());
    }
}
