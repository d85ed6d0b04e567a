//! Encodings both stores share for values kept as JSON text.

use crate::{StoreError, StoreResult};
use herald_domain::{KeyRing, SecretSet, SigningKeyPair, SigningSecret};

/// Parses a JSON column; a bad value is reported as a store fault.
pub fn parse_json<T: serde::de::DeserializeOwned>(s: &str) -> StoreResult<T> {
    serde_json::from_str(s).map_err(|e| StoreError::corrupt("a JSON column", e))
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

/// Encryption of signing secrets at rest (AES-256-GCM, key from `HERALD_SECRET_KEY`).
/// Stored form: `enc1:` + base64(nonce ‖ ciphertext ‖ tag). Values without the prefix are
/// plaintext from before encryption was turned on and are read as they are.
pub struct SecretCipher {
    key: aws_lc_rs::aead::LessSafeKey,
}

const ENC_PREFIX: &str = "enc1:";

impl std::fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretCipher(***)")
    }
}

impl SecretCipher {
    /// Parses a 32-byte key written as 64 hex characters or as base64.
    pub fn from_key_text(text: &str) -> Result<Self, String> {
        use base64::Engine;
        let t = text.trim();
        let bytes = hex::decode(t)
            .ok()
            .or_else(|| base64::engine::general_purpose::STANDARD.decode(t).ok())
            .filter(|b| b.len() == 32)
            .ok_or("HERALD_SECRET_KEY must be 32 bytes, written as 64 hex characters or base64")?;
        let unbound = aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &bytes)
            .map_err(|_| "HERALD_SECRET_KEY is not a valid AES-256 key")?;
        Ok(Self { key: aws_lc_rs::aead::LessSafeKey::new(unbound) })
    }

    /// The stored form of a secret.
    pub fn seal(&self, plain: &str) -> String {
        use base64::Engine;
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).expect("the OS random generator is available");
        let mut buf = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                aws_lc_rs::aead::Aad::empty(),
                &mut buf,
            )
            .expect("AES-GCM sealing does not fail for small inputs");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        format!("{ENC_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(out))
    }

    /// The secret from its stored form.
    pub fn open(&self, stored: &str) -> StoreResult<String> {
        use base64::Engine;
        let Some(b64) = stored.strip_prefix(ENC_PREFIX) else { return Ok(stored.to_owned()) };
        let fail =
            || StoreError::Misconfigured("a stored signing secret does not decrypt with HERALD_SECRET_KEY".into());
        let raw = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| fail())?;
        if raw.len() < 12 + 16 {
            return Err(fail());
        }
        let (nonce, ct) = raw.split_at(12);
        let mut buf = ct.to_vec();
        let nonce = aws_lc_rs::aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail())?;
        let plain = self.key.open_in_place(nonce, aws_lc_rs::aead::Aad::empty(), &mut buf).map_err(|_| fail())?;
        String::from_utf8(plain.to_vec()).map_err(|_| fail())
    }
}

/// The stored form of `plain` under an optional cipher.
pub fn seal(cipher: Option<&SecretCipher>, plain: &str) -> String {
    cipher.map(|c| c.seal(plain)).unwrap_or_else(|| plain.to_owned())
}

/// The plain text of a value stored by [`seal`] (clear values pass through).
pub fn open(cipher: Option<&SecretCipher>, stored: String) -> StoreResult<String> {
    match cipher {
        Some(c) => c.open(&stored),
        None => Ok(stored),
    }
}

/// [`open_secret_set`] for a claim: a webhook whose secrets cannot be opened gets `None`
/// (logged) instead of failing the whole claim, so one webhook never blocks the others. An
/// Ed25519 webhook's secrets sign nothing: they are not opened (`None`).
pub fn open_for_claim(
    cipher: Option<&SecretCipher>,
    webhook: &str,
    scheme: herald_domain::SignatureScheme,
    current: String,
    previous_json: &str,
) -> Option<SecretSet> {
    if scheme == herald_domain::SignatureScheme::Ed25519 {
        return None;
    }
    match open_secret_set(cipher, current, previous_json) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(webhook_id = webhook, error = %e, "signing secrets cannot be opened; its deliveries are not sent");
            None
        }
    }
}

/// An account's key ring for a claim, from its sealed private keys (current first): `None`
/// (logged) when there is none or the current one cannot be opened, so that account's
/// Ed25519 deliveries are not sent and nothing else is held up. A key in grace that does
/// not open is left out (logged): the current key still signs.
pub fn open_key_ring(cipher: Option<&SecretCipher>, account: &str, sealed: Vec<String>) -> Option<KeyRing> {
    let mut keys = Vec::new();
    for (i, stored) in sealed.into_iter().enumerate() {
        let opened = if cipher.is_none() && stored.starts_with(ENC_PREFIX) {
            Err(StoreError::Misconfigured("signing keys are stored encrypted: set HERALD_SECRET_KEY".into()))
        } else {
            open(cipher, stored).and_then(|plain| {
                SigningKeyPair::from_secret(&plain).map_err(|e| StoreError::corrupt("a signing key", e))
            })
        };
        match opened {
            Ok(key) => keys.push(key),
            Err(e) if i == 0 => {
                tracing::error!(account_id = account, error = %e, "the current signing key cannot be opened; the account's Ed25519 deliveries are not sent");
                return None;
            }
            Err(e) => {
                tracing::error!(account_id = account, error = %e, "a signing key in grace cannot be opened; it no longer signs")
            }
        }
    }
    KeyRing::new(keys)
}

/// [`secret_set`] for stores that may encrypt secrets.
pub fn open_secret_set(cipher: Option<&SecretCipher>, current: String, previous_json: &str) -> StoreResult<SecretSet> {
    let mut set = secret_set(current, previous_json)?;
    if let Some(c) = cipher {
        if set.current.expose().starts_with(ENC_PREFIX) {
            set.current = SigningSecret::from_stored(c.open(set.current.expose())?);
        }
        for (s, _) in &mut set.previous {
            if s.expose().starts_with(ENC_PREFIX) {
                *s = SigningSecret::from_stored(c.open(s.expose())?);
            }
        }
    } else if set.current.expose().starts_with(ENC_PREFIX) {
        return Err(StoreError::Misconfigured("signing secrets are stored encrypted: set HERALD_SECRET_KEY".into()));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_and_never_show_the_plaintext() {
        let c = SecretCipher::from_key_text(&"ab".repeat(32)).unwrap();
        let stored = c.seal("whsec_0123");
        assert!(stored.starts_with("enc1:") && !stored.contains("0123"));
        assert_ne!(c.seal("whsec_0123"), stored, "a fresh nonce each time");
        assert_eq!(c.open(&stored).unwrap(), "whsec_0123");
        assert_eq!(c.open("whsec_plain").unwrap(), "whsec_plain", "plaintext from before is read as is");
        let other = SecretCipher::from_key_text(&"cd".repeat(32)).unwrap();
        assert!(other.open(&stored).is_err());
        assert!(SecretCipher::from_key_text("short").is_err());
    }
}
