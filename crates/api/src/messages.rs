//! Inbound messages: inject one through the API (the same path as SMTP), list an agent's,
//! read one, and its raw bytes.

use crate::AppState;
use crate::auth::Authed;
use crate::dto::{ListOut, MessageOut, PageQuery};
use crate::extract::{NoQuery, PathId, Query};
use crate::lifecycle::{TestOut, WaitQuery};
use crate::problem::ApiError;
use crate::webhooks::{list_out, page};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub struct InjectOut {
    #[schema(pattern = "^msg_[0-9a-f]{32}$")]
    pub message_id: String,
    /// The agent's own delivery (none without a `webhook_url`, or for a duplicate).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^whd_[0-9a-f]{32}$")]
    pub delivery_id: Option<String>,
    /// True when the same message had already reached the agent: nothing new was made.
    pub duplicate: bool,
}

#[utoipa::path(post, path = "/api/v1/agents/{address}/messages", tag = "messages", security(("bearer" = [])),
    params(crate::schemas::AgentPath, WaitQuery),
    request_body(content = String, content_type = "message/rfc822", description = "a raw RFC 5322 message"),
    responses(
        (status = 202, body = InjectOut, description = "stored; the agent's delivery runs (with `?wait=true`: none was attempted within the wait)"),
        (status = 200, body = TestOut, description = "with `?wait=true`: the first attempt of the agent's own delivery"),
        (status = 400, description = "invalid: also a message that does not parse (field `message`)"),
        (status = 429, description = "too many messages injected in this account (HERALD_INJECTS_PER_MINUTE, 600 a minute)"),
    ))]
pub async fn inject_message(
    State(s): State<AppState>,
    Authed(account): Authed,
    PathId(address): PathId,
    Query(q): Query<WaitQuery>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("message/rfc822") {
        return Err(ApiError::Unsupported("the body must be a raw message: Content-Type: message/rfc822".into()));
    }
    let raw = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(format!(
            "a message may be at most {} bytes",
            s.app.config.inbound.max_message_size
        )),
        _ => ApiError::BadRequest(e.body_text()),
    })?;
    let wait = q.wait.unwrap_or(false);
    let admit = || crate::ratelimit::admit(&s.limits.inject_per_account, account.id.as_str());
    let injected = s.app.inject_message(&account.id, &address, &raw, wait, admit).await?;
    if wait && let (Some(d), Some(a)) = (&injected.delivery_id, injected.first_attempt) {
        let out = TestOut { message_id: Some(injected.message_id.to_string()), ..TestOut::new(d.to_string(), Some(a)) };
        return Ok(axum::Json(out).into_response());
    }
    let out = InjectOut {
        message_id: injected.message_id.to_string(),
        delivery_id: injected.delivery_id.map(|d| d.to_string()),
        duplicate: injected.duplicate,
    };
    Ok((StatusCode::ACCEPTED, axum::Json(out)).into_response())
}

#[utoipa::path(get, path = "/api/v1/agents/{address}/messages", tag = "messages", security(("bearer" = [])),
    params(crate::schemas::AgentPath, PageQuery),
    responses((status = 200, body = ListOut<MessageOut>, description = "newest first (kept 30 days)")))]
pub async fn list_messages(
    State(s): State<AppState>,
    Authed(account): Authed,
    PathId(address): PathId,
    Query(q): Query<PageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let mut p = page(q.limit, q.cursor.as_deref())?;
    let limit = p.limit;
    p.limit += 1;
    let rows = s.app.messages(&account.id, &address, p).await?;
    Ok(axum::Json(list_out(rows, limit, |m| m.id.to_string(), MessageOut::from)))
}

#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "messages", security(("bearer" = [])),
    params(crate::schemas::MessagePath),
    responses((status = 200, body = MessageOut, description = "the message as parsed")))]
pub async fn get_message(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
    PathId(id): PathId,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(MessageOut::from(s.app.message(&account.id, &id).await?)))
}

#[utoipa::path(get, path = "/api/v1/messages/{id}/raw", tag = "messages", security(("bearer" = [])),
    params(crate::schemas::MessagePath),
    responses((status = 200, content_type = "message/rfc822", body = String, description = "the message as stored (with the Authentication-Results header added)")))]
pub async fn get_raw_message(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
    PathId(id): PathId,
) -> Result<impl IntoResponse, ApiError> {
    let raw = s.app.raw_message(&account.id, &id).await?;
    Ok(([(header::CONTENT_TYPE, "message/rfc822")], raw))
}
