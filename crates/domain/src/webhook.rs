//! Webhook filters and the routing attributes events carry.

use serde::{Deserialize, Serialize};

/// Most values one filter key may hold.
pub const MAX_FILTER_VALUES: usize = 50;

/// Optional routing filters: OR within a key, AND across keys. A non-empty key never
/// matches an event that lacks that attribute.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    #[serde(default)]
    pub agent_ids: Vec<String>,
    #[serde(default)]
    pub conversation_ids: Vec<String>,
    #[serde(default)]
    pub labels: Vec<String>,
}

/// Why a webhook is disabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DisabledReason {
    /// Disabled through the API.
    Manual,
    /// Disabled by the auto-disable pass: failing deliveries and none delivered.
    Failing,
    /// The receiver answered `410 Gone`.
    Gone,
}

impl DisabledReason {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Failing => "failing",
            Self::Gone => "gone",
        }
    }

    /// Every reason, in the order they are documented.
    pub const ALL: [Self; 3] = [Self::Manual, Self::Failing, Self::Gone];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What an event says about where it belongs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutingAttributes {
    pub agent_id: Option<String>,
    pub conversation_id: Option<String>,
    pub labels: Vec<String>,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        self.agent_ids.is_empty() && self.conversation_ids.is_empty() && self.labels.is_empty()
    }

    pub fn matches(&self, ev: &RoutingAttributes) -> bool {
        let one = |allowed: &[String], v: &Option<String>| {
            allowed.is_empty() || v.as_ref().is_some_and(|v| allowed.contains(v))
        };
        one(&self.agent_ids, &ev.agent_id)
            && one(&self.conversation_ids, &ev.conversation_id)
            && (self.labels.is_empty() || ev.labels.iter().any(|l| self.labels.contains(l)))
    }

    /// Whether a webhook subscribed to `events` with these filters wants an event of
    /// `event_type` carrying `routing`: the fan-out rule, in one place.
    pub fn wants(&self, events: &[String], event_type: &str, routing: &RoutingAttributes) -> bool {
        events.iter().any(|t| t == event_type) && self.matches(routing)
    }

    /// Removes duplicate values, keeping first occurrences.
    pub fn dedup(&mut self) {
        for v in [&mut self.agent_ids, &mut self.conversation_ids, &mut self.labels] {
            let mut seen = std::collections::HashSet::new();
            v.retain(|x| seen.insert(x.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn empty_filter_matches_everything() {
        assert!(Filters::default().matches(&RoutingAttributes::default()));
    }

    #[test]
    fn or_within_a_key_and_across_keys() {
        let f = Filters { agent_ids: s(&["a", "b"]), labels: s(&["x", "y"]), ..Default::default() };
        let ev = |a: Option<&str>, l: &[&str]| RoutingAttributes {
            agent_id: a.map(Into::into),
            conversation_id: None,
            labels: s(l),
        };
        assert!(f.matches(&ev(Some("b"), &["q", "y"])));
        assert!(!f.matches(&ev(Some("c"), &["x"])));
        assert!(!f.matches(&ev(Some("a"), &["q"])));
        assert!(!f.matches(&ev(None, &["x"])), "missing attribute never matches a non-empty key");
    }
}
