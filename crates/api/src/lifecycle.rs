//! After creation: rotation, test sends, recovery, the events log and custom event types.

use crate::AppState;
use crate::auth::Authed;
use crate::dto::{DeliveryOut, ListOut};
use crate::extract::{Json, MaybeJson, NoQuery, PathId, Query};
use crate::problem::ApiError;
use crate::webhooks::{list_out, page, webhook_id};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_app::{EventTypeView, RecoveryRequest, TestSend};
use herald_domain::{EventId, rfc3339};
use herald_store::EventFilter;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A rotation (the body is optional: empty means the defaults).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateIn {
    /// How long the secret being replaced keeps signing; default 86400 (24 h).
    #[schema(minimum = 0, maximum = 604800)]
    pub grace_period_seconds: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RotateOut {
    /// The new secret, shown only here.
    #[schema(pattern = "^whsec_[0-9a-f]{64}$")]
    pub signing_secret: String,
    /// When the replaced secret stops signing.
    #[schema(value_type = crate::schemas::Rfc3339)]
    pub previous_secret_expires_at: String,
}

pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let k = v.to_str().map_err(|_| ApiError::field("Idempotency-Key", "must be visible ASCII"))?;
    if k.is_empty() || k.len() > 255 {
        return Err(ApiError::field("Idempotency-Key", "must be 1..255 characters"));
    }
    Ok(Some(k.to_owned()))
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "webhooks", security(("bearer" = [])),
    params(crate::schemas::WebhookPath, crate::schemas::IdempotencyHeader),
    request_body(content = Option<RotateIn>, description = "optional"),
    responses(
        (status = 200, body = RotateOut, description = "rotated; every earlier secret keeps signing until its own expiry (5 kept)"),
        (status = 400, description = "invalid: also a malformed `Idempotency-Key`"),
        (status = 409, description = "the webhook signs with `ed25519` and has no shared secret (rotate the account's signing key)"),
        (status = 429, description = "too many rotations in this account (HERALD_ROTATIONS_PER_MINUTE, 10 a minute)"),
    ))]
pub async fn rotate_secret(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
    PathId(id): PathId,
    headers: HeaderMap,
    MaybeJson(body): MaybeJson<RotateIn>,
) -> Result<Response, ApiError> {
    let id = webhook_id(&id)?;
    let grace = Duration::from_secs(body.unwrap_or_default().grace_period_seconds.unwrap_or(86_400));
    let key = idempotency_key(&headers)?;
    let admit = || crate::ratelimit::admit(&s.limits.rotate_per_account, account.id.as_str());
    let answer = s.app.rotate_secret(&account.id, &id, grace, key, admit).await?;
    Ok(axum::Json(RotateOut {
        signing_secret: answer.signing_secret,
        previous_secret_expires_at: answer.previous_secret_expires_at,
    })
    .into_response())
}

/// A test send (the body is optional: empty means the defaults).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestIn {
    /// Default `webhook.test`; any type the account knows, subscribed to or not.
    #[serde(rename = "type")]
    #[schema(value_type = Option<crate::schemas::EventTypeName>)]
    pub event_type: Option<String>,
    /// Default `{"message":"test event from herald"}`; any JSON object, as for events.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Box<RawValue>>,
}

/// `?wait=`
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Wait (up to 20 s) for the first attempt and answer its outcome; default false.
    pub wait: Option<bool>,
}

/// A test send's delivery; with `?wait=true`, its first attempt's outcome.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TestOut {
    #[schema(pattern = "^whd_[0-9a-f]{32}$")]
    pub delivery_id: String,
    /// The message, for a message injected with `?wait=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks", security(("bearer" = [])),
    params(crate::schemas::WebhookPath, WaitQuery),
    request_body(content = Option<TestIn>, description = "optional"),
    responses(
        (status = 202, body = TestOut, description = "enqueued (with `?wait=true`: not attempted within the wait)"),
        (status = 200, body = TestOut, description = "with `?wait=true`: the first attempt's outcome"),
        (status = 400, description = "invalid: also an event type the account does not know"),
        (status = 409, description = "the webhook is disabled"),
        (status = 429, description = "too many test sends in this account (HERALD_TEST_SENDS_PER_MINUTE, 30 a minute)"),
    ))]
