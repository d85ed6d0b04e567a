use crate::AppState;
use crate::problem::ApiError;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde::Serialize;

/// A health answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok` from `/healthz`, `ready` from `/readyz`.
    #[schema(pattern = "^(ok|ready)$")]
    status: &'static str,
}

#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, body = Health, description = "the process is up: `{\"status\":\"ok\"}`")))]
pub async fn healthz() -> impl IntoResponse {
    axum::Json(Health { status: "ok" })
}

#[utoipa::path(get, path = "/readyz", tag = "system",
    responses(
        (status = 200, body = Health, description = "the store answers: `{\"status\":\"ready\"}`"),
        (status = 503, description = "the store does not answer"),
    ))]
pub async fn readyz(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    s.store.ping().await?;
    Ok(axum::Json(Health { status: "ready" }))
}

#[utoipa::path(get, path = "/metrics", tag = "system",
    responses((status = 200, content_type = "text/plain", body = String, description = "Prometheus text format 0.0.4")))]
pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let text = s.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
