//! Delivery inspection, manual retry and skip.

use crate::AppState;
use crate::auth::Authed;
use crate::dto::{AttemptOut, DeliveryOut, DeliveryPageQuery, ListOut};
use crate::extract::{NoQuery, PathId, Query};
use crate::problem::ApiError;
use crate::webhooks::{list_out, page, webhook_id};
use axum::extract::State;
use axum::response::IntoResponse;
use herald_domain::{DeliveryId, DeliveryStatus};
use herald_store::DeliveryQuery;

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "deliveries", security(("bearer" = [])),
    params(crate::schemas::WebhookPath, DeliveryPageQuery),
    responses((status = 200, body = ListOut<DeliveryOut>, description = "newest first")))]
pub async fn list_deliveries(
    State(s): State<AppState>,
    Authed(account): Authed,
    PathId(id): PathId,
    Query(q): Query<DeliveryPageQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let wh = webhook_id(&id)?;
    let status = status_filter(q.status.as_deref())?;
    let mut p = page(q.limit, q.cursor.as_deref())?;
    let limit = p.limit;
    p.limit += 1;
    let query = DeliveryQuery { account: account.id, webhook: wh, status, page: p };
    let rows = s.app.deliveries(query).await?;
    Ok(axum::Json(list_out(rows, limit, |d| d.id.to_string(), DeliveryOut::from)))
}

/// The `status` query of a delivery list.
pub(crate) fn status_filter(status: Option<&str>) -> Result<Option<DeliveryStatus>, ApiError> {
    match status {
        None | Some("") => Ok(None),
        Some(st) => DeliveryStatus::parse(st)
            .map(Some)
            .ok_or_else(|| ApiError::field("status", "must be pending, delivered, failed or blocked")),
    }
}

fn delivery_id(id: &str) -> Result<DeliveryId, ApiError> {
    DeliveryId::parse(id).ok_or(ApiError::NotFound("delivery"))
}

#[utoipa::path(get, path = "/api/v1/deliveries/{id}", tag = "deliveries", security(("bearer" = [])),
    params(crate::schemas::DeliveryPath),
    responses((status = 200, body = DeliveryOut, description = "the delivery with its `attempt_log`")))]
pub async fn get_delivery(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
    PathId(id): PathId,
) -> Result<impl IntoResponse, ApiError> {
    let id = delivery_id(&id)?;
    let (d, attempts) = s.app.delivery(&account.id, &id).await?;
    let mut out = DeliveryOut::from(d);
    out.attempt_log = Some(attempts.into_iter().map(AttemptOut::from).collect());
    Ok(axum::Json(out))
}

#[utoipa::path(post, path = "/api/v1/deliveries/{id}/retry", tag = "deliveries", security(("bearer" = [])),
    params(crate::schemas::DeliveryPath),
    responses(
        (status = 202, body = DeliveryOut, description = "back to `pending` with one more attempt allowed"),
        (status = 409, description = "only a `failed` or `blocked` delivery whose webhook still exists can be retried"),
    ))]
pub async fn retry_delivery(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
    PathId(id): PathId,
) -> Result<impl IntoResponse, ApiError> {
    let id = delivery_id(&id)?;
    let d = s.app.retry_delivery(&account.id, &id).await?;
    Ok((axum::http::StatusCode::ACCEPTED, axum::Json(DeliveryOut::from(d))))
}

#[utoipa::path(post, path = "/api/v1/deliveries/{id}/skip", tag = "deliveries", security(("bearer" = [])),
    params(crate::schemas::DeliveryPath),
    responses(
        (status = 200, body = DeliveryOut, description = "ended `failed` with the error `skipped`; the next delivery of its FIFO lane may go"),
        (status = 409, description = "only a `pending` or `blocked` delivery can be skipped"),
    ))]
pub async fn skip_delivery(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
    PathId(id): PathId,
) -> Result<impl IntoResponse, ApiError> {
    let id = delivery_id(&id)?;
    let d = s.app.skip_delivery(&account.id, &id).await?;
    Ok(axum::Json(DeliveryOut::from(d)))
}
