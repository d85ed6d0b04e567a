//! Portal sessions: a one-time link handed out with an API key (or by an operator), opened
//! once for a session cookie scoped to one account.

use crate::{AppError, AppResult, Herald};
use herald_domain::{AccountId, PortalToken, PortalTokenKind};
use herald_store::{NewPortalLink, PortalSession, Store};
use std::time::Duration;
use time::OffsetDateTime;

/// How long a link lives when the caller does not say.
pub const DEFAULT_PORTAL_LINK_TTL: Duration = Duration::from_secs(3600);
/// The longest a link (and the session it becomes) may live.
pub const MAX_PORTAL_LINK_TTL: Duration = Duration::from_secs(86_400);

/// A link's token, in clear once, and when it (and its session) ends.
#[derive(Debug)]
pub struct PortalLink {
    pub token: PortalToken,
    pub expires_at: OffsetDateTime,
}

/// A session opened from a link: the cookie to set (in clear once) and what it allows.
#[derive(Debug)]
pub struct OpenedSession {
    pub cookie: PortalToken,
    pub session: PortalSession,
}

impl Herald {
    /// Makes a one-time link into the portal of `account` (see [`new_portal_link`]).
    pub async fn create_portal_link(
        &self,
        account: &AccountId,
        expires_in_seconds: Option<u64>,
        read_only: bool,
    ) -> AppResult<PortalLink> {
        new_portal_link(self.store.as_ref(), self.clock.now(), account, expires_in_seconds, read_only).await
    }

    /// Exchanges a link's token for a session; `None` when the token is malformed, unknown,
    /// already used or expired (all look alike to the caller).
    pub async fn open_portal_link(&self, token: &str) -> AppResult<Option<OpenedSession>> {
        let Some(token) = PortalToken::parse(PortalTokenKind::Link, token) else { return Ok(None) };
        let cookie = PortalToken::generate(PortalTokenKind::Session);
        let session = self.store.redeem_portal_link(&token.hash(), &cookie.hash(), self.clock.now()).await?;
        Ok(session.map(|session| OpenedSession { cookie, session }))
    }

    /// Ends the session of this cookie now (sign-out).
    pub async fn end_portal_session(&self, cookie: &PortalToken) -> AppResult<()> {
        Ok(self.store.end_portal_session(&cookie.hash(), self.clock.now()).await?)
    }

    /// The live session a cookie opens, if any.
    pub async fn portal_session(&self, cookie: &PortalToken) -> AppResult<Option<PortalSession>> {
        Ok(self.store.portal_session(&cookie.hash(), self.clock.now()).await?)
    }
}

/// Makes a one-time link into the portal of `account`, valid `expires_in_seconds`
/// (1 ..= 86400, default 3600); a `read_only` session sees everything and changes nothing.
/// (A free function: `herald portal` makes links with a store and no running server.)
pub async fn new_portal_link(
    store: &dyn Store,
    now: OffsetDateTime,
    account: &AccountId,
    expires_in_seconds: Option<u64>,
    read_only: bool,
) -> AppResult<PortalLink> {
    let ttl = match expires_in_seconds {
        None => DEFAULT_PORTAL_LINK_TTL,
        Some(s) if (1..=MAX_PORTAL_LINK_TTL.as_secs()).contains(&s) => Duration::from_secs(s),
        Some(_) => return Err(AppError::field("expires_in_seconds", "must be between 1 and 86400 (24 h)")),
    };
    let token = PortalToken::generate(PortalTokenKind::Link);
    let expires_at = now + ttl;
    let link = NewPortalLink { token_hash: token.hash(), account: account.clone(), read_only, expires_at, now };
    store.create_portal_link(link).await?;
    Ok(PortalLink { token, expires_at })
}
