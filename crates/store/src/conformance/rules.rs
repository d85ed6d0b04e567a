//! One case per store method and rule not covered elsewhere: idempotent publish on every
//! publish path, manual retry, the webhook limit under concurrency, 410, deleting a webhook,
//! listings and cursors, the next due time, direct enqueue.

use super::{LEASE, account, outcome, publish, t0, webhook};
use crate::{DeliveryQuery, EventFilter, FanoutRules, NewEvent, NewWebhook, Page, Store, StoreError, WebhookPatch};
use herald_domain::{
    DeliveryStatus, DisabledReason, Envelope, EventId, Filters, RetryRefused, RoutingAttributes, SigningSecret,
    Verdict, WebhookId,
};
use std::time::Duration;

fn event(account: &herald_domain::AccountId, key: Option<&str>, routing: RoutingAttributes) -> NewEvent {
    let id = EventId::generate();
    let data = serde_json::value::RawValue::from_string("{}".into()).unwrap();
    NewEvent {
        id: id.clone(),
        account_id: account.clone(),
        event_type: "email.received".into(),
        envelope: Envelope::build(&id, "email.received", t0(), &data),
        routing,
        ordering_key: None,
        idempotency_key: key.map(String::from),
        created_at: t0(),
    }
}

/// The same key within the window names the same event and makes no new deliveries; after
/// the window it names a new one. A keyed publish fans out by the same filter rules.
pub async fn publish_with_an_idempotency_key_returns_the_first_event(store: &dyn Store) {
    let acc = account(store, "a").await;
    webhook(store, &acc, 10).await;
    let filtered = Filters { labels: vec!["vip".into()], ..Default::default() };
    let new = NewWebhook {
        signature: Default::default(),
        id: WebhookId::generate(),
        account_id: acc.clone(),
        url: "http://127.0.0.1:9/".into(),
        description: String::new(),
        events: vec!["email.received".into()],
        filters: filtered,
        enabled: true,
        max_in_flight: 1,
        control: herald_domain::DeliveryControl::default(),
        secret: SigningSecret::generate(),
        created_at: t0(),
    };
    store.create_webhook(new, 50).await.unwrap();
    let rules = FanoutRules::default();
    let vip = RoutingAttributes { labels: vec!["vip".into()], ..Default::default() };
    let first = store.publish(event(&acc, Some("k1"), vip.clone()), &rules).await.unwrap();
    assert!(!first.replayed);
    assert_eq!(first.deliveries, 2, "both webhooks: the label matches");
    let again = store.publish(event(&acc, Some("k1"), vip.clone()), &rules).await.unwrap();
    assert!(again.replayed);
    assert_eq!((again.id.clone(), again.deliveries), (first.id.clone(), 2));
    let plain = store.publish(event(&acc, Some("k2"), RoutingAttributes::default()), &rules).await.unwrap();
    assert_eq!(plain.deliveries, 1, "the label filter excludes an unlabelled event");
    let all = store.list_events(&acc, EventFilter::default(), Page { after: None, limit: 10 }).await.unwrap();
    assert_eq!(all.len(), 2, "the replay stored nothing");
    let mut late = event(&acc, Some("k1"), vip);
    late.created_at = t0() + rules.idempotency_window + Duration::from_secs(1);
    let fresh = store.publish(late, &rules).await.unwrap();
    assert!(!fresh.replayed);
    assert_ne!(fresh.id, first.id, "after the window the key names a new event");
}

