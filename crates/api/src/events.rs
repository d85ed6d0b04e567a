//! `POST /api/v1/events`: durable publish with fan-out in one transaction.

use crate::AppState;
use crate::auth::Authed;
use crate::dto::{EventIn, EventOut};
use crate::extract::{Json, NoQuery};
use crate::problem::ApiError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use herald_app::EventDraft;
use herald_domain::rfc3339;

#[utoipa::path(post, path = "/api/v1/events", tag = "events", security(("bearer" = [])),
    request_body = EventIn,
    responses(
        (status = 202, body = EventOut, description = "committed with all its deliveries (or the event of the same idempotency_key)"),
        (status = 400, description = "invalid: also an event type that is neither built in nor registered (the allowed ones are named)"),
    ))]
pub async fn create_event(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
    Json(input): Json<EventIn>,
) -> Result<impl IntoResponse, ApiError> {
    let draft = EventDraft {
        event_type: input.event_type,
        data: input.data,
        idempotency_key: input.idempotency_key,
        agent_id: input.agent_id,
        conversation_id: input.conversation_id,
        labels: input.labels.unwrap_or_default(),
        ordering_key: input.ordering_key,
    };
    let published = s.app.publish(&account.id, draft).await?;
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

#[cfg(test)]
mod fuzz {
    use crate::dto::EventIn;
    use herald_app::validate::check_data;
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
