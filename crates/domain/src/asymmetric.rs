//! Asymmetric webhook signatures (Standard Webhooks `v1a`): Ed25519 key pairs (`whsk_…`
//! secret, `whpk_…` public), the `v1a,<base64>` signature over `{id}.{timestamp}.{body}`,
//! and the public key as an RFC 8037 JWK whose `kid` is its RFC 7638 thumbprint. A receiver
//! holding only public keys can verify a delivery and cannot forge one.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::Signer;
use sha2::Digest;

/// An account's Ed25519 signing key. Its `Debug` hides the key.
#[derive(Clone)]
pub struct SigningKeyPair {
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for SigningKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyPair").field("kid", &self.kid()).finish_non_exhaustive()
    }
}

/// Why a stored or given key does not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an Ed25519 key of the form {0}<base64 of 32 bytes>")]
pub struct BadKey(pub &'static str);

impl SigningKeyPair {
    /// A fresh key from the OS generator.
    pub fn generate() -> Self {
        Self { key: ed25519_dalek::SigningKey::from_bytes(&crate::random_bytes::<32>()) }
    }

    /// Reads `whsk_<base64 of the 32-byte seed>`.
    pub fn from_secret(s: &str) -> Result<Self, BadKey> {
        let seed = decode32(s, "whsk_")?;
        Ok(Self { key: ed25519_dalek::SigningKey::from_bytes(&seed) })
    }

    /// `whsk_<base64 of the 32-byte seed>`: what is stored (sealed like secrets), never shown.
    pub fn expose_secret(&self) -> String {
        format!("whsk_{}", STANDARD.encode(self.key.to_bytes()))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey { key: self.key.verifying_key() }
    }

    /// The key id receivers look the public key up by.
    pub fn kid(&self) -> String {
        self.public().kid()
    }

    /// `v1a,<base64 signature>` over the Standard Webhooks signed content.
    pub fn sign_v1a(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let sig = self.key.sign(&signed_content(msg_id, timestamp, body));
        format!("v1a,{}", STANDARD.encode(sig.to_bytes()))
    }
}

/// An Ed25519 public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key: ed25519_dalek::VerifyingKey,
}

impl PublicKey {
    /// Reads `whpk_<base64 of the 32-byte key>`.
    pub fn from_whpk(s: &str) -> Result<Self, BadKey> {
        let bytes = decode32(s, "whpk_")?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).map(|key| Self { key }).map_err(|_| BadKey("whpk_"))
    }

    /// Reads an RFC 8037 JWK (`kty` OKP, `crv` Ed25519, `x`).
    pub fn from_jwk(jwk: &serde_json::Value) -> Result<Self, BadKey> {
        if jwk["kty"] != "OKP" || jwk["crv"] != "Ed25519" {
            return Err(BadKey("a JWK with kty OKP and crv Ed25519, x = "));
        }
        let x = jwk["x"].as_str().ok_or(BadKey("x = "))?;
        let bytes: [u8; 32] = URL_SAFE_NO_PAD.decode(x).ok().and_then(|b| b.try_into().ok()).ok_or(BadKey("x = "))?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).map(|key| Self { key }).map_err(|_| BadKey("x = "))
    }

    pub fn to_whpk(&self) -> String {
        format!("whpk_{}", STANDARD.encode(self.key.to_bytes()))
    }

    /// The RFC 7638 thumbprint: base64url(SHA-256 of `{"crv":"Ed25519","kty":"OKP","x":"…"}`).
    pub fn kid(&self) -> String {
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, self.x());
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical.as_bytes()))
    }

    fn x(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.to_bytes())
    }

    /// The public JWK (RFC 7517/8037) with `kid`, `use: sig` and `alg: EdDSA`.
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": self.x(), "kid": self.kid(), "use": "sig", "alg": "EdDSA"})
    }

    /// Whether any `v1a,` entry of a `webhook-signature` header (space-separated, other
    /// schemes ignored) is this key's signature of the content.
    pub fn verify_v1a(&self, header: &str, msg_id: &str, timestamp: &str, body: &[u8]) -> bool {
        let Ok(t) = timestamp.parse::<i64>() else { return false };
        let content = signed_content(msg_id, t, body);
        header.split(' ').filter_map(|e| e.strip_prefix("v1a,")).any(|b64| {
            let Some(bytes) = STANDARD.decode(b64).ok().and_then(|b| <[u8; 64]>::try_from(b).ok()) else {
                return false;
            };
            self.key.verify_strict(&content, &ed25519_dalek::Signature::from_bytes(&bytes)).is_ok()
        })
    }
}

/// How a webhook's (or an agent's) deliveries are signed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SignatureScheme {
    /// A shared secret: `X-E2A-Signature` and `webhook-signature: v1,…`.
    #[default]
    Hmac,
    /// The account's Ed25519 keys: `webhook-signature: v1a,…` and `webhook-key-id`.
    Ed25519,
}

impl SignatureScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hmac => "hmac",
            Self::Ed25519 => "ed25519",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hmac" => Some(Self::Hmac),
            "ed25519" => Some(Self::Ed25519),
            _ => None,
        }
    }
}

/// The keys that sign now: the account's current key first, then those still in grace,
/// each with its `kid` (computed once).
#[derive(Clone, Debug)]
pub struct KeyRing {
    keys: Vec<(String, SigningKeyPair)>,
}

impl KeyRing {
    /// `None` without a key: nothing can be signed.
    pub fn new(keys: Vec<SigningKeyPair>) -> Option<Self> {
        (!keys.is_empty()).then(|| Self { keys: keys.into_iter().map(|k| (k.kid(), k)).collect() })
    }