/// Only a failed delivery of an existing webhook may be retried: it is due at once with one
/// more attempt allowed.
pub async fn manual_retry_allows_one_more_attempt_of_a_failed_delivery(store: &dyn Store) {
    let acc = account(store, "a").await;
    let wh = webhook(store, &acc, 10).await;
    publish(store, &acc, t0()).await;
    let c = store.claim_due(t0(), LEASE, 10).await.unwrap().remove(0);
    let refused = store.retry_delivery(&acc, &c.delivery_id, t0()).await;
    assert!(matches!(refused, Err(StoreError::RetryRefused(RetryRefused::NotFailed(DeliveryStatus::Pending)))));
    store.record_outcomes(&[outcome(&c, Verdict::Failed { gone: false }, t0())], t0()).await.unwrap();
    let other = account(store, "b").await;
    assert!(store.retry_delivery(&other, &c.delivery_id, t0()).await.unwrap().is_none());
    let later = t0() + Duration::from_secs(60);
    let d = store.retry_delivery(&acc, &c.delivery_id, later).await.unwrap().unwrap();
    assert_eq!((d.status, d.attempts, d.max_attempts), (DeliveryStatus::Pending, 1, 2));
    let again = store.claim_due(later, LEASE, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 2);
    store.record_outcomes(&[outcome(&again[0], Verdict::Failed { gone: false }, later)], later).await.unwrap();
    store.delete_webhook(&acc, &wh, later).await.unwrap();
    let gone = store.retry_delivery(&acc, &c.delivery_id, later).await;
    assert!(matches!(gone, Err(StoreError::RetryRefused(RetryRefused::WebhookDeleted))), "{gone:?}");
}

/// The per-account webhook limit holds when creations race.
pub async fn the_webhook_limit_holds_under_concurrent_creates(store: &dyn Store) {
    let acc = account(store, "a").await;
    let make = || NewWebhook {
        signature: Default::default(),
        id: WebhookId::generate(),
        account_id: acc.clone(),
        url: "http://127.0.0.1:9/".into(),
        description: String::new(),
        events: vec!["email.received".into()],
        filters: Filters::default(),
        enabled: true,
        max_in_flight: 1,
        control: herald_domain::DeliveryControl::default(),
        secret: SigningSecret::generate(),
        created_at: t0(),
    };
    let results = futures_util::future::join_all((0..12).map(|_| store.create_webhook(make(), 5))).await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    let refused = results.iter().filter(|r| matches!(r, Err(StoreError::LimitReached))).count();
    assert_eq!((created, refused), (5, 7), "{results:?}");
    let listed = store.list_webhooks(&acc, Page { after: None, limit: 100 }).await.unwrap();
    assert_eq!(listed.len(), 5);
}

/// `410 Gone` fails the delivery and disables its webhook at once, with reason `gone`.
pub async fn gone_fails_the_delivery_and_disables_the_webhook(store: &dyn Store) {
    let acc = account(store, "a").await;
    let wh = webhook(store, &acc, 10).await;
    publish(store, &acc, t0()).await;
    publish(store, &acc, t0()).await;
    let c = store.claim_due(t0(), LEASE, 1).await.unwrap().remove(0);
    store.record_outcomes(&[outcome(&c, Verdict::Failed { gone: true }, t0())], t0()).await.unwrap();
    let w = store.get_webhook(&acc, &wh).await.unwrap().unwrap();
    assert!(!w.enabled);
    assert_eq!(w.disabled_reason, Some(DisabledReason::Gone));
    assert_eq!(w.auto_disabled_at, Some(t0()));
    let (d, _) = store.get_delivery(&acc, &c.delivery_id).await.unwrap().unwrap();
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert!(store.claim_due(t0(), LEASE, 10).await.unwrap().is_empty(), "the other waits, unclaimed");
    let on = WebhookPatch { enabled: Some(true), ..Default::default() };
    let w = store.update_webhook(&acc, &wh, on, t0()).await.unwrap().unwrap();
    assert!(w.enabled);
    assert_eq!((w.disabled_reason, w.auto_disabled_at), (None, None), "enabling clears the reason");
    let manual = WebhookPatch { enabled: Some(false), ..Default::default() };
    let w = store.update_webhook(&acc, &wh, manual, t0()).await.unwrap().unwrap();
    assert_eq!(w.disabled_reason, Some(DisabledReason::Manual));
}

