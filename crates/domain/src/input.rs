//! Rules on input values, shared by every way in (the API, the portal, mail, the library's
//! `herald-outbox`): one rule per kind of value, and the checks of an event to publish.

use crate::event_type::BUILT_IN;
use crate::webhook::MAX_FILTER_VALUES;
use crate::{EventType, Filters};
use serde_json::value::RawValue;

/// One invalid field of an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// An event to publish, as the caller gave it.
#[derive(Clone, Debug)]
pub struct EventDraft {
    pub event_type: String,
    pub data: Box<RawValue>,
    pub idempotency_key: Option<String>,
    pub agent_id: Option<String>,
    pub conversation_id: Option<String>,
    pub labels: Vec<String>,
    /// The FIFO lane within each webhook with `ordering: fifo`.
    pub ordering_key: Option<String>,
}

impl EventDraft {
    /// A draft of `event_type` with `data` (a JSON object) and nothing else.
    pub fn new(event_type: &str, data: Box<RawValue>) -> Self {
        Self {
            event_type: event_type.to_owned(),
            data,
            idempotency_key: None,
            agent_id: None,
            conversation_id: None,
            labels: Vec::new(),
            ordering_key: None,
        }
    }
}

/// What an event's type name needs before it is known: nothing (built in), a look at the
/// account's registered types (custom), or it is not a type name at all.
pub enum TypeName {
    BuiltIn(EventType),
    Custom(EventType),
    Invalid,
}

impl TypeName {
    pub fn of(name: &str) -> Self {
        match EventType::parse(name) {
            Some(t) if t.is_built_in() => Self::BuiltIn(t),
            Some(t) => Self::Custom(t),
            None => Self::Invalid,
        }
    }
}

/// Everything wrong with a draft whose type resolved to `known` (`None`: neither built in
/// nor one of the account's registered types). Empty: it may be published.
pub fn check_event_draft(d: &EventDraft, known: Option<&EventType>) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if known.is_none() {
        errs.push(FieldError { field: "type".into(), message: unknown_type_message(&d.event_type) });
    } else if crate::operational::is_operational(&d.event_type) {
        errs.push(FieldError { field: "type".into(), message: operational_type_message(&d.event_type) });
    }
    if let Err(m) = check_data(&d.data) {
        errs.push(FieldError { field: "data".into(), message: m.into() });
    }
    short_text("idempotency_key", d.idempotency_key.as_deref(), 255, &mut errs);
    short_text("agent_id", d.agent_id.as_deref(), 320, &mut errs);
    short_text("conversation_id", d.conversation_id.as_deref(), 255, &mut errs);
    labels(&d.labels, &mut errs);
    short_text("ordering_key", d.ordering_key.as_deref(), 255, &mut errs);
    errs
}

/// Longest webhook (and event type) description, in characters.
pub const MAX_DESCRIPTION: usize = 200;

/// `data` must be a JSON object that any receiver can parse: one rule for every document,
/// checked by decoding it fully (valid escapes, no lone surrogates, nesting ≤ 128, numbers
/// within the range of a double). The stored bytes stay exactly as sent.
pub fn check_data(data: &RawValue) -> Result<(), &'static str> {
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
