//! The behaviour every store must have, as functions any implementation's tests call
//! with a fresh, empty store. [`conformance_tests!`](crate::conformance_tests) generates one
//! test per case for a backend, so a case in its list runs on every backend: add each new
//! case function here (or in a submodule) AND its name to the macro's list.

mod control;
mod gone;
mod inbound;
mod integrity;
mod portal;
mod rules;
mod signing_keys;
mod stats;
pub use control::*;
pub use gone::*;
pub use inbound::*;
pub use integrity::*;
pub use portal::*;
pub use rules::*;
pub use signing_keys::*;
pub use stats::*;

use crate::{FanoutRules, NewEvent, NewWebhook, Outcome, Recovery, Rotated, Rotation, Store, WebhookPatch};
use herald_domain::{
    AccountId, AttemptOutcome, Envelope, EventId, Filters, RoutingAttributes, SigningSecret, Verdict, WebhookId,
};
use std::time::Duration;
use time::OffsetDateTime;

const LEASE: Duration = Duration::from_secs(300);

fn t0() -> OffsetDateTime {
    herald_domain::from_millis(1_700_000_000_000)
}

async fn account(store: &dyn Store, name: &str) -> AccountId {
    store.create_account(name, &format!("hash-{name}"), t0()).await.unwrap().id
}

async fn webhook(store: &dyn Store, account: &AccountId, max_in_flight: u32) -> WebhookId {
    let w = store
        .create_webhook(
            NewWebhook {
                signature: Default::default(),
                id: WebhookId::generate(),
                account_id: account.clone(),
                url: "http://127.0.0.1:9/".into(),
                description: String::new(),
                events: vec!["email.received".into()],
                filters: Filters::default(),
                enabled: true,
                max_in_flight,
                control: herald_domain::DeliveryControl::default(),
                secret: SigningSecret::generate(),
                created_at: t0(),
            },
            50,
        )
        .await
        .unwrap();
    w.id
}

async fn publish(store: &dyn Store, account: &AccountId, at: OffsetDateTime) -> EventId {
    let id = EventId::generate();
    let data = serde_json::value::RawValue::from_string("{}".into()).unwrap();
    let p = store
        .publish(
            NewEvent {
                id: id.clone(),
                account_id: account.clone(),
                event_type: "email.received".into(),
                envelope: Envelope::build(&id, "email.received", at, &data),
                routing: RoutingAttributes::default(),
                ordering_key: None,
                idempotency_key: None,
                created_at: at,
            },
            &FanoutRules::default(),
        )
        .await
        .unwrap();
    p.id
}

fn rotation(account: &AccountId, webhook: &WebhookId, secret: &SigningSecret, grace_secs: u64) -> Rotation {
    Rotation {
        account: account.clone(),
        webhook: webhook.clone(),
        new_secret: secret.clone(),
        grace_until: t0() + Duration::from_secs(grace_secs),
        keep: 5,
        now: t0(),
        idempotency: None,
    }
}

fn recovery(
    account: &AccountId,
    webhook: &WebhookId,
    since: OffsetDateTime,
    until: OffsetDateTime,
    dry_run: bool,
) -> Recovery {
    Recovery { account: account.clone(), webhook: webhook.clone(), since, until, dry_run, now: t0() }
}

fn outcome(c: &crate::Claimed, verdict: Verdict, at: OffsetDateTime) -> Outcome {
    let status = if verdict == Verdict::Delivered { 200 } else { 500 };
    answered(c, status, 2, at, &verdict)
}

/// An attempt with this answer (0: timed out), duration and start.
fn answered(c: &crate::Claimed, status_code: u16, duration_ms: u64, at: OffsetDateTime, verdict: &Verdict) -> Outcome {
    Outcome {
        blocks_lane: c.blocks_lane,
        delivery_id: c.delivery_id.clone(),
        webhook_id: c.webhook_id.clone(),
        lease_token: c.lease_token.clone(),
        attempt: c.attempt,
        result: AttemptOutcome {
            kind: if status_code == 0 {
                herald_domain::AttemptKind::Timeout
            } else {
                herald_domain::AttemptKind::Response
            },
            started_at: at,
            duration: Duration::from_millis(duration_ms),
            status_code,
            error: (status_code == 0).then(|| "timed out".into()),
            response_body: None,
            retry_after: None,
        },
        verdict: verdict.clone(),
    }
}

