//! `POST /api/v1/portal-sessions`: a one-time link into the consumer portal for the
//! caller's account.

use crate::AppState;
use crate::auth::Authed;
use crate::extract::{MaybeJson, NoQuery};
use crate::problem::ApiError;
use axum::extract::State;
use axum::http::StatusCode;
use herald_domain::rfc3339;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortalSessionIn {
    /// How long the link (and the session it opens) lives; default 3600.
    #[schema(minimum = 1, maximum = 86400)]
    pub expires_in_seconds: Option<u64>,
    /// A read-only session sees everything and changes nothing.
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PortalSessionOut {
    /// Open once: it sets the session cookie and redirects to the portal.
    #[schema(format = "uri")]
    pub url: String,
    #[schema(value_type = crate::schemas::Rfc3339)]
    pub expires_at: String,
}

/// The link a token opens, under the public URL the portal is reached at.
pub fn portal_link(public_url: &str, token: &str) -> String {
    format!("{}/portal/login?token={token}", public_url.trim_end_matches('/'))
}

#[utoipa::path(post, path = "/api/v1/portal-sessions", tag = "portal", security(("bearer" = [])),
    request_body(content = Option<PortalSessionIn>, description = "optional"),
    responses((status = 201, body = PortalSessionOut, description = "a one-time link into the portal")))]
pub async fn create_portal_session(
    State(s): State<AppState>,
    Authed(account): Authed,
    _: NoQuery,
    MaybeJson(body): MaybeJson<PortalSessionIn>,
) -> Result<(StatusCode, axum::Json<PortalSessionOut>), ApiError> {
    let input = body.unwrap_or_default();
    let link = s.app.create_portal_link(&account.id, input.expires_in_seconds, input.read_only).await?;
    let url = portal_link(&s.config.portal.public_url, link.token.expose());
    Ok((StatusCode::CREATED, axum::Json(PortalSessionOut { url, expires_at: rfc3339(link.expires_at) })))
}
