//! The queue's state as gauges for `/metrics`: asked every few seconds by the engine,
//! never per scrape.

use crate::StoreResult;
use async_trait::async_trait;
use herald_domain::DisabledReason;
use time::OffsetDateTime;

/// The queue at one instant, the same whichever replica asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueGauges {
    /// Pending deliveries (due, leased or scheduled for later), of every webhook.
    pub pending: u64,
    /// The earliest `next_retry_at` at or before `now` among unexpired pending deliveries of
    /// enabled webhooks: the oldest delivery that is due and not yet taken. `None` when nothing is
    /// waiting (a leased delivery is not waiting: its `next_retry_at` is its lease's end).
    pub oldest_due: Option<OffsetDateTime>,
    /// Disabled webhooks by reason (agents' endpoints included; an agent without an endpoint
    /// URL is not a disabled webhook); reasons with none are left out.
    pub disabled: Vec<(DisabledReason, u64)>,
}

#[async_trait]
pub trait QueueState {
    /// Counts pending deliveries (a scan of the pending index: call it every few seconds,
    /// not per request), the oldest due one (one index probe per enabled webhook) and the
    /// disabled webhooks.
    async fn queue_gauges(&self, now: OffsetDateTime) -> StoreResult<QueueGauges>;
}

/// Folds `(disabled_reason, count)` rows: a webhook created disabled has no stored reason
/// and counts as `manual`; an unknown reason (a newer Herald's) is left out.
pub fn disabled_by_reason(rows: Vec<(Option<String>, i64)>) -> Vec<(DisabledReason, u64)> {
    let mut out: Vec<(DisabledReason, u64)> = Vec::new();
    for (reason, n) in rows {
        let Some(reason) = reason.as_deref().map_or(Some(DisabledReason::Manual), DisabledReason::parse) else {
            continue;
        };
        match out.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, total)) => *total += n as u64,
            None => out.push((reason, n as u64)),
        }
    }
    out.sort_by_key(|(r, _)| r.as_str());
    out
}
