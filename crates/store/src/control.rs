//! Delivery controls as both SQL backends store them, and what a batch of outcomes does to
//! them (the adaptive limit, `Retry-After` pauses): decided once here, persisted by each.

use crate::{Outcome, StoreError, StoreResult};
use herald_domain::adaptive::{self, AdaptiveState, Sample, Signal};
use herald_domain::{Concurrency, DeliveryControl, to_millis};
use std::time::Duration;

/// A schedule as stored: a JSON array of milliseconds.
pub fn schedule_to_json(steps: &[Duration]) -> String {
    let ms: Vec<u64> = steps.iter().map(|d| d.as_millis() as u64).collect();
    crate::codec::to_json(&ms)
}

pub fn schedule_from_json(s: &str) -> StoreResult<Vec<Duration>> {
    let ms: Vec<u64> = crate::codec::parse_json(s)?;
    Ok(ms.into_iter().map(Duration::from_millis).collect())
}

/// The stored columns of a webhook's controls, in [`crate::webhook_columns!`] order:
/// concurrency, rate_limit_per_second, ordering, on_final_failure, retry_schedule, max_age_ms.
#[derive(Clone, Debug)]
pub struct ControlColumns {
    pub concurrency: &'static str,
    pub rate_limit_per_second: Option<i64>,
    pub ordering: &'static str,
    pub on_final_failure: &'static str,
    pub retry_schedule: Option<String>,
    pub max_age_ms: Option<i64>,
}

impl ControlColumns {
    pub fn of(c: &DeliveryControl) -> Self {
        Self {
            concurrency: c.concurrency.as_str(),
            rate_limit_per_second: c.rate_limit_per_second.map(i64::from),
            ordering: c.ordering.as_str(),
            on_final_failure: c.on_final_failure.as_str(),
            retry_schedule: c.retry_schedule.as_deref().map(schedule_to_json),
            max_age_ms: c.max_age.map(|d| d.as_millis() as i64),
        }
    }
}

/// The stored columns a [`crate::WebhookPatch`] sets: `None` leaves a column; for the
/// nullable ones, (whether to set, the value).
#[derive(Clone, Debug)]
pub struct PatchColumns {
    pub concurrency: Option<&'static str>,
    pub rate: (bool, Option<i64>),
    pub ordering: Option<&'static str>,
    pub on_final_failure: Option<&'static str>,
    pub retry_schedule: (bool, Option<String>),
    pub max_age_ms: (bool, Option<i64>),
}

impl PatchColumns {
    pub fn of(p: &crate::WebhookPatch) -> Self {
        Self {
            concurrency: p.concurrency.map(|c| c.as_str()),
            rate: (p.rate_limit_per_second.is_some(), p.rate_limit_per_second.flatten().map(i64::from)),
            ordering: p.ordering.map(|o| o.as_str()),
            on_final_failure: p.on_final_failure.map(|o| o.as_str()),
            retry_schedule: (
                p.retry_schedule.is_some(),
                p.retry_schedule.as_ref().and_then(|s| s.as_deref().map(schedule_to_json)),
            ),
            max_age_ms: (p.max_age.is_some(), p.max_age.flatten().map(|d| d.as_millis() as i64)),
        }
    }
}

/// What a claim needs of a webhook's controls, read from its stored columns (the same in
/// both backends): its token bucket, its lanes, its own retry policy.
#[derive(Clone, Debug)]
pub struct ClaimControl {
    pub rate: Option<u32>,
    pub bucket: herald_domain::rate::Bucket,
    pub fifo: bool,
    /// A final failure holds the lane.
    pub blocks: bool,
    pub retry_schedule: Option<Vec<Duration>>,
    pub max_age: Option<Duration>,
}

impl ClaimControl {
    /// From the columns `rate_limit_per_second, rate_tokens, rate_refilled_at, ordering,
    /// on_final_failure, retry_schedule, max_age_ms`.
    #[allow(clippy::too_many_arguments)]
    pub fn from_columns(
        rate: Option<i64>,
        tokens: f64,
        refilled_at_ms: i64,
        ordering: &str,
        on_final_failure: &str,
        retry_schedule: Option<String>,
        max_age_ms: Option<i64>,
    ) -> StoreResult<Self> {
        let control = DeliveryControl {
            ordering: herald_domain::OrderingMode::parse(ordering)
                .ok_or_else(|| StoreError::corrupt("ordering", ordering))?,
            on_final_failure: herald_domain::OnFinalFailure::parse(on_final_failure)
                .ok_or_else(|| StoreError::corrupt("on_final_failure", on_final_failure))?,
            ..DeliveryControl::default()
        };
        Ok(Self {
            rate: rate.map(|n| n.clamp(1, i64::from(u32::MAX)) as u32),
            bucket: herald_domain::rate::Bucket { tokens, refilled_at_ms },
            fifo: control.ordering == herald_domain::OrderingMode::Fifo,
            blocks: control.blocks_on_final_failure(),
            retry_schedule: retry_schedule.map(|s| schedule_from_json(&s)).transpose()?,
            max_age: max_age_ms.map(|ms| Duration::from_millis(ms.max(0) as u64)),
        })
    }

