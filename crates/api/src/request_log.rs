//! One structured log line per HTTP request (method, route template, status, duration,
//! request id) and `X-Request-Id`: a caller's id of visible ASCII (≤ 128) is kept,
//! otherwise one is made; either way the response carries it. Never the query string, a
//! header value other than the id, or a body.

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

pub(crate) const REQUEST_ID: &str = "x-request-id";

/// The caller's request id when it is reasonable to echo and log.
fn given_id(v: &HeaderValue) -> Option<HeaderValue> {
    let b = v.as_bytes();
    (!b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())).then(|| v.clone())
}

fn new_id() -> HeaderValue {
    HeaderValue::from_str(&hex::encode(herald_domain::random_bytes::<16>())).expect("hex is a valid header")
}

pub(crate) async fn request_log(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req.headers().get(REQUEST_ID).and_then(given_id).unwrap_or_else(new_id);
    req.headers_mut().insert(REQUEST_ID, id.clone());
    // Any other method is `OTHER`: a label (and a log field) never takes what a caller invents.
    let method = standard_method(req.method());
    // The route template (`/api/v1/webhooks/{id}`), never the concrete path with its ids or query.
    let route = req.extensions().get::<MatchedPath>().map_or("(no route)", MatchedPath::as_str).to_owned();
    let mut res = next.run(req).await;
    res.headers_mut().insert(REQUEST_ID, id.clone());
    let elapsed = started.elapsed().as_secs_f64();
    // Route templates and status codes are few: bounded series (publish latency is
    // `route="/api/v1/events"`).
    metrics::histogram!(
        "herald_http_request_duration_seconds",
        "method" => method,
        "route" => route.clone(),
        "status" => res.status().as_str().to_owned()
    )
    .record(elapsed);
    tracing::info!(
        target: "herald::http",
        method = %method,
        route = %route,
        status = res.status().as_u16(),
        duration_ms = elapsed * 1000.0,
        request_id = %String::from_utf8_lossy(id.as_bytes()),
        "request"
    );
    res
}

fn standard_method(m: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
        Method::CONNECT,
    ];
    KNOWN.iter().find(|k| *k == m).map_or("OTHER", Method::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reasonable_ids_are_kept() {
        assert!(given_id(&HeaderValue::from_static("abc-123_X")).is_some());
        assert!(given_id(&HeaderValue::from_static("")).is_none());
        assert!(given_id(&HeaderValue::from_static("has space")).is_none());
        assert!(given_id(&HeaderValue::from_str(&"a".repeat(129)).unwrap()).is_none());
        assert_eq!(new_id().len(), 32);
        assert_ne!(new_id(), new_id());
    }

    #[test]
    fn invented_methods_are_other() {
        assert_eq!(standard_method(&Method::PATCH), "PATCH");
        assert_eq!(standard_method(&Method::from_bytes(b"BREW").unwrap()), "OTHER");
    }
}
