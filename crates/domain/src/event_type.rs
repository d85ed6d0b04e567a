//! Event type names: the built-in ones and the rules for custom ones.

/// Types every account has.
pub const BUILT_IN: &[&str] = &[
    "email.received",
    "email.sent",
    "email.pending_approval",
    "email.approved",
    "email.rejected",
    "webhook.test",
    // Operational events (`crate::operational`): published by Herald only.
    "webhook.disabled",
    "webhook.enabled",
    "delivery.failed",
    "secret.rotated",
];

/// A syntactically valid event type name: dot-separated segments of `[a-z0-9_-]`, ≤ 100 chars.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(String);

impl EventType {
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= 100
            && s.split('.').all(|seg| {
                !seg.is_empty() && seg.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
            });
        ok.then(|| Self(s.to_owned()))
    }

    pub fn is_built_in(&self) -> bool {
        BUILT_IN.contains(&self.0.as_str())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dotted_lowercase_segments() {
        assert!(EventType::parse("email.received").unwrap().is_built_in());
        assert!(!EventType::parse("invoice.paid").unwrap().is_built_in());
        for bad in ["", "Email.sent", "email..sent", ".x", "x.", "a b", "é"] {
            assert!(EventType::parse(bad).is_none(), "{bad}");
        }
    }
}