/// Deleting a webhook ends its pending deliveries as failed (`webhook deleted`); they are
/// never claimed again, and the account still sees them.
pub async fn deleting_a_webhook_ends_its_pending_deliveries(store: &dyn Store) {
    let acc = account(store, "a").await;
    let wh = webhook(store, &acc, 10).await;
    publish(store, &acc, t0()).await;
    publish(store, &acc, t0()).await;
    let leased = store.claim_due(t0(), LEASE, 1).await.unwrap().remove(0);
    assert!(store.delete_webhook(&acc, &wh, t0()).await.unwrap());
    assert!(store.get_webhook(&acc, &wh).await.unwrap().is_none());
    assert!(!store.delete_webhook(&acc, &wh, t0()).await.unwrap(), "already gone");
    let late = store.record_outcomes(&[outcome(&leased, Verdict::Delivered, t0())], t0()).await.unwrap();
    assert_eq!(late, vec![false], "the in-flight attempt's outcome no longer applies");
    let query =
        DeliveryQuery { account: acc.clone(), webhook: wh, status: None, page: Page { after: None, limit: 10 } };
    let ds = store.list_deliveries(query).await.unwrap();
    assert_eq!(ds.len(), 2);
    assert!(
        ds.iter().all(|d| d.status == DeliveryStatus::Failed && d.last_error.as_deref() == Some("webhook deleted"))
    );
    assert!(store.claim_due(t0() + LEASE * 2, LEASE, 10).await.unwrap().is_empty());
}

/// Lists are newest first and page with `after` cursors; deliveries filter by status.
pub async fn lists_page_with_cursors_and_filter_by_status(store: &dyn Store) {
    let acc = account(store, "a").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(webhook(store, &acc, 10).await);
    }
    ids.reverse();
    let first = store.list_webhooks(&acc, Page { after: None, limit: 2 }).await.unwrap();
    assert_eq!(first.iter().map(|w| w.id.clone()).collect::<Vec<_>>(), ids[..2]);
    let after = Some(first[1].id.to_string());
    let second = store.list_webhooks(&acc, Page { after, limit: 10 }).await.unwrap();
    assert_eq!(second.iter().map(|w| w.id.clone()).collect::<Vec<_>>(), ids[2..]);
    let wh = &ids[0];
    for _ in 0..3 {
        publish(store, &acc, t0()).await;
    }
    let claimed = store.claim_due(t0(), LEASE, 100).await.unwrap();
    let mine: Vec<_> = claimed.iter().filter(|c| &c.webhook_id == wh).collect();
    store.record_outcomes(&[outcome(mine[0], Verdict::Delivered, t0())], t0()).await.unwrap();
    let query = |status, page| DeliveryQuery { account: acc.clone(), webhook: wh.clone(), status, page };
    let delivered =
        store.list_deliveries(query(Some(DeliveryStatus::Delivered), Page { after: None, limit: 10 })).await;
    assert_eq!(delivered.unwrap().len(), 1);
    let pending = store.list_deliveries(query(Some(DeliveryStatus::Pending), Page { after: None, limit: 10 })).await;
    assert_eq!(pending.unwrap().len(), 2);
    let page1 = store.list_deliveries(query(None, Page { after: None, limit: 2 })).await.unwrap();
    let page2 = store.list_deliveries(query(None, Page { after: Some(page1[1].id.to_string()), limit: 2 })).await;
    let page2 = page2.unwrap();
    assert_eq!((page1.len(), page2.len()), (2, 1));
    assert!(page1[1].id.as_str() > page2[0].id.as_str(), "newest first");
    let events = store.list_events(&acc, EventFilter::default(), Page { after: None, limit: 2 }).await.unwrap();
    let rest = Page { after: Some(events[1].id.to_string()), limit: 10 };
    assert_eq!(store.list_events(&acc, EventFilter::default(), rest).await.unwrap().len(), 1);
}

