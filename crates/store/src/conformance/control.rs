//! Delivery control in the store: FIFO lanes, the rate limit's tokens, `Retry-After`
//! pauses, the adaptive limit and a webhook's own retry policy.

use super::*;
use crate::{Claimed, DeliveryQuery, Page};
use herald_domain::delivery::SkipRefused;
use herald_domain::{Concurrency, DeliveryControl, DeliveryStatus, OnFinalFailure, OrderingMode};

async fn controlled(store: &dyn Store, account: &AccountId, max_in_flight: u32, control: DeliveryControl) -> WebhookId {
    let new = NewWebhook {
        signature: Default::default(),
        id: WebhookId::generate(),
        account_id: account.clone(),
        url: "http://127.0.0.1:9/".into(),
        description: String::new(),
        events: vec!["email.received".into()],
        filters: Filters::default(),
        enabled: true,
        max_in_flight,
        control,
        secret: SigningSecret::generate(),
        created_at: t0(),
    };
    store.create_webhook(new, 50).await.unwrap().id
}

fn fifo(on_final_failure: OnFinalFailure) -> DeliveryControl {
    DeliveryControl { ordering: OrderingMode::Fifo, on_final_failure, ..DeliveryControl::default() }
}

/// Publishes one event with `key` (or none) at `at`; returns its id.
async fn keyed(store: &dyn Store, account: &AccountId, key: Option<&str>, at: OffsetDateTime) -> EventId {
    let id = EventId::generate();
    let data = serde_json::value::RawValue::from_string("{}".into()).unwrap();
    let new = NewEvent {
        id: id.clone(),
        account_id: account.clone(),
        event_type: "email.received".into(),
        envelope: Envelope::build(&id, "email.received", at, &data),
        routing: RoutingAttributes::default(),
        ordering_key: key.map(String::from),
        idempotency_key: None,
        created_at: at,
    };
    store.publish(new, &FanoutRules::default()).await.unwrap();
    id
}

async fn claim(store: &dyn Store, at: OffsetDateTime) -> Vec<Claimed> {
    store.claim_due(at, LEASE, 100).await.unwrap()
}

fn events_of(claimed: &[Claimed]) -> Vec<EventId> {
    let mut v: Vec<EventId> = claimed.iter().map(|c| c.event_id.clone()).collect();
    v.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    v
}

fn failed_for_good() -> Verdict {
    Verdict::Failed { gone: false }
}

/// Of a FIFO webhook only the head of each lane is claimable, and the next one only once
/// the head has ended; events without a key share the webhook's one lane.
pub async fn fifo_lanes_offer_only_their_heads_in_publish_order(store: &dyn Store) {
    let acc = account(store, "a").await;
    controlled(store, &acc, 10, fifo(OnFinalFailure::Block)).await;
    let (a1, b1, a2, n1, a3, n2) = (
        keyed(store, &acc, Some("a"), t0()).await,
        keyed(store, &acc, Some("b"), t0()).await,
        keyed(store, &acc, Some("a"), t0()).await,
        keyed(store, &acc, None, t0()).await,
        keyed(store, &acc, Some("a"), t0()).await,
        keyed(store, &acc, None, t0()).await,
    );
    let first = claim(store, t0()).await;
    let mut want = vec![a1.clone(), b1.clone(), n1.clone()];
    want.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(events_of(&first), want, "one head per lane");
    assert!(first.iter().all(|c| c.in_lane));
    assert!(claim(store, t0()).await.is_empty(), "heads leased: the lanes offer nothing");
    // a1 is retried later: its lane waits for it, the others go on.
    let a1c = first.iter().find(|c| c.event_id == a1).unwrap();
    let later = t0() + Duration::from_secs(60);
    let b1c = first.iter().find(|c| c.event_id == b1).unwrap();
    let n1c = first.iter().find(|c| c.event_id == n1).unwrap();
    store
        .record_outcomes(
            &[
                outcome(a1c, Verdict::RetryAt(later), t0()),
                outcome(b1c, Verdict::Delivered, t0()),
                outcome(n1c, Verdict::Delivered, t0()),
            ],
            t0(),
        )
        .await
        .unwrap();
    let second = claim(store, t0()).await;
    assert_eq!(events_of(&second), vec![n2.clone()], "lane a waits for its retry; lane b is empty");
    store.record_outcomes(&[outcome(&second[0], Verdict::Delivered, t0())], t0()).await.unwrap();
    let third = claim(store, later).await;
    assert_eq!(events_of(&third), vec![a1.clone()], "the retried head comes before a2");
    store.record_outcomes(&[outcome(&third[0], Verdict::Delivered, later)], later).await.unwrap();
    let fourth = claim(store, later).await;
    assert_eq!(events_of(&fourth), vec![a2.clone()]);
    // An expired lease makes the head due again, never the next one.
    let after_lease = later + LEASE + Duration::from_secs(1);
    let again = claim(store, after_lease).await;
    assert_eq!(events_of(&again), vec![a2], "the same head again after its lease expired");
    store.record_outcomes(&[outcome(&again[0], Verdict::Delivered, after_lease)], after_lease).await.unwrap();
    assert_eq!(events_of(&claim(store, after_lease).await), vec![a3]);
}

