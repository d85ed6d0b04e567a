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
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
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
    async fn delete_webhook(
        &self,
        a: &AccountId,
        id: &WebhookId,
        t: OffsetDateTime,
    ) -> StoreResult<bool> {
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
    async fn get_delivery(
        &self,
        a: &AccountId,
        id: &DeliveryId,
    ) -> StoreResult<Option<(Delivery, Vec<Attempt>)>> {
        self.inner.get_delivery(a, id).await
    }
    async fn retry_delivery(
        &self,
        a: &AccountId,
        id: &DeliveryId,
        t: OffsetDateTime,
    ) -> StoreResult<Option<Delivery>> {
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
    async fn release_leases(
        &self,
        l: &[(DeliveryId, String)],
        t: OffsetDateTime,
    ) -> StoreResult<()> {
        self.inner.release_leases(l, t).await
    }
    async fn next_due_after(&self, t: OffsetDateTime) -> StoreResult<Option<OffsetDateTime>> {
        self.inner.next_due_after(t).await
    }
    async fn delete_expired(&self, t: OffsetDateTime, b: u32) -> StoreResult<u64> {
        self.inner.delete_expired(t, b).await
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
            Arc::new(Flaky {
                inner,
                claim_failures: AtomicU32::new(3),
                record_failures: AtomicU32::new(3),
            })
        })),
        ..Default::default()
    })
    .await;
    let (wh, _) = app.webhook(&rx.url("flaky")).await;
    app.publish_received().await;
    let d = app
        .wait_delivery(&wh, "delivered despite store errors", |d| {
            d["status"] == "delivered"
        })
        .await;
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["attempt_log"].as_array().unwrap().len(), 1);
    assert_eq!(
        rx.received("flaky").len(),
        1,
        "exactly one request: failed recordings are retried, not re-sent"
    );
}
