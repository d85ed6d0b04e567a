//! Data integrity under hostile input and concurrency: whatever a receiver answers is
//! stored, a refused value never looks like an outage, events outlive their deliveries,
//! concurrent read-modify-writes lose nothing, and recovery works in bounded batches.

use super::{LEASE, account, outcome, publish, recovery, rotation, t0, webhook};
use crate::{EventFilter, IdempotentAnswer, Page, Rotated, Store, StoreError};
use herald_domain::{DeliveryStatus, SigningSecret, Verdict};
use std::time::Duration;

const DAY: Duration = Duration::from_secs(86_400);

/// A receiver's answer with NUL bytes, replacement characters and multi-byte text is stored
/// (as storable text) and read back; one such row in a batch does not stop the others.
pub async fn any_receiver_text_is_stored_and_read_back(store: &dyn Store) {
    let acc = account(store, "a").await;
    webhook(store, &acc, 10).await;
    publish(store, &acc, t0()).await;
    publish(store, &acc, t0()).await;
    let claimed = store.claim_due(t0(), LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let mut hostile = outcome(&claimed[0], Verdict::Delivered, t0());
    hostile.result.response_body = Some("abc\0def \u{FFFD} é 日本".into());
    hostile.result.error = Some("tls: certificate for \0é".into());
    let plain = outcome(&claimed[1], Verdict::Delivered, t0());
    let applied = store.record_outcomes(&[hostile, plain], t0()).await.unwrap();
    assert_eq!(applied, vec![true, true]);
    let (d, attempts) = store.get_delivery(&acc, &claimed[0].delivery_id).await.unwrap().unwrap();
    assert_eq!(d.status, DeliveryStatus::Delivered);
    let body = attempts[0].response_body.clone().unwrap();
    assert!(body.starts_with("abc") && body.contains("def") && body.ends_with("é 日本"), "{body:?}");
    assert!(!body.contains('\0'));
    assert!(!attempts[0].error.clone().unwrap().contains('\0'));
    let (d, _) = store.get_delivery(&acc, &claimed[1].delivery_id).await.unwrap().unwrap();
    assert_eq!(d.status, DeliveryStatus::Delivered);
}

/// A value the database cannot hold is `Invalid` (a client error) or stored, never reported
/// as `Unavailable` (SQLite holds NUL; PostgreSQL refuses it).
pub async fn a_refused_value_is_never_reported_as_unavailable(store: &dyn Store) {
    let acc = account(store, "a").await;
    let filter = EventFilter { event_type: Some("a\0b".into()), ..Default::default() };
    match store.list_events(&acc, filter, Page { after: None, limit: 10 }).await {
        Ok(rows) => assert!(rows.is_empty()),
        Err(StoreError::Invalid(_)) => {}
        Err(e) => panic!("expected Ok or Invalid, got {e:?}"),
    }
    match store.custom_event_type_exists(&acc, "x\0y").await {
        Ok(found) => assert!(!found),
        Err(StoreError::Invalid(_)) => {}
        Err(e) => panic!("expected Ok or Invalid, got {e:?}"),
    }
}

/// A retried or recovered delivery may live past its event's own expiry; the janitor keeps
/// the event while any delivery references it, so the claim always has the body.
pub async fn an_event_outlives_every_delivery_that_references_it(store: &dyn Store) {
    let acc = account(store, "a").await;
    let wh = webhook(store, &acc, 10).await;
    publish(store, &acc, t0()).await;
    let c = store.claim_due(t0(), LEASE, 10).await.unwrap().remove(0);
    store.record_outcomes(&[outcome(&c, Verdict::Failed { gone: false }, t0())], t0()).await.unwrap();
    // A manual retry just before the 30-day expiry extends the delivery by a day.
    let late = t0() + DAY * 30 - Duration::from_secs(3600);
    store.retry_delivery(&acc, &c.delivery_id, late).await.unwrap().unwrap();
    // A recovery on day 29 makes a new delivery that lives 30 days from then.
    let day29 = t0() + DAY * 29;
    let window = recovery(&acc, &wh, t0(), t0() + Duration::from_secs(1), false);
    let rules = crate::FanoutRules::default();
    assert_eq!(crate::recover(store, crate::Recovery { now: day29, ..window }, &rules).await.unwrap(), Some(1));
    let after_expiry = t0() + DAY * 30 + Duration::from_secs(3600);
    store.delete_expired(after_expiry, 5000).await.unwrap();
    let due = store.claim_due(after_expiry, LEASE, 10).await.unwrap();
    assert_eq!(due.len(), 2, "the retried and the recovered delivery");
    for d in &due {
        assert!(d.body.as_ref().is_some_and(|b| !b.is_empty()), "the event is still there: {:?}", d.delivery_id);
    }
    // Once no delivery references it, the event goes too.
    let much_later = t0() + DAY * 60;
    store.delete_expired(much_later, 5000).await.unwrap();
    let all = store.list_events(&acc, EventFilter::default(), Page { after: None, limit: 10 }).await.unwrap();
    assert!(all.is_empty(), "expired and unreferenced: deleted");
}

/// Concurrent rotations: every secret handed out is stored as current or previous.
pub async fn concurrent_rotations_keep_every_secret(store: &dyn Store) {
    let acc = account(store, "a").await;
    let wh = webhook(store, &acc, 10).await;
    let secrets: Vec<SigningSecret> = (0..4).map(|_| SigningSecret::generate()).collect();
    let results =
        futures_util::future::join_all(secrets.iter().map(|s| store.rotate_secret(rotation(&acc, &wh, s, 3600)))).await;
    for r in results {
        assert_eq!(r.unwrap(), Rotated::Applied);
    }
    publish(store, &acc, t0()).await;
    let c = store.claim_due(t0(), LEASE, 1).await.unwrap().remove(0);
    let active: Vec<&SigningSecret> = c.secrets.as_ref().unwrap().active(t0()).collect();
    assert_eq!(active.len(), 5, "the original and all four rotated secrets sign");
    for s in &secrets {
        assert!(active.contains(&s), "a secret given to a caller was lost");
    }
}

/// Concurrent rotations under one idempotency key rotate once; the others get its answer.
pub async fn concurrent_rotations_with_one_idempotency_key_rotate_once(store: &dyn Store) {
    let acc = account(store, "a").await;
    let wh = webhook(store, &acc, 10).await;
    let secrets: Vec<SigningSecret> = (0..4).map(|_| SigningSecret::generate()).collect();
    let results = futures_util::future::join_all(secrets.iter().map(|s| {
        let mut r = rotation(&acc, &wh, s, 3600);
        r.idempotency = Some(IdempotentAnswer {
            scope: format!("rotate:{wh}"),
            key: "k-1".into(),
            since: t0() - DAY,
            response: s.expose().to_owned(),
        });
        store.rotate_secret(r)
    }))
    .await;
    let results: Vec<Rotated> = results.into_iter().map(Result::unwrap).collect();
    let applied: Vec<usize> = (0..4).filter(|i| results[*i] == Rotated::Applied).collect();
    assert_eq!(applied.len(), 1, "{results:?}");
    let winner = &secrets[applied[0]];
    for r in &results {
        if let Rotated::Replayed(answer) = r {
            assert_eq!(answer, winner.expose(), "replays carry the first rotation's answer");
        }
    }
    publish(store, &acc, t0()).await;
    let c = store.claim_due(t0(), LEASE, 1).await.unwrap().remove(0);
    assert_eq!(&c.secrets.as_ref().unwrap().current, winner);
    assert_eq!(c.secrets.as_ref().unwrap().active(t0()).count(), 2, "rotated once: the winner and the original");
}

/// Pruning expired secrets at the same time as rotations never drops a live secret.
pub async fn pruning_never_undoes_a_concurrent_rotation(store: &dyn Store) {
    let acc = account(store, "a").await;
    let wh = webhook(store, &acc, 10).await;
    store.rotate_secret(rotation(&acc, &wh, &SigningSecret::generate(), 60)).await.unwrap();
    let later = t0() + Duration::from_secs(120);
    let secrets: Vec<SigningSecret> = (0..3).map(|_| SigningSecret::generate()).collect();
    let rotations = futures_util::future::join_all(secrets.iter().map(|s| {
        let mut r = rotation(&acc, &wh, s, 3600);
        r.now = later;
        store.rotate_secret(r)
    }));
    let prunes = futures_util::future::join_all((0..3).map(|_| store.prune_secrets(later)));
    let (rotated, pruned) = tokio::join!(rotations, prunes);
    rotated.into_iter().for_each(|r| assert_eq!(r.unwrap(), Rotated::Applied));
    pruned.into_iter().for_each(|r| assert!(r.is_ok()));
    publish(store, &acc, later).await;
    let c = store.claim_due(later, LEASE, 1).await.unwrap().remove(0);
    let active: Vec<&SigningSecret> = c.secrets.as_ref().unwrap().active(later).collect();
    for s in &secrets {
        assert!(active.contains(&s), "a rotated secret was lost to a concurrent prune");
    }
}

/// Recovery reads and inserts in bounded batches; ties in `created_at` across batch
/// boundaries lose or repeat nothing.
pub async fn recovery_works_in_batches_across_a_large_window(store: &dyn Store) {
    let acc = account(store, "a").await;
    let wh = webhook(store, &acc, 10).await;
    let n = crate::RECOVER_BATCH as usize * 2 + 300;
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        // Many events share each instant, so batch boundaries fall inside ties.
        futures_util::future::join_all(
            chunk.iter().map(|i| publish(store, &acc, t0() + Duration::from_millis((*i / 700) as u64))),
        )
        .await;
    }
    let until = t0() + Duration::from_secs(10);
    let rules = crate::FanoutRules::default();
    let dry = crate::recover(store, recovery(&acc, &wh, t0(), until, true), &rules).await.unwrap();
    assert_eq!(dry, Some(n as u64));
    let done = crate::recover(store, recovery(&acc, &wh, t0(), until, false), &rules).await.unwrap();
    assert_eq!(done, Some(n as u64));
    let query = crate::DeliveryQuery {
        account: acc,
        webhook: wh,
        status: None,
        page: Page { after: None, limit: 10 * n as u32 },
    };
    let all = store.list_deliveries(query).await.unwrap();
    assert_eq!(all.len(), 2 * n, "the originals and one recovered delivery each");
    let mut per_event = std::collections::HashMap::<String, usize>::new();
    for d in &all {
        *per_event.entry(d.event_id.to_string()).or_default() += 1;
    }
    assert_eq!(per_event.len(), n);
    assert!(per_event.values().all(|c| *c == 2), "every event recovered exactly once");
}

/// Two outcomes of one delivery in one batch (its lease was taken over while the first
/// attempt ran): only the one holding the current lease applies, and one attempt row is kept.
pub async fn two_outcomes_of_one_delivery_in_a_batch_apply_once(store: &dyn Store) {
    let acc = account(store, "a").await;
    webhook(store, &acc, 10).await;
    publish(store, &acc, t0()).await;
    let old = store.claim_due(t0(), LEASE, 10).await.unwrap().remove(0);
    let later = t0() + LEASE;
    let new = store.claim_due(later, LEASE, 10).await.unwrap().remove(0);
    let batch = [outcome(&old, Verdict::Delivered, later), outcome(&new, Verdict::Delivered, later)];
    assert_eq!(store.record_outcomes(&batch, later).await.unwrap(), vec![false, true]);
    let (d, attempts) = store.get_delivery(&acc, &new.delivery_id).await.unwrap().unwrap();
    assert_eq!(d.status, DeliveryStatus::Delivered);
    assert_eq!(attempts.len(), 1);
}
