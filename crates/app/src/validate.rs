//! Input checks that need the store (known event types, subscriptions, URLs); the pure
//! rules per kind of value live in `herald_domain::input` and are re-exported here.

use crate::{AppResult, FieldError, Herald};
pub use herald_domain::input::{
    MAX_DESCRIPTION, check_data, description, filters, labels, operational_type_message, short_text,
    unknown_type_message,
};
use herald_domain::{AccountId, EventType};

impl Herald {
    /// The event type named `name` if it is built in or one of the account's own.
    pub async fn known_event_type(&self, account: &AccountId, name: &str) -> AppResult<Option<EventType>> {
        use herald_domain::input::TypeName;
        Ok(match TypeName::of(name) {
            TypeName::BuiltIn(t) => Some(t),
            TypeName::Custom(t) => self.store.custom_event_type_exists(account, t.as_str()).await?.then_some(t),
            TypeName::Invalid => None,
        })
    }

    /// A subscription list: at least one known type, duplicates removed.
    pub async fn subscription(
        &self,
        account: &AccountId,
        events: &[String],
        errs: &mut Vec<FieldError>,
    ) -> AppResult<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        if events.is_empty() {
            errs.push(FieldError { field: "events".into(), message: "must name at least one event type".into() });
        }
        for e in events {
            if self.known_event_type(account, e).await?.is_none() {
                errs.push(FieldError { field: "events".into(), message: unknown_type_message(e) });
            } else if !out.contains(e) {
                out.push(e.clone());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::check_data;
    use serde_json::value::RawValue;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn one_rule_for_every_document_with_or_without_escapes() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        assert!(check_data(&raw(&deep)).is_err(), "too deep, no escape in sight");
        assert!(check_data(&raw(r#"{"n":1E400}"#)).is_err(), "out of range, no escape");
        assert!(check_data(&raw(r#"{"s":"\ud800"}"#)).is_err(), "lone surrogate");
        assert!(check_data(&raw(r#"{"s":"\u00e9","n":1E300}"#)).is_ok());
        assert!(check_data(&raw(r#"[1]"#)).is_err());
        let ok_deep = format!("{{\"a\":{}1{}}}", "[".repeat(100), "]".repeat(100));
        assert!(check_data(&raw(&ok_deep)).is_ok());
    }
}
