//! Herald's HTTP surface: the management API (JSON under `/api/v1`, problem+json errors)
//! and the consumer portal (HTML pages under `/portal`, see [`portal`](crate::portal)).
//!
//! A thin adapter: handlers parse the wire format, call the application layer
//! (`herald-app`) and render its answers; the engine is woken through the store's work
//! signal, never called directly.
#![forbid(unsafe_code)]

mod agents;
mod auth;
mod deliveries;
mod dto;
mod events;
mod extract;
mod health;
mod inbound_dto;
mod lifecycle;
mod messages;
pub mod openapi;
mod portal;
mod portal_sessions;
mod problem;
mod ratelimit;
mod request_log;
mod schemas;
mod signing_keys;
mod stats;
mod webhooks;

pub use portal_sessions::portal_link;

pub use problem::ApiError;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use herald_app::Herald;
use herald_store::Store;
use std::sync::Arc;

pub use herald_app::TargetCheck;

/// Limits the HTTP adapter enforces itself (the application's rules are in `AppConfig`).
#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub event_body_limit: usize,
    pub body_limit: usize,
    /// One recovery per webhook per this interval (429 otherwise).
    pub recover_interval: std::time::Duration,
    /// Per-account limits (per minute) on test sends, rotations and recoveries.
    pub test_sends_per_minute: u32,
    pub rotations_per_minute: u32,
    pub recoveries_per_minute: u32,
    /// Per-account limit (per minute) on messages injected through the API.
    pub injects_per_minute: u32,
    pub portal: PortalConfig,
}

/// How the consumer portal is reached and may be embedded.
#[derive(Clone, Debug)]
pub struct PortalConfig {
    /// The URL users reach Herald at (portal links start with it); `https://` also marks
    /// the session cookie `Secure`.
    pub public_url: String,
    /// Origins allowed to embed the portal in a frame (CSP `frame-ancestors`); empty: none
    /// (`X-Frame-Options: DENY`).
    pub frame_ancestors: Vec<String>,
}

impl Default for PortalConfig {
    fn default() -> Self {
        Self { public_url: "http://127.0.0.1:8080".into(), frame_ancestors: Vec::new() }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            event_body_limit: 256 * 1024,
            body_limit: 64 * 1024,
            recover_interval: std::time::Duration::from_secs(60),
            test_sends_per_minute: 30,
            rotations_per_minute: 10,
            recoveries_per_minute: 10,
            injects_per_minute: 600,
            portal: PortalConfig::default(),
        }
    }
}

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The application layer every handler calls.
    pub app: Herald,
    /// For authentication and readiness only; every use case goes through `app`.
    pub(crate) store: Arc<dyn Store>,
    pub config: Arc<ApiConfig>,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    pub(crate) keys: Arc<auth::KeyCache>,
    pub(crate) limits: Arc<ratelimit::Limits>,
}

impl AppState {
    pub fn new(app: Herald, config: ApiConfig, metrics: Option<metrics_exporter_prometheus::PrometheusHandle>) -> Self {
        Self {
            store: app.store.clone(),
            app,
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
        .route("/api/v1/webhooks/{id}/stats", get(stats::webhook_stats))
        .route("/api/v1/portal-sessions", post(portal_sessions::create_portal_session))
        .route("/api/v1/events/{id}", get(lifecycle::get_event))
        .route("/api/v1/event-types", get(lifecycle::list_event_types).post(lifecycle::create_event_type))
        .route("/api/v1/deliveries/{id}", get(deliveries::get_delivery))
        .route("/api/v1/deliveries/{id}/retry", post(deliveries::retry_delivery))
        .route("/api/v1/deliveries/{id}/skip", post(deliveries::skip_delivery))
        .route("/api/v1/signing-keys", get(signing_keys::list_signing_keys))
        .route("/api/v1/signing-keys/rotate", post(signing_keys::rotate_signing_key))
        .route("/.well-known/herald/{account_public_id}/jwks.json", get(signing_keys::jwks))
        .layer(DefaultBodyLimit::max(body_limit));
    let inject = Router::new()
        .route("/api/v1/agents/{address}/messages", post(messages::inject_message).get(messages::list_messages))
        .layer(DefaultBodyLimit::max(state.app.config.inbound.max_message_size));
    let mail = Router::new()
        .route("/api/v1/agents", post(agents::create_agent).get(agents::list_agents))
        .route(
            "/api/v1/agents/{address}",
            get(agents::get_agent).patch(agents::patch_agent).delete(agents::delete_agent),
        )
        .route("/api/v1/agents/{address}/rotate-secret", post(agents::rotate_agent_secret))
        .route("/api/v1/agents/{address}/deliveries", get(agents::list_agent_deliveries))
        .route("/api/v1/messages/{id}", get(messages::get_message))
        .route("/api/v1/messages/{id}/raw", get(messages::get_raw_message))
        .layer(DefaultBodyLimit::max(body_limit));
    Router::new()
        .merge(events)
        .merge(api)
        .merge(inject)
        .merge(mail)
        .merge(portal::router(&state))
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", openapi::document()))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(problem::not_found_route)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(problem::panic_response))
        // Outermost: a request whose handler panicked is logged (500) and carries its id too.
        .layer(axum::middleware::from_fn(request_log::request_log))
        .with_state(state)
}
