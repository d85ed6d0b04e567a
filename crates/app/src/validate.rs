//! Input rules shared by every use case: one rule per kind of value.

use crate::{AppResult, FieldError, Herald};
use herald_domain::event_type::BUILT_IN;
use herald_domain::webhook::MAX_FILTER_VALUES;
use herald_domain::{AccountId, EventType, Filters};

/// Longest webhook (and event type) description, in characters.
pub const MAX_DESCRIPTION: usize = 200;

/// `data` must be a JSON object that any receiver can parse: one rule for every document,
/// checked by decoding it fully (valid escapes, no lone surrogates, nesting ≤ 128, numbers
/// within the range of a double). The stored bytes stay exactly as sent.
pub fn check_data(data: &serde_json::value::RawValue) -> Result<(), &'static str> {
    match serde_json::from_str::<serde_json::Value>(data.get()) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err("must be a JSON object"),
        Err(_) => {
            Err("must be JSON with valid string escapes, at most 128 levels deep, numbers within a double's range")
        }
    }
}

/// An optional short value (an id, a key): 1..=`max` characters, no control characters.
/// Lengths count characters (Unicode scalar values), as JSON Schema's `maxLength` does.
pub fn short_text(field: &str, v: Option<&str>, max: usize, errs: &mut Vec<FieldError>) {
    if let Some(v) = v
        && !is_short_text(v, max)
    {
        errs.push(FieldError {
            field: field.into(),
            message: format!("must be 1..{max} characters without control characters"),
        });
    }
}

/// A description: at most [`MAX_DESCRIPTION`] characters, no control characters.
pub fn description(field: &str, d: &str, errs: &mut Vec<FieldError>) {
    if d.chars().count() > MAX_DESCRIPTION || d.chars().any(char::is_control) {
        errs.push(FieldError {
            field: field.into(),
            message: format!("must be at most {MAX_DESCRIPTION} characters without control characters"),
        });
    }
}

/// 1..=`max` characters, none of them a control character.
fn is_short_text(v: &str, max: usize) -> bool {
    !v.is_empty() && v.chars().count() <= max && !v.chars().any(char::is_control)
}

/// Event labels: at most 50, each 1..=100 characters without control characters.
pub fn labels(labels: &[String], errs: &mut Vec<FieldError>) {
    if labels.len() > 50 || labels.iter().any(|l| !is_short_text(l, 100)) {
        errs.push(FieldError { field: "labels".into(), message: "at most 50 labels of 1..100 characters".into() });
    }
}

/// Filters: duplicates removed; at most [`MAX_FILTER_VALUES`] values of 1..=256 characters each.
pub fn filters(f: &mut Filters, errs: &mut Vec<FieldError>) {
    f.dedup();
    for (name, v) in [
        ("filters.agent_ids", &f.agent_ids),
        ("filters.conversation_ids", &f.conversation_ids),
        ("filters.labels", &f.labels),
    ] {
        if v.len() > MAX_FILTER_VALUES {
            errs.push(FieldError { field: name.into(), message: format!("at most {MAX_FILTER_VALUES} values") });
        }
        if v.iter().any(|x| !is_short_text(x, 256)) {
            errs.push(FieldError {
                field: name.into(),
                message: "values must be 1..256 characters without control characters".into(),
            });
        }
    }
}

/// The message for an operational type sent by someone else than Herald.
pub fn operational_type_message(name: &str) -> String {
    format!("{name:?} is an operational event type: only Herald publishes it")
}

/// The message for a type that is neither built in nor registered.
pub fn unknown_type_message(name: &str) -> String {
    format!("unknown event type {name:?}; allowed: {} or one of the account's registered types", BUILT_IN.join(", "))
}

impl Herald {
    /// The event type named `name` if it is built in or one of the account's own.
    pub async fn known_event_type(&self, account: &AccountId, name: &str) -> AppResult<Option<EventType>> {
        Ok(match EventType::parse(name) {
            Some(t) if t.is_built_in() => Some(t),
            Some(t) if self.store.custom_event_type_exists(account, t.as_str()).await? => Some(t),
            _ => None,
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
