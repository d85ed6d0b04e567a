//! The consumer portal: server-rendered pages under `/portal` for the owners of the
//! endpoints, opened with a one-time link (`POST /api/v1/portal-sessions`).
//!
//! Templates and assets are compiled into the binary (askama; `include_str!`); nothing is
//! fetched at run time. Every response carries a strict Content-Security-Policy (scripts,
//! styles and images from this origin only, no inline script), `frame-ancestors` from the
//! settings, `no-store` and `no-referrer`. Every form that changes something carries the
//! session's CSRF token, and read-only sessions change nothing.

mod actions;
mod chart;
mod error;
mod event_pages;
mod form;
mod session;
mod views;
mod webhook_pages;

use crate::AppState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub(crate) use error::PortalError;
pub(crate) use session::Session;

/// The portal's routes, with their security headers.
pub(crate) fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/portal", get(|| async { axum::response::Redirect::permanent("/portal/") }))
        .route("/portal/", get(webhook_pages::list))
        .route("/portal/login", get(session::login))
        .route("/portal/logout", post(session::logout))
        .route("/portal/webhooks/new", get(webhook_pages::new_form))
        .route("/portal/webhooks", post(webhook_pages::create))
        .route("/portal/webhooks/{id}", get(webhook_pages::detail).post(webhook_pages::update))
        .route("/portal/webhooks/{id}/edit", get(webhook_pages::edit_form))
        .route("/portal/webhooks/{id}/enabled", post(webhook_pages::set_enabled))
        .route("/portal/webhooks/{id}/test", post(actions::test_send))
        .route("/portal/webhooks/{id}/rotate", post(actions::rotate))
        .route("/portal/webhooks/{id}/recover", get(actions::recover_form).post(actions::recover))
        .route("/portal/deliveries/{id}", get(event_pages::delivery))
        .route("/portal/deliveries/{id}/retry", post(actions::retry))
        .route("/portal/deliveries/{id}/skip", post(actions::skip))
        .route("/portal/events", get(event_pages::list))
        .route("/portal/events/{id}", get(event_pages::event))
        .route("/portal/assets/portal.css", get(css))
        .route("/portal/assets/portal.js", get(js))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::from_fn_with_state(
            SecurityHeaders::new(&state.config.portal.frame_ancestors),
            security_headers,
        ))
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("../../assets/portal.css"))
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("../../assets/portal.js"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

/// The Content-Security-Policy of every portal response.
pub(crate) fn content_security_policy(frame_ancestors: &[String]) -> String {
    let ancestors = if frame_ancestors.is_empty() { "'none'".to_owned() } else { frame_ancestors.join(" ") };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
         form-action 'self'; base-uri 'none'; frame-ancestors {ancestors}"
    )
}

/// The security headers of every portal response, built once.
#[derive(Clone)]
struct SecurityHeaders {
    csp: HeaderValue,
    /// `X-Frame-Options: DENY` too (no one may embed the portal).
    deny_frames: bool,
}

impl SecurityHeaders {
    fn new(frame_ancestors: &[String]) -> Self {
        // The settings admit only origin characters; should a value still not fit in a
        // header, nothing may embed the portal rather than the policy going missing.
        match HeaderValue::from_str(&content_security_policy(frame_ancestors)) {
            Ok(csp) => Self { csp, deny_frames: frame_ancestors.is_empty() },
            Err(_) => Self {
                csp: HeaderValue::from_str(&content_security_policy(&[])).expect("a valid header"),
                deny_frames: true,
            },
        }
    }
}

async fn security_headers(State(sh): State<SecurityHeaders>, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, sh.csp.clone());
    if sh.deny_frames {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Renders a template into an HTML response (a template that fails to render is a bug:
/// answered as an error page, never a panic).
pub(crate) fn html<T: askama::Template>(status: axum::http::StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(body) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "portal template failed to render");
            (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}
