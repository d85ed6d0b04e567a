//! What a portal request answers instead of its page: plain pages in words, never another
//! account's data, never a stack trace.

use super::html;
use super::views::MessagePage;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_app::{AppError, FieldError};

#[derive(Debug)]
pub(crate) enum PortalError {
    /// No session: a link or cookie that is unknown, used, forged or expired.
    Expired,
    /// Straight after the login redirect without the cookie: one more same-origin step.
    Continue,
    /// A change without this session's CSRF token.
    Csrf,
    /// A change in a read-only session.
    ReadOnly,
    /// A form that does not parse.
    BadForm(String),
    App(AppError),
}

impl From<AppError> for PortalError {
    fn from(e: AppError) -> Self {
        Self::App(e)
    }
}

pub(crate) fn field_list(errs: &[FieldError]) -> String {
    errs.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            Self::Expired => (
                StatusCode::FORBIDDEN,
                "Link expired",
                "This link has expired or was already used. Ask for a new link to the portal.".to_owned(),
            ),
            Self::Continue => return html(StatusCode::OK, &MessagePage::continue_page()),
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form is not from your current session. Reload the page and try again.".to_owned(),
            ),
            Self::ReadOnly => (
                StatusCode::FORBIDDEN,
                "Read-only session",
                "This session can look but not change anything.".to_owned(),
            ),
            Self::BadForm(m) => (StatusCode::BAD_REQUEST, "Invalid form", m),
            Self::App(e) => match e {
                AppError::NotFound(what) => (StatusCode::NOT_FOUND, "Not found", format!("No such {what}.")),
                AppError::Invalid(errs) => (StatusCode::BAD_REQUEST, "Invalid input", field_list(&errs)),
                AppError::Conflict(c) => (StatusCode::CONFLICT, "Not now", c.to_string()),
                AppError::RateLimited(wait) => {
                    let secs = wait.as_secs().max(1);
                    let page = MessagePage::plain("Too many requests", &format!("Try again in {secs} s."));
                    let mut res = html(StatusCode::TOO_MANY_REQUESTS, &page);
                    res.headers_mut().insert(header::RETRY_AFTER, secs.into());
                    return res;
                }
                AppError::Unavailable(e) => {
                    tracing::warn!(error = %herald_store::error_chain(&e), "portal: store unavailable");
                    (StatusCode::SERVICE_UNAVAILABLE, "Unavailable", "Please try again in a moment.".to_owned())
                }
                AppError::Internal(e) => {
                    tracing::error!(error = %herald_store::error_chain(&e), "portal: internal error");
                    (StatusCode::INTERNAL_SERVER_ERROR, "Error", "Something went wrong on our side.".to_owned())
                }
            },
        };
        html(status, &MessagePage::plain(title, &message))
    }
}
