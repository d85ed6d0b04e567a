use crate::AppState;
use crate::problem::ApiError;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

pub async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

pub async fn readyz(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    s.store.ping().await?;
    Ok(axum::Json(serde_json::json!({"status": "ready"})))
}

pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let text = s.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