/// `next_due_after` names the earliest future retry, and nothing when none is pending.
pub async fn next_due_after_names_the_earliest_future_retry(store: &dyn Store) {
    let acc = account(store, "a").await;
    webhook(store, &acc, 10).await;
    assert_eq!(store.next_due_after(t0()).await.unwrap(), None);
    publish(store, &acc, t0()).await;
    publish(store, &acc, t0()).await;
    let c = store.claim_due(t0(), LEASE, 10).await.unwrap();
    let soon = t0() + Duration::from_secs(30);
    let later = t0() + Duration::from_secs(90);
    let outcomes = [outcome(&c[0], Verdict::RetryAt(later), t0()), outcome(&c[1], Verdict::RetryAt(soon), t0())];
    store.record_outcomes(&outcomes, t0()).await.unwrap();
    assert_eq!(store.next_due_after(t0()).await.unwrap(), Some(soon));
    assert_eq!(store.next_due_after(soon).await.unwrap(), Some(later));
    assert_eq!(store.next_due_after(later).await.unwrap(), None);
}

/// A direct enqueue (test send) reaches one webhook whatever it subscribes to, and only a
/// webhook of the same account.
pub async fn direct_enqueue_reaches_one_webhook_whatever_it_subscribes_to(store: &dyn Store) {
    let acc = account(store, "a").await;
    let wh = webhook(store, &acc, 10).await;
    webhook(store, &acc, 10).await;
    let mut test = event(&acc, None, RoutingAttributes::default());
    test.event_type = "webhook.test".into();
    let rules = FanoutRules::default();
    let id = store.enqueue_direct(&wh, test.clone(), &rules).await.unwrap().expect("the account's webhook");
    let claimed = store.claim_due(t0(), LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 1, "one webhook only");
    assert_eq!((&claimed[0].delivery_id, &claimed[0].webhook_id), (&id, &wh));
    assert_eq!(claimed[0].event_type, "webhook.test");
    let other = account(store, "b").await;
    let mut foreign = event(&other, None, RoutingAttributes::default());
    foreign.event_type = "webhook.test".into();
    assert!(store.enqueue_direct(&wh, foreign, &rules).await.unwrap().is_none());
}

/// Accounts: created with a first key, found by key hash and by name, more keys added; a
/// name is unique; the store answers a ping.
pub async fn accounts_are_found_by_key_and_name(store: &dyn Store) {
    store.ping().await.unwrap();
    assert_eq!(store.account_count().await.unwrap(), 0);
    let a = store.create_account("acme", "hash-1", t0()).await.unwrap();
    assert_eq!(store.account_count().await.unwrap(), 1);
    assert!(matches!(store.create_account("acme", "hash-2", t0()).await, Err(StoreError::AlreadyExists)));
    assert_eq!(store.account_by_key_hash("hash-1").await.unwrap().map(|x| x.id), Some(a.id.clone()));
    assert!(store.account_by_key_hash("hash-2").await.unwrap().is_none());
    store.add_api_key(&a.id, "hash-2", t0()).await.unwrap();
    assert_eq!(store.account_by_key_hash("hash-2").await.unwrap().map(|x| x.id), Some(a.id.clone()));
    assert_eq!(store.account_by_name("acme").await.unwrap().map(|x| x.id), Some(a.id));
    assert!(store.account_by_name("other").await.unwrap().is_none());
}

/// A publish that creates claimable work raises the work signal (the engine's wake-up).
pub async fn a_publish_raises_the_work_signal(store: &dyn Store) {
    let acc = account(store, "a").await;
    webhook(store, &acc, 10).await;
    let signal = store.work_signal();
    // Drain wake-ups from the set-up (and, on PostgreSQL, the listener's first connect)
    // until the signal has been quiet for 300 ms; then only the publish can raise it.
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while tokio::time::timeout(Duration::from_millis(300), signal.raised()).await.is_ok() {}
    });
    drained.await.expect("the signal goes quiet");
    publish(store, &acc, t0()).await;
    tokio::time::timeout(Duration::from_secs(10), signal.raised()).await.expect("the publish raised the signal");
}