/// A claim hides a row for the lease; after it expires another claim takes it with a new token.
pub async fn claim_hides_rows_until_the_lease_expires(store: &dyn Store) {
    let acc = account(store, "a").await;
    webhook(store, &acc, 10).await;
    let ev = publish(store, &acc, t0()).await;
    let first = store.claim_due(t0(), LEASE, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].event_id, ev);
    assert_eq!(first[0].attempt, 1);
    assert!(first[0].body.as_ref().is_some_and(|b| !b.is_empty()), "the claim carries the envelope");
    assert!(store.claim_due(t0() + Duration::from_secs(299), LEASE, 10).await.unwrap().is_empty());
    let again = store.claim_due(t0() + LEASE, LEASE, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_ne!(again[0].lease_token, first[0].lease_token, "a fresh fencing token");
}

/// Outcomes are compare-and-set on (id, lease token, pending).
pub async fn outcomes_are_compare_and_set_on_the_lease(store: &dyn Store) {
    let acc = account(store, "a").await;
    webhook(store, &acc, 10).await;
    publish(store, &acc, t0()).await;
    let old = store.claim_due(t0(), LEASE, 10).await.unwrap().remove(0);
    let later = t0() + LEASE;
    let new = store.claim_due(later, LEASE, 10).await.unwrap().remove(0);
    let applied = store.record_outcomes(&[outcome(&old, Verdict::Delivered, later)], later).await.unwrap();
    assert_eq!(applied, vec![false], "a taken-over lease cannot write");
    let applied = store.record_outcomes(&[outcome(&new, Verdict::Delivered, later)], later).await.unwrap();
    assert_eq!(applied, vec![true]);
    let retry = outcome(&new, Verdict::RetryAt(later + LEASE), later);
    assert_eq!(store.record_outcomes(&[retry], later).await.unwrap(), vec![false], "delivered is final");
    let (d, attempts) = store.get_delivery(&acc, &new.delivery_id).await.unwrap().unwrap();
    assert_eq!(d.status, herald_domain::DeliveryStatus::Delivered);
    assert_eq!(attempts.len(), 1);
    assert!(store.claim_due(later + LEASE * 10, LEASE, 10).await.unwrap().is_empty());
}

/// Live leases count against a webhook's cap; recording an outcome frees a slot.
pub async fn claims_respect_the_per_webhook_cap(store: &dyn Store) {
    let acc = account(store, "a").await;
    webhook(store, &acc, 2).await;
    for _ in 0..5 {
        publish(store, &acc, t0()).await;
    }
    let got = store.claim_due(t0(), LEASE, 10).await.unwrap();
    assert_eq!(got.len(), 2);
    assert!(store.claim_due(t0(), LEASE, 10).await.unwrap().is_empty());
    store.record_outcomes(&[outcome(&got[0], Verdict::Delivered, t0())], t0()).await.unwrap();
    assert_eq!(store.claim_due(t0(), LEASE, 10).await.unwrap().len(), 1);
}

