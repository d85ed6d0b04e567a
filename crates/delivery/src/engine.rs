//! The dispatcher and the outcome recorder (the periodic passes are in `maintenance`).
//!
//! The dispatcher claims only as many rows as it has free global slots, and the store
//! only hands out rows of webhooks below their own cap, so a webhook at its cap never
//! holds a global slot: a slow endpoint cannot starve fast ones. A webhook's cap counts
//! requests in flight: the claim is told which of this engine's leases have finished but
//! are not recorded yet. The dispatcher wakes on the store's work signal (publish, enable,
//! retry, freed slot — also raised here when a request of a filled webhook ends), on the
//! next due time (asked after an empty claim; after a claim that took rows it claims again
//! within 100 ms), or on a poll fallback, whichever comes first.

use crate::notices::{self, About};
use crate::sender::Sender;
use herald_domain::{Clock, DeliveryId, RetryPolicy};
use herald_store::{EngineStore, FanoutRules, Outcome, StoreError};
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Global cap on in-flight requests.
    pub max_in_flight: usize,
    /// How long a claim hides a row from other workers.
    pub lease: Duration,
    /// Fallback poll when no signal arrives (due retries, expired leases of others).
    pub poll_interval: Duration,
    /// Most rows one claim takes.
    pub claim_batch: u32,
    /// How often expired rows are deleted.
    pub janitor_interval: Duration,
    /// Rows per janitor statement.
    pub janitor_batch: u32,
    /// How long shutdown waits for in-flight attempts.
    pub shutdown_grace: Duration,
    pub retry: RetryPolicy,
    /// How often the auto-disable / secret-pruning pass runs.
    pub auto_disable_interval: Duration,
    /// Window and threshold of the auto-disable rule (≥ threshold failed, 0 delivered).
    pub auto_disable_window: Duration,
    pub auto_disable_threshold: u32,
    /// How often the queue's gauges (pending, oldest due, disabled webhooks) are counted.
    pub gauges_interval: Duration,
    /// Label attempt metrics with the webhook's id (one series per webhook).
    pub metrics_per_webhook: bool,
    /// The fan-out of the operational events the engine publishes.
    pub fanout: FanoutRules,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 256,
            lease: Duration::from_secs(300),
            poll_interval: Duration::from_secs(5),
            claim_batch: 256,
            janitor_interval: Duration::from_secs(300),
            janitor_batch: 5000,
            shutdown_grace: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            auto_disable_interval: Duration::from_secs(300),
            auto_disable_window: Duration::from_secs(72 * 3600),
            auto_disable_threshold: 10,
            gauges_interval: Duration::from_secs(5),
            metrics_per_webhook: false,
            fanout: FanoutRules::default(),
        }
    }
}

/// The delivery engine; [`Engine::start`] runs it until the token is cancelled.
pub struct Engine {
    pub(crate) store: Arc<dyn EngineStore>,
    pub(crate) sender: Arc<Sender>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) cfg: EngineConfig,
    /// Cancellation time + shutdown grace, fixed when shutdown is first seen: in-flight
    /// attempts and the recorder's retries share this one window.
    stop_deadline: OnceLock<tokio::time::Instant>,
    /// Leases of attempts whose requests have ended and whose outcomes are not recorded yet:
    /// claims do not count them against their webhook's in-flight limit.
    finished: Mutex<HashMap<DeliveryId, String>>,
}

/// A running engine: await [`EngineHandle::stopped`] after cancelling its token.
pub struct EngineHandle {
    tracker: TaskTracker,
}