pub async fn test_webhook(
    State(s): State<AppState>,
    Authed(account): Authed,
    PathId(id): PathId,
    Query(q): Query<WaitQuery>,
    MaybeJson(body): MaybeJson<TestIn>,
) -> Result<Response, ApiError> {
    let wh = webhook_id(&id)?;
    let input = body.unwrap_or_default();
    let wait = q.wait.unwrap_or(false);
    let send = TestSend { event_type: input.event_type, data: input.data, wait };
    // The limit counts sends: only a request that passed every check takes a token.
    let admit = || crate::ratelimit::admit(&s.limits.test_per_account, account.id.as_str());
    let sent = s.app.send_test(&account.id, &wh, send, admit).await?;
    let out = TestOut::new(sent.delivery_id.to_string(), sent.first_attempt);
    if out.success.is_none() {
        // Not waited for, or still in flight: the delivery goes on.
        return Ok((StatusCode::ACCEPTED, axum::Json(out)).into_response());
    }
    Ok(axum::Json(out).into_response())
}

impl TestOut {
    /// The answer for `delivery_id`, with the first attempt's outcome when there is one.
    pub(crate) fn new(delivery_id: String, first_attempt: Option<herald_store::Attempt>) -> Self {
        let mut out = TestOut {
            delivery_id,
            message_id: None,
            success: None,
            status_code: None,
            duration_ms: None,
            error: None,
            response_body: None,
        };
        if let Some(a) = first_attempt {
            out.success = Some(a.succeeded());
            out.status_code = Some(a.status_code);
            out.duration_ms = Some(a.duration_ms);
            out.error = a.error;
            out.response_body = a.response_body;
        }
        out
    }
}

/// A recovery: the window of stored events to deliver again.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverIn {
    /// The window's start; before `until`.
    #[schema(value_type = crate::schemas::Rfc3339)]
    pub since: String,
    /// The window's end (exclusive); default now.
    #[schema(value_type = Option<crate::schemas::Rfc3339>)]
    pub until: Option<String>,
    /// Only count; default false.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RecoverOut {
    /// Events delivered again (or, in a dry run, that would be).
    pub count: u64,
    pub dry_run: bool,
}

fn parse_time(field: &str, v: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(v, &Rfc3339).map_err(|_| ApiError::field(field, "must be an RFC 3339 time"))
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/recover", tag = "webhooks", security(("bearer" = [])),
    params(crate::schemas::WebhookPath),
    request_body = RecoverIn,
    responses(
        (status = 202, body = RecoverOut, description = "the window's matching events are enqueued again"),
        (status = 200, body = RecoverOut, description = "a dry run: counted only"),
        (status = 400, description = "invalid: also a time that is not RFC 3339, or `since` not before `until`"),
        (status = 429, description = "a recovery of this webhook within HERALD_RECOVER_INTERVAL (1 min), or too many in this account (HERALD_RECOVERIES_PER_MINUTE, 10 a minute; dry runs count)"),
    ))]
pub async fn recover_webhook(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
    PathId(id): PathId,
    Json(input): Json<RecoverIn>,
) -> Result<Response, ApiError> {
    let wh = webhook_id(&id)?;
    let since = parse_time("since", &input.since)?;
    let until = input.until.as_deref().map(|u| parse_time("until", u)).transpose()?;
    let admit = || s.limits.admit_recovery(account.id.as_str(), wh.as_str(), input.dry_run);
    let request = RecoveryRequest { since, until, dry_run: input.dry_run };
    let count = s.app.recover(&account.id, &wh, request, admit).await?;
    let status = if input.dry_run { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((status, axum::Json(RecoverOut { count, dry_run: input.dry_run })).into_response())
}

/// A page of the events log, optionally of one type and within a window.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Items per page.
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before; empty or absent: the first page.
    #[param(pattern = "^[A-Za-z0-9_]{0,64}$", max_length = 64)]
    pub cursor: Option<String>,
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(value_type = Option<crate::schemas::EventTypeName>)]
    pub event_type: Option<String>,
    /// Only events created at or after this time.
    #[param(value_type = Option<crate::schemas::Rfc3339>)]
    pub since: Option<String>,
    /// Only events created before this time.
    #[param(value_type = Option<crate::schemas::Rfc3339>)]
    pub until: Option<String>,
}

