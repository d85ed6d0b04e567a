//! Transient store errors: the real SQLite store behind a decorator that fails the first
//! calls of the engine's two store operations.

use crate::support::*;
use async_trait::async_trait;
use herald_domain::{AccountId, DeliveryId, DeliveryStatus, WebhookId};
use herald_store::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use time::OffsetDateTime;

struct Flaky {
    inner: Arc<dyn Store>,
    claim_failures: AtomicU32,
    record_failures: AtomicU32,
}

fn injected() -> StoreError {
    StoreError::Unavailable("injected fault".into())
}

fn take(n: &AtomicU32) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1)).is_ok()
}

#[async_trait]
impl Store for Flaky {
    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }
    async fn create_account(&self, n: &str, h: &str, t: OffsetDateTime) -> StoreResult<Account> {
        self.inner.create_account(n, h, t).await
    }
    async fn add_api_key(&self, a: &AccountId, h: &str, t: OffsetDateTime) -> StoreResult<()> {
        self.inner.add_api_key(a, h, t).await
    }
    async fn account_count(&self) -> StoreResult<u64> {
        self.inner.account_count().await
    }
    async fn account_by_key_hash(&self, h: &str) -> StoreResult<Option<Account>> {
        self.inner.account_by_key_hash(h).await
    }
    async fn account_by_name(&self, n: &str) -> StoreResult<Option<Account>> {
        self.inner.account_by_name(n).await
    }
    async fn custom_event_type_exists(&self, a: &AccountId, n: &str) -> StoreResult<bool> {
        self.inner.custom_event_type_exists(a, n).await
    }
    async fn create_webhook(&self, w: NewWebhook, l: u32) -> StoreResult<Webhook> {
        self.inner.create_webhook(w, l).await
    }
    async fn get_webhook(&self, a: &AccountId, id: &WebhookId) -> StoreResult<Option<Webhook>> {
        self.inner.get_webhook(a, id).await
    }
    async fn list_webhooks(&self, a: &AccountId, p: Page) -> StoreResult<Vec<Webhook>> {
        self.inner.list_webhooks(a, p).await
    }
    async fn update_webhook(
        &self,
        a: &AccountId,
        id: &WebhookId,
        p: WebhookPatch,
        t: OffsetDateTime,
    ) -> StoreResult<Option<Webhook>> {
        self.inner.update_webhook(a, id, p, t).await
    }
    async fn delete_webhook(&self, a: &AccountId, id: &WebhookId, t: OffsetDateTime) -> StoreResult<bool> {
        self.inner.delete_webhook(a, id, t).await
    }
    async fn publish(&self, e: NewEvent, r: &FanoutRules) -> StoreResult<Published> {
        self.inner.publish(e, r).await
    }
    async fn list_deliveries(
        &self,
        a: &AccountId,
        w: &WebhookId,
        s: Option<DeliveryStatus>,
        p: Page,
    ) -> StoreResult<Vec<Delivery>> {
        self.inner.list_deliveries(a, w, s, p).await
    }
    async fn get_delivery(&self, a: &AccountId, id: &DeliveryId) -> StoreResult<Option<(Delivery, Vec<Attempt>)>> {
        self.inner.get_delivery(a, id).await
    }
    async fn retry_delivery(&self, a: &AccountId, id: &DeliveryId, t: OffsetDateTime) -> StoreResult<Option<Delivery>> {
        self.inner.retry_delivery(a, id, t).await
    }
    async fn claim_due(&self, t: OffsetDateTime, l: Duration, n: u32) -> StoreResult<Vec<Claimed>> {
        if take(&self.claim_failures) {
            return Err(injected());
        }
        self.inner.claim_due(t, l, n).await
    }
    async fn record_outcomes(&self, o: &[Outcome], t: OffsetDateTime) -> StoreResult<Vec<bool>> {
        if take(&self.record_failures) {
            return Err(injected());
        }
        self.inner.record_outcomes(o, t).await
    }
    async fn release_leases(&self, l: &[(DeliveryId, String)], t: OffsetDateTime) -> StoreResult<()> {
        self.inner.release_leases(l, t).await
    }
    async fn next_due_after(&self, t: OffsetDateTime) -> StoreResult<Option<OffsetDateTime>> {
        self.inner.next_due_after(t).await
    }
    async fn delete_expired(&self, t: OffsetDateTime, b: u32) -> StoreResult<u64> {
        self.inner.delete_expired(t, b).await
    }
    async fn rotate_secret(
        &self,
        a: &AccountId,
        id: &WebhookId,
        s: &herald_domain::SigningSecret,
        g: OffsetDateTime,
        k: usize,
        t: OffsetDateTime,
    ) -> StoreResult<bool> {
        self.inner.rotate_secret(a, id, s, g, k, t).await
    }
    async fn auto_disable(&self, since: OffsetDateTime, n: u32, t: OffsetDateTime) -> StoreResult<Vec<WebhookId>> {
        self.inner.auto_disable(since, n, t).await
    }
    async fn prune_secrets(&self, t: OffsetDateTime) -> StoreResult<u64> {
        self.inner.prune_secrets(t).await
    }
    async fn enqueue_direct(&self, w: &WebhookId, e: NewEvent, r: &FanoutRules) -> StoreResult<Option<DeliveryId>> {
        self.inner.enqueue_direct(w, e, r).await
    }
    #[allow(clippy::too_many_arguments)]
    async fn recover(
        &self,
        a: &AccountId,
        w: &WebhookId,
        s: OffsetDateTime,
        u: OffsetDateTime,
        d: bool,
        r: &FanoutRules,
        t: OffsetDateTime,
    ) -> StoreResult<Option<u64>> {
        self.inner.recover(a, w, s, u, d, r, t).await
    }
    async fn list_events(&self, a: &AccountId, f: EventFilter, p: Page) -> StoreResult<Vec<Event>> {
        self.inner.list_events(a, f, p).await
    }
    async fn get_event(
        &self,
        a: &AccountId,
        id: &herald_domain::EventId,
    ) -> StoreResult<Option<(Event, Vec<Delivery>)>> {
        self.inner.get_event(a, id).await
    }
    async fn create_event_type(
        &self,
        a: &AccountId,
        n: &str,
        d: &str,
        t: OffsetDateTime,
    ) -> StoreResult<EventTypeRecord> {
        self.inner.create_event_type(a, n, d, t).await
    }
    async fn list_event_types(&self, a: &AccountId) -> StoreResult<Vec<EventTypeRecord>> {
        self.inner.list_event_types(a).await
    }
    async fn idempotent_response(
        &self,
        a: &AccountId,
        s: &str,
        k: &str,
        t: OffsetDateTime,
    ) -> StoreResult<Option<String>> {
        self.inner.idempotent_response(a, s, k, t).await
    }
    async fn save_idempotent_response(
        &self,
        a: &AccountId,
        s: &str,
        k: &str,
        r: &str,
        t: OffsetDateTime,
    ) -> StoreResult<()> {
        self.inner.save_idempotent_response(a, s, k, r, t).await
    }
    fn work_signal(&self) -> Arc<tokio::sync::Notify> {
        self.inner.work_signal()
    }
}

#[tokio::test]
async fn transient_store_errors_never_count_as_attempts_or_fail_deliveries() {
    let rx = Receiver::start().await;
    let app = spawn_app_with(Options {
        wrap_store: Some(Box::new(|inner| {
            Arc::new(Flaky { inner, claim_failures: AtomicU32::new(3), record_failures: AtomicU32::new(3) })
        })),
        ..Default::default()
    })
    .await;
    let (wh, _) = app.webhook(&rx.url("flaky")).await;
    app.publish_received().await;
    let d = app.wait_delivery(&wh, "delivered despite store errors", |d| d["status"] == "delivered").await;
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["attempt_log"].as_array().unwrap().len(), 1);
    assert_eq!(rx.received("flaky").len(), 1, "exactly one request: failed recordings are retried, not re-sent");
}