/// A caller's finished leases (attempts over, outcomes not recorded yet) free their slots for
/// that caller's claims — only while they are live with that token, never twice.
pub async fn finished_leases_do_not_count_against_the_cap(store: &dyn Store) {
    let acc = account(store, "a").await;
    webhook(store, &acc, 1).await;
    for _ in 0..4 {
        publish(store, &acc, t0()).await;
    }
    let first = store.claim_due(t0(), LEASE, 10).await.unwrap().remove(0);
    assert!(first.filled_webhook, "the claim took the webhook's one free slot");
    let wrong = [(first.delivery_id.clone(), "not-the-token".to_owned())];
    assert!(store.claim_due_with_finished(t0(), LEASE, 10, &wrong).await.unwrap().is_empty(), "another lease's token");
    let finished = [(first.delivery_id.clone(), first.lease_token.clone())];
    let second = store.claim_due_with_finished(t0(), LEASE, 10, &finished).await.unwrap();
    assert_eq!(second.len(), 1, "the finished request's slot is free");
    assert_ne!(second[0].delivery_id, first.delivery_id);
    // `second` is in flight: the finished `first` frees one slot, and that one is taken.
    assert!(store.claim_due_with_finished(t0(), LEASE, 10, &finished).await.unwrap().is_empty());
    // Once `first` is recorded its lease is gone: naming it again frees nothing more.
    store.record_outcomes(&[outcome(&first, Verdict::Delivered, t0())], t0()).await.unwrap();
    assert!(store.claim_due_with_finished(t0(), LEASE, 10, &finished).await.unwrap().is_empty());
    let both = [finished[0].clone(), (second[0].delivery_id.clone(), second[0].lease_token.clone())];
    assert_eq!(store.claim_due_with_finished(t0(), LEASE, 10, &both).await.unwrap().len(), 1);
    // An expired lease is no longer counted, so naming it frees nothing; a pair named twice
    // counts once.
    let later = t0() + LEASE + Duration::from_secs(1);
    let third = store.claim_due(later, LEASE, 10).await.unwrap();
    assert_eq!(third.len(), 1, "the two old leases expired: one slot, one row");
    let stale = [both[1].clone(), both[1].clone()];
    assert!(store.claim_due_with_finished(later, LEASE, 10, &stale).await.unwrap().is_empty());
    let pair = (third[0].delivery_id.clone(), third[0].lease_token.clone());
    let twice = [pair.clone(), pair.clone()];
    let fourth = store.claim_due_with_finished(later, LEASE, 10, &twice).await.unwrap();
    assert_eq!(fourth.len(), 1);
    // At most `max_in_flight` finished leases are discounted: a stalled recorder cannot let a
    // webhook run on (one row is still due here).
    let two = [pair, (fourth[0].delivery_id.clone(), fourth[0].lease_token.clone())];
    assert!(store.claim_due_with_finished(later, LEASE, 10, &two).await.unwrap().is_empty());
    // A claim below the free slots does not fill the webhook.
    let roomy = account(store, "b").await;
    webhook(store, &roomy, 5).await;
    publish(store, &roomy, t0()).await;
    let got = store.claim_due(t0(), LEASE, 10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(!got[0].filled_webhook, "one row taken of five free slots");
}

/// Disabled webhooks' rows stay pending and unclaimed; enabling makes them claimable.
pub async fn disabled_webhooks_are_skipped_until_enabled(store: &dyn Store) {
    let acc = account(store, "a").await;
    let wh = webhook(store, &acc, 10).await;
    publish(store, &acc, t0()).await;
    let off = WebhookPatch { enabled: Some(false), ..Default::default() };
    store.update_webhook(&acc, &wh, off, t0()).await.unwrap().unwrap();
    assert!(store.claim_due(t0(), LEASE, 10).await.unwrap().is_empty());
    let on = WebhookPatch { enabled: Some(true), ..Default::default() };
    store.update_webhook(&acc, &wh, on, t0()).await.unwrap().unwrap();
    let got = store.claim_due(t0(), LEASE, 10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attempt, 1, "no attempt was counted while disabled");
}

/// Expired rows are never claimed and the janitor removes them in bounded batches.
pub async fn expired_rows_are_ignored_and_deleted_in_batches(store: &dyn Store) {
    let acc = account(store, "a").await;
    webhook(store, &acc, 10).await;
    for _ in 0..7 {
        publish(store, &acc, t0()).await;
    }
    let later = t0() + Duration::from_secs(31 * 86_400);
    assert!(store.claim_due(later, LEASE, 10).await.unwrap().is_empty());
    assert_eq!(store.delete_expired(later, 3).await.unwrap(), 14);
    assert_eq!(store.delete_expired(later, 3).await.unwrap(), 0);
}

/// Account scoping: another account sees nothing.
pub async fn resources_are_scoped_by_account(store: &dyn Store) {
    let a = account(store, "a").await;
    let b = account(store, "b").await;
    let wh = webhook(store, &a, 1).await;
    assert!(store.get_webhook(&b, &wh).await.unwrap().is_none());
    assert!(store.update_webhook(&b, &wh, WebhookPatch::default(), t0()).await.unwrap().is_none());
    assert!(!store.delete_webhook(&b, &wh, t0()).await.unwrap());
    publish(store, &b, t0()).await;
    assert!(store.claim_due(t0(), LEASE, 10).await.unwrap().is_empty(), "b's event never reaches a's webhook");
}

/// Shutdown gives leases back: the row is due again at once, with no attempt counted.
pub async fn released_leases_are_due_again_without_an_attempt(store: &dyn Store) {
    let acc = account(store, "a").await;
    webhook(store, &acc, 10).await;
    publish(store, &acc, t0()).await;
    let c = store.claim_due(t0(), LEASE, 10).await.unwrap().remove(0);
    store.release_leases(&[(c.delivery_id.clone(), c.lease_token.clone())], t0()).await.unwrap();
    let again = store.claim_due(t0(), LEASE, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 1);
}

/// Rotation: every previous secret signs until its own expiry; at most `keep` are kept.
pub async fn rotation_keeps_previous_secrets_until_their_own_expiry(store: &dyn Store) {
    let acc = account(store, "a").await;
    let wh = webhook(store, &acc, 10).await;
    let first = store.claim_due(t0(), LEASE, 1).await.unwrap();
    assert!(first.is_empty());
    let s1 = SigningSecret::generate();
    let s2 = SigningSecret::generate();
    assert_eq!(store.rotate_secret(rotation(&acc, &wh, &s1, 3600)).await.unwrap(), Rotated::Applied);
    assert_eq!(store.rotate_secret(rotation(&acc, &wh, &s2, 7200)).await.unwrap(), Rotated::Applied);
    publish(store, &acc, t0()).await;
    let c = store.claim_due(t0(), LEASE, 1).await.unwrap().remove(0);
    assert_eq!(c.secrets.as_ref().unwrap().current, s2);
    assert_eq!(c.secrets.as_ref().unwrap().active(t0()).count(), 3, "both earlier secrets still sign");
    assert_eq!(c.secrets.as_ref().unwrap().active(t0() + Duration::from_secs(3601)).count(), 2);
    let other = account(store, "b").await;
    assert_eq!(store.rotate_secret(rotation(&other, &wh, &s1, 0)).await.unwrap(), Rotated::NotFound);
    for _ in 0..6 {
        store.rotate_secret(rotation(&acc, &wh, &SigningSecret::generate(), 9000)).await.unwrap();
    }
    assert_eq!(store.prune_secrets(t0() + Duration::from_secs(10_000)).await.unwrap(), 1);
}

/// Auto-disable: ≥ threshold failed and none delivered in the window.
pub async fn failing_webhooks_are_auto_disabled(store: &dyn Store) {
    let acc = account(store, "a").await;
    let bad = webhook(store, &acc, 100).await;
    for _ in 0..3 {
        publish(store, &acc, t0()).await;
    }
    let claimed = store.claim_due(t0(), LEASE, 100).await.unwrap();
    assert!(claimed.iter().all(|c| c.account_id == acc), "a claim names the delivery's account");
    let fails: Vec<_> = claimed.iter().map(|c| outcome(c, Verdict::Failed { gone: false }, t0())).collect();
    store.record_outcomes(&fails, t0()).await.unwrap();
    let since = t0() - Duration::from_secs(72 * 3600);
    assert!(store.auto_disable(since, 4, t0()).await.unwrap().is_empty(), "below the threshold");
    assert_eq!(store.auto_disable(since, 3, t0()).await.unwrap(), vec![(acc.clone(), bad.clone())]);
    let w = store.get_webhook(&acc, &bad).await.unwrap().unwrap();
    assert!(!w.enabled);
    assert_eq!(w.disabled_reason, Some(herald_domain::DisabledReason::Failing));
    assert_eq!(w.auto_disabled_at, Some(t0()));
}

/// Recovery re-delivers stored events in the window that match the webhook now.
pub async fn recovery_redelivers_matching_events_in_the_window(store: &dyn Store) {
    let acc = account(store, "a").await;
    let wh = webhook(store, &acc, 100).await;
    let off = WebhookPatch { enabled: Some(false), ..Default::default() };
    store.update_webhook(&acc, &wh, off, t0()).await.unwrap();
    for i in 0..4 {
        publish(store, &acc, t0() + Duration::from_secs(i * 60)).await;
    }
    let since = t0() + Duration::from_secs(60);
    let until = t0() + Duration::from_secs(180);
    let rules = FanoutRules::default();
    let n = crate::recover(store, recovery(&acc, &wh, since, until, true), &rules).await.unwrap();
    assert_eq!(n, Some(2), "two events in [1 min, 3 min)");
    assert!(store.claim_due(t0(), LEASE, 100).await.unwrap().is_empty(), "dry run stores nothing");
    let on = WebhookPatch { enabled: Some(true), ..Default::default() };
    store.update_webhook(&acc, &wh, on, t0()).await.unwrap();
    assert_eq!(crate::recover(store, recovery(&acc, &wh, since, until, false), &rules).await.unwrap(), Some(2));
    assert_eq!(store.claim_due(t0(), LEASE, 100).await.unwrap().len(), 2);
    let other = account(store, "b").await;
    assert_eq!(crate::recover(store, recovery(&other, &wh, since, until, true), &rules).await.unwrap(), None);
}

/// The events log lists newest first with filters; an event shows its deliveries.
pub async fn events_log_lists_and_shows_events(store: &dyn Store) {
    let acc = account(store, "a").await;
    webhook(store, &acc, 10).await;
    let a = publish(store, &acc, t0()).await;
    let b = publish(store, &acc, t0() + Duration::from_secs(60)).await;
    let page = crate::Page { after: None, limit: 10 };
    let all = store.list_events(&acc, crate::EventFilter::default(), page.clone()).await.unwrap();
    assert_eq!(all.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), vec![b.clone(), a.clone()]);
    let filter = crate::EventFilter { since: Some(t0() + Duration::from_secs(30)), ..Default::default() };
    assert_eq!(store.list_events(&acc, filter, page.clone()).await.unwrap().len(), 1);
    let filter = crate::EventFilter { event_type: Some("email.sent".into()), ..Default::default() };
    assert!(store.list_events(&acc, filter, page).await.unwrap().is_empty());
    let (ev, deliveries) = store.get_event(&acc, &a).await.unwrap().unwrap();
    assert_eq!(ev.event_type, "email.received");
    assert_eq!(deliveries.len(), 1);
    let other = account(store, "b").await;
    assert!(store.get_event(&other, &a).await.unwrap().is_none());
}

