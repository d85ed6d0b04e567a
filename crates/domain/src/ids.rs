//! Prefixed identifiers: `acc_`, `wh_`, `evt_`, `whd_` + 32 lowercase hex.
//!
//! The hex is a UUIDv7, so ids sort by creation time; lists page on them.

use std::fmt;

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh, time-ordered id.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            /// Parses an id; `None` unless it is the prefix followed by 32 lowercase hex.
            pub fn parse(s: &str) -> Option<Self> {
                let hex = s.strip_prefix($prefix)?;
                (hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                    .then(|| Self(s.to_owned()))
            }

            /// Wraps a value read back from the store, which only holds valid ids.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    };
}

prefixed_id!(
    /// A tenant.
    AccountId, "acc_");
prefixed_id!(
    /// A webhook subscription.
    WebhookId, "wh_");
prefixed_id!(
    /// A published event.
    EventId, "evt_");
prefixed_id!(
    /// One event owed to one webhook.
    DeliveryId, "whd_");
prefixed_id!(
    /// One inbound email accepted for one agent.
    MessageId, "msg_");
prefixed_id!(
    /// A conversation: inbound messages that belong together.
    ConversationId, "cnv_");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_prefix_and_32_hex_and_parse_back() {
        let id = WebhookId::generate();
        assert!(id.as_str().starts_with("wh_"));
        assert_eq!(id.as_str().len(), 3 + 32);
        assert_eq!(WebhookId::parse(id.as_str()), Some(id));
    }

    #[test]
    fn malformed_ids_are_rejected() {
        assert!(EventId::parse("evt_123").is_none());
        assert!(EventId::parse("wh_0123456789abcdef0123456789abcdef").is_none());
        assert!(EventId::parse("evt_0123456789ABCDEF0123456789abcdef").is_none());
        assert!(EventId::parse("evt_0123456789abcdef0123456789abcdef").is_some());
    }

    #[test]
    fn ids_generated_later_sort_after() {
        let a = DeliveryId::generate();
        let b = DeliveryId::generate();
        assert!(b > a);
    }
}
