//! Herald's management API: JSON over HTTP under `/api/v1`, problem+json errors.
//!
//! The API only talks to the store; the engine is woken through the store's work
//! signal, never called directly.
#![forbid(unsafe_code)]

mod auth;
mod deliveries;
mod dto;
mod events;
mod extract;
mod health;
mod lifecycle;
pub mod openapi;
mod problem;
mod ratelimit;
mod webhooks;

pub use problem::ApiError;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use herald_domain::{Clock, TargetUrl, UrlError};
use herald_store::{FanoutRules, Store};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Checks a webhook URL at registration: shape, scheme, and every resolved address.
pub trait TargetCheck: Send + Sync + 'static {
    fn check<'a>(&'a self, url: &'a str) -> Pin<Box<dyn Future<Output = Result<TargetUrl, UrlError>> + Send + 'a>>;
}

/// Limits and rules the API enforces.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub webhooks_per_account: u32,
    pub max_in_flight_limit: u32,
    pub event_body_limit: usize,
    pub body_limit: usize,
    pub fanout: FanoutRules,
    /// Re-enabling within this long after an automatic disable is refused (409).
    pub reenable_cooldown: std::time::Duration,
    /// One recovery per webhook per this interval (429 otherwise).
    pub recover_interval: std::time::Duration,
    /// Per-account limits (per minute) on test sends, rotations and recoveries.
    pub test_sends_per_minute: u32,
    pub rotations_per_minute: u32,
    pub recoveries_per_minute: u32,
    /// How long `?wait=true` on a test send waits for the first attempt.
    pub test_wait: std::time::Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            webhooks_per_account: 50,
            max_in_flight_limit: 256,
            event_body_limit: 256 * 1024,
            body_limit: 64 * 1024,
            fanout: FanoutRules::default(),
            reenable_cooldown: std::time::Duration::from_secs(300),
            recover_interval: std::time::Duration::from_secs(60),
            test_wait: std::time::Duration::from_secs(20),
            test_sends_per_minute: 30,
            rotations_per_minute: 10,
            recoveries_per_minute: 10,
        }
    }
}

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub targets: Arc<dyn TargetCheck>,
    pub config: Arc<ApiConfig>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    pub(crate) keys: Arc<auth::KeyCache>,
    pub(crate) limits: Arc<ratelimit::Limits>,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        targets: Arc<dyn TargetCheck>,
        config: ApiConfig,
        metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> Self {
        Self {
            store,
            clock,
            targets,
            limits: Arc::new(ratelimit::Limits::new(&config)),
            config: Arc::new(config),
            metrics,
            keys: Arc::default(),
        }
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let event_limit = state.config.event_body_limit;
    let body_limit = state.config.body_limit;
    let events = Router::new()
        .route("/api/v1/events", post(events::create_event).get(lifecycle::list_events))
        .layer(DefaultBodyLimit::max(event_limit));
    let api = Router::new()
        .route("/api/v1/webhooks", post(webhooks::create_webhook).get(webhooks::list_webhooks))
        .route(
            "/api/v1/webhooks/{id}",
            get(webhooks::get_webhook).patch(webhooks::patch_webhook).delete(webhooks::delete_webhook),
        )
        .route("/api/v1/webhooks/{id}/deliveries", get(deliveries::list_deliveries))
        .route("/api/v1/webhooks/{id}/rotate-secret", post(lifecycle::rotate_secret))
        .route("/api/v1/webhooks/{id}/test", post(lifecycle::test_webhook))
        .route("/api/v1/webhooks/{id}/recover", post(lifecycle::recover_webhook))
        .route("/api/v1/events/{id}", get(lifecycle::get_event))
        .route("/api/v1/event-types", get(lifecycle::list_event_types).post(lifecycle::create_event_type))
        .route("/api/v1/deliveries/{id}", get(deliveries::get_delivery))
        .route("/api/v1/deliveries/{id}/retry", post(deliveries::retry_delivery))
        .layer(DefaultBodyLimit::max(body_limit));
    Router::new()
        .merge(events)
        .merge(api)
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", openapi::document()))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(problem::not_found_route)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(problem::panic_response))
        .with_state(state)
}
