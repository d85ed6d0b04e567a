//! `/api/v1/agents`: create, list, get, patch, delete, rotate the secret, list deliveries.

use crate::AppState;
use crate::auth::Authed;
use crate::dto::{AgentIn, AgentOut, AgentPatchIn, DeliveryOut, ListQuery};
use crate::extract::{Json, MaybeJson, PathId, Query};
use crate::lifecycle::{RotateIn, RotateOut, idempotency_key};
use crate::problem::ApiError;
use crate::webhooks::{list_out, page};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use herald_app::{AgentChange, AgentDraft};
use std::time::Duration;

#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", security(("bearer" = [])), request_body = AgentIn, responses((status = 201, body = AgentOut, description = "created; signing_secret shown only here"), (status = 400, body = crate::problem::Problem, description = "invalid address, a domain not accepted here, or a refused webhook_url"), (status = 409, body = crate::problem::Problem, description = "the address is already an agent")))]
pub async fn create_agent(
    State(s): State<AppState>,
    Authed(account): Authed,
    Json(input): Json<AgentIn>,
) -> Result<impl IntoResponse, ApiError> {
    let draft = AgentDraft {
        address: input.address,
        name: input.name,
        webhook_url: input.webhook_url,
        max_in_flight: input.max_in_flight,
    };
    let (created, secret) = s.app.create_agent(&account.id, draft).await?;
    let mut out = AgentOut::from(created);
    out.signing_secret = Some(secret.expose().to_owned());
    Ok((StatusCode::CREATED, axum::Json(out)))
}

#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", security(("bearer" = [])), params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)), responses((status = 200, body = crate::dto::ListOut<AgentOut>)))]
pub async fn list_agents(
    State(s): State<AppState>,
    Authed(account): Authed,
    Query(q): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    if q.status.is_some() {
        return Err(ApiError::field("status", "agents have no status filter"));
    }
    let mut p = agent_page(&q)?;
    let limit = p.limit;
    p.limit += 1;
    let rows = s.app.agents(&account.id, p).await?;
    Ok(axum::Json(list_out(rows, limit, |a| a.address.to_string(), AgentOut::from)))
}

/// Agents page on their address, so the cursor is an address.
fn agent_page(q: &ListQuery) -> Result<herald_store::Page, ApiError> {
    let cursor = q.cursor.clone();
    let mut p = page(&ListQuery { limit: q.limit, cursor: None, status: None })?;
    if let Some(c) = cursor {
        if c.len() > herald_domain::agent::MAX_ADDRESS_LEN || herald_domain::AgentAddress::parse(&c).is_err() {
            return Err(ApiError::field("cursor", "is not a cursor returned by this API"));
        }
        p.after = Some(c);
    }
    Ok(p)
}

#[utoipa::path(get, path = "/api/v1/agents/{address}", tag = "agents", security(("bearer" = [])), params(("address" = String, Path)), responses((status = 200, body = AgentOut), (status = 404, body = crate::problem::Problem)))]
pub async fn get_agent(
    State(s): State<AppState>,
    Authed(account): Authed,
    PathId(address): PathId,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(AgentOut::from(s.app.agent(&account.id, &address).await?)))
}

#[utoipa::path(patch, path = "/api/v1/agents/{address}", tag = "agents", security(("bearer" = [])), params(("address" = String, Path)), request_body = AgentPatchIn, responses((status = 200, body = AgentOut), (status = 400, body = crate::problem::Problem), (status = 404, body = crate::problem::Problem)))]
pub async fn patch_agent(
    State(s): State<AppState>,
    Authed(account): Authed,
    PathId(address): PathId,
    Json(input): Json<AgentPatchIn>,
) -> Result<impl IntoResponse, ApiError> {
    let change = AgentChange { name: input.name, webhook_url: input.webhook_url, max_in_flight: input.max_in_flight };
    Ok(axum::Json(AgentOut::from(s.app.change_agent(&account.id, &address, change).await?)))
}

#[utoipa::path(delete, path = "/api/v1/agents/{address}", tag = "agents", security(("bearer" = [])), params(("address" = String, Path)), responses((status = 204, description = "deleted; pending deliveries end as failed"), (status = 404, body = crate::problem::Problem)))]
pub async fn delete_agent(
    State(s): State<AppState>,
    Authed(account): Authed,
    PathId(address): PathId,
) -> Result<impl IntoResponse, ApiError> {
    s.app.delete_agent(&account.id, &address).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/agents/{address}/rotate-secret", tag = "agents", security(("bearer" = [])), params(("address" = String, Path), ("Idempotency-Key" = Option<String>, Header)), request_body(content = Option<RotateIn>), responses((status = 200, body = RotateOut), (status = 400, body = crate::problem::Problem), (status = 404, body = crate::problem::Problem), (status = 429, body = crate::problem::Problem)))]
pub async fn rotate_agent_secret(
    State(s): State<AppState>,
    Authed(account): Authed,
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

#[utoipa::path(get, path = "/api/v1/agents/{address}/deliveries", tag = "agents", security(("bearer" = [])), params(("address" = String, Path), ("status" = Option<String>, Query), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)), responses((status = 200, body = crate::dto::ListOut<DeliveryOut>), (status = 404, body = crate::problem::Problem)))]
pub async fn list_agent_deliveries(
    State(s): State<AppState>,
    Authed(account): Authed,
    PathId(address): PathId,
    Query(q): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let status = crate::deliveries::status_filter(q.status.as_deref())?;
    let mut p = page(&q)?;
    let limit = p.limit;
    p.limit += 1;
    let rows = s.app.agent_deliveries(&account.id, &address, status, p).await?;
    Ok(axum::Json(list_out(rows, limit, |d| d.id.to_string(), DeliveryOut::from)))
}
