//! Consumer portal sessions: one-time links exchanged for sessions (hashes only).

use crate::rows::*;
use crate::{PgStore, unavailable};
use async_trait::async_trait;
use herald_domain::{AccountId, from_millis, to_millis};
use herald_store::*;
use sqlx::postgres::PgRow;
use time::OffsetDateTime;

#[async_trait]
impl PortalSessions for PgStore {
    async fn create_portal_link(&self, link: NewPortalLink) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO portal_sessions (link_hash, session_hash, account_id, read_only, created_at, expires_at, \
               redeemed_at) VALUES ($1, NULL, $2, $3, $4, $5, NULL)",
        )
        .bind(&link.token_hash)
        .bind(link.account.as_str())
        .bind(link.read_only)
        .bind(to_millis(link.now))
        .bind(to_millis(link.expires_at))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn redeem_portal_link(
        &self,
        token_hash: &str,
        session_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<PortalSession>> {
        let now_ms = to_millis(now);
        // One statement: of two redemptions, the second finds `redeemed_at` set.
        let row = sqlx::query(
            "UPDATE portal_sessions SET session_hash = $1, redeemed_at = $2 \
             WHERE link_hash = $3 AND redeemed_at IS NULL AND expires_at > $2 \
             RETURNING account_id, read_only, expires_at",
        )
        .bind(session_hash)
        .bind(now_ms)
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn portal_session(&self, session_hash: &str, now: OffsetDateTime) -> StoreResult<Option<PortalSession>> {
        let row = sqlx::query(
            "SELECT account_id, read_only, expires_at FROM portal_sessions WHERE session_hash = $1 AND expires_at > $2",
        )
        .bind(session_hash)
        .bind(to_millis(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn end_portal_session(&self, session_hash: &str, now: OffsetDateTime) -> StoreResult<()> {
        sqlx::query("UPDATE portal_sessions SET expires_at = $2 WHERE session_hash = $1 AND expires_at > $2")
            .bind(session_hash)
            .bind(to_millis(now))
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

fn session_from_row(r: &PgRow) -> StoreResult<PortalSession> {
    Ok(PortalSession {
        account: AccountId::from_trusted(get(r, 0)?),
        read_only: get(r, 1)?,
        expires_at: from_millis(get(r, 2)?),
    })
}
