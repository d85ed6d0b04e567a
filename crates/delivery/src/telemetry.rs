//! The engine's metrics (named and described for `/metrics` by the binary): attempts by
//! outcome class, their duration, slots in use, and the queue's gauges.

use herald_domain::{AttemptOutcome, WebhookId};
use herald_store::QueueGauges;
use time::OffsetDateTime;

/// Counts one finished attempt and records its duration; with `per_webhook` both carry the
/// webhook's id as a label (one series per webhook: opt-in, `HERALD_METRICS_PER_WEBHOOK`).
pub(crate) fn attempt_finished(result: &AttemptOutcome, webhook: &WebhookId, per_webhook: bool) {
    let outcome = result.outcome_class();
    let seconds = result.duration.as_secs_f64();
    if per_webhook {
        let id = webhook.to_string();
        metrics::counter!("herald_attempts_total", "outcome" => outcome, "webhook_id" => id.clone()).increment(1);
        metrics::histogram!("herald_attempt_duration_seconds", "webhook_id" => id).record(seconds);
    } else {
        metrics::counter!("herald_attempts_total", "outcome" => outcome).increment(1);
        metrics::histogram!("herald_attempt_duration_seconds").record(seconds);
    }
}

/// No attempt in flight yet, every global slot free.
pub(crate) fn slots_start(max: usize) {
    metrics::gauge!("herald_attempts_in_flight").set(0.0);
    metrics::gauge!("herald_delivery_slots_free").set(max as f64);
}

/// An attempt took a global slot (moved by one, never set from a read: no stale value wins).
pub(crate) fn slot_taken() {
    metrics::gauge!("herald_attempts_in_flight").increment(1.0);
    metrics::gauge!("herald_delivery_slots_free").decrement(1.0);
}

/// An attempt's request ended and gave its slot back.
pub(crate) fn slot_freed() {
    metrics::gauge!("herald_attempts_in_flight").decrement(1.0);
    metrics::gauge!("herald_delivery_slots_free").increment(1.0);
}

/// The queue as the store last counted it, at `now`.
pub(crate) fn queue(g: &QueueGauges, now: OffsetDateTime) {
    metrics::gauge!("herald_deliveries_pending").set(g.pending as f64);
    let age = g.oldest_due.map_or(0.0, |due| (now - due).as_seconds_f64().max(0.0));
    metrics::gauge!("herald_oldest_due_delivery_age_seconds").set(age);
    for reason in herald_domain::DisabledReason::ALL {
        let n = g.disabled.iter().find(|(r, _)| *r == reason).map_or(0, |(_, n)| *n);
        metrics::gauge!("herald_webhooks_disabled", "reason" => reason.as_str()).set(n as f64);
    }
}

/// An operational event stored (`source="herald"`) and the deliveries its fan-out made.
pub(crate) fn notice_published(deliveries: u32) {
    metrics::counter!("herald_events_published_total", "source" => "herald").increment(1);
    metrics::counter!("herald_deliveries_created_total").increment(u64::from(deliveries));
}

/// Operational events not published because their publisher was too far behind.
pub(crate) fn notices_dropped(n: usize) {
    metrics::counter!("herald_notices_dropped_total").increment(n as u64);
}
