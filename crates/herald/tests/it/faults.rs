//! Store faults: the real store (SQLite or PostgreSQL) behind a decorator that fails the
//! engine's calls, refuses some outcomes, or loses event bodies, as a plan says.

use crate::support::*;
use async_trait::async_trait;
use herald_domain::{AccountId, AgentAddress, DeliveryId, MessageId, WebhookId};
use herald_store::*;
use serde_json::Value;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;
use time::OffsetDateTime;

/// What the decorator does wrong; shared with the test, which may change it as it goes.
#[derive(Default)]
struct Faults {
    claim_failures: AtomicU32,
    record_failures: AtomicU32,
    /// Claims come back without bodies, as if the events had been deleted.
    strip_bodies: AtomicBool,
    /// Any outcome batch holding an outcome of this webhook that carries the receiver's
    /// answer is refused as invalid data.
    refuse_outcomes_of: Mutex<Option<String>>,
    /// Ingests (inbound mail) fail as if the store were down.
    ingest_failures: AtomicU32,
    /// While true, recording outcomes waits (a slow store commit).
    hold_records: tokio::sync::watch::Sender<bool>,
}

struct Flaky {
    inner: Arc<dyn Store>,
    faults: Arc<Faults>,
}

fn flaky(faults: &Arc<Faults>) -> Option<herald::StoreWrapper> {
    let faults = faults.clone();
    Some(Box::new(move |inner| Arc::new(Flaky { inner, faults })))
}

fn injected() -> StoreError {
    StoreError::Unavailable("injected fault".into())
}

fn take(n: &AtomicU32) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1)).is_ok()
}

/// Passes everything through to the real store, except what the plan says.
#[async_trait]
impl Health for Flaky {
    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }
}

#[async_trait]
impl Accounts for Flaky {
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
    async fn account_exists(&self, a: &AccountId) -> StoreResult<bool> {
        self.inner.account_exists(a).await
    }
}

#[async_trait]
impl Webhooks for Flaky {
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
    async fn rotate_secret(&self, r: Rotation) -> StoreResult<Rotated> {
        self.inner.rotate_secret(r).await
    }
}

#[async_trait]
impl Agents for Flaky {
    async fn create_agent(&self, n: NewAgent, l: u32) -> StoreResult<Agent> {
        self.inner.create_agent(n, l).await
    }
    async fn get_agent(&self, a: &AccountId, x: &AgentAddress) -> StoreResult<Option<Agent>> {
        self.inner.get_agent(a, x).await
    }
    async fn list_agents(&self, a: &AccountId, p: Page) -> StoreResult<Vec<Agent>> {
        self.inner.list_agents(a, p).await
    }
    async fn update_agent(
        &self,
        a: &AccountId,
        x: &AgentAddress,
        p: AgentPatch,
        t: OffsetDateTime,
    ) -> StoreResult<Option<Agent>> {
        self.inner.update_agent(a, x, p, t).await
    }
    async fn delete_agent(&self, a: &AccountId, x: &AgentAddress, t: OffsetDateTime) -> StoreResult<bool> {
        self.inner.delete_agent(a, x, t).await
    }
    async fn find_recipient(&self, x: &AgentAddress) -> StoreResult<Option<Recipient>> {
        self.inner.find_recipient(x).await
    }
}

#[async_trait]
impl Inbox for Flaky {
    async fn ingest(&self, items: Vec<InboundItem>, r: &InboundRules) -> StoreResult<Vec<Ingested>> {
        if take(&self.faults.ingest_failures) {
            return Err(injected());
        }
        self.inner.ingest(items, r).await
    }
    async fn conversation_of(&self, a: &AccountId, x: &AgentAddress, ids: &[String]) -> StoreResult<Option<String>> {
        self.inner.conversation_of(a, x, ids).await
    }
    async fn list_messages(&self, a: &AccountId, x: &AgentAddress, p: Page) -> StoreResult<Vec<Message>> {
        self.inner.list_messages(a, x, p).await
    }
    async fn get_message(&self, a: &AccountId, id: &MessageId) -> StoreResult<Option<Message>> {
        self.inner.get_message(a, id).await
    }
    async fn raw_message(&self, a: &AccountId, id: &MessageId) -> StoreResult<Option<Vec<u8>>> {
        self.inner.raw_message(a, id).await
    }
}

