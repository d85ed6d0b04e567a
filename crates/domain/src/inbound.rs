//! The rules of inbound mail: how duplicates are recognised, which conversation a message
//! joins, and what an agent's own endpoint receives (the seed's `Payload`, with its
//! `X-E2A-Auth-*` headers re-signed on every attempt).

use crate::mail::{AuthResults, ParsedMail};
use crate::signing::SigningSecret;
use base64::Engine;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;

/// The event type every accepted message publishes.
pub const EMAIL_RECEIVED: &str = "email.received";
/// The same message for the same agent within this window is a duplicate (MTA retries).
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(7 * 86400);
/// How long messages are kept.
pub const MESSAGE_TTL: Duration = Duration::from_secs(30 * 86400);
/// How long a per-agent delivery is kept (the seed's `DeliveryTTL`).
pub const AGENT_DELIVERY_TTL: Duration = Duration::from_secs(48 * 3600);
/// The error a pending per-agent delivery ends with when its agent is deleted.
pub const AGENT_DELETED: &str = "agent deleted";

/// The names of the seed's auth headers, in the order their values are signed.
pub mod header {
    pub const VERIFIED: &str = "X-E2A-Auth-Verified";
    pub const SENDER: &str = "X-E2A-Auth-Sender";
    pub const ENTITY_TYPE: &str = "X-E2A-Auth-Entity-Type";
    pub const DOMAIN_CHECK: &str = "X-E2A-Auth-Domain-Check";
    pub const TIMESTAMP: &str = "X-E2A-Auth-Timestamp";
    pub const MESSAGE_ID: &str = "X-E2A-Auth-Message-Id";
    pub const BODY_HASH: &str = "X-E2A-Auth-Body-Hash";
    pub const SIGNATURE: &str = "X-E2A-Auth-Signature";
}

/// What identifies a message for duplicate detection: its `Message-ID` together with the
/// hash of its body (an MTA retry repeats both; a stranger who guesses a `Message-ID`
/// cannot suppress the real message with a different one), or without a `Message-ID` the
/// hash of the bytes received.
pub fn dedupe_key(parsed: &ParsedMail, raw: &[u8]) -> String {
    match parsed.message_id.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        Some(mid) => {
            let mut key = format!("mid:{}:", body_hash(body_of(raw)));
            key.push_str(mid);
            crate::text::truncate(&mut key, MAX_KEY_LEN);
            key
        }
        None => format!("sha256:{}", body_hash(raw)),
    }
}

/// Longest stored dedupe key and `Message-ID`, in bytes (kept well inside index limits).
pub const MAX_KEY_LEN: usize = 900;

/// The body of a raw message: what follows the first empty line (all of it without one).
fn body_of(raw: &[u8]) -> &[u8] {
    let crlf = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => &raw[a.min(b)..],
        (Some(a), None) | (None, Some(a)) => &raw[a..],
        (None, None) => raw,
    }
}

/// Lowercase hex SHA-256 of the raw message (`X-E2A-Auth-Body-Hash`).
pub fn body_hash(raw: &[u8]) -> String {
    hex::encode(Sha256::digest(raw))
}

/// The message ids a reply names (`In-Reply-To` first, then `References` newest first):
/// the candidates for an earlier message of the same conversation.
pub fn reply_candidates(parsed: &ParsedMail) -> Vec<String> {
    let mut out: Vec<String> = parsed.in_reply_to.clone();
    out.extend(parsed.references.iter().rev().cloned());
    let mut seen = std::collections::HashSet::new();
    out.retain(|m| !m.is_empty() && seen.insert(m.clone()));
    out.truncate(50);
    out
}