/// An event of the log.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventLogOut {
    #[schema(pattern = "^evt_[0-9a-f]{32}$")]
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[schema(value_type = crate::schemas::Rfc3339)]
    pub created_at: String,
    pub deliveries: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    pub labels: Vec<String>,
    /// The FIFO lane the event was published to (`ordering_key` on publish).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
    /// Only on `GET /events/{id}`: the deliveries it made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_log: Option<Vec<DeliveryOut>>,
}

fn event_out(e: herald_store::Event) -> EventLogOut {
    #[derive(Deserialize)]
    struct Env {
        data: Box<RawValue>,
    }
    let data = serde_json::from_slice::<Env>(&e.envelope)
        .map(|env| env.data)
        .unwrap_or_else(|_| RawValue::from_string("{}".into()).expect("valid JSON"));
    EventLogOut {
        id: e.id.to_string(),
        event_type: e.event_type,
        created_at: rfc3339(e.created_at),
        deliveries: e.deliveries,
        agent_id: e.agent_id,
        conversation_id: e.conversation_id,
        labels: e.labels,
        ordering_key: e.ordering_key,
        data,
        delivery_log: None,
    }
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events", security(("bearer" = [])),
    params(EventsQuery),
    responses((status = 200, body = ListOut<EventLogOut>, description = "newest first (kept 30 days)")))]
pub async fn list_events(
    State(s): State<AppState>,
    Authed(account): Authed,
    Query(q): Query<EventsQuery>,
) -> Result<axum::Json<ListOut<EventLogOut>>, ApiError> {
    let mut p = page(q.limit, q.cursor.as_deref())?;
    let filter = EventFilter {
        event_type: q.event_type.clone(),
        since: q.since.as_deref().map(|v| parse_time("since", v)).transpose()?,
        until: q.until.as_deref().map(|v| parse_time("until", v)).transpose()?,
    };
    let limit = p.limit;
    p.limit += 1;
    let rows = s.app.events(&account.id, filter, p).await?;
    Ok(axum::Json(list_out(rows, limit, |e| e.id.to_string(), event_out)))
}

#[utoipa::path(get, path = "/api/v1/events/{id}", tag = "events", security(("bearer" = [])),
    params(crate::schemas::EventPath),
    responses((status = 200, body = EventLogOut, description = "the event with its `delivery_log`")))]
pub async fn get_event(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
    PathId(id): PathId,
) -> Result<axum::Json<EventLogOut>, ApiError> {
    let id = EventId::parse(&id).ok_or(ApiError::NotFound("event"))?;
    let (e, deliveries) = s.app.event(&account.id, &id).await?;
    let mut out = event_out(e);
    out.delivery_log = Some(deliveries.into_iter().map(DeliveryOut::from).collect());
    Ok(axum::Json(out))
}

/// A custom event type to register.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTypeIn {
    /// Not a built-in name.
    #[schema(value_type = crate::schemas::EventTypeName)]
    pub name: String,
    /// Default empty.
    #[serde(default)]
    #[schema(value_type = crate::schemas::Description)]
    pub description: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventTypeOut {
    pub name: String,
    pub description: String,
    pub built_in: bool,
    /// Absent for built-in types.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schemas::Rfc3339>)]
    pub created_at: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/event-types", tag = "events", security(("bearer" = [])),
    responses((status = 200, body = ListOut<EventTypeOut>, description = "built-in types first, then the account's own; one page")))]
pub async fn list_event_types(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
) -> Result<axum::Json<ListOut<EventTypeOut>>, ApiError> {
    let items = s.app.event_types(&account.id).await?.into_iter().map(EventTypeOut::from).collect();
    Ok(axum::Json(ListOut { items, next_cursor: None }))
}

#[utoipa::path(post, path = "/api/v1/event-types", tag = "events", security(("bearer" = [])),
    request_body = EventTypeIn,
    responses(
        (status = 201, body = EventTypeOut, description = "registered"),
        (status = 400, description = "invalid: also a built-in name"),
        (status = 409, description = "the account already has this type"),
    ))]
pub async fn create_event_type(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
    Json(input): Json<EventTypeIn>,
) -> Result<impl IntoResponse, ApiError> {
    let created = s.app.create_event_type(&account.id, &input.name, &input.description).await?;
    Ok((StatusCode::CREATED, axum::Json(EventTypeOut::from(created))))
}

impl From<EventTypeView> for EventTypeOut {
    fn from(t: EventTypeView) -> Self {
        Self { name: t.name, description: t.description, built_in: t.built_in, created_at: t.created_at.map(rfc3339) }
    }
}