impl EngineHandle {
    /// Resolves when the dispatcher, recorder and janitor have finished.
    pub async fn stopped(self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// After a claim that took rows, the dispatcher claims again at the latest this soon.
const RECLAIM_AFTER_WORK: Duration = Duration::from_millis(100);

/// Leases held by attempts in flight, to give back on shutdown.
type Inflight = Arc<Mutex<HashMap<DeliveryId, String>>>;

impl Engine {
    pub fn new(store: Arc<dyn EngineStore>, sender: Arc<Sender>, clock: Arc<dyn Clock>, cfg: EngineConfig) -> Self {
        Self { store, sender, clock, cfg, stop_deadline: OnceLock::new(), finished: Mutex::default() }
    }

    fn shutdown_deadline(&self) -> tokio::time::Instant {
        *self.stop_deadline.get_or_init(|| tokio::time::Instant::now() + self.cfg.shutdown_grace)
    }

    pub fn start(self, cancel: CancellationToken) -> EngineHandle {
        let tracker = TaskTracker::new();
        let this = Arc::new(self);
        let (tx, rx) = mpsc::unbounded_channel();
        let (notices_tx, notices_rx) = mpsc::channel(notices::QUEUED_BATCHES);
        tracker.spawn(this.clone().record_loop(rx, notices_tx, cancel.clone()));
        tracker.spawn(this.clone().notice_loop(notices_rx));
        tracker.spawn(this.clone().janitor_loop(cancel.clone()));
        tracker.spawn(this.clone().maintenance_loop(cancel.clone()));
        tracker.spawn(this.clone().gauges_loop(cancel.clone()));
        tracker.spawn(this.dispatch_loop(cancel, tx));
        EngineHandle { tracker }
    }

    async fn dispatch_loop(
        self: Arc<Self>,
        cancel: CancellationToken,
        outcomes: mpsc::UnboundedSender<(Outcome, About)>,
    ) {
        let slots = Arc::new(Semaphore::new(self.cfg.max_in_flight));
        crate::telemetry::slots_start(self.cfg.max_in_flight);
        let attempts = TaskTracker::new();
        let inflight: Inflight = Arc::default();
        let signal = self.store.work_signal();
        let mut store_errors = 0u32;
        loop {
            if cancel.is_cancelled() {
                break;
            }

            let free = slots.available_permits();
            if free == 0 {
                // Every slot busy: wait for one (or shutdown), then claim again.
                tokio::select! {
                    p = slots.clone().acquire_owned() => drop(p),
                    _ = cancel.cancelled() => break,
                }
                continue;
            }
            let now = self.clock.now();
            let want = (free as u32).min(self.cfg.claim_batch);
            let finished: Vec<(DeliveryId, String)> =
                lock(&self.finished).iter().map(|(id, token)| (id.clone(), token.clone())).collect();
            let claimed = match self.store.claim_due_with_finished(now, self.cfg.lease, want, &finished).await {
                Ok(c) => {
                    store_errors = 0;
                    c
                }
                Err(e) => {
                    store_errors += 1;
                    // The whole cause chain, under a stable field name.
                    tracing::warn!(error = %herald_store::error_chain(&e), "claim failed; retrying");
                    let backoff = Duration::from_millis(100 * u64::from(store_errors.min(50)));
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = cancel.cancelled() => break,
                    }
                    continue;
                }
            };
            let full = claimed.len() as u32 == want;
            let claimed_some = !claimed.is_empty();
            for c in claimed {
                let permit = slots.clone().try_acquire_owned().expect("claimed no more rows than free slots");
                crate::telemetry::slot_taken();
                lock(&inflight).insert(c.delivery_id.clone(), c.lease_token.clone());
                let this = self.clone();
                let tx = outcomes.clone();
                let inflight = inflight.clone();
                let signal = signal.clone();
                let filled_webhook = c.filled_webhook;
                // One span per attempt: every line it logs names the delivery.
                let span = tracing::debug_span!(
                    "attempt",
                    delivery_id = %c.delivery_id,
                    webhook_id = %c.webhook_id,
                    number = c.attempt
                );
                attempts.spawn(
                    async move {
                        let about = About {
                            account_id: c.account_id.clone(),
                            event_id: c.event_id.clone(),
                            event_type: c.event_type.clone(),
                            agent: c.agent_payload,
                        };
                        let outcome = this.run_attempt(c).await;
                        // Finished before the global slot is free: a claim made for that slot
                        // already discounts this lease.
                        lock(&inflight).remove(&outcome.delivery_id);
                        lock(&this.finished).insert(outcome.delivery_id.clone(), outcome.lease_token.clone());
                        drop(permit);
                        crate::telemetry::slot_freed();
                        if filled_webhook {
                            // Its slot is free now, not only once the outcome is recorded.
                            signal.raise();
                        }
                        let _ = tx.send((outcome, about));
                    }
                    .instrument(span),
                );
            }
            if full {
                continue;
            }
            // The next due time is asked for only after an empty claim (it probes every enabled
            // webhook). After a claim that took rows, claim again on the next signal or within
            // `RECLAIM_AFTER_WORK`, whichever is first: a retry scheduled meanwhile is then
            // found by that claim or by the next-due question of the empty one after it.
            let wait = if claimed_some {
                RECLAIM_AFTER_WORK
            } else {
                match self.store.next_due_after(now).await {
                    Ok(Some(at)) => {
                        let d = at - self.clock.now();
                        if d.is_negative() { Duration::ZERO } else { d.unsigned_abs() }
                    }
                    _ => self.cfg.poll_interval,
                }
            }
            .min(self.cfg.poll_interval);
            tokio::select! {
                // A raise since the last wait is stored, so none is missed while claiming.
                _ = signal.raised() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = cancel.cancelled() => break,
            }
        }
        // Shutdown: finish in-flight attempts up to the grace period, then give the
        // remaining leases back so another process can take them at once.
        attempts.close();
        if tokio::time::timeout_at(self.shutdown_deadline(), attempts.wait()).await.is_err() {
            let leases: Vec<(DeliveryId, String)> = lock(&inflight).drain().collect();
            tracing::warn!(count = leases.len(), "shutdown grace elapsed; releasing leases of unfinished attempts");
            if let Err(e) = self.store.release_leases(&leases, self.clock.now()).await {
                tracing::warn!(error = %herald_store::error_chain(&e), "could not release leases; they expire on their own");
            }
        }
        drop(outcomes);
    }

    /// Records outcomes in batches. An unavailable store is retried, never turned into an
    /// attempt or a failure (the lease keeps the row safe meanwhile), until the lease would
    /// have expired or the shutdown window closes. A batch the store refuses is split until
    /// the refused row stands alone, so one row never holds up the others; that row is then
    /// recorded without the receiver's text.
    async fn record_loop(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<(Outcome, About)>,
        notices_tx: mpsc::Sender<Vec<(herald_domain::AccountId, herald_domain::operational::Notice)>>,
        cancel: CancellationToken,
    ) {
        let mut batch = Vec::new();
        while rx.recv_many(&mut batch, 512).await > 0 {
            let (applied, gone) = self.record(batch.iter().map(|(o, _)| o.clone()).collect(), &cancel).await;
            // Recorded (or given up on: the lease then expires) — no longer the claims' concern.
            {
                let mut finished = lock(&self.finished);
                for (o, _) in &batch {
                    if finished.get(&o.delivery_id) == Some(&o.lease_token) {
                        finished.remove(&o.delivery_id);
                    }
                }
            }
            let notices = notices::after_outcomes(
                batch.iter().filter(|(o, _)| applied.contains(&o.delivery_id)).map(|(o, a)| (o, a)),
                &gone,
            );
            batch.clear();
            if !notices.is_empty() {
                // Published by their own task, in order: recording never waits for them. When
                // that task falls this far behind (a store that fails, a storm of failures),
                // notices are dropped and counted rather than queued without bound.
                if let Err(mpsc::error::TrySendError::Full(dropped)) = notices_tx.try_send(notices) {
                    crate::telemetry::notices_dropped(dropped.len());
                    tracing::warn!(count = dropped.len(), "operational events dropped: their publisher is behind");
                }
            }
        }
    }

    /// Records `batch`; returns the deliveries whose outcomes applied and the webhooks it
    /// disabled as gone.
    async fn record(
        &self,
        batch: Vec<Outcome>,
        cancel: &CancellationToken,
    ) -> (HashSet<DeliveryId>, HashSet<herald_domain::WebhookId>) {
        let mut applied_ids = HashSet::new();
        let mut gone = HashSet::new();
        // Each part, and whether it was already stripped of the receiver's text.
        let mut parts: Vec<(Vec<Outcome>, bool)> = vec![(batch, false)];
        let mut failures = 0u32;
        let mut failing_since: Option<tokio::time::Instant> = None;
        while let Some((mut part, stripped)) = parts.pop() {
            let err = match self.store.record_batch(&part, self.clock.now()).await {
                Ok(recorded) => {
                    let applied = recorded.applied;
                    gone.extend(recorded.disabled_gone);
                    (failures, failing_since) = (0, None);
                    applied_ids
                        .extend(part.iter().zip(&applied).filter(|(_, a)| **a).map(|(o, _)| o.delivery_id.clone()));
                    let stale = applied.iter().filter(|a| !**a).count();
                    if stale > 0 {
                        tracing::info!(stale, "outcomes not applied: lease taken over or delivery ended");
                    }
                    continue;
                }
                Err(e) => e,
            };
            let refused = !matches!(err, StoreError::Unavailable(_));
            // Refused data, or a part that keeps failing (a row the store misreports): split.
            if part.len() > 1 && (refused || failures >= 2) {
                tracing::warn!(error = %herald_store::error_chain(&err), rows = part.len(), "recording outcomes failed; splitting the batch");
                (failures, failing_since) = (0, None);
                let tail = part.split_off(part.len() / 2);
                parts.push((tail, stripped));
                parts.push((part, stripped));
                continue;
            }
            if refused {
                let o = &mut part[0];
                if !stripped {
                    tracing::warn!(error = %herald_store::error_chain(&err), delivery_id = %o.delivery_id, "the store refused an outcome; recording it without the receiver's text");
                    o.result.response_body = None;
                    o.result.error = (!o.result.is_success()).then(|| UNSTORABLE.to_owned());
                    parts.push((part, true));
                } else {
                    tracing::error!(error = %herald_store::error_chain(&err), delivery_id = %o.delivery_id, "the store refused an outcome; its lease will expire and it is attempted again");
                }
                continue;
            }
            failures += 1;
            let since = *failing_since.get_or_insert_with(tokio::time::Instant::now);
            let give_up = if cancel.is_cancelled() {
                tokio::time::Instant::now() >= self.shutdown_deadline()
            } else {
                // Past the lease the row is someone else's: the outcome could not apply anyway.
                since.elapsed() >= self.cfg.lease
            };
            if give_up {
                let left = part.len() + parts.iter().map(|(p, _)| p.len()).sum::<usize>();
                tracing::error!(error = %herald_store::error_chain(&err), outcomes = left, "giving up on recording outcomes; their leases expire and those deliveries are sent again");
                return (applied_ids, gone);
            }
            tracing::warn!(error = %herald_store::error_chain(&err), failures, "recording outcomes failed; retrying");
            parts.push((part, stripped));
            let backoff = Duration::from_millis(100 * u64::from(failures.min(20)));
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = cancel.cancelled(), if !cancel.is_cancelled() => {}
            }
        }
        (applied_ids, gone)
    }
}

/// The error recorded in place of a receiver's answer that the store refused.
const UNSTORABLE: &str = "the receiver's answer could not be stored";

/// Locks `m`, also after a panic elsewhere (the maps stay usable).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