#[async_trait]
impl EventLog for Flaky {
    async fn publish(&self, e: NewEvent, r: &FanoutRules) -> StoreResult<Published> {
        self.inner.publish(e, r).await
    }
    async fn enqueue_direct(&self, w: &WebhookId, e: NewEvent, r: &FanoutRules) -> StoreResult<Option<DeliveryId>> {
        self.inner.enqueue_direct(w, e, r).await
    }
    async fn events_after(
        &self,
        a: &AccountId,
        c: &EventCursor,
        u: OffsetDateTime,
        t: OffsetDateTime,
        n: u32,
    ) -> StoreResult<Vec<EventRouting>> {
        self.inner.events_after(a, c, u, t, n).await
    }
    async fn enqueue_recovered(
        &self,
        a: &AccountId,
        w: &WebhookId,
        b: RecoveredBatch,
        t: OffsetDateTime,
    ) -> StoreResult<Option<u64>> {
        self.inner.enqueue_recovered(a, w, b, t).await
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
    async fn custom_event_type_exists(&self, a: &AccountId, n: &str) -> StoreResult<bool> {
        self.inner.custom_event_type_exists(a, n).await
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
}

#[async_trait]
impl Deliveries for Flaky {
    async fn list_deliveries(&self, q: DeliveryQuery) -> StoreResult<Vec<Delivery>> {
        self.inner.list_deliveries(q).await
    }
    async fn get_delivery(&self, a: &AccountId, id: &DeliveryId) -> StoreResult<Option<(Delivery, Vec<Attempt>)>> {
        self.inner.get_delivery(a, id).await
    }
    async fn retry_delivery(&self, a: &AccountId, id: &DeliveryId, t: OffsetDateTime) -> StoreResult<Option<Delivery>> {
        self.inner.retry_delivery(a, id, t).await
    }
    async fn skip_delivery(&self, a: &AccountId, id: &DeliveryId, t: OffsetDateTime) -> StoreResult<Option<Delivery>> {
        self.inner.skip_delivery(a, id, t).await
    }
}

#[async_trait]
impl Idempotency for Flaky {
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
}

#[async_trait]
impl PortalSessions for Flaky {
    async fn create_portal_link(&self, link: NewPortalLink) -> StoreResult<()> {
        self.inner.create_portal_link(link).await
    }
    async fn redeem_portal_link(&self, t: &str, s: &str, now: OffsetDateTime) -> StoreResult<Option<PortalSession>> {
        self.inner.redeem_portal_link(t, s, now).await
    }
    async fn portal_session(&self, s: &str, now: OffsetDateTime) -> StoreResult<Option<PortalSession>> {
        self.inner.portal_session(s, now).await
    }
    async fn end_portal_session(&self, s: &str, now: OffsetDateTime) -> StoreResult<()> {
        self.inner.end_portal_session(s, now).await
    }
}

#[async_trait]
impl AttemptStats for Flaky {
    async fn attempt_counts(&self, w: &AttemptWindow) -> StoreResult<Vec<AttemptCount>> {
        self.inner.attempt_counts(w).await
    }
}

#[async_trait]
impl SigningKeys for Flaky {
    async fn signing_keys(&self, a: &AccountId, now: OffsetDateTime) -> StoreResult<Vec<SigningKeyInfo>> {
        self.inner.signing_keys(a, now).await
    }
    async fn ensure_signing_key(
        &self,
        a: &AccountId,
        k: &herald_domain::SigningKeyPair,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        self.inner.ensure_signing_key(a, k, now).await
    }
    async fn rotate_signing_key(
        &self,
        a: &AccountId,
        k: &herald_domain::SigningKeyPair,
        grace_until: OffsetDateTime,
        keep: usize,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        self.inner.rotate_signing_key(a, k, grace_until, keep, now).await
    }
}

#[async_trait]
impl Queue for Flaky {
    async fn claim_due_with_finished(
        &self,
        t: OffsetDateTime,
        l: Duration,
        n: u32,
        finished: &[(DeliveryId, String)],
    ) -> StoreResult<Vec<Claimed>> {
        if take(&self.faults.claim_failures) {
            return Err(injected());
        }
        let mut claimed = self.inner.claim_due_with_finished(t, l, n, finished).await?;
        if self.faults.strip_bodies.load(Ordering::SeqCst) {
            claimed.iter_mut().for_each(|c| c.body = None);
        }
        Ok(claimed)
    }
    async fn record_batch(&self, o: &[Outcome], t: OffsetDateTime) -> StoreResult<Recorded> {
        if take(&self.faults.record_failures) {
            return Err(injected());
        }
        let _ = self.faults.hold_records.subscribe().wait_for(|held| !held).await;
        let refused = self.faults.refuse_outcomes_of.lock().unwrap().clone();
        if o.iter().any(|o| Some(o.webhook_id.as_str()) == refused.as_deref() && o.result.response_body.is_some()) {
            return Err(StoreError::Invalid("injected refusal".into()));
        }
        self.inner.record_batch(o, t).await
    }
    async fn release_leases(&self, l: &[(DeliveryId, String)], t: OffsetDateTime) -> StoreResult<()> {
        self.inner.release_leases(l, t).await
    }
    async fn next_due_after(&self, t: OffsetDateTime) -> StoreResult<Option<OffsetDateTime>> {
        self.inner.next_due_after(t).await
    }
    fn work_signal(&self) -> WorkSignal {
        self.inner.work_signal()
    }
}

#[async_trait]
impl Maintenance for Flaky {
    async fn delete_expired(&self, t: OffsetDateTime, b: u32) -> StoreResult<u64> {
        self.inner.delete_expired(t, b).await
    }
    async fn auto_disable(
        &self,
        since: OffsetDateTime,
        n: u32,
        t: OffsetDateTime,
    ) -> StoreResult<Vec<(AccountId, WebhookId)>> {
        self.inner.auto_disable(since, n, t).await
    }
    async fn prune_secrets(&self, t: OffsetDateTime) -> StoreResult<u64> {
        self.inner.prune_secrets(t).await
    }
}

#[async_trait]
impl QueueState for Flaky {
    async fn queue_gauges(&self, t: OffsetDateTime) -> StoreResult<QueueGauges> {
        self.inner.queue_gauges(t).await
    }
}

async fn transient_store_errors_never_count_as_attempts_or_fail_deliveries(backend: Backend) {
    let rx = Receiver::start().await;
    let faults = Arc::new(Faults { claim_failures: 3.into(), record_failures: 3.into(), ..Default::default() });
    let Some(app) = spawn_on(backend, Options { wrap_store: flaky(&faults), ..Default::default() }).await else {
        return;
    };
    let (wh, _) = app.webhook(&rx.url("flaky")).await;
    app.publish_received().await;
    let d = app.wait_delivery(&wh, "delivered despite store errors", |d| d["status"] == "delivered").await;
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["attempt_log"].as_array().unwrap().len(), 1);
    assert_eq!(rx.received("flaky").len(), 1, "exactly one request: failed recordings are retried, not re-sent");
}

/// A webhook's `max_in_flight` counts requests in flight, not outcomes waiting to be
/// recorded: with every recording held up, a webhook capped at one request gets its second
/// delivery once the first request ends (the finished-lease discount stops at the cap, so a
/// stalled recorder lets it run at most one cap ahead); never two at once, none sent twice.
async fn finished_requests_free_their_slot_before_the_outcome_is_recorded(backend: Backend) {
    let rx = Receiver::start().await;
    let faults = Arc::new(Faults::default());
    // No poll to fall back on: the wake-ups alone must carry the deliveries.
    let opts = Options {
        wrap_store: flaky(&faults),
        tweak: Box::new(|s| s.poll_interval = Duration::from_secs(3600)),
        ..Default::default()
    };
    let Some(app) = spawn_on(backend, opts).await else {
        return;
    };
    let wh = app
        .create_webhook(serde_json::json!({"url": rx.url("capped"), "events": ["email.received"], "max_in_flight": 1}))
        .await;
    let wh = wh["id"].as_str().unwrap().to_owned();
    faults.hold_records.send_replace(true);
    // The first request is held open while the other two are due: a claim that ignored the
    // cap would send them beside it.
    rx.always("capped", Reply::status(200).gated());
    for _ in 0..3 {
        app.publish_received().await;
    }
    rx.wait_for("capped", 1).await;
    rx.open_gate();
    rx.wait_for("capped", 2).await;
    faults.hold_records.send_replace(false);
    eventually("all three recorded as delivered", || async {
        let ds = app.deliveries(&wh).await;
        (ds.len() == 3 && ds.iter().all(|d| d["status"] == "delivered" && d["attempts"] == 1)).then_some(())
    })
    .await;
    assert_eq!(rx.received("capped").len(), 3, "none sent twice");
    assert_eq!(rx.max_in_flight("capped"), 1, "the cap held");
}

/// A delivery whose event is gone is never POSTed (an empty body would be signed and
/// "delivered"): it fails at once with a clear error.
async fn a_delivery_without_its_event_body_is_never_sent(backend: Backend) {
    let rx = Receiver::start().await;
    let faults = Arc::new(Faults { strip_bodies: true.into(), ..Default::default() });
    let Some(app) = spawn_on(backend, Options { wrap_store: flaky(&faults), ..Default::default() }).await else {
        return;
    };
    let (wh, _) = app.webhook(&rx.url("nobody")).await;
    app.publish_received().await;
    let d = app.wait_delivery(&wh, "failed without a send", |d| d["status"] == "failed").await;
    assert_eq!(d["attempts"], 1);
    assert!(d["last_error"].as_str().unwrap().contains("no longer exists"), "{d}");
    assert!(rx.received("nobody").is_empty(), "nothing was POSTed");
}

/// Outcomes the store refuses (one webhook's) are isolated by splitting the batch: every
/// other webhook's outcomes are recorded, and the refused ones are recorded without the
/// receiver's text, so each attempt still counts and nothing is re-sent.
async fn a_refused_outcome_never_blocks_the_others(backend: Backend) {
    let rx = Receiver::start().await;
    let faults = Arc::new(Faults::default());
    let Some(app) = spawn_on(backend, Options { wrap_store: flaky(&faults), ..Default::default() }).await else {
        return;
    };
    let bad = app
        .create_webhook(serde_json::json!({"url": rx.url("bad"), "events": ["email.received"], "max_in_flight": 16}))
        .await;
    let bad = bad["id"].as_str().unwrap().to_owned();
    let good = app
        .create_webhook(serde_json::json!({"url": rx.url("good"), "events": ["email.received"], "max_in_flight": 16}))
        .await;
    let good = good["id"].as_str().unwrap().to_owned();
    *faults.refuse_outcomes_of.lock().unwrap() = Some(bad.clone());
    rx.always("bad", Reply::status(200).body("an answer the store refuses"));
    for _ in 0..20 {
        app.publish_received().await;
    }
    rx.wait_for("bad", 20).await;
    eventually("every outcome of the healthy webhook recorded", || async {
        let ds = app.deliveries(&good).await;
        (ds.len() == 20 && ds.iter().all(|d| d["status"] == "delivered")).then_some(())
    })
    .await;
    let ds = eventually("the refused outcomes recorded without the receiver's text", || async {
        let ds = app.deliveries(&bad).await;
        (ds.len() == 20 && ds.iter().all(|d| d["status"] == "delivered" && d["attempts"] == 1)).then_some(ds)
    })
    .await;
    let d = app.delivery(ds[0]["id"].as_str().unwrap()).await;
    assert!(d["attempt_log"][0].get("response_body").is_none_or(Value::is_null), "{d}");
    assert_eq!(rx.received("bad").len(), 20, "nothing re-sent");
}

/// With the store down, shutdown stops retrying unrecorded outcomes after the grace period
/// instead of hanging (the leases expire and those deliveries are sent again).
#[tokio::test]
async fn shutdown_does_not_hang_on_outcomes_a_dead_store_refuses() {
    let rx = Receiver::start().await;
    let faults = Arc::new(Faults { record_failures: u32::MAX.into(), ..Default::default() });
    let app = spawn_app_with(Options {
        wrap_store: flaky(&faults),
        tweak: Box::new(|s| s.shutdown_grace = Duration::from_millis(300)),
        ..Default::default()
    })
    .await;
    app.webhook(&rx.url("down")).await;
    app.publish_received().await;
    rx.wait_for("down", 1).await;
    // Without the deadline the recorder retried for ~20 minutes; the test's deadline is 20 s.
    tokio::time::timeout(DEADLINE, app.stop()).await.expect("shutdown finished within the deadline");
}

/// A store failure while committing a message is answered `451` (the sender retries), never
/// `250`; the retry is then accepted and delivered once. (That a failed ingest leaves
/// nothing behind is the conformance case `a_failed_ingest_stores_nothing`.)
async fn a_store_failure_answers_451_and_the_retry_is_accepted(backend: Backend) {
    use crate::inbound::{create_agent, raw_message, send, with_smtp};
    let rx = Receiver::start().await;
    let faults = Arc::new(Faults { ingest_failures: 1.into(), ..Default::default() });
    let Some(app) = spawn_on(backend, Options { wrap_store: flaky(&faults), ..with_smtp() }).await else { return };
    create_agent(&app, "bot@agents.test", Some(rx.url("bot"))).await;
    let raw = raw_message("once@sender.test", "bot@agents.test");
    let answer = send(app.smtp_addr.unwrap(), "a@sender.test", &["bot@agents.test"], &raw).await.unwrap_err();
    assert!(answer.contains("451") || answer.contains("4.3.0"), "{answer}");
    let (_, list) = app.call(reqwest::Method::GET, "/api/v1/agents/bot@agents.test/messages", None).await;
    assert!(list["items"].as_array().unwrap().is_empty(), "nothing of the message was stored: {list}");
    let (_, events) = app.call(reqwest::Method::GET, "/api/v1/events", None).await;
    assert!(events["items"].as_array().unwrap().is_empty(), "no event either: {events}");
    let answer = send(app.smtp_addr.unwrap(), "a@sender.test", &["bot@agents.test"], &raw).await.unwrap();
    assert!(answer.starts_with("250"), "{answer}");
    rx.wait_for("bot", 1).await;
}

crate::on_both_stores!(
    a_store_failure_answers_451_and_the_retry_is_accepted,
    transient_store_errors_never_count_as_attempts_or_fail_deliveries,
    a_delivery_without_its_event_body_is_never_sent,
    a_refused_outcome_never_blocks_the_others,
    finished_requests_free_their_slot_before_the_outcome_is_recorded,
);