/// With `block`, a finally failed head ends `blocked` and holds its lane; a skip moves the
/// lane on, a manual retry sends it again first.
pub async fn a_blocked_head_holds_its_lane_until_skipped_or_retried(store: &dyn Store) {
    let acc = account(store, "a").await;
    let wh = controlled(store, &acc, 10, fifo(OnFinalFailure::Block)).await;
    let (k1, k2, k3) = (
        keyed(store, &acc, Some("k"), t0()).await,
        keyed(store, &acc, Some("k"), t0()).await,
        keyed(store, &acc, Some("k"), t0()).await,
    );
    let c = claim(store, t0()).await;
    assert_eq!(events_of(&c), vec![k1.clone()]);
    assert!(c[0].blocks_lane);
    store.record_outcomes(&[outcome(&c[0], failed_for_good(), t0())], t0()).await.unwrap();
    let (d, _) = store.get_delivery(&acc, &c[0].delivery_id).await.unwrap().unwrap();
    assert_eq!(d.status, DeliveryStatus::Blocked);
    assert!(claim(store, t0()).await.is_empty(), "the lane is blocked");
    let listed = store
        .list_deliveries(DeliveryQuery {
            account: acc.clone(),
            webhook: wh.clone(),
            status: Some(DeliveryStatus::Blocked),
            page: Page { after: None, limit: 10 },
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "blocked deliveries are listed by their status");
    // A manual retry puts the head back first.
    store.retry_delivery(&acc, &c[0].delivery_id, t0()).await.unwrap().unwrap();
    let again = claim(store, t0()).await;
    assert_eq!(events_of(&again), vec![k1]);
    store.record_outcomes(&[outcome(&again[0], failed_for_good(), t0())], t0()).await.unwrap();
    // A skip ends it failed and lets k2 go.
    let skipped = store.skip_delivery(&acc, &c[0].delivery_id, t0()).await.unwrap().unwrap();
    assert_eq!((skipped.status, skipped.last_error.as_deref()), (DeliveryStatus::Failed, Some("skipped")));
    let next = claim(store, t0()).await;
    assert_eq!(events_of(&next), vec![k2]);
    // A head in flight cannot be skipped (the next would overtake it); waiting for a retry, it can.
    let refused = store.skip_delivery(&acc, &next[0].delivery_id, t0()).await;
    assert!(matches!(refused, Err(crate::StoreError::SkipRefused(SkipRefused::InFlight))), "{refused:?}");
    let later = t0() + Duration::from_secs(60);
    store.record_outcomes(&[outcome(&next[0], Verdict::RetryAt(later), t0())], t0()).await.unwrap();
    let skipped = store.skip_delivery(&acc, &next[0].delivery_id, t0()).await.unwrap().unwrap();
    assert_eq!(skipped.status, DeliveryStatus::Failed);
    assert_eq!(events_of(&claim(store, t0()).await), vec![k3]);
    // Only pending or blocked deliveries can be skipped.
    let refused = store.skip_delivery(&acc, &next[0].delivery_id, t0()).await;
    assert!(matches!(refused, Err(crate::StoreError::SkipRefused(SkipRefused::Ended(_)))), "{refused:?}");
    assert!(store.skip_delivery(&account(store, "b").await, &next[0].delivery_id, t0()).await.unwrap().is_none());
}

/// With `skip`, a finally failed head ends `failed` and the lane moves on.
pub async fn a_skipping_lane_moves_on_after_a_final_failure(store: &dyn Store) {
    let acc = account(store, "a").await;
    controlled(store, &acc, 10, fifo(OnFinalFailure::Skip)).await;
    let (k1, k2) = (keyed(store, &acc, Some("k"), t0()).await, keyed(store, &acc, Some("k"), t0()).await);
    let c = claim(store, t0()).await;
    assert_eq!(events_of(&c), vec![k1]);
    assert!(!c[0].blocks_lane);
    store.record_outcomes(&[outcome(&c[0], failed_for_good(), t0())], t0()).await.unwrap();
    let (d, _) = store.get_delivery(&acc, &c[0].delivery_id).await.unwrap().unwrap();
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert_eq!(events_of(&claim(store, t0()).await), vec![k2]);
}

/// A rate-limited webhook's claims spend tokens (a burst of 100 ms worth, at least one) and
/// it is due again when the next token is there.
pub async fn the_rate_limit_spends_tokens_at_claim_and_names_the_next_one(store: &dyn Store) {
    let acc = account(store, "a").await;
    let control = DeliveryControl { rate_limit_per_second: Some(20), ..DeliveryControl::default() };
    controlled(store, &acc, 50, control).await;
    for _ in 0..10 {
        publish(store, &acc, t0()).await;
    }
    assert_eq!(claim(store, t0()).await.len(), 2, "a burst of 100 ms at 20/s");
    assert!(claim(store, t0()).await.is_empty(), "no token left");
    assert_eq!(store.next_due_after(t0()).await.unwrap(), Some(t0() + Duration::from_millis(50)));
    assert!(claim(store, t0() + Duration::from_millis(49)).await.is_empty());
    assert_eq!(claim(store, t0() + Duration::from_millis(50)).await.len(), 1);
    assert_eq!(claim(store, t0() + Duration::from_secs(5)).await.len(), 2, "never more than the burst");
}

/// A 429/503 with `Retry-After` pauses every delivery of its webhook, and only its webhook.
pub async fn a_retry_after_pauses_the_whole_webhook(store: &dyn Store) {
    let acc = account(store, "a").await;
    let paused = controlled(store, &acc, 1, DeliveryControl::default()).await;
    for _ in 0..3 {
        publish(store, &acc, t0()).await;
    }
    let c = claim(store, t0()).await;
    assert_eq!(c.len(), 1);
    let mut o = answered(&c[0], 503, 2, t0(), &Verdict::RetryAt(t0() + Duration::from_secs(120)));
    o.result.retry_after = Some(Duration::from_secs(30));
    store.record_outcomes(&[o], t0()).await.unwrap();
    let other = webhook(store, &acc, 5).await;
    publish(store, &acc, t0()).await;
    let now = t0() + Duration::from_secs(1);
    let c = claim(store, now).await;
    assert!(c.iter().all(|c| c.webhook_id == other) && c.len() == 1, "only the other webhook: {c:?}");
    assert_eq!(store.next_due_after(now).await.unwrap(), Some(t0() + Duration::from_secs(30)));
    let c = claim(store, t0() + Duration::from_secs(30)).await;
    assert_eq!(c.len(), 1, "the pause is over: the paused webhook's next delivery");
    assert_eq!(c[0].webhook_id, paused);
}

/// An adaptive webhook's limit halves on congestion (once per round trip), caps claims, and
/// the webhook shows it; a fixed one keeps `max_in_flight`.
pub async fn the_adaptive_limit_halves_on_congestion_and_caps_claims(store: &dyn Store) {
    let acc = account(store, "a").await;
    let wh = controlled(store, &acc, 8, DeliveryControl::default()).await;
    let fixed =
        controlled(store, &acc, 8, DeliveryControl { concurrency: Concurrency::Fixed, ..Default::default() }).await;
    for _ in 0..40 {
        publish(store, &acc, t0()).await;
    }
    let c = claim(store, t0()).await;
    assert_eq!(c.len(), 16, "both start at max_in_flight");
    let retry = Verdict::RetryAt(t0() + Duration::from_secs(60));
    let busy: Vec<Outcome> = c.iter().map(|c| answered(c, 503, 2, t0(), &retry)).collect();
    let at = t0() + Duration::from_millis(10);
    store.record_outcomes(&busy, at).await.unwrap();
    let w = store.get_webhook(&acc, &wh).await.unwrap().unwrap();
    assert_eq!(w.effective_max_in_flight, 4, "halved once for one round trip of 503s");
    let f = store.get_webhook(&acc, &fixed).await.unwrap().unwrap();
    assert_eq!(f.effective_max_in_flight, 8, "a fixed webhook does not adapt");
    let c = claim(store, at).await;
    let adaptive = c.iter().filter(|c| c.webhook_id == wh).count();
    assert_eq!((adaptive, c.len() - adaptive), (4, 8));
    // Lowering max_in_flight below the adaptive limit lowers it; switching to fixed resets it.
    let patch = WebhookPatch { max_in_flight: Some(2), ..Default::default() };
    let w = store.update_webhook(&acc, &wh, patch, at).await.unwrap().unwrap();
    assert_eq!(w.effective_max_in_flight, 2);
    let patch = WebhookPatch { max_in_flight: Some(6), concurrency: Some(Concurrency::Fixed), ..Default::default() };
    let w = store.update_webhook(&acc, &wh, patch, at).await.unwrap().unwrap();
    assert_eq!((w.effective_max_in_flight, w.control.concurrency), (6, Concurrency::Fixed));
}

/// A webhook's own schedule sets how many attempts its deliveries get and travels with each
/// claim, with the deadline of its `max_age`; patching it back to `None` restores the server's.
pub async fn a_webhooks_own_schedule_sets_attempts_and_travels_with_the_claim(store: &dyn Store) {
    let acc = account(store, "a").await;
    let schedule = vec![Duration::from_secs(5), Duration::from_secs(30)];
    let control = DeliveryControl {
        retry_schedule: Some(schedule.clone()),
        max_age: Some(Duration::from_secs(3600)),
        ..DeliveryControl::default()
    };
    let wh = controlled(store, &acc, 5, control).await;
    let w = store.get_webhook(&acc, &wh).await.unwrap().unwrap();
    assert_eq!(w.control.retry_schedule.as_deref(), Some(schedule.as_slice()));
    publish(store, &acc, t0()).await;
    let c = claim(store, t0()).await;
    assert_eq!(c[0].max_attempts, 3, "the first attempt and one per step");
    assert_eq!(c[0].retry_schedule.as_deref(), Some(schedule.as_slice()));
    assert_eq!(c[0].deadline, Some(t0() + Duration::from_secs(3600)));
    let patch = WebhookPatch { retry_schedule: Some(None), max_age: Some(None), ..Default::default() };
    let w = store.update_webhook(&acc, &wh, patch, t0()).await.unwrap().unwrap();
    assert_eq!((w.control.retry_schedule, w.control.max_age), (None, None));
    publish(store, &acc, t0()).await;
    let c = claim(store, t0()).await;
    assert_eq!((c[0].max_attempts, c[0].retry_schedule.clone(), c[0].deadline), (8, None, None));
}

/// Changing a webhook's controls never strands its queue: deliveries queued before it became
/// FIFO are still sent (each in a lane of its own), blocked ones end when it stops blocking,
/// a manually retried failed delivery of a lane does not overtake its lane's head, and
/// enabling a webhook lifts a `Retry-After` pause.
pub async fn changing_controls_never_strands_the_queue(store: &dyn Store) {
    let acc = account(store, "a").await;
    let wh = controlled(store, &acc, 10, DeliveryControl::default()).await;
    let (q1, q2) = (keyed(store, &acc, Some("k"), t0()).await, keyed(store, &acc, None, t0()).await);
    let to_fifo = WebhookPatch { ordering: Some(OrderingMode::Fifo), ..Default::default() };
    store.update_webhook(&acc, &wh, to_fifo, t0()).await.unwrap().unwrap();
    let mut want = vec![q1, q2];
    want.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let queued = claim(store, t0()).await;
    assert_eq!(events_of(&queued), want, "queued before FIFO: both still go, unordered");
    let done: Vec<Outcome> = queued.iter().map(|c| outcome(c, Verdict::Delivered, t0())).collect();
    store.record_outcomes(&done, t0()).await.unwrap();
    // k1 fails for good and blocks; k2 waits; switching to `skip` ends k1 and frees k2.
    let (k1, k2, k3) = (
        keyed(store, &acc, Some("k"), t0()).await,
        keyed(store, &acc, Some("k"), t0()).await,
        keyed(store, &acc, Some("k"), t0()).await,
    );
    let c = claim(store, t0()).await;
    assert_eq!(events_of(&c), vec![k1]);
    store.record_outcomes(&[outcome(&c[0], failed_for_good(), t0())], t0()).await.unwrap();
    assert!(claim(store, t0()).await.is_empty());
    let to_skip = WebhookPatch { on_final_failure: Some(OnFinalFailure::Skip), ..Default::default() };
    store.update_webhook(&acc, &wh, to_skip, t0()).await.unwrap().unwrap();
    let (d, _) = store.get_delivery(&acc, &c[0].delivery_id).await.unwrap().unwrap();
    assert_eq!(d.status, DeliveryStatus::Failed);
    let head = claim(store, t0()).await;
    assert_eq!(events_of(&head), vec![k2], "the lane moved on");
    // Retrying the failed k1 by hand while k2 is in flight: k1 goes on its own, k3 still waits.
    store.retry_delivery(&acc, &c[0].delivery_id, t0()).await.unwrap().unwrap();
    let again = claim(store, t0()).await;
    assert_eq!(events_of(&again), vec![c[0].event_id.clone()], "the retried one, never k3");
    store.record_outcomes(&[outcome(&head[0], Verdict::Delivered, t0())], t0()).await.unwrap();
    assert_eq!(events_of(&claim(store, t0()).await), vec![k3]);
    // A Retry-After pause ends when the webhook is enabled again.
    let other = controlled(store, &acc, 5, DeliveryControl::default()).await;
    keyed(store, &acc, None, t0()).await;
    let c = claim(store, t0()).await;
    let mine: Vec<&Claimed> = c.iter().filter(|c| c.webhook_id == other).collect();
    let mut o = answered(mine[0], 429, 2, t0(), &Verdict::RetryAt(t0()));
    o.result.retry_after = Some(Duration::from_secs(3600));
    store.record_outcomes(&[o], t0()).await.unwrap();
    assert!(claim(store, t0()).await.iter().all(|c| c.webhook_id != other), "paused");
    let off = WebhookPatch { enabled: Some(false), ..Default::default() };
    store.update_webhook(&acc, &other, off, t0()).await.unwrap().unwrap();
    let on = WebhookPatch { enabled: Some(true), ..Default::default() };
    store.update_webhook(&acc, &other, on, t0()).await.unwrap().unwrap();
    assert!(claim(store, t0()).await.iter().any(|c| c.webhook_id == other), "enabling lifted the pause");
}

/// A test send to a FIFO webhook goes in a lane of its own: a blocked lane does not hold it.
pub async fn a_test_send_to_a_fifo_webhook_is_not_held_by_a_blocked_lane(store: &dyn Store) {
    let acc = account(store, "a").await;
    let wh = controlled(store, &acc, 10, fifo(OnFinalFailure::Block)).await;
    keyed(store, &acc, None, t0()).await;
    keyed(store, &acc, None, t0()).await;
    let c = claim(store, t0()).await;
    assert_eq!(c.len(), 1);
    store.record_outcomes(&[outcome(&c[0], failed_for_good(), t0())], t0()).await.unwrap();
    let id = EventId::generate();
    let data = serde_json::value::RawValue::from_string("{}".into()).unwrap();
    let test = NewEvent {
        id: id.clone(),
        account_id: acc.clone(),
        event_type: "webhook.test".into(),
        envelope: Envelope::build(&id, "webhook.test", t0(), &data),
        routing: RoutingAttributes::default(),
        ordering_key: None,
        idempotency_key: None,
        created_at: t0(),
    };
    store.enqueue_direct(&wh, test, &FanoutRules::default()).await.unwrap().unwrap();
    assert_eq!(events_of(&claim(store, t0()).await), vec![id]);
}