/// Custom event types and idempotent responses are per account.
pub async fn event_types_and_idempotency_are_per_account(store: &dyn Store) {
    let acc = account(store, "a").await;
    let other = account(store, "b").await;
    store.create_event_type(&acc, "invoice.paid", "money", t0()).await.unwrap();
    assert!(matches!(
        store.create_event_type(&acc, "invoice.paid", "again", t0()).await,
        Err(crate::StoreError::AlreadyExists)
    ));
    assert!(store.custom_event_type_exists(&acc, "invoice.paid").await.unwrap());
    assert!(!store.custom_event_type_exists(&other, "invoice.paid").await.unwrap());
    assert_eq!(store.list_event_types(&acc).await.unwrap().len(), 1);
    store.save_idempotent_response(&acc, "rotate", "k1", "{\"x\":1}", t0()).await.unwrap();
    assert_eq!(store.idempotent_response(&acc, "rotate", "k1", t0()).await.unwrap().as_deref(), Some("{\"x\":1}"));
    assert!(store.idempotent_response(&other, "rotate", "k1", t0()).await.unwrap().is_none());
    let later = t0() + Duration::from_secs(1);
    assert!(store.idempotent_response(&acc, "rotate", "k1", later).await.unwrap().is_none(), "outside the window");
}

/// Fan-out follows the filter rules: OR within a key, AND across keys, and a non-empty key
/// never matches an event without that attribute; only enabled, subscribed webhooks.
pub async fn publish_fans_out_by_type_and_filters(store: &dyn Store) {
    let acc = account(store, "a").await;
    let mk = |filters: Filters, events: Vec<&str>| NewWebhook {
        signature: Default::default(),
        id: WebhookId::generate(),
        account_id: acc.clone(),
        url: "http://127.0.0.1:9/".into(),
        description: String::new(),
        events: events.into_iter().map(String::from).collect(),
        filters,
        enabled: true,
        max_in_flight: 10,
        control: herald_domain::DeliveryControl::default(),
        secret: SigningSecret::generate(),
        created_at: t0(),
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let any = store.create_webhook(mk(Filters::default(), vec!["email.received"]), 50).await.unwrap().id;
    let agent = Filters { agent_ids: s(&["a1", "a2"]), ..Default::default() };
    let by_agent = store.create_webhook(mk(agent, vec!["email.received"]), 50).await.unwrap().id;
    let both = Filters { agent_ids: s(&["a1"]), labels: s(&["vip", "red"]), ..Default::default() };
    let by_both = store.create_webhook(mk(both, vec!["email.received"]), 50).await.unwrap().id;
    let conv = Filters { conversation_ids: s(&["c1"]), ..Default::default() };
    let by_conv = store.create_webhook(mk(conv, vec!["email.received"]), 50).await.unwrap().id;
    let _other_type = store.create_webhook(mk(Filters::default(), vec!["email.sent"]), 50).await.unwrap().id;
    let off = store.create_webhook(mk(Filters::default(), vec!["email.received"]), 50).await.unwrap().id;
    store.update_webhook(&acc, &off, WebhookPatch { enabled: Some(false), ..Default::default() }, t0()).await.unwrap();
    let cases: Vec<(RoutingAttributes, Vec<&WebhookId>)> = vec![
        (RoutingAttributes::default(), vec![&any]),
        (RoutingAttributes { agent_id: Some("a2".into()), ..Default::default() }, vec![&any, &by_agent]),
        (
            RoutingAttributes { agent_id: Some("a1".into()), labels: s(&["x", "red"]), ..Default::default() },
            vec![&any, &by_agent, &by_both],
        ),
        (
            RoutingAttributes { agent_id: Some("a1".into()), labels: s(&["x"]), ..Default::default() },
            vec![&any, &by_agent],
        ),
        (RoutingAttributes { conversation_id: Some("c1".into()), ..Default::default() }, vec![&any, &by_conv]),
    ];
    for (routing, expected) in cases {
        let id = EventId::generate();
        let data = serde_json::value::RawValue::from_string("{}".into()).unwrap();
        let p = store
            .publish(
                NewEvent {
                    id: id.clone(),
                    account_id: acc.clone(),
                    event_type: "email.received".into(),
                    envelope: Envelope::build(&id, "email.received", t0(), &data),
                    routing: routing.clone(),
                    ordering_key: None,
                    idempotency_key: None,
                    created_at: t0(),
                },
                &FanoutRules::default(),
            )
            .await
            .unwrap();
        assert_eq!(p.deliveries as usize, expected.len(), "{routing:?}");
        let (_, ds) = store.get_event(&acc, &id).await.unwrap().unwrap();
        let mut got: Vec<String> = ds.iter().map(|d| d.webhook_id.to_string()).collect();
        let mut want: Vec<String> = expected.iter().map(|w| w.to_string()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{routing:?}");
        for d in &ds {
            assert!(herald_domain::DeliveryId::parse(d.id.as_str()).is_some(), "well-formed id {}", d.id);
        }
    }
}

/// One `#[tokio::test]` per conformance case for a backend. `$fixture` is an async fn taking
/// the test's name and returning `Option<(store, guard)>` (`None` skips, e.g. no PostgreSQL
/// outside CI); the guard lives until the case ends (a temp dir, a scratch database).
#[macro_export]
macro_rules! conformance_tests {
    ($fixture:path) => {
        $crate::conformance_tests!(@cases $fixture;
            claim_hides_rows_until_the_lease_expires,
            outcomes_are_compare_and_set_on_the_lease,
            claims_respect_the_per_webhook_cap,
            finished_leases_do_not_count_against_the_cap,
            disabled_webhooks_are_skipped_until_enabled,
            expired_rows_are_ignored_and_deleted_in_batches,
            resources_are_scoped_by_account,
            released_leases_are_due_again_without_an_attempt,
            rotation_keeps_previous_secrets_until_their_own_expiry,
            failing_webhooks_are_auto_disabled,
            recovery_redelivers_matching_events_in_the_window,
            events_log_lists_and_shows_events,
            event_types_and_idempotency_are_per_account,
            publish_fans_out_by_type_and_filters,
            any_receiver_text_is_stored_and_read_back,
            a_refused_value_is_never_reported_as_unavailable,
            an_event_outlives_every_delivery_that_references_it,
            concurrent_rotations_keep_every_secret,
            concurrent_rotations_with_one_idempotency_key_rotate_once,
            pruning_never_undoes_a_concurrent_rotation,
            recovery_works_in_batches_across_a_large_window,
            two_outcomes_of_one_delivery_in_a_batch_apply_once,
            publish_with_an_idempotency_key_returns_the_first_event,
            manual_retry_allows_one_more_attempt_of_a_failed_delivery,
            the_webhook_limit_holds_under_concurrent_creates,
            gone_fails_the_delivery_and_disables_the_webhook,
            deleting_a_webhook_ends_its_pending_deliveries,
            lists_page_with_cursors_and_filter_by_status,
            next_due_after_names_the_earliest_future_retry,
            direct_enqueue_reaches_one_webhook_whatever_it_subscribes_to,
            accounts_are_found_by_key_and_name,
            a_publish_raises_the_work_signal,
            agents_are_unique_scoped_and_never_listed_as_webhooks,
            ingest_commits_message_event_and_agent_delivery_together,
            a_failed_ingest_stores_nothing,
            duplicates_within_the_window_create_nothing,
            concurrent_copies_of_one_message_are_stored_once,
            messages_expire_with_the_janitor,
            an_address_created_again_starts_afresh,
            an_agent_endpoint_respects_its_own_cap,
            an_agent_deleted_before_the_commit_gets_nothing,
            portal_links_are_redeemed_once_and_sessions_expire,
            concurrent_redemptions_of_one_link_make_one_session,
            attempt_counts_bucket_a_webhooks_attempts_by_outcome_and_duration,
            queue_gauges_count_pending_the_oldest_due_and_disabled_webhooks,
            a_410_disables_its_webhook_once_and_keeps_an_earlier_reason,
            fifo_lanes_offer_only_their_heads_in_publish_order,
            a_blocked_head_holds_its_lane_until_skipped_or_retried,
            a_skipping_lane_moves_on_after_a_final_failure,
            the_rate_limit_spends_tokens_at_claim_and_names_the_next_one,
            a_retry_after_pauses_the_whole_webhook,
            the_adaptive_limit_halves_on_congestion_and_caps_claims,
            a_webhooks_own_schedule_sets_attempts_and_travels_with_the_claim,
            changing_controls_never_strands_the_queue,
            a_test_send_to_a_fifo_webhook_is_not_held_by_a_blocked_lane,
            an_account_gets_one_current_key_and_rotation_keeps_the_old_in_grace,
            concurrent_rotations_leave_one_current_key_and_lose_none,
            claims_of_ed25519_webhooks_carry_the_accounts_keys,
            concurrent_first_keys_make_one,
        );
    };
    (@cases $fixture:path; $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some((store, _guard)) = $fixture(stringify!($name)).await else { return };
            $crate::conformance::$name(&store).await;
        }
    )*};
}