/// The conversation a message joins: the `X-E2A-Conversation-Id` header when the envelope
/// sender's domain is one of ours (a message our own agents sent), else the conversation of
/// the agent's earlier message the reply names, else a new one.
pub fn choose_conversation(parsed: &ParsedMail, sender_domain_is_ours: bool, earlier: Option<String>) -> String {
    if sender_domain_is_ours
        && let Some(c) = parsed.conversation_header.as_deref().map(str::trim)
        && !c.is_empty()
        && c.len() <= 200
        && c.chars().all(|ch| ch.is_ascii_graphic())
    {
        return c.to_owned();
    }
    earlier.unwrap_or_else(|| crate::ConversationId::generate().to_string())
}

/// The body an agent's own endpoint receives: the seed's `Payload`, field by field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub conversation_id: String,
    pub from: String,
    pub to: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reply_to: Vec<String>,
    pub recipient: String,
    /// The raw message, base64 (as Go marshals `[]byte`).
    #[serde(with = "b64")]
    pub raw_message: Vec<u8>,
    pub auth_headers: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
}

/// What is known about one accepted message for one agent, from which the `Payload` and the
/// `email.received` event data are built.
#[derive(Clone, Debug)]
pub struct Received<'a> {
    pub message_id: &'a str,
    pub conversation_id: &'a str,
    pub agent: &'a str,
    pub parsed: &'a ParsedMail,
    pub auth: &'a AuthResults,
    pub raw: &'a [u8],
    pub received_at: OffsetDateTime,
}

impl Received<'_> {
    /// The `Payload` as stored with the delivery: every auth header but the timestamp and
    /// the signature, which each attempt adds, and no `raw_message` (each attempt takes it
    /// from the stored message: [`payload_for_attempt`]).
    pub fn stored_payload(&self) -> Payload {
        Payload { raw_message: Vec::new(), ..self.payload() }
    }

    /// The whole `Payload` (with `raw_message`), as sent but for the per-attempt headers.
    pub fn payload(&self) -> Payload {
        let mut auth = BTreeMap::new();
        auth.insert(header::VERIFIED.to_owned(), self.auth.verified.to_string());
        auth.insert(header::SENDER.to_owned(), crate::text::header_safe(&self.parsed.from));
        auth.insert(header::ENTITY_TYPE.to_owned(), "human".to_owned());
        auth.insert(
            header::DOMAIN_CHECK.to_owned(),
            format!("spf={}; dkim={}; dmarc={}", self.auth.spf, self.auth.dkim_summary(), self.auth.dmarc),
        );
        auth.insert(header::MESSAGE_ID.to_owned(), self.message_id.to_owned());
        auth.insert(header::BODY_HASH.to_owned(), body_hash(self.raw));
        Payload {
            message_id: self.message_id.to_owned(),
            conversation_id: self.conversation_id.to_owned(),
            from: self.parsed.from.clone(),
            to: self.parsed.to.clone(),
            cc: self.parsed.cc.clone(),
            reply_to: self.parsed.reply_to.clone(),
            recipient: self.agent.to_owned(),
            raw_message: self.raw.to_vec(),
            auth_headers: auth,
            received_at: self.received_at,
        }
    }

    /// The `data` of the `email.received` event.
    pub fn event_data(&self) -> serde_json::Value {
        serde_json::json!({
            "message_id": self.message_id,
            "conversation_id": self.conversation_id,
            "agent": self.agent,
            "from": self.parsed.from,
            "to": self.parsed.to,
            "cc": self.parsed.cc,
            "reply_to": self.parsed.reply_to,
            "recipient": self.agent,
            "subject": self.parsed.subject,
            "raw_message": base64::engine::general_purpose::STANDARD.encode(self.raw),
            "auth": self.auth,
            "received_at": crate::rfc3339(self.received_at),
        })
    }
}

