//! `POST /api/v1/events`: durable publish with fan-out in one transaction.

use crate::AppState;
use crate::auth::Authed;
use crate::dto::{EventIn, EventOut};
use crate::extract::Json;
use crate::problem::{ApiError, FieldError};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use herald_domain::event_type::BUILT_IN;
use herald_domain::{Envelope, EventId, EventType, RoutingAttributes, rfc3339};
use herald_store::NewEvent;

fn short_text(field: &str, v: &Option<String>, max: usize, errs: &mut Vec<FieldError>) {
    if let Some(v) = v
        && (v.is_empty() || v.len() > max || v.chars().any(char::is_control))
    {
        errs.push(FieldError {
            field: field.into(),
            message: format!("must be 1..{max} characters without control characters"),
        });
    }
}

#[utoipa::path(post, path = "/api/v1/events", tag = "events", security(("bearer" = [])), request_body = crate::dto::EventIn, responses((status = 202, body = crate::dto::EventOut, description = "committed with all its deliveries"), (status = 400, body = crate::problem::Problem), (status = 503, body = crate::problem::Problem)))]
pub async fn create_event(
    State(s): State<AppState>,
    Authed(account): Authed,
    Json(input): Json<EventIn>,
) -> Result<impl IntoResponse, ApiError> {
    let mut errs = Vec::new();
    let event_type = match EventType::parse(&input.event_type) {
        Some(t) if t.is_built_in() || s.store.custom_event_type_exists(&account.id, t.as_str()).await? => Some(t),
        _ => {
            errs.push(FieldError {
                field: "type".into(),
                message: format!(
                    "unknown event type {:?}; allowed: {} or one of the account's registered types",
                    input.event_type,
                    BUILT_IN.join(", ")
                ),
            });
            None
        }
    };
    if let Err(m) = check_data(&input.data) {
        errs.push(FieldError { field: "data".into(), message: m.into() });
    }
    short_text("idempotency_key", &input.idempotency_key, 255, &mut errs);
    short_text("agent_id", &input.agent_id, 320, &mut errs);
    short_text("conversation_id", &input.conversation_id, 255, &mut errs);
    let labels = input.labels.unwrap_or_default();
    if labels.len() > 50 || labels.iter().any(|l| l.is_empty() || l.len() > 100 || l.chars().any(char::is_control)) {
        errs.push(FieldError { field: "labels".into(), message: "at most 50 labels of 1..100 characters".into() });
    }
    let Some(event_type) = event_type.filter(|_| errs.is_empty()) else {
        return Err(ApiError::Validation(errs));
    };
    let id = EventId::generate();
    let created_at = s.clock.now();
    let envelope = Envelope::build(&id, event_type.as_str(), created_at, &input.data);
    let published = s
        .store
        .publish(
            NewEvent {
                id,
                account_id: account.id,
                event_type: event_type.as_str().to_owned(),
                envelope,
                routing: RoutingAttributes { agent_id: input.agent_id, conversation_id: input.conversation_id, labels },
                idempotency_key: input.idempotency_key,
                created_at,
            },
            &s.config.fanout,
        )
        .await?;
    metrics::counter!("herald_events_published_total").increment(1);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(EventOut {
            id: published.id.to_string(),
            event_type: published.event_type,
            created_at: rfc3339(published.created_at),
            deliveries: published.deliveries,
        }),
    ))
}

/// `data` must be a JSON object that any receiver can parse: one rule for every document,
/// checked by decoding it fully (valid escapes, no lone surrogates, nesting ≤ 128, numbers
/// within the range of a double). The stored bytes stay exactly as sent.
pub(crate) fn check_data(data: &serde_json::value::RawValue) -> Result<(), &'static str> {
    match serde_json::from_str::<serde_json::Value>(data.get()) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err("must be a JSON object"),
        Err(_) => {
            Err("must be JSON with valid string escapes, at most 128 levels deep, numbers within a double's range")
        }
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

#[cfg(test)]
mod fuzz {
    use super::check_data;
    use crate::dto::EventIn;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            ".{0,20}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map(".{0,8}", inner, 0..8)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn fuzz_event_bodies_never_panic_the_parser(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(ev) = serde_json::from_slice::<EventIn>(&bytes) {
                let _ = check_data(&ev.data);
            }
        }

        #[test]
        fn fuzz_any_json_object_is_accepted_as_data_and_anything_else_is_not(v in json_value()) {
            let text = serde_json::to_string(&v).unwrap();
            let raw = serde_json::value::RawValue::from_string(text).unwrap();
            prop_assert_eq!(check_data(&raw).is_ok(), v.is_object());
        }
    }
}
