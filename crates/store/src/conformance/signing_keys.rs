//! Each account's Ed25519 signing keys: one current key, rotation with grace, and the key
//! rings claims carry for Ed25519 webhooks.

use super::*;
use crate::WebhookPatch;
use herald_domain::{SignatureScheme, SigningKeyPair};

/// A claim of `webhook`'s due delivery: its current kid and how many keys sign (`None`:
/// no ring).
async fn ring_of(store: &dyn Store, webhook: &WebhookId, at: OffsetDateTime) -> Option<(String, usize)> {
    let claimed = store.claim_due(at, LEASE, 100).await.unwrap();
    let c = claimed.iter().find(|c| &c.webhook_id == webhook).expect("the webhook's delivery is claimed");
    assert_eq!(c.signature, SignatureScheme::Ed25519);
    let ring = c.keys.as_ref()?;
    Some((ring.current_kid().to_owned(), ring.sign("msg", 1, b"{}").split(' ').count()))
}

pub async fn an_account_gets_one_current_key_and_rotation_keeps_the_old_in_grace(store: &dyn Store) {
    let acc = account(store, "keys").await;
    let other = account(store, "other").await;
    assert!(store.account_exists(&acc).await.unwrap());
    assert!(!store.account_exists(&AccountId::generate()).await.unwrap());
    assert!(store.signing_keys(&acc, t0()).await.unwrap().is_empty());
    let (first, second) = (SigningKeyPair::generate(), SigningKeyPair::generate());
    assert!(store.ensure_signing_key(&acc, &first, t0()).await.unwrap());
    assert!(!store.ensure_signing_key(&acc, &second, t0()).await.unwrap(), "the account has a key already");
    let keys = store.signing_keys(&acc, t0()).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!((keys[0].kid.as_str(), keys[0].expires_at), (first.kid().as_str(), None));
    assert_eq!(keys[0].public_key, first.public().to_whpk());
    assert!(store.signing_keys(&other, t0()).await.unwrap().is_empty(), "keys are per account");

    let later = t0() + Duration::from_secs(60);
    let grace_end = later + Duration::from_secs(3600);
    store.rotate_signing_key(&acc, &second, grace_end, 5, later).await.unwrap();
    let keys = store.signing_keys(&acc, later).await.unwrap();
    let kids: Vec<(&str, Option<OffsetDateTime>)> = keys.iter().map(|k| (k.kid.as_str(), k.expires_at)).collect();
    assert_eq!(kids, vec![(second.kid().as_str(), None), (first.kid().as_str(), Some(grace_end))], "newest first");

    // After the grace only the current key is left, and upkeep deletes the expired one.
    let after = grace_end + Duration::from_secs(1);
    let keys = store.signing_keys(&acc, after).await.unwrap();
    assert_eq!(keys.iter().map(|k| k.kid.clone()).collect::<Vec<_>>(), vec![second.kid()]);
    store.prune_secrets(after).await.unwrap();
    assert_eq!(store.signing_keys(&acc, t0()).await.unwrap().len(), 1, "the expired key is gone for good");

    // Rotating an account without a key gives it its first.
    let third = SigningKeyPair::generate();
    store.rotate_signing_key(&other, &third, later, 5, later).await.unwrap();
    let keys = store.signing_keys(&other, later).await.unwrap();
    assert_eq!(keys.iter().map(|k| (k.kid.clone(), k.expires_at)).collect::<Vec<_>>(), vec![(third.kid(), None)]);
}

pub async fn concurrent_rotations_leave_one_current_key_and_lose_none(store: &dyn Store) {
    let acc = account(store, "racing").await;
    store.ensure_signing_key(&acc, &SigningKeyPair::generate(), t0()).await.unwrap();
    let now = t0() + Duration::from_secs(1);
    let grace = now + Duration::from_secs(600);
    let keys: Vec<SigningKeyPair> = (0..6).map(|_| SigningKeyPair::generate()).collect();
    let rotations = keys.iter().map(|k| store.rotate_signing_key(&acc, k, grace, 10, now));
    for r in futures_util::future::join_all(rotations).await {
        r.unwrap();
    }
    let stored = store.signing_keys(&acc, now).await.unwrap();
    assert_eq!(stored.len(), 7, "every rotated key is kept: the first and six rotations");
    assert_eq!(stored.iter().filter(|k| k.expires_at.is_none()).count(), 1, "one current key");
    // At most `keep` keys in grace: those that sign longest.
    let last = SigningKeyPair::generate();
    let longer = now + Duration::from_secs(900);
    store.rotate_signing_key(&acc, &last, longer, 2, now).await.unwrap();
    let stored = store.signing_keys(&acc, now).await.unwrap();
    assert_eq!(stored.len(), 3, "the current key and two in grace");
    assert_eq!((stored[0].kid.as_str(), stored[0].expires_at), (last.kid().as_str(), None));
    assert_eq!(stored[1].expires_at.max(stored[2].expires_at), Some(longer), "the key it replaced signs longest");
    assert_eq!(stored[1].expires_at.min(stored[2].expires_at), Some(grace));
}