    /// Rows its tokens allow at `now_ms` (no limit without a rate).
    pub fn allowed(&self, now_ms: i64) -> i64 {
        self.rate.map_or(i64::from(u32::MAX), |rate| i64::from(self.bucket.available(rate, now_ms)))
    }

    /// The attempt deadline of a delivery created at `created_ms`.
    pub fn deadline(&self, created_ms: i64) -> Option<time::OffsetDateTime> {
        self.max_age.map(|age| herald_domain::from_millis(created_ms) + age)
    }
}

/// The attempts a delivery of a webhook with this schedule gets (`None`: the server's).
pub fn max_attempts(schedule: Option<&[Duration]>, server: u32) -> u32 {
    schedule.map_or(server, |s| s.len() as u32 + 1)
}

/// The in-flight limit a webhook starts with, or gets when its controls change: the
/// adaptive limit starts at `max_in_flight` (and decreases at the first sign of trouble);
/// it never stays above a lowered `max_in_flight`.
pub fn effective_limit(concurrency: Concurrency, max_in_flight: u32, current: Option<u32>) -> u32 {
    match (concurrency, current) {
        (Concurrency::Adaptive, Some(c)) => c.clamp(1, max_in_flight.max(1)),
        _ => max_in_flight,
    }
}

/// The samples of the applied outcomes, per webhook, in the order the attempts started.
pub fn samples_by_webhook(outcomes: &[Outcome], applied: impl Fn(&Outcome) -> bool) -> Vec<(String, Vec<Sample>)> {
    let mut out: Vec<(String, Vec<Sample>)> = Vec::new();
    for o in outcomes.iter().filter(|o| applied(o)) {
        let sample = Sample { started_ms: to_millis(o.result.started_at), signal: Signal::of(&o.result) };
        match out.iter_mut().find(|(w, _)| w == o.webhook_id.as_str()) {
            Some((_, v)) => v.push(sample),
            None => out.push((o.webhook_id.to_string(), vec![sample])),
        }
    }
    for (_, v) in &mut out {
        v.sort_by_key(|s| s.started_ms);
    }
    out
}

/// Per webhook, the instant its receiver asked (a `Retry-After` on 429/503) not to be sent
/// anything before: the whole webhook pauses, not only that delivery.
pub fn pauses(outcomes: &[Outcome], applied: impl Fn(&Outcome) -> bool, now_ms: i64) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = Vec::new();
    for o in outcomes.iter().filter(|o| applied(o)) {
        let Some(ra) = o.result.retry_after.filter(|_| matches!(o.result.status_code, 429 | 503)) else {
            continue;
        };
        let until = now_ms + ra.min(herald_domain::retry::MAX_RETRY_AFTER).as_millis() as i64;
        match out.iter_mut().find(|(w, _)| w == o.webhook_id.as_str()) {
            Some((_, u)) => *u = (*u).max(until),
            None => out.push((o.webhook_id.to_string(), until)),
        }
    }
    out
}

/// Steps a webhook's stored adaptive limit through a batch's samples: the new
/// `effective_max_in_flight` and state JSON.
pub fn adapt(
    effective: u32,
    max_in_flight: u32,
    state_json: Option<&str>,
    samples: &[Sample],
    now_ms: i64,
) -> StoreResult<(u32, String)> {
    let mut state: AdaptiveState = match state_json {
        Some(s) => serde_json::from_str(s).map_err(|e| StoreError::corrupt("adaptive state", e))?,
        None => AdaptiveState::default(),
    };
    let limit = adaptive::step(effective, max_in_flight, &mut state, samples, now_ms);
    Ok((limit, crate::codec::to_json(&state)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_round_trip_in_milliseconds() {
        let s = vec![Duration::from_millis(250), Duration::from_secs(60)];
        assert_eq!(schedule_to_json(&s), "[250,60000]");
        assert_eq!(schedule_from_json(&schedule_to_json(&s)).unwrap(), s);
        assert!(schedule_from_json("[-1]").is_err());
    }

    #[test]
    fn the_effective_limit_follows_the_mode_and_the_maximum() {
        assert_eq!(effective_limit(Concurrency::Fixed, 16, Some(3)), 16);
        assert_eq!(effective_limit(Concurrency::Adaptive, 16, None), 16);
        assert_eq!(effective_limit(Concurrency::Adaptive, 16, Some(3)), 3);
        assert_eq!(effective_limit(Concurrency::Adaptive, 2, Some(3)), 2);
        assert_eq!(max_attempts(Some(&[Duration::from_secs(1); 3]), 8), 4);
        assert_eq!(max_attempts(None, 8), 8);
    }
}
