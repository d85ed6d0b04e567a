//! `/api/v1/webhooks`: create, list, get, patch, delete.

use crate::AppState;
use crate::auth::Authed;
use crate::dto::{ListOut, PageQuery, WebhookIn, WebhookOut, WebhookPatchIn};
use crate::extract::{Json, NoQuery, PathId, Query};
use crate::problem::ApiError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use herald_app::{WebhookChange, WebhookDraft};
use herald_domain::WebhookId;
use herald_store::Page;

/// The page a list asks for: `limit` 1..100 (default 20); `cursor` a `next_cursor` of
/// this API, empty meaning the first page.
pub(crate) fn page(limit: Option<u32>, cursor: Option<&str>) -> Result<Page, ApiError> {
    let limit = limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 100"));
    }
    let after = cursor.filter(|c| !c.is_empty());
    if let Some(c) = after
        && (c.len() > 64 || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(ApiError::field("cursor", "is not a cursor returned by this API"));
    }
    Ok(Page { after: after.map(str::to_owned), limit })
}

/// Builds a list response from one extra row fetched to know whether a next page exists.
pub(crate) fn list_out<T, O>(
    mut rows: Vec<T>,
    limit: u32,
    id: impl Fn(&T) -> String,
    map: impl Fn(T) -> O,
) -> ListOut<O> {
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(&id)
    } else {
        None
    };
    ListOut { items: rows.into_iter().map(map).collect(), next_cursor }
}

#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    request_body = WebhookIn,
    responses(
        (status = 201, body = WebhookOut, description = "created; `signing_secret` (with `signature: hmac`) is shown only here"),
        (status = 400, description = "invalid: also an unknown event type (the allowed ones are named) or a URL the address policy refuses"),
        (status = 409, description = "the account has its maximum number of webhooks (50 by default)"),
    ))]
pub async fn create_webhook(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
    Json(input): Json<WebhookIn>,
) -> Result<impl IntoResponse, ApiError> {
    let draft = WebhookDraft {
        url: input.url,
        events: input.events,
        description: input.description,
        filters: input.filters,
        enabled: input.enabled,
        max_in_flight: input.max_in_flight,
        control: crate::dto::control_change!(input),
        signature: input.signature,
    };
    let (created, secret) = s.app.create_webhook(&account.id, draft).await?;
    let hmac = created.signature == herald_domain::SignatureScheme::Hmac;
    let mut out = WebhookOut::of(created, s.app.server_retry_schedule(), &s.config.portal.public_url);
    out.signing_secret = hmac.then(|| secret.expose().to_owned());
    Ok((StatusCode::CREATED, axum::Json(out)))
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = ListOut<WebhookOut>, description = "newest first")))]
pub async fn list_webhooks(
    State(s): State<AppState>,
    Authed(account): Authed,
    Query(q): Query<PageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let mut p = page(q.limit, q.cursor.as_deref())?;
    let limit = p.limit;
    p.limit += 1;
    let rows = s.app.webhooks(&account.id, p).await?;
    Ok(axum::Json(list_out(
        rows,
        limit,
        |w| w.id.to_string(),
        |w| WebhookOut::of(w, s.app.server_retry_schedule(), &s.config.portal.public_url),
    )))
}

pub(crate) fn webhook_id(id: &str) -> Result<WebhookId, ApiError> {
    WebhookId::parse(id).ok_or(ApiError::NotFound("webhook"))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(crate::schemas::WebhookPath),
    responses((status = 200, body = WebhookOut, description = "the webhook (never its secret)")))]
pub async fn get_webhook(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
    PathId(id): PathId,
) -> Result<impl IntoResponse, ApiError> {
    let id = webhook_id(&id)?;
    let w = s.app.webhook(&account.id, &id).await?;
    Ok(axum::Json(WebhookOut::of(w, s.app.server_retry_schedule(), &s.config.portal.public_url)))
}

#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(crate::schemas::WebhookPath),
    request_body = WebhookPatchIn,
    responses(
        (status = 200, body = WebhookOut, description = "changed; a switch to `signature: hmac` answers the fresh `signing_secret`, shown only here"),
        (status = 409, description = "re-enabled within the cooldown (HERALD_REENABLE_COOLDOWN, 5 min) of an automatic disable"),
    ))]
pub async fn patch_webhook(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
    PathId(id): PathId,
    Json(input): Json<WebhookPatchIn>,
) -> Result<impl IntoResponse, ApiError> {
    let id = webhook_id(&id)?;
    let change = WebhookChange {
        url: input.url,
        events: input.events,
        description: input.description,
        filters: input.filters,
        enabled: input.enabled,
        max_in_flight: input.max_in_flight,
        control: crate::dto::control_change!(input),
        signature: input.signature,
    };
    let (changed, secret) = s.app.change_webhook(&account.id, &id, change).await?;
    let mut out = WebhookOut::of(changed, s.app.server_retry_schedule(), &s.config.portal.public_url);
    out.signing_secret = secret.map(|r| r.signing_secret);
    Ok(axum::Json(out))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(crate::schemas::WebhookPath),
    responses((status = 204, description = "deleted; its pending deliveries end as failed")))]
pub async fn delete_webhook(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
    PathId(id): PathId,
) -> Result<impl IntoResponse, ApiError> {
    let id = webhook_id(&id)?;
    s.app.delete_webhook(&account.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
