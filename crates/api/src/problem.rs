//! RFC 9457 problem details: every error leaves the API as `application/problem+json`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_store::StoreError;
use serde::Serialize;

/// One invalid field.
#[derive(Debug, Serialize, Clone, utoipa::ToSchema)]
pub struct FieldError {
    /// The field or query parameter: its path for a nested one (`filters.labels`,
    /// `events[0]`), `body` for the body as a whole.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An API error; mapped to HTTP once, here.
#[derive(Debug)]
pub enum ApiError {
    Unauthorized,
    NotFound(&'static str),
    Validation(Vec<FieldError>),
    BadRequest(String),
    Conflict(String),
    PayloadTooLarge(String),
    Unsupported(String),
    MethodNotAllowed,
    Unavailable,
    /// Rate limited: retry after this long.
    TooManyRequests(std::time::Duration),
    Internal,
}

impl ApiError {
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError { field: field.into(), message: message.into() }])
    }
}

impl From<herald_app::AppError> for ApiError {
    fn from(e: herald_app::AppError) -> Self {
        use herald_app::AppError;
        match e {
            AppError::NotFound(what) => ApiError::NotFound(what),
            AppError::Invalid(errs) => ApiError::Validation(
                errs.into_iter().map(|f| FieldError { field: f.field, message: f.message }).collect(),
            ),
            AppError::Conflict(c) => ApiError::Conflict(c.to_string()),
            AppError::RateLimited(wait) => ApiError::TooManyRequests(wait),
            AppError::Unavailable(e) => {
                tracing::error!(error = %herald_store::error_chain(&e), "store unavailable");
                ApiError::Unavailable
            }
            AppError::Internal(e) => {
                tracing::error!(error = %herald_store::error_chain(&e), "the store cannot serve this request");
                ApiError::Internal
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(source) => {
                tracing::error!(error = %herald_store::error_chain(source.as_ref()), "store unavailable");
                ApiError::Unavailable
            }
            StoreError::LimitReached => ApiError::Conflict("limit reached".into()),
            StoreError::RetryRefused(why) => ApiError::Conflict(why.to_string()),
            StoreError::SkipRefused(why) => ApiError::Conflict(why.to_string()),
            e @ (StoreError::Corrupt(_) | StoreError::Misconfigured(_)) => {
                tracing::error!(error = %e, "the store cannot serve this request");
                ApiError::Internal
            }
            StoreError::AlreadyExists => ApiError::Conflict("already exists".into()),
            StoreError::Invalid(source) => {
                tracing::warn!(error = %herald_store::error_chain(source.as_ref()), "the store refused a value that passed the API's checks");
                ApiError::BadRequest("a value in the request cannot be stored".into())
            }
        }
    }
}

/// RFC 9457 problem details: the body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Problem<'a> {
    /// Stable: one per kind of problem.
    #[serde(rename = "type")]
    #[schema(
        pattern = "^/problems/(validation|bad-request|unauthorized|not-found|method-not-allowed|conflict|too-large|unsupported-media-type|rate-limited|unavailable|internal)$"
    )]
    kind: String,
    /// The kind of problem, for a person.
    title: &'a str,
    /// The HTTP status of the answer.
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    /// This occurrence, for a person.
    detail: String,
    /// Only in a `/problems/validation`: every invalid field.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, min_items = 1)]
    errors: Option<Vec<FieldError>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            ApiError::TooManyRequests(wait) => Some(retry_after_secs(*wait)),
            ApiError::Unavailable => Some(1),
            _ => None,
        };
        let (status, slug, title, detail, errors) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "a valid API key is required: Authorization: Bearer hk_…".to_owned(),
                None,
            ),
            ApiError::NotFound(what) => {
                (StatusCode::NOT_FOUND, "not-found", "Not Found", format!("{what} not found"), None)
            }
            ApiError::Validation(errs) => {
                let detail = errs.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
                (StatusCode::BAD_REQUEST, "validation", "Invalid request", detail, Some(errs))
            }
            ApiError::BadRequest(d) => (StatusCode::BAD_REQUEST, "bad-request", "Bad Request", d, None),
            ApiError::Conflict(d) => (StatusCode::CONFLICT, "conflict", "Conflict", d, None),
            ApiError::PayloadTooLarge(d) => (StatusCode::PAYLOAD_TOO_LARGE, "too-large", "Payload Too Large", d, None),
            ApiError::Unsupported(d) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported Media Type", d, None)
            }
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service Unavailable",
                "the store is unavailable; nothing was changed, try again".to_owned(),
                None,
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method Not Allowed",
                "method not allowed on this route".to_owned(),
                None,
            ),
            ApiError::TooManyRequests(wait) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too Many Requests",
                format!("rate limited; try again in {} s", retry_after_secs(wait)),
                None,
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal Server Error",
                "an unexpected error occurred".to_owned(),
                None,
            ),
        };
        let body = Problem { kind: format!("/problems/{slug}"), title, status: status.as_u16(), detail, errors };
        let mut resp = (status, serde_json::to_vec(&body).unwrap_or_default()).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"herald\""));
        }
        if let Some(secs) = retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

pub async fn not_found_route() -> ApiError {
    ApiError::NotFound("route")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Whole seconds to wait, at least one.
fn retry_after_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    ApiError::Internal.into_response()
}
