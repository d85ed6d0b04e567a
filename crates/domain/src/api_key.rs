//! API keys: `hk_` + 48 lowercase hex, shown once, stored only as a SHA-256 hash.

use sha2::{Digest, Sha256};

/// A bearer key in clear; exists only between generation and the response that shows it.
#[derive(Clone)]
pub struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl ApiKey {
    pub fn generate() -> Self {
        Self(format!("hk_{}", hex::encode(crate::random_bytes::<24>())))
    }

    /// Accepts a key of the documented shape (`hk_` + 48 lowercase hex).
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix("hk_")?;
        (hex.len() == 48 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then(|| Self(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The value stored and looked up: lowercase hex SHA-256 of the key.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_parses_and_hash_is_stable() {
        let k = ApiKey::generate();
        assert_eq!(k.expose().len(), 51);
        let again = ApiKey::parse(k.expose()).unwrap();
        assert_eq!(again.hash(), k.hash());
        assert_eq!(k.hash().len(), 64);
        assert!(!format!("{k:?}").contains(&k.expose()[3..]));
    }

    #[test]
    fn wrong_shapes_are_not_keys() {
        assert!(ApiKey::parse("hk_short").is_none());
        assert!(ApiKey::parse("sk_000000000000000000000000000000000000000000000000").is_none());
    }
}