/// Why a stored payload cannot be sent.
#[derive(Debug, thiserror::Error)]
#[error("the stored payload is not valid: {0}")]
pub struct PayloadError(#[from] serde_json::Error);

/// The `X-E2A-Auth-*` headers of one attempt, name and value.
pub type AuthHeaders = Vec<(&'static str, String)>;

/// One attempt's body and auth headers: the stored payload (its `raw_message` left empty:
/// the message is stored once, and given here as `raw`) with a fresh
/// `X-E2A-Auth-Timestamp` (RFC 3339 seconds, UTC) and `X-E2A-Auth-Signature` (hex
/// HMAC-SHA256 keyed by the agent's secret over the newline-joined values: verified, sender,
/// entity type, domain check, an empty delegation line, timestamp, message id, body hash).
/// Without a secret (an Ed25519 agent) there is no `X-E2A-Auth-Signature`, in the body or
/// as a header.
pub fn payload_for_attempt(
    stored: &[u8],
    raw: &[u8],
    secret: Option<&SigningSecret>,
    now: OffsetDateTime,
) -> Result<(Vec<u8>, AuthHeaders), PayloadError> {
    let mut p: Payload = serde_json::from_slice(stored)?;
    p.raw_message = raw.to_vec();
    let ts = rfc3339_seconds(now);
    p.auth_headers.insert(header::TIMESTAMP.to_owned(), ts);
    let value = |name: &str| p.auth_headers.get(name).cloned().unwrap_or_default();
    let signed = [
        value(header::VERIFIED),
        value(header::SENDER),
        value(header::ENTITY_TYPE),
        value(header::DOMAIN_CHECK),
        String::new(),
        value(header::TIMESTAMP),
        value(header::MESSAGE_ID),
        value(header::BODY_HASH),
    ]
    .join("\n");
    // Without a shared secret (an Ed25519 agent) there is no auth signature: the body's
    // `v1a` signature covers these fields.
    match secret {
        Some(secret) => {
            p.auth_headers.insert(header::SIGNATURE.to_owned(), auth_signature(secret, &signed));
        }
        None => {
            p.auth_headers.remove(header::SIGNATURE);
        }
    }
    let headers = [
        header::VERIFIED,
        header::SENDER,
        header::ENTITY_TYPE,
        header::DOMAIN_CHECK,
        header::TIMESTAMP,
        header::MESSAGE_ID,
        header::BODY_HASH,
        header::SIGNATURE,
    ]
    .into_iter()
    .filter(|h| secret.is_some() || *h != header::SIGNATURE)
    .map(|h| (h, crate::text::header_safe(p.auth_headers.get(h).map_or("", String::as_str))))
    .collect();
    Ok((serde_json::to_vec(&p)?, headers))
}

/// Hex HMAC-SHA256 keyed by the UTF-8 bytes of the whole secret.
pub fn auth_signature(secret: &SigningSecret, signed: &str) -> String {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes any key length");
    mac.update(signed.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// RFC 3339 with whole seconds, UTC (`2026-11-28T23:59:01Z`).
pub fn rfc3339_seconds(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::DkimResult;
    use time::macros::datetime;

    fn parsed() -> ParsedMail {
        ParsedMail {
            message_id: Some("abc@sender.test".into()),
            from: "alice@sender.test".into(),
            to: vec!["bot@agents.test".into()],
            reply_to: vec!["replies@sender.test".into()],
            subject: "Hi".into(),
            in_reply_to: vec!["m2@x".into()],
            references: vec!["m1@x".into(), "m2@x".into()],
            conversation_header: Some("cnv_theirs".into()),
            ..Default::default()
        }
    }

    fn auth() -> AuthResults {
        AuthResults {
            spf: "pass".into(),
            dkim: vec![DkimResult { domain: "sender.test".into(), selector: "s1".into(), result: "pass".into() }],
            dmarc: "pass".into(),
            verified: true,
        }
    }

    #[test]
    fn duplicates_are_keyed_by_message_id_else_by_the_bytes() {
        let p = parsed();
        let key = dedupe_key(&p, b"Subject: a\r\n\r\nbody");
        assert!(key.starts_with("mid:") && key.ends_with(":abc@sender.test"), "{key}");
        assert_eq!(key, dedupe_key(&p, b"Subject: retried\r\n\r\nbody"), "headers may differ on a retry");
        assert_ne!(key, dedupe_key(&p, b"Subject: a\r\n\r\nanother body"), "a guessed id does not suppress");
        let no_id = ParsedMail { message_id: None, ..p };
        assert_eq!(dedupe_key(&no_id, b"x"), format!("sha256:{}", body_hash(b"x")));
        assert_ne!(dedupe_key(&no_id, b"x"), dedupe_key(&no_id, b"y"));
    }

    #[test]
    fn conversation_header_counts_only_from_our_own_domains() {
        let p = parsed();
        assert_eq!(choose_conversation(&p, true, Some("cnv_earlier".into())), "cnv_theirs");
        assert_eq!(choose_conversation(&p, false, Some("cnv_earlier".into())), "cnv_earlier");
        assert!(choose_conversation(&p, false, None).starts_with("cnv_"));
        assert_eq!(reply_candidates(&p), vec!["m2@x".to_owned(), "m1@x".to_owned()]);
    }

    #[test]
    fn each_attempt_gets_a_fresh_timestamp_and_a_signature_over_the_seed_fields() {
        let p = parsed();
        let a = auth();
        let r = Received {
            message_id: "msg_1",
            conversation_id: "cnv_1",
            agent: "bot@agents.test",
            parsed: &p,
            auth: &a,
            raw: b"Subject: Hi\r\n\r\nbody",
            received_at: datetime!(2026-11-28 10:00:00 UTC),
        };
        let stored = serde_json::to_vec(&r.stored_payload()).unwrap();
        assert!(!stored.windows(4).any(|w| w == b"body"), "the raw message is not stored with the delivery");
        let secret = SigningSecret::from_stored("whsec_agent".into());
        let (body, headers) =
            payload_for_attempt(&stored, r.raw, Some(&secret), datetime!(2026-11-28 10:05:07 UTC)).unwrap();
        let sent: Payload = serde_json::from_slice(&body).unwrap();
        assert_eq!(sent.reply_to, vec!["replies@sender.test"], "reply_to is kept on every attempt");
        assert_eq!(sent.raw_message, r.raw);
        let h: BTreeMap<_, _> = headers.into_iter().collect();
        assert_eq!(h[header::TIMESTAMP], "2026-11-28T10:05:07Z");
        assert_eq!(h[header::DOMAIN_CHECK], "spf=pass; dkim=pass; dmarc=pass");
        let signed = format!(
            "true\nalice@sender.test\nhuman\nspf=pass; dkim=pass; dmarc=pass\n\n2026-11-28T10:05:07Z\nmsg_1\n{}",
            body_hash(r.raw)
        );
        assert_eq!(h[header::SIGNATURE], auth_signature(&secret, &signed));
        assert_eq!(sent.auth_headers[header::SIGNATURE], h[header::SIGNATURE]);
        let (_, later) =
            payload_for_attempt(&stored, r.raw, Some(&secret), datetime!(2026-11-28 11:00:00 UTC)).unwrap();
        let later: BTreeMap<_, _> = later.into_iter().collect();
        assert_eq!(later[header::TIMESTAMP], "2026-11-28T11:00:00Z");
        assert_ne!(later[header::SIGNATURE], h[header::SIGNATURE]);
        // An Ed25519 agent has no shared secret: no auth signature anywhere.
        let (body, headers) = payload_for_attempt(&stored, r.raw, None, datetime!(2026-11-28 11:00:00 UTC)).unwrap();
        let sent: Payload = serde_json::from_slice(&body).unwrap();
        assert!(!sent.auth_headers.contains_key(header::SIGNATURE));
        assert!(headers.iter().all(|(name, _)| *name != header::SIGNATURE));
        assert!(headers.iter().any(|(name, _)| *name == header::TIMESTAMP));
    }
}
