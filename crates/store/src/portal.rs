//! Consumer portal sessions: one-time links exchanged for sessions (hashes only).

use crate::StoreResult;
use async_trait::async_trait;
use herald_domain::AccountId;
use time::OffsetDateTime;

/// A one-time portal link to store. Only hashes of the link's token are kept.
#[derive(Clone, Debug)]
pub struct NewPortalLink {
    /// SHA-256 hex of the link's token.
    pub token_hash: String,
    pub account: AccountId,
    pub read_only: bool,
    /// The link and the session it becomes end together.
    pub expires_at: OffsetDateTime,
    pub now: OffsetDateTime,
}

/// A portal session: whose it is, whether it may change anything, until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortalSession {
    pub account: AccountId,
    pub read_only: bool,
    pub expires_at: OffsetDateTime,
}

/// Portal links and sessions (stored as hashes only).
#[async_trait]
pub trait PortalSessions {
    async fn create_portal_link(&self, link: NewPortalLink) -> StoreResult<()>;
    /// Exchanges an unused, unexpired link for a session whose cookie hashes to
    /// `session_hash`: marks the link used and stores the hash in one atomic step, so of two
    /// concurrent redemptions one wins. `None` for a link unknown, used or expired.
    async fn redeem_portal_link(
        &self,
        token_hash: &str,
        session_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<PortalSession>>;
    /// The unexpired session whose cookie hashes to `session_hash`.
    async fn portal_session(&self, session_hash: &str, now: OffsetDateTime) -> StoreResult<Option<PortalSession>>;
    /// Ends the session now (sign-out): its cookie opens nothing afterwards, wherever it was
    /// copied to.
    async fn end_portal_session(&self, session_hash: &str, now: OffsetDateTime) -> StoreResult<()>;
}