    /// The `kid` of the current key: the `webhook-key-id` header.
    pub fn current_kid(&self) -> &str {
        &self.keys[0].0
    }

    /// The `webhook-signature` value: one `v1a,…` entry per key, space-separated, the
    /// current key's first.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let entries: Vec<String> = self.keys.iter().map(|(_, k)| k.sign_v1a(msg_id, timestamp, body)).collect();
        entries.join(" ")
    }
}

/// `{msg_id}.{timestamp}.{body}`, what both Standard Webhooks schemes sign.
fn signed_content(msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut m = format!("{msg_id}.{timestamp}.").into_bytes();
    m.extend_from_slice(body);
    m
}

fn decode32(s: &str, prefix: &'static str) -> Result<[u8; 32], BadKey> {
    let b64 = s.strip_prefix(prefix).ok_or(BadKey(prefix))?;
    STANDARD.decode(b64).ok().and_then(|b| b.try_into().ok()).ok_or(BadKey(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032 §7.1 TEST 1 — also the key of RFC 8037 Appendix A.
    const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const EMPTY_MESSAGE_SIGNATURE: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

    #[test]
    fn a_key_ring_signs_with_every_key_the_current_first() {
        let (current, old) = (SigningKeyPair::generate(), SigningKeyPair::generate());
        assert!(KeyRing::new(Vec::new()).is_none());
        let ring = KeyRing::new(vec![current.clone(), old.clone()]).unwrap();
        assert_eq!(ring.current_kid(), current.kid());
        let header = ring.sign("msg_1", 1_700_000_000, b"{}");
        let entries: Vec<&str> = header.split(' ').collect();
        assert_eq!(entries.len(), 2);
        assert!(current.public().verify_v1a(entries[0], "msg_1", "1700000000", b"{}"));
        assert!(old.public().verify_v1a(entries[1], "msg_1", "1700000000", b"{}"));
        assert!(!old.public().verify_v1a(entries[0], "msg_1", "1700000000", b"{}"));
        assert_eq!(SignatureScheme::parse("ed25519"), Some(SignatureScheme::Ed25519));
        assert_eq!(SignatureScheme::parse("HMAC"), None);
        assert_eq!(SignatureScheme::default().as_str(), "hmac");
    }

    fn rfc_key() -> SigningKeyPair {
        let seed = hex::decode(SEED).unwrap();
        SigningKeyPair::from_secret(&format!("whsk_{}", STANDARD.encode(seed))).unwrap()
    }

    #[test]
    fn the_rfc_8032_key_signs_as_published() {
        let k = rfc_key();
        assert_eq!(hex::encode(k.public().key.to_bytes()), PUBLIC);
        let sig = k.key.sign(b"");
        assert_eq!(hex::encode(sig.to_bytes()), EMPTY_MESSAGE_SIGNATURE);
    }

    #[test]
    fn the_jwk_and_thumbprint_match_rfc_8037_appendix_a() {
        let jwk = rfc_key().public().jwk();
        assert_eq!(jwk["x"], "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        assert_eq!(jwk["kid"], "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        assert_eq!((jwk["kty"].as_str(), jwk["crv"].as_str()), (Some("OKP"), Some("Ed25519")));
        assert!(jwk.get("d").is_none(), "never the private part");
        assert_eq!(PublicKey::from_jwk(&jwk).unwrap(), rfc_key().public());
    }

    #[test]
    fn v1a_signatures_verify_with_the_public_key_only_and_nothing_else() {
        let k = SigningKeyPair::generate();
        let header = k.sign_v1a("msg_1", 1_700_000_000, br#"{"a":1}"#);
        assert!(header.starts_with("v1a,"));
        let public = PublicKey::from_whpk(&k.public().to_whpk()).unwrap();
        assert!(public.verify_v1a(&header, "msg_1", "1700000000", br#"{"a":1}"#));
        // Among other entries too (a v1 HMAC next to it, a rotated key's v1a).
        let other = SigningKeyPair::generate().sign_v1a("msg_1", 1_700_000_000, br#"{"a":1}"#);
        assert!(public.verify_v1a(&format!("v1,abc= {other} {header}"), "msg_1", "1700000000", br#"{"a":1}"#));
        for (id, t, body) in [
            ("msg_2", "1700000000", &br#"{"a":1}"#[..]),
            ("msg_1", "1700000001", br#"{"a":1}"#),
            ("msg_1", "1700000000", br#"{"a":2}"#),
        ] {
            assert!(!public.verify_v1a(&header, id, t, body), "{id} {t}");
        }
        assert!(!public.verify_v1a(&other, "msg_1", "1700000000", br#"{"a":1}"#), "another key's signature");
        assert!(!public.verify_v1a("v1a,!!!", "msg_1", "1700000000", b""));
        assert!(!public.verify_v1a(&header, "msg_1", "soon", br#"{"a":1}"#));
    }

    #[test]
    fn keys_round_trip_and_bad_ones_are_refused() {
        let k = SigningKeyPair::generate();
        let again = SigningKeyPair::from_secret(&k.expose_secret()).unwrap();
        assert_eq!(again.kid(), k.kid());
        assert!(!format!("{k:?}").contains(&k.expose_secret()[5..]), "Debug hides the key");
        assert_eq!(SigningKeyPair::from_secret("whpk_AAAA").unwrap_err(), BadKey("whsk_"));
        assert!(SigningKeyPair::from_secret("whsk_AAAA").is_err(), "too short");
        assert!(PublicKey::from_whpk("whpk_not base64").is_err());
        assert!(PublicKey::from_jwk(&serde_json::json!({"kty": "EC", "crv": "P-256", "x": "a"})).is_err());
    }
}