pub async fn concurrent_first_keys_make_one(store: &dyn Store) {
    let acc = account(store, "first").await;
    let keys: Vec<SigningKeyPair> = (0..6).map(|_| SigningKeyPair::generate()).collect();
    let made = futures_util::future::join_all(keys.iter().map(|k| store.ensure_signing_key(&acc, k, t0()))).await;
    let made: Vec<bool> = made.into_iter().map(Result::unwrap).collect();
    assert_eq!(made.iter().filter(|m| **m).count(), 1, "{made:?}");
    assert_eq!(store.signing_keys(&acc, t0()).await.unwrap().len(), 1);
    // A rotation racing a first key still ends with one current key.
    let (a, b) = (SigningKeyPair::generate(), SigningKeyPair::generate());
    let other = account(store, "first-race").await;
    let later = t0() + Duration::from_secs(60);
    let (ensured, rotated) = futures_util::join!(
        store.ensure_signing_key(&other, &a, t0()),
        store.rotate_signing_key(&other, &b, later, 5, t0())
    );
    ensured.unwrap();
    rotated.unwrap();
    let stored = store.signing_keys(&other, t0()).await.unwrap();
    assert_eq!(stored.iter().filter(|k| k.expires_at.is_none()).count(), 1, "{stored:?}");
}

pub async fn claims_of_ed25519_webhooks_carry_the_accounts_keys(store: &dyn Store) {
    let acc = account(store, "signer").await;
    let hmac = webhook(store, &acc, 5).await;
    let ed = webhook(store, &acc, 5).await;
    let patch = WebhookPatch { signature: Some(SignatureScheme::Ed25519), ..WebhookPatch::default() };
    let w = store.update_webhook(&acc, &ed, patch, t0()).await.unwrap().unwrap();
    assert_eq!(w.signature, SignatureScheme::Ed25519);
    assert_eq!(store.get_webhook(&acc, &ed).await.unwrap().unwrap().signature, SignatureScheme::Ed25519);
    assert_eq!(store.get_webhook(&acc, &hmac).await.unwrap().unwrap().signature, SignatureScheme::Hmac);

    // Without a key an Ed25519 delivery is claimed with no ring (the engine does not send it).
    publish(store, &acc, t0()).await;
    let claimed = store.claim_due(t0(), LEASE, 100).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let of = |id: &WebhookId| claimed.iter().find(|c| &c.webhook_id == id).unwrap();
    assert!(of(&ed).keys.is_none());
    assert_eq!((of(&hmac).signature, of(&hmac).keys.is_none()), (SignatureScheme::Hmac, true));
    assert!(of(&hmac).secrets.is_some());

    let (old, new) = (SigningKeyPair::generate(), SigningKeyPair::generate());
    store.ensure_signing_key(&acc, &old, t0()).await.unwrap();
    let at = t0() + Duration::from_secs(1);
    store.rotate_signing_key(&acc, &new, at + Duration::from_secs(3600), 5, at).await.unwrap();
    publish(store, &acc, at).await;
    let (current, signing) = ring_of(store, &ed, at).await.expect("a ring");
    assert_eq!(signing, 2, "both keys sign during the grace");
    assert_eq!(current, new.kid(), "the current key names the signature");

    // The signatures themselves: each key verifies its own entry.
    let later = at + Duration::from_secs(2);
    publish(store, &acc, later).await;
    let claimed = store.claim_due(later, LEASE, 100).await.unwrap();
    let c = claimed.iter().find(|c| c.webhook_id == ed).unwrap();
    let header = c.keys.as_ref().unwrap().sign("msg_1", 7, b"{}");
    assert!(new.public().verify_v1a(&header, "msg_1", "7", b"{}"));
    assert!(old.public().verify_v1a(&header, "msg_1", "7", b"{}"));

    // After the grace only the new key signs.
    let after = at + Duration::from_secs(3601);
    publish(store, &acc, after).await;
    let claimed = store.claim_due(after, LEASE, 100).await.unwrap();
    let c = claimed.iter().find(|c| c.webhook_id == ed).unwrap();
    let header = c.keys.as_ref().unwrap().sign("msg_1", 7, b"{}");
    assert_eq!(header.split(' ').count(), 1);
    assert!(new.public().verify_v1a(&header, "msg_1", "7", b"{}"));
    assert!(!old.public().verify_v1a(&header, "msg_1", "7", b"{}"));
}
