//! `/api/v1/agents`: create, list, get, patch, delete, rotate the secret, list deliveries.

use crate::AppState;
use crate::auth::Authed;
use crate::dto::{AgentIn, AgentOut, AgentPatchIn, DeliveryOut, DeliveryPageQuery, ListOut};
use crate::extract::{Json, MaybeJson, NoQuery, PathId, Query};
use crate::lifecycle::{RotateIn, RotateOut, idempotency_key};
use crate::problem::ApiError;
use crate::webhooks::{list_out, page};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use herald_app::{AgentChange, AgentDraft};
use serde::Deserialize;
use std::time::Duration;

/// A page of agents, in address order.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AgentPageQuery {
    /// Items per page.
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before (an address); empty or absent: the first page.
    #[param(value_type = Option<crate::schemas::AgentAddress>)]
    pub cursor: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", security(("bearer" = [])),
    request_body = AgentIn,
    responses(
        (status = 201, body = AgentOut, description = "created; `signing_secret` (with `signature: hmac`) is shown only here"),
        (status = 400, description = "invalid: also an address on a domain this server does not accept mail for (they are named), or a `webhook_url` the address policy refuses"),
        (status = 409, description = "the address is already an agent (of any account), or the account has its maximum number of agents (1000)"),
    ))]
pub async fn create_agent(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
    Json(input): Json<AgentIn>,
) -> Result<impl IntoResponse, ApiError> {
    let draft = AgentDraft {
        address: input.address,
        name: input.name,
        webhook_url: input.webhook_url,
        max_in_flight: input.max_in_flight,
        signature: input.signature,
    };
    let (created, secret) = s.app.create_agent(&account.id, draft).await?;
    let hmac = created.signature == herald_domain::SignatureScheme::Hmac;
    let mut out = AgentOut::of(created, &s.config.portal.public_url);
    out.signing_secret = hmac.then(|| secret.expose().to_owned());
    Ok((StatusCode::CREATED, axum::Json(out)))
}

#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", security(("bearer" = [])),
    params(AgentPageQuery),
    responses((status = 200, body = ListOut<AgentOut>, description = "in address order")))]
pub async fn list_agents(
    State(s): State<AppState>,
    Authed(account): Authed,
    Query(q): Query<AgentPageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let mut p = agent_page(&q)?;
    let limit = p.limit;
    p.limit += 1;
    let rows = s.app.agents(&account.id, p).await?;
    Ok(axum::Json(list_out(rows, limit, |a| a.address.to_string(), |a| AgentOut::of(a, &s.config.portal.public_url))))
}

/// Agents page on their address, so the cursor is an address.
fn agent_page(q: &AgentPageQuery) -> Result<herald_store::Page, ApiError> {
    let mut p = page(q.limit, None)?;
    if let Some(c) = q.cursor.as_deref().filter(|c| !c.is_empty()) {
        if c.len() > herald_domain::agent::MAX_ADDRESS_LEN || herald_domain::AgentAddress::parse(c).is_err() {
            return Err(ApiError::field("cursor", "is not a cursor returned by this API"));
        }
        p.after = Some(c.to_owned());
    }
    Ok(p)
}

#[utoipa::path(get, path = "/api/v1/agents/{address}", tag = "agents", security(("bearer" = [])),
    params(crate::schemas::AgentPath),
    responses((status = 200, body = AgentOut, description = "the agent (never its secret)")))]
pub async fn get_agent(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
    PathId(address): PathId,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(AgentOut::of(s.app.agent(&account.id, &address).await?, &s.config.portal.public_url)))
}

#[utoipa::path(patch, path = "/api/v1/agents/{address}", tag = "agents", security(("bearer" = [])),
    params(crate::schemas::AgentPath),
    request_body = AgentPatchIn,
    responses(
        (status = 200, body = AgentOut, description = "changed; a switch to `signature: hmac` answers the fresh `signing_secret`, shown only here"),
        (status = 400, description = "invalid: also a `webhook_url` the address policy refuses"),
    ))]
pub async fn patch_agent(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
    PathId(address): PathId,
    Json(input): Json<AgentPatchIn>,
) -> Result<impl IntoResponse, ApiError> {
    let change = AgentChange {
        name: input.name,
        webhook_url: input.webhook_url,
        max_in_flight: input.max_in_flight,
        signature: input.signature,
    };
    let (changed, secret) = s.app.change_agent(&account.id, &address, change).await?;
    let mut out = AgentOut::of(changed, &s.config.portal.public_url);
    out.signing_secret = secret.map(|r| r.signing_secret);
    Ok(axum::Json(out))
}

#[utoipa::path(delete, path = "/api/v1/agents/{address}", tag = "agents", security(("bearer" = [])),
    params(crate::schemas::AgentPath),
    responses((status = 204, description = "deleted; its pending deliveries end as failed")))]
pub async fn delete_agent(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
    PathId(address): PathId,
) -> Result<impl IntoResponse, ApiError> {
    s.app.delete_agent(&account.id, &address).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/agents/{address}/rotate-secret", tag = "agents", security(("bearer" = [])),
    params(crate::schemas::AgentPath, crate::schemas::IdempotencyHeader),
    request_body(content = Option<RotateIn>, description = "optional"),
    responses(
        (status = 200, body = RotateOut, description = "rotated, as for webhooks"),
        (status = 400, description = "invalid: also a malformed `Idempotency-Key`"),
        (status = 409, description = "the agent signs with `ed25519` and has no shared secret (rotate the account's signing key)"),
        (status = 429, description = "too many rotations in this account (HERALD_ROTATIONS_PER_MINUTE, 10 a minute)"),
    ))]
pub async fn rotate_agent_secret(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
    PathId(address): PathId,
    headers: HeaderMap,
    MaybeJson(body): MaybeJson<RotateIn>,
) -> Result<impl IntoResponse, ApiError> {
    let grace = Duration::from_secs(body.unwrap_or_default().grace_period_seconds.unwrap_or(86_400));
    let key = idempotency_key(&headers)?;
    let admit = || crate::ratelimit::admit(&s.limits.rotate_per_account, account.id.as_str());
    let answer = s.app.rotate_agent_secret(&account.id, &address, grace, key, admit).await?;
    Ok(axum::Json(RotateOut {
        signing_secret: answer.signing_secret,
        previous_secret_expires_at: answer.previous_secret_expires_at,
    }))
}

#[utoipa::path(get, path = "/api/v1/agents/{address}/deliveries", tag = "agents", security(("bearer" = [])),
    params(crate::schemas::AgentPath, DeliveryPageQuery),
    responses((status = 200, body = ListOut<DeliveryOut>, description = "the agent's own deliveries, newest first")))]
pub async fn list_agent_deliveries(
    State(s): State<AppState>,
    Authed(account): Authed,
    PathId(address): PathId,
    Query(q): Query<DeliveryPageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let status = crate::deliveries::status_filter(q.status.as_deref())?;
    let mut p = page(q.limit, q.cursor.as_deref())?;
    let limit = p.limit;
    p.limit += 1;
    let rows = s.app.agent_deliveries(&account.id, &address, status, p).await?;
    Ok(axum::Json(list_out(rows, limit, |d| d.id.to_string(), DeliveryOut::from)))
}
