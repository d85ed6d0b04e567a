//! The consumer portal: one-time links become sessions exactly once, end at sign-out and
//! expire with the janitor.

use super::{account, t0};
use crate::{NewPortalLink, PortalSession, Store};
use herald_domain::AccountId;
use std::time::Duration;
use time::OffsetDateTime;

fn link(token_hash: &str, account: &AccountId, read_only: bool, expires_at: OffsetDateTime) -> NewPortalLink {
    NewPortalLink { token_hash: token_hash.into(), account: account.clone(), read_only, expires_at, now: t0() }
}

fn session(account: &AccountId, read_only: bool, expires_at: OffsetDateTime) -> Option<PortalSession> {
    Some(PortalSession { account: account.clone(), read_only, expires_at })
}

/// A link is exchanged for a session once; the session resolves until it expires; links
/// redeemed late resolve nothing; the janitor deletes expired sessions and keeps the others.
pub async fn portal_links_are_redeemed_once_and_sessions_expire(store: &dyn Store) {
    let a = account(store, "a").await;
    let b = account(store, "b").await;
    let s = Duration::from_secs(1);
    let end = t0() + s * 3600;
    store.create_portal_link(link("link-a", &a, false, end)).await.unwrap();
    let got = store.redeem_portal_link("link-a", "sess-a", t0() + s).await.unwrap();
    assert_eq!(got, session(&a, false, end));
    assert_eq!(store.redeem_portal_link("link-a", "sess-a2", t0() + s * 2).await.unwrap(), None, "used once");
    assert_eq!(store.portal_session("sess-a2", t0() + s * 2).await.unwrap(), None, "the losing hash is no session");
    assert_eq!(store.portal_session("sess-a", t0() + s * 2).await.unwrap(), session(&a, false, end));
    let just_before = end - Duration::from_millis(1);
    assert_eq!(store.portal_session("sess-a", just_before).await.unwrap(), session(&a, false, end));
    assert_eq!(store.portal_session("sess-a", end).await.unwrap(), None, "over at its expiry");
    assert_eq!(store.portal_session("sess-a", end + s).await.unwrap(), None);
    assert_eq!(store.portal_session("no-such-session", t0()).await.unwrap(), None);
    assert_eq!(store.redeem_portal_link("no-such-link", "sess-x", t0()).await.unwrap(), None);

    // A link redeemed at or after its expiry makes no session.
    let short = t0() + s * 60;
    store.create_portal_link(link("link-late", &a, false, short)).await.unwrap();
    assert_eq!(store.redeem_portal_link("link-late", "sess-late", short).await.unwrap(), None);
    assert_eq!(store.redeem_portal_link("link-late", "sess-late", short + s).await.unwrap(), None);
    assert_eq!(store.portal_session("sess-late", t0()).await.unwrap(), None);

    // Read-only round-trips, and each account's session resolves to that account.
    let later = t0() + s * 7200;
    store.create_portal_link(link("link-b", &b, true, later)).await.unwrap();
    assert_eq!(store.redeem_portal_link("link-b", "sess-b", t0()).await.unwrap(), session(&b, true, later));
    assert_eq!(store.portal_session("sess-b", t0()).await.unwrap(), session(&b, true, later));
    assert_eq!(store.portal_session("sess-a", t0()).await.unwrap(), session(&a, false, end));

    // The janitor deletes expired links and sessions (in batches), and only those.
    for i in 0..3 {
        store.create_portal_link(link(&format!("unused-{i}"), &a, false, short)).await.unwrap();
    }
    let past = end + s;
    assert_eq!(store.delete_expired(past, 2).await.unwrap(), 5, "link-a, link-late and three unused links");
    assert_eq!(store.delete_expired(past, 2).await.unwrap(), 0);
    assert_eq!(store.portal_session("sess-a", t0()).await.unwrap(), None, "the row is gone");
    assert_eq!(store.redeem_portal_link("unused-0", "sess-u", t0()).await.unwrap(), None);
    assert_eq!(store.portal_session("sess-b", past).await.unwrap(), session(&b, true, later), "kept");

    // Signing out ends the session at once; ending it again, or an unknown one, is harmless.
    store.end_portal_session("sess-b", past).await.unwrap();
    assert_eq!(store.portal_session("sess-b", past).await.unwrap(), None, "ended");
    store.end_portal_session("sess-b", past + s).await.unwrap();
    store.end_portal_session("no-such-session", past).await.unwrap();
}

/// Of concurrent redemptions of one link, exactly one makes a session.
pub async fn concurrent_redemptions_of_one_link_make_one_session(store: &dyn Store) {
    let a = account(store, "a").await;
    let end = t0() + Duration::from_secs(3600);
    store.create_portal_link(link("link", &a, false, end)).await.unwrap();
    let hashes: Vec<String> = (0..8).map(|i| format!("sess-{i}")).collect();
    let results =
        futures_util::future::join_all(hashes.iter().map(|h| store.redeem_portal_link("link", h, t0()))).await;
    let results: Vec<Option<PortalSession>> = results.into_iter().map(|r| r.unwrap()).collect();
    let winners: Vec<&String> = hashes.iter().zip(&results).filter(|(_, r)| r.is_some()).map(|(h, _)| h).collect();
    assert_eq!(winners.len(), 1, "exactly one redemption wins: {results:?}");
    for h in &hashes {
        let want = if h == winners[0] { session(&a, false, end) } else { None };
        assert_eq!(store.portal_session(h, t0()).await.unwrap(), want, "{h}");
    }
}
