//! After creation: rotation, test sends, recovery, the events log and custom event types.

use crate::AppState;
use crate::auth::Authed;
use crate::dto::{DeliveryOut, ListOut, ListQuery};
use crate::extract::{Json, MaybeJson, PathId, Query};
use crate::problem::{ApiError, FieldError};
use crate::webhooks::{list_out, page, webhook_id};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_domain::event_type::BUILT_IN;
use herald_domain::{Envelope, EventId, EventType, SigningSecret, rfc3339};
use herald_store::{EventFilter, IdempotentAnswer, NewEvent, Recovery, Rotated, Rotation};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const MAX_GRACE: u64 = 7 * 86_400;

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateIn {
    pub grace_period_seconds: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RotateOut {
    pub signing_secret: String,
    pub previous_secret_expires_at: String,
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let k = v.to_str().map_err(|_| ApiError::field("Idempotency-Key", "must be visible ASCII"))?;
    if k.is_empty() || k.len() > 255 {
        return Err(ApiError::field("Idempotency-Key", "must be 1..255 characters"));
    }
    Ok(Some(k.to_owned()))
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/rotate-secret", tag = "webhooks", security(("bearer" = [])), params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)), request_body(content = Option<RotateIn>), responses((status = 200, body = RotateOut), (status = 400, body = crate::problem::Problem), (status = 404, body = crate::problem::Problem), (status = 429, body = crate::problem::Problem)))]
pub async fn rotate_secret(
    State(s): State<AppState>,
    Authed(account): Authed,
    PathId(id): PathId,
    headers: HeaderMap,
    MaybeJson(body): MaybeJson<RotateIn>,
) -> Result<Response, ApiError> {
    let id = webhook_id(&id)?;
    let input = body.unwrap_or_default();
    let grace = input.grace_period_seconds.unwrap_or(86_400);
    if grace > MAX_GRACE {
        return Err(ApiError::field("grace_period_seconds", "must be between 0 and 604800 (7 days)"));
    }
    let key = idempotency_key(&headers)?;
    crate::ratelimit::check(&s.limits.rotate_per_account, account.id.as_str())?;
    let now = s.clock.now();
    let secret = SigningSecret::generate();
    let expires = now + Duration::from_secs(grace);
    let out = RotateOut { signing_secret: secret.expose().to_owned(), previous_secret_expires_at: rfc3339(expires) };
    let idempotency = match key {
        Some(key) => Some(IdempotentAnswer {
            scope: format!("rotate:{id}"),
            key,
            since: now - s.config.fanout.idempotency_window,
            response: serde_json::to_string(&out).map_err(|_| ApiError::Internal)?,
        }),
        None => None,
    };
    let rotation = Rotation {
        account: account.id,
        webhook: id,
        new_secret: secret,
        grace_until: expires,
        keep: 5,
        now,
        idempotency,
    };
    match s.store.rotate_secret(rotation).await? {
        Rotated::NotFound => return Err(ApiError::NotFound("webhook")),
        Rotated::Replayed(prior) => {
            let body: serde_json::Value = serde_json::from_str(&prior).map_err(|_| ApiError::Internal)?;
            return Ok(axum::Json(body).into_response());
        }
        Rotated::Applied => {}
    }
    Ok(axum::Json(out).into_response())
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestIn {
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    #[schema(value_type = Object)]
    pub data: Option<Box<RawValue>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    pub wait: Option<bool>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TestOut {
    pub delivery_id: String,
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

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks", security(("bearer" = [])), params(("id" = String, Path), ("wait" = Option<bool>, Query)), request_body(content = Option<TestIn>), responses((status = 202, body = TestOut), (status = 200, body = TestOut, description = "with ?wait=true: the first attempt's outcome"), (status = 409, body = crate::problem::Problem)))]
pub async fn test_webhook(
    State(s): State<AppState>,
    Authed(account): Authed,
    PathId(id): PathId,
    Query(q): Query<WaitQuery>,
    MaybeJson(body): MaybeJson<TestIn>,
) -> Result<Response, ApiError> {
    let wh = webhook_id(&id)?;
    let input = body.unwrap_or_default();
    let webhook = s.store.get_webhook(&account.id, &wh).await?.ok_or(ApiError::NotFound("webhook"))?;
    if !webhook.enabled {
        return Err(ApiError::Conflict("the webhook is disabled; enable it to send a test".into()));
    }
    crate::ratelimit::check(&s.limits.test_per_account, account.id.as_str())?;
    let ty = input.event_type.unwrap_or_else(|| "webhook.test".into());
    let known = match EventType::parse(&ty) {
        Some(t) if t.is_built_in() => true,
        Some(t) => s.store.custom_event_type_exists(&account.id, t.as_str()).await?,
        None => false,
    };
    if !known {
        return Err(ApiError::field("type", format!("unknown event type {ty:?}; allowed: {}", BUILT_IN.join(", "))));
    }
    let default_data =
        RawValue::from_string(r#"{"message":"test event from herald"}"#.into()).map_err(|_| ApiError::Internal)?;
    let data = input.data.unwrap_or(default_data);
    crate::events::check_data(&data).map_err(|m| ApiError::field("data", m))?;
    let event_id = EventId::generate();
    let now = s.clock.now();
    let new = NewEvent {
        envelope: Envelope::build(&event_id, &ty, now, &data),
        id: event_id,
        account_id: account.id.clone(),
        event_type: ty,
        routing: Default::default(),
        idempotency_key: None,
        created_at: now,
    };
    let delivery = s.store.enqueue_direct(&wh, new, &s.config.fanout).await?.ok_or(ApiError::NotFound("webhook"))?;
    let mut out = TestOut {
        delivery_id: delivery.to_string(),
        success: None,
        status_code: None,
        duration_ms: None,
        error: None,
        response_body: None,
    };
    if !q.wait.unwrap_or(false) {
        return Ok((StatusCode::ACCEPTED, axum::Json(out)).into_response());
    }
    // Synchronous delivery for the caller: wait for the first attempt's recorded outcome.
    let deadline = tokio::time::Instant::now() + s.config.test_wait;
    loop {
        if let Some((_, attempts)) = s.store.get_delivery(&account.id, &delivery).await?
            && let Some(a) = attempts.into_iter().next()
        {
            out.success = Some((200..300).contains(&a.status_code));
            out.status_code = Some(a.status_code);
            out.duration_ms = Some(a.duration_ms);
            out.error = a.error;
            out.response_body = a.response_body;
            return Ok(axum::Json(out).into_response());
        }
        if tokio::time::Instant::now() > deadline {
            // Still in flight: the delivery goes on; say so instead of hanging.
            return Ok((StatusCode::ACCEPTED, axum::Json(out)).into_response());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverIn {
    pub since: String,
    pub until: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct RecoverOut {
    pub count: u64,
    pub dry_run: bool,
}

fn parse_time(field: &str, v: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(v, &Rfc3339).map_err(|_| ApiError::field(field, "must be an RFC 3339 time"))
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/recover", tag = "webhooks", security(("bearer" = [])), params(("id" = String, Path)), request_body = RecoverIn, responses((status = 202, body = RecoverOut), (status = 200, body = RecoverOut, description = "dry run"), (status = 429, body = crate::problem::Problem)))]
pub async fn recover_webhook(
    State(s): State<AppState>,
    Authed(account): Authed,
    PathId(id): PathId,
    Json(input): Json<RecoverIn>,
) -> Result<Response, ApiError> {
    let wh = webhook_id(&id)?;
    let now = s.clock.now();
    let since = parse_time("since", &input.since)?;
    let until = input.until.as_deref().map(|u| parse_time("until", u)).transpose()?.unwrap_or(now);
    if since >= until {
        return Err(ApiError::field("since", "must be before until"));
    }
    s.store.get_webhook(&account.id, &wh).await?.ok_or(ApiError::NotFound("webhook"))?;
    // Dry runs read the whole window too: they count against the account's limit.
    crate::ratelimit::check(&s.limits.recover_per_account, account.id.as_str())?;
    if !input.dry_run {
        crate::ratelimit::check(&s.limits.recover_per_webhook, wh.as_str())?;
    }
    let recovery = Recovery { account: account.id, webhook: wh, since, until, dry_run: input.dry_run, now };
    let count = s.store.recover(recovery, &s.config.fanout).await?.ok_or(ApiError::NotFound("webhook"))?;
    let status = if input.dry_run { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((status, axum::Json(RecoverOut { count, dry_run: input.dry_run })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventLogOut {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created_at: String,
    pub deliveries: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    pub labels: Vec<String>,
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
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
        data,
        delivery_log: None,
    }
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events", security(("bearer" = [])), params(("type" = Option<String>, Query), ("since" = Option<String>, Query), ("until" = Option<String>, Query), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)), responses((status = 200, body = crate::dto::ListOut<EventLogOut>), (status = 400, body = crate::problem::Problem, description = "a malformed type, time, limit or cursor")))]
pub async fn list_events(
    State(s): State<AppState>,
    Authed(account): Authed,
    Query(q): Query<EventsQuery>,
) -> Result<axum::Json<ListOut<EventLogOut>>, ApiError> {
    let mut p = page(&ListQuery { limit: q.limit, cursor: q.cursor.clone(), status: None })?;
    if let Some(t) = &q.event_type
        && EventType::parse(t).is_none()
    {
        return Err(ApiError::field("type", "must be an event type name (dot-separated a-z, 0-9, _ and -)"));
    }
    let filter = EventFilter {
        event_type: q.event_type.clone(),
        since: q.since.as_deref().map(|v| parse_time("since", v)).transpose()?,
        until: q.until.as_deref().map(|v| parse_time("until", v)).transpose()?,
    };
    let limit = p.limit;
    p.limit += 1;
    let rows = s.store.list_events(&account.id, filter, p).await?;
    Ok(axum::Json(list_out(rows, limit, |e| e.id.to_string(), event_out)))
}

#[utoipa::path(get, path = "/api/v1/events/{id}", tag = "events", security(("bearer" = [])), params(("id" = String, Path)), responses((status = 200, body = EventLogOut, description = "with delivery_log"), (status = 404, body = crate::problem::Problem)))]
pub async fn get_event(
    State(s): State<AppState>,
    Authed(account): Authed,
    PathId(id): PathId,
) -> Result<axum::Json<EventLogOut>, ApiError> {
    let id = EventId::parse(&id).ok_or(ApiError::NotFound("event"))?;
    let (e, deliveries) = s.store.get_event(&account.id, &id).await?.ok_or(ApiError::NotFound("event"))?;
    let mut out = event_out(e);
    out.delivery_log = Some(deliveries.into_iter().map(DeliveryOut::from).collect());
    Ok(axum::Json(out))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTypeIn {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventTypeOut {
    pub name: String,
    pub description: String,
    pub built_in: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/event-types", tag = "events", security(("bearer" = [])), responses((status = 200, body = crate::dto::ListOut<EventTypeOut>)))]
pub async fn list_event_types(
    State(s): State<AppState>,
    Authed(account): Authed,
) -> Result<axum::Json<ListOut<EventTypeOut>>, ApiError> {
    let mut items: Vec<EventTypeOut> = BUILT_IN
        .iter()
        .map(|n| EventTypeOut { name: (*n).into(), description: String::new(), built_in: true, created_at: None })
        .collect();
    for t in s.store.list_event_types(&account.id).await? {
        items.push(EventTypeOut {
            name: t.name,
            description: t.description,
            built_in: false,
            created_at: Some(rfc3339(t.created_at)),
        });
    }
    Ok(axum::Json(ListOut { items, next_cursor: None }))
}

#[utoipa::path(post, path = "/api/v1/event-types", tag = "events", security(("bearer" = [])), request_body = EventTypeIn, responses((status = 201, body = EventTypeOut), (status = 409, body = crate::problem::Problem)))]
pub async fn create_event_type(
    State(s): State<AppState>,
    Authed(account): Authed,
    Json(input): Json<EventTypeIn>,
) -> Result<impl IntoResponse, ApiError> {
    let Some(t) = EventType::parse(&input.name) else {
        return Err(ApiError::field("name", "dot-separated segments of a-z, 0-9, _ and -, at most 100 characters"));
    };
    let mut errs = Vec::new();
    if t.is_built_in() {
        errs.push(FieldError { field: "name".into(), message: "is a built-in type".into() });
    }
    if input.description.chars().count() > 200 || input.description.chars().any(char::is_control) {
        errs.push(FieldError {
            field: "description".into(),
            message: "at most 200 characters without control characters".into(),
        });
    }
    if !errs.is_empty() {
        return Err(ApiError::Validation(errs));
    }
    let rec = s.store.create_event_type(&account.id, t.as_str(), &input.description, s.clock.now()).await.map_err(
        |e| match e {
            herald_store::StoreError::AlreadyExists => {
                ApiError::Conflict(format!("event type {} already exists", t.as_str()))
            }
            e => e.into(),
        },
    )?;
    Ok((
        StatusCode::CREATED,
        axum::Json(EventTypeOut {
            name: rec.name,
            description: rec.description,
            built_in: false,
            created_at: Some(rfc3339(rec.created_at)),
        }),
    ))
}
