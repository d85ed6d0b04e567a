//! Request signing: the `X-E2A-Signature` scheme (HMAC-SHA256 keyed by the whole secret)
//! and the Standard Webhooks headers.

use base64::Engine;
use hmac::{KeyInit, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

type HmacSha256 = hmac::Hmac<Sha256>;

/// A webhook signing secret: `whsec_` + 64 lowercase hex. Never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(String);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(***)")
    }
}

impl SigningSecret {
    pub fn generate() -> Self {
        Self(format!("whsec_{}", hex::encode(crate::random_bytes::<32>())))
    }

    /// Wraps a stored secret (or a test vector) as is.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `X-E2A-Signature` key: the UTF-8 bytes of the whole secret, prefix included.
    fn e2a_key(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Standard Webhooks key: base64 of the part after `whsec_`. Secrets that are not
    /// valid base64 there (only hand-made ones) fall back to that part's raw bytes.
    fn standard_key(&self) -> Vec<u8> {
        let rest = self.0.strip_prefix("whsec_").unwrap_or(&self.0);
        base64::engine::general_purpose::STANDARD.decode(rest).unwrap_or_else(|_| rest.as_bytes().to_vec())
    }
}

/// The current secret and every previous one, with when each stops signing.
#[derive(Clone, Debug)]
pub struct SecretSet {
    pub current: SigningSecret,
    pub previous: Vec<(SigningSecret, OffsetDateTime)>,
}

/// The signature headers of one attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct SignatureHeaders {
    pub e2a_signature: String,
    pub webhook_signature: String,
    pub timestamp: i64,
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

impl SecretSet {
    pub fn single(current: SigningSecret) -> Self {
        Self { current, previous: Vec::new() }
    }

    /// Secrets that sign at `now`: the current one first, then previous ones still in grace.
    pub fn active(&self, now: OffsetDateTime) -> impl Iterator<Item = &SigningSecret> {
        std::iter::once(&self.current).chain(self.previous.iter().filter(move |(_, exp)| *exp > now).map(|(s, _)| s))
    }

    /// `t=<t>,v1=<hex>[,v1=<hex>…]` over `"<t>." + body`.
    pub fn e2a_signature(&self, t: i64, body: &[u8], now: OffsetDateTime) -> String {
        let ts = t.to_string();
        let mut out = format!("t={ts}");
        for s in self.active(now) {
            out.push_str(",v1=");
            out.push_str(&hex::encode(hmac(s.e2a_key(), &[ts.as_bytes(), b".", body])));
        }
        out
    }

    /// `v1,<base64> [v1,<base64>…]` over `"<msg id>.<t>." + body`.
    pub fn standard_signature(&self, msg_id: &str, t: i64, body: &[u8], now: OffsetDateTime) -> String {
        let ts = t.to_string();
        let b64 = base64::engine::general_purpose::STANDARD;
        self.active(now)
            .map(|s| {
                let sig = hmac(&s.standard_key(), &[msg_id.as_bytes(), b".", ts.as_bytes(), b".", body]);
                format!("v1,{}", b64.encode(sig))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Both schemes for one attempt made at `now`.
    pub fn sign(&self, msg_id: &str, body: &[u8], now: OffsetDateTime) -> SignatureHeaders {
        let t = now.unix_timestamp();
        SignatureHeaders {
            e2a_signature: self.e2a_signature(t, body, now),
            webhook_signature: self.standard_signature(msg_id, t, body, now),
            timestamp: t,
        }
    }
}

/// Checks an `X-E2A-Signature` header against `secret` (any `v1=` may match), for
/// receivers and `herald listen`. Constant-time comparison.
pub fn verify_e2a(header: &str, body: &[u8], secret: &SigningSecret) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = Some(v),
            Some(("v1", v)) => sigs.push(v),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    sigs.iter().any(|s| {
        let Ok(bytes) = hex::decode(s) else {
            return false;
        };
        let mut mac = HmacSha256::new_from_slice(secret.e2a_key()).expect("any key length");
        mac.update(t.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(&bytes).is_ok()
    })
}

/// Checks a Standard Webhooks `webhook-signature` header.
pub fn verify_standard(header: &str, msg_id: &str, t: &str, body: &[u8], secret: &SigningSecret) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    header.split(' ').any(|part| {
        let Some(sig) = part.strip_prefix("v1,") else {
            return false;
        };
        let Ok(bytes) = b64.decode(sig) else {
            return false;
        };
        let mut mac = HmacSha256::new_from_slice(&secret.standard_key()).expect("any key length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(t.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(&bytes).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const BODY: &str = r#"{"type":"email.sent","id":"evt_vector","schema_version":"1","created_at":"2023-11-14T22:13:20Z","data":{"message_id":"msg_vector"}}"#;

    #[test]
    fn golden_vector_matches_the_original_project() {
        let now = datetime!(2023-11-14 22:13:20 UTC);
        let set = SecretSet::single(SigningSecret::from_stored("whsec_current_vector".into()));
        assert_eq!(
            set.e2a_signature(1_700_000_000, BODY.as_bytes(), now),
            "t=1700000000,v1=1de00bc31e17fd3bec71b082a780ff6b2cbdf75a33dff23bf5fd17011ad480b4"
        );
    }

    #[test]
    fn golden_vector_with_a_previous_secret_appends_its_signature() {
        let now = datetime!(2023-11-14 22:13:20 UTC);
        let set = SecretSet {
            current: SigningSecret::from_stored("whsec_current_vector".into()),
            previous: vec![(
                SigningSecret::from_stored("whsec_previous_vector".into()),
                now + time::Duration::hours(1),
            )],
        };
        assert_eq!(
            set.e2a_signature(1_700_000_000, BODY.as_bytes(), now),
            "t=1700000000,v1=1de00bc31e17fd3bec71b082a780ff6b2cbdf75a33dff23bf5fd17011ad480b4,v1=5e52f2321124cafff81c81397278a776dd24a4087ae6aed8fcc8b9c183593872"
        );
    }

    #[test]
    fn expired_previous_secret_no_longer_signs() {
        let now = datetime!(2023-11-14 22:13:20 UTC);
        let set = SecretSet {
            current: SigningSecret::from_stored("whsec_current_vector".into()),
            previous: vec![(SigningSecret::from_stored("whsec_previous_vector".into()), now)],
        };
        assert_eq!(set.e2a_signature(1, b"x", now).matches("v1=").count(), 1);
    }

    #[test]
    fn standard_webhooks_signature_verifies_with_the_decoded_key() {
        // Test vector of the Standard Webhooks specification.
        let secret = SigningSecret::from_stored("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        let set = SecretSet::single(secret.clone());
        let body = br#"{"test": 2432232314}"#;
        let sig = set.standard_signature(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            datetime!(2021-02-25 15:02:10 UTC),
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify_standard(&sig, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body, &secret));
        assert!(!verify_standard(&sig, "msg_other", "1614265330", body, &secret));
    }

    #[test]
    fn generated_secret_round_trips_through_both_verifiers() {
        let secret = SigningSecret::generate();
        assert!(secret.expose().starts_with("whsec_") && secret.expose().len() == 70);
        let now = OffsetDateTime::now_utc();
        let h = SecretSet::single(secret.clone()).sign("evt_1", b"{}", now);
        assert!(verify_e2a(&h.e2a_signature, b"{}", &secret));
        assert!(!verify_e2a(&h.e2a_signature, b"{ }", &secret));
        assert!(verify_standard(&h.webhook_signature, "evt_1", &h.timestamp.to_string(), b"{}", &secret));
        assert!(!format!("{secret:?}").contains("whsec_"));
    }
}
