//! Portal sessions in HTTP: the link that opens one, the cookie that carries it, the CSRF
//! check of every form, and the plain "link expired" page for anything else.

use super::form::FormFields;
use super::{PortalError, html};
use crate::AppState;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use herald_domain::{AccountId, PortalToken, PortalTokenKind};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

pub(crate) const COOKIE: &str = "herald_portal";

/// An open portal session: whose, whether it may change anything, its CSRF token.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub account: AccountId,
    pub read_only: bool,
    pub csrf: String,
    pub expires_at: OffsetDateTime,
    /// The cookie (to end the session at sign-out).
    cookie: PortalToken,
}

impl Session {
    /// Refuses a change: read-only sessions change nothing, and every form must carry this
    /// session's CSRF token.
    pub fn check_change(&self, csrf: Option<&str>) -> Result<(), PortalError> {
        self.check_csrf(csrf)?;
        if self.read_only {
            return Err(PortalError::ReadOnly);
        }
        Ok(())
    }

    /// Refuses a form without this session's CSRF token (also for forms that change
    /// nothing, such as a recovery's dry run: they cost work).
    pub fn check_csrf(&self, csrf: Option<&str>) -> Result<(), PortalError> {
        let given = csrf.unwrap_or_default().as_bytes();
        if given.is_empty() || !bool::from(given.ct_eq(self.csrf.as_bytes())) {
            return Err(PortalError::Csrf);
        }
        Ok(())
    }
}

/// The portal cookie's value. Two different ones (a sibling site can set a cookie for a
/// narrower path of this host) are refused rather than guessed between.
fn cookie_value(headers: &HeaderMap) -> Option<String> {
    let mut values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .filter(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v);
    let first = values.next()?;
    values.all(|v| v == first).then(|| first.to_owned())
}

/// The attributes of the portal cookie (`Secure` when users reach Herald over https).
fn cookie_attributes(s: &AppState, max_age: i64) -> String {
    let secure = if s.config.portal.public_url.starts_with("https://") { "; Secure" } else { "" };
    format!("Path=/portal; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

impl FromRequestParts<AppState> for Session {
    type Rejection = PortalError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        let token = cookie_value(&parts.headers).and_then(|v| PortalToken::parse(PortalTokenKind::Session, &v));
        let Some(token) = token else {
            // Straight after the login redirect a browser that came from another site does
            // not send a SameSite=Strict cookie; one more navigation from this origin does.
            if parts.uri.query().is_some_and(|q| q.split('&').any(|kv| kv == "from=login")) {
                return Err(PortalError::Continue);
            }
            return Err(PortalError::Expired);
        };
        match s.app.portal_session(&token).await? {
            Some(p) => Ok(Session {
                account: p.account,
                read_only: p.read_only,
                csrf: token.csrf(),
                expires_at: p.expires_at,
                cookie: token,
            }),
            None => Err(PortalError::Expired),
        }
    }
}

/// `GET /portal/login?token=…`: exchanges the one-time token for a session cookie and
/// redirects to the portal without the token.
pub(crate) async fn login(State(s): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, PortalError> {
    let token = url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let Some(opened) = s.app.open_portal_link(&token).await? else {
        return Err(PortalError::Expired);
    };
    let max_age = (opened.session.expires_at - s.app.clock.now()).whole_seconds().max(0);
    let cookie = format!("{COOKIE}={}; {}", opened.cookie.expose(), cookie_attributes(&s, max_age));
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/portal/?from=login")).into_response())
}

/// `POST /portal/logout`: ends the session (the cookie opens nothing anymore, wherever it
/// was copied to) and forgets the cookie in this browser.
pub(crate) async fn logout(
    State(s): State<AppState>,
    session: Session,
    f: FormFields,
) -> Result<Response, PortalError> {
    session.check_csrf(f.csrf())?;
    s.app.end_portal_session(&session.cookie).await?;
    let cookie = format!("{COOKIE}=; {}", cookie_attributes(&s, 0));
    let page = super::views::MessagePage::plain("Signed out", "You have signed out. Ask for a new link to come back.");
    Ok(([(header::SET_COOKIE, cookie)], html(StatusCode::OK, &page)).into_response())
}
