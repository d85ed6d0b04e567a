//! Encodings both stores share for values kept as JSON text.

use crate::{StoreError, StoreResult};
use herald_domain::{SecretSet, SigningSecret};

/// Parses a JSON column; a bad value is reported as a store fault.
pub fn parse_json<T: serde::de::DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Unavailable(Box::new(e)))
}

/// Serialises plain data for a JSON column or a JSON parameter.
pub fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serialises")
}

/// One previous signing secret as stored: the secret and when it stops signing (ms).
#[derive(serde::Deserialize, serde::Serialize)]
pub struct StoredSecret {
    pub secret: String,
    pub expires_at: i64,
}

/// The secret set of a webhook from its `secret` and `previous_secrets` columns.
pub fn secret_set(current: String, previous_json: &str) -> StoreResult<SecretSet> {
    let prev: Vec<StoredSecret> = parse_json(previous_json)?;
    Ok(SecretSet {
        current: SigningSecret::from_stored(current),
        previous: prev
            .into_iter()
            .map(|p| (SigningSecret::from_stored(p.secret), herald_domain::from_millis(p.expires_at)))
            .collect(),
    })
}

/// The `previous_secrets` after a rotation: the old current secret signs until
/// `grace_until`; expired ones are dropped; the `keep` latest-expiring are kept.
pub fn rotated(previous_json: &str, old_current: &str, grace_until: i64, now: i64, keep: usize) -> StoreResult<String> {
    let mut prev: Vec<StoredSecret> = parse_json(previous_json)?;
    prev.push(StoredSecret { secret: old_current.to_owned(), expires_at: grace_until });
    prev.retain(|p| p.expires_at > now);
    prev.sort_by_key(|p| std::cmp::Reverse(p.expires_at));
    prev.truncate(keep);
    Ok(to_json(&prev))
}

/// The `previous_secrets` without expired entries, or `None` when nothing expired.
pub fn pruned(previous_json: &str, now: i64) -> StoreResult<Option<String>> {
    let mut prev: Vec<StoredSecret> = parse_json(previous_json)?;
    let before = prev.len();
    prev.retain(|p| p.expires_at > now);
    Ok((prev.len() != before).then(|| to_json(&prev)))
}
