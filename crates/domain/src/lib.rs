//! Herald's domain: pure types and rules, no I/O.
//!
//! Everything here is deterministic given its inputs (clock, randomness are parameters),
//! so the rules of delivery — retry maths, signing, outcome classification, URL and
//! address policy, filter matching — are unit-tested with fixed vectors.
#![forbid(unsafe_code)]

pub mod adaptive;
pub mod agent;
pub mod api_key;
pub mod asymmetric;
pub mod clock;
pub mod control;
pub mod delivery;
pub mod envelope;
pub mod event_type;
#[cfg(test)]
mod fuzz;
pub mod ids;
pub mod inbound;
pub mod input;
pub mod ip_policy;
pub mod mail;
pub mod operational;
pub mod portal_token;
pub mod rate;
pub mod retry;
pub mod signing;
pub mod target_url;
pub mod text;
pub mod webhook;

pub use agent::{AcceptedDomains, AddressError, AgentAddress};
pub use api_key::ApiKey;
pub use asymmetric::{KeyRing, SignatureScheme, SigningKeyPair};
pub use clock::{Clock, ManualClock, SystemClock};
pub use control::{Concurrency, DeliveryControl, OnFinalFailure, OrderingMode};
pub use delivery::{AttemptKind, AttemptOutcome, DeliveryStatus, RetryRefused, Verdict};
pub use envelope::Envelope;
pub use event_type::EventType;
pub use ids::{AccountId, ConversationId, DeliveryId, EventId, MessageId, WebhookId};
pub use ip_policy::IpPolicy;
pub use mail::{Attachment, AuthResults, DkimResult, ParsedMail};
pub use portal_token::{PortalToken, PortalTokenKind};
pub use retry::RetryPolicy;
pub use signing::{SecretSet, SigningSecret};
pub use target_url::{TargetUrl, UrlError};
pub use webhook::{DisabledReason, Filters, RoutingAttributes};

/// Milliseconds since the Unix epoch, the unit stores use for instants.
pub fn to_millis(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Inverse of [`to_millis`]; out-of-range values clamp to the epoch.
pub fn from_millis(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// RFC 3339 UTC with millisecond precision, the format of every time Herald shows.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let ms = t.millisecond();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        ms
    )
}

/// Fills `n` random bytes from the OS generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random generator is available");
    b
}
