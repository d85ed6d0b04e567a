//! The account's Ed25519 signing keys (list, rotate) and their public JWK Set, served
//! without auth at `/.well-known/herald/{account_public_id}/jwks.json`.

use crate::AppState;
use crate::auth::Authed;
use crate::dto::jwks_url;
use crate::extract::{MaybeJson, NoQuery, PathId};
use crate::lifecycle::RotateIn;
use crate::problem::ApiError;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_domain::{AccountId, rfc3339};
use herald_store::SigningKeyInfo;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// How long receivers and caches may keep the JWK Set: short, since a rotation's new key
/// signs at once (the replaced one signs beside it for the grace, so a copy this old still
/// verifies one of the signatures unless the grace is shorter than this).
pub const JWKS_MAX_AGE_SECS: u64 = 60;

/// One signing key, public parts only (the private key never leaves the server).
#[derive(Serialize, utoipa::ToSchema)]
pub struct SigningKeyOut {
    /// Its RFC 7638 thumbprint: the `webhook-key-id` header and the JWK's `kid`.
    pub kid: String,
    /// `whpk_…` (Standard Webhooks), for receivers that pin a key instead of fetching the JWKS.
    #[schema(pattern = "^whpk_[A-Za-z0-9+/]{43}=$")]
    pub public_key: String,
    /// The current key signs every Ed25519 delivery; a replaced one signs beside it until
    /// `expires_at`.
    pub current: bool,
    #[schema(value_type = crate::schemas::Rfc3339)]
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schemas::Rfc3339>)]
    pub expires_at: Option<String>,
}

/// The account's keys, newest first, and where receivers fetch them.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SigningKeysOut {
    pub jwks_url: String,
    pub keys: Vec<SigningKeyOut>,
}

fn keys_out(s: &AppState, account: &AccountId, keys: Vec<SigningKeyInfo>) -> SigningKeysOut {
    SigningKeysOut {
        jwks_url: jwks_url(&s.config.portal.public_url, account),
        keys: keys
            .into_iter()
            .map(|k| SigningKeyOut {
                current: k.expires_at.is_none(),
                kid: k.kid,
                public_key: k.public_key,
                created_at: rfc3339(k.created_at),
                expires_at: k.expires_at.map(rfc3339),
            })
            .collect(),
    }
}

#[utoipa::path(get, path = "/api/v1/signing-keys", tag = "signing keys", security(("bearer" = [])),
    responses((status = 200, body = SigningKeysOut,
        description = "the current key and those still in grace (none until the first `ed25519` webhook or agent, or a rotation)")))]
pub async fn list_signing_keys(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
) -> Result<impl IntoResponse, ApiError> {
    let keys = s.app.signing_keys(&account.id).await?;
    Ok(axum::Json(keys_out(&s, &account.id, keys)))
}

#[utoipa::path(post, path = "/api/v1/signing-keys/rotate", tag = "signing keys", security(("bearer" = [])),
    request_body(content = Option<RotateIn>, description = "optional"),
    responses(
        (status = 200, body = SigningKeysOut, description = "rotated: a fresh key is current; the one it replaced signs beside it, and stays in the JWK Set, for the grace period"),
        (status = 400, description = "invalid"),
        (status = 429, description = "too many rotations in this account (HERALD_ROTATIONS_PER_MINUTE, 10 a minute)"),
    ))]
pub async fn rotate_signing_key(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
    MaybeJson(body): MaybeJson<RotateIn>,
) -> Result<impl IntoResponse, ApiError> {
    let grace = Duration::from_secs(body.unwrap_or_default().grace_period_seconds.unwrap_or(86_400));
    let admit = || crate::ratelimit::admit(&s.limits.rotate_per_account, account.id.as_str());
    let keys = s.app.rotate_signing_key(&account.id, grace, admit).await?;
    Ok(axum::Json(keys_out(&s, &account.id, keys)))
}

/// A JWK Set (RFC 7517 §5) of Ed25519 public keys (RFC 8037: `kty` OKP, `crv` Ed25519, `x`),
/// each with `kid`, `use: sig` and `alg: EdDSA`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Jwks {
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<serde_json::Value>,
}

#[utoipa::path(get, path = "/.well-known/herald/{account_public_id}/jwks.json", tag = "signing keys",
    params(("account_public_id" = String, Path, description = "the account's id (`acc_…`)", pattern = "^acc_[0-9a-f]{32}$")),
    responses(
        (status = 200, body = Jwks, content_type = "application/jwk-set+json",
            headers(("ETag" = String, description = "the set's strong validator: send it back as `If-None-Match` to revalidate")),
            description = "the account's current and in-grace public keys; cacheable for 60 s (`no-store` while there is none); on an unknown `webhook-key-id`, fetch again"),
        (status = 304, description = "`If-None-Match` names the set's current `ETag`: the cached copy is still the set"),
        (status = 400, description = "a query parameter (none is taken)"),
        (status = 404, description = "no such account"),
        (status = 503, description = "the store is unavailable; try again"),
    ))]
pub async fn jwks(
    State(s): State<AppState>,
    _: NoQuery,
    headers: HeaderMap,
    PathId(account): PathId,
) -> Result<Response, ApiError> {
    let set = s.app.jwks(&account).await?;
    // An account without keys yet gets its first with its first Ed25519 webhook: never cache
    // the empty set.
    let empty = set["keys"].as_array().is_none_or(|k| k.is_empty());
    let cache = match empty {
        true => "no-store".to_owned(),
        false => format!("public, max-age={JWKS_MAX_AGE_SECS}"),
    };
    let body = serde_json::to_vec(&set).expect("JSON values serialise");
    let etag = etag_of(&body);
    let caching = [
        (header::CACHE_CONTROL, cache),
        (header::ETAG, etag.clone()),
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*".to_owned()),
    ];
    // A receiver (or cache) revalidating an unchanged set gets no body (RFC 9110 §15.4.5).
    if if_none_match_names(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, caching).into_response());
    }
    Ok((caching, [(header::CONTENT_TYPE, "application/jwk-set+json")], body).into_response())
}

/// A strong validator of the set (RFC 9110 §8.8.3): part of its body's SHA-256, so it changes
/// exactly when the set does, on every replica alike.
fn etag_of(body: &[u8]) -> String {
    format!("\"{}\"", hex::encode(&Sha256::digest(body)[..16]))
}

/// Whether `If-None-Match` (a list of entity tags, or `*`, maybe over several header lines)
/// names `etag`, compared weakly as RFC 9110 §13.1.2 asks (`W/"x"` matches `"x"`).
fn if_none_match_names(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn asked(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn if_none_match_is_a_weakly_compared_list_or_a_star() {
        let tag = etag_of(b"{\"keys\":[]}");
        assert_eq!(tag.len(), 34, "32 hex digits, quoted: {tag}");
        assert!(!if_none_match_names(&asked(&[]), &tag));
        assert!(if_none_match_names(&asked(&[&tag]), &tag));
        assert!(if_none_match_names(&asked(&[&format!("W/{tag}")]), &tag));
        assert!(if_none_match_names(&asked(&["\"a\"", &format!("\"b\" , {tag}")]), &tag), "over several lines");
        assert!(if_none_match_names(&asked(&["*"]), &tag));
        assert!(!if_none_match_names(&asked(&["\"a\", W/\"b\""]), &tag));
        assert_ne!(tag, etag_of(b"{\"keys\":[{}]}"));
    }
}
