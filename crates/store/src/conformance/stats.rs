//! A webhook's attempts are counted into buckets by outcome and duration.

use super::{LEASE, account, answered, publish, t0, webhook};
use crate::{AttemptCount, AttemptWindow, Store};
use herald_domain::Verdict;
use std::time::Duration;

/// Attempt counts: one webhook of one account, started in `[since, until)`, by bucket from
/// `since`, by outcome (2xx or not) and by duration (three significant digits), ordered.
pub async fn attempt_counts_bucket_a_webhooks_attempts_by_outcome_and_duration(store: &dyn Store) {
    let a = account(store, "a").await;
    let b = account(store, "b").await;
    let wh = webhook(store, &a, 100).await;
    let sibling = webhook(store, &a, 100).await;
    let theirs = webhook(store, &b, 100).await;
    let published = t0() - Duration::from_secs(600);
    for _ in 0..12 {
        publish(store, &a, published).await;
    }
    publish(store, &b, published).await;
    let claimed = store.claim_due(published, LEASE, 100).await.unwrap();
    assert_eq!(claimed.len(), 25, "twelve events to both of a's webhooks, one to b's");
    let of = |w: &herald_domain::WebhookId| claimed.iter().filter(|c| &c.webhook_id == w).collect::<Vec<_>>();
    let (ours, sibling_claims, their_claims) = (of(&wh), of(&sibling), of(&theirs));

    let since = t0();
    let until = since + Duration::from_secs(240);
    let sec = |n: u64| since + Duration::from_secs(n);
    let ok = Verdict::Delivered;
    let failed = Verdict::Failed { gone: false };
    let retry_at = sec(30);
    let mut outcomes = vec![
        answered(ours[0], 200, 7, sec(5), &ok),
        answered(ours[1], 204, 7, sec(20), &ok),
        answered(ours[2], 500, 7, sec(10), &failed),
        answered(ours[3], 0, 7, sec(15), &failed),
        answered(ours[4], 301, 4, sec(70), &failed),
        answered(ours[5], 299, 4, sec(75), &ok),
        answered(ours[6], 200, 3, sec(130), &ok),
        answered(ours[10], 200, 1234, sec(131), &ok),
        answered(ours[11], 200, 12_345, sec(132), &ok),
        // Outside the window: just before `since`, and at `until`.
        answered(ours[7], 200, 5, since - Duration::from_millis(1), &ok),
        answered(ours[8], 200, 5, until, &ok),
        // Fails before the window, is retried inside it (below).
        answered(ours[9], 500, 6, since - Duration::from_secs(30), &Verdict::RetryAt(retry_at)),
    ];
    // Another webhook of the account and another account's webhook, inside the window.
    outcomes.extend(sibling_claims.iter().map(|c| answered(c, 200, 7, sec(5), &ok)));
    outcomes.extend(their_claims.iter().map(|c| answered(c, 200, 7, sec(5), &ok)));
    let applied = store.record_outcomes(&outcomes, sec(200)).await.unwrap();
    assert!(applied.iter().all(|a| *a), "{applied:?}");
    let again = store.claim_due(retry_at, LEASE, 100).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].delivery_id.clone(), again[0].attempt), (ours[9].delivery_id.clone(), 2));
    store.record_outcomes(&[answered(&again[0], 200, 9, sec(190), &ok)], sec(200)).await.unwrap();

    let count =
        |bucket: u32, success: bool, duration_ms: u64, count: u64| AttemptCount { bucket, success, duration_ms, count };
    let window =
        AttemptWindow { account: a.clone(), webhook: wh.clone(), since, until, bucket: Duration::from_secs(60) };
    assert_eq!(
        store.attempt_counts(&window).await.unwrap(),
        vec![
            count(0, false, 7, 2),
            count(0, true, 7, 2),
            count(1, false, 4, 1),
            count(1, true, 4, 1),
            count(2, true, 3, 1),
            count(2, true, 1230, 1),
            count(2, true, 12_300, 1),
            count(3, true, 9, 1),
        ]
    );
    // A zero bucket counts as one millisecond.
    let narrow = AttemptWindow { since: sec(5), until: sec(6), bucket: Duration::ZERO, ..window.clone() };
    assert_eq!(store.attempt_counts(&narrow).await.unwrap(), vec![count(0, true, 7, 1)]);
    // Scoped by account: the webhook is not b's.
    let foreign = AttemptWindow { account: b.clone(), ..window.clone() };
    assert_eq!(store.attempt_counts(&foreign).await.unwrap(), vec![]);
    let next = AttemptWindow { since: until, until: until + Duration::from_secs(60), ..window };
    assert_eq!(store.attempt_counts(&next).await.unwrap(), vec![count(0, true, 5, 1)], "the attempt at `until`");
}

/// The queue's gauges: every pending delivery counted, the oldest one due and not taken
/// (a leased one is not waiting; a disabled webhook's are not due), disabled webhooks by reason.
pub async fn queue_gauges_count_pending_the_oldest_due_and_disabled_webhooks(store: &dyn Store) {
    use crate::{QueueGauges, WebhookPatch};
    use herald_domain::DisabledReason;
    let nothing = QueueGauges { pending: 0, oldest_due: None, disabled: vec![] };
    assert_eq!(store.queue_gauges(t0()).await.unwrap(), nothing);

    let a = account(store, "a").await;
    let first = webhook(store, &a, 100).await;
    let second = webhook(store, &a, 1).await;
    let gone = webhook(store, &a, 100).await;
    let (early, late) = (t0() - Duration::from_secs(60), t0() - Duration::from_secs(10));
    publish(store, &a, early).await;
    publish(store, &a, late).await;
    let g = store.queue_gauges(t0()).await.unwrap();
    assert_eq!((g.pending, g.oldest_due, g.disabled.len()), (6, Some(early), 0));
    assert_eq!(store.queue_gauges(early - Duration::from_secs(1)).await.unwrap().oldest_due, None, "none due yet");

    // `gone`'s receiver answers 410 (the webhook is disabled as gone); `second` is disabled by hand.
    let claimed = store.claim_due(t0(), LEASE, 100).await.unwrap();
    let of_gone: Vec<_> = claimed.iter().filter(|c| c.webhook_id == gone).collect();
    let applied =
        store.record_outcomes(&[answered(of_gone[0], 410, 3, t0(), &Verdict::Failed { gone: true })], t0()).await;
    assert_eq!(applied.unwrap(), [true]);
    let off = WebhookPatch { enabled: Some(false), ..Default::default() };
    store.update_webhook(&a, &second, off, t0()).await.unwrap().unwrap();
    let g = store.queue_gauges(t0()).await.unwrap();
    assert_eq!(g.pending, 5, "one delivery ended; the rest are pending, leased or not");
    assert_eq!(g.oldest_due, None, "first's deliveries are leased; the others' webhooks are disabled");
    assert_eq!(g.disabled, [(DisabledReason::Gone, 1), (DisabledReason::Manual, 1)]);

    // The leases expire: first's deliveries wait again, the earliest lease end is the age's start.
    let after_lease = t0() + LEASE + Duration::from_secs(5);
    let g = store.queue_gauges(after_lease).await.unwrap();
    assert_eq!(g.oldest_due, Some(t0() + LEASE));
    assert!(claimed.iter().any(|c| c.webhook_id == first));
}
