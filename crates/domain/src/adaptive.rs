//! The adaptive in-flight limit of a webhook (AIMD), as a pure function of what its
//! attempts showed. The store keeps the state in the webhook's row, so every replica steps
//! the same limit.
//!
//! - **Increase**: after a full window of fast successes (as many as the limit) of attempts
//!   started since the limit last changed, the limit grows by one, up to `max_in_flight`.
//! - **Decrease**: on congestion — 429, 503, a timeout, a refused connection, or a success
//!   far slower than the recent baseline — the limit halves (at least 1), once per round
//!   trip: congestion shown by attempts that started before the last decrease is already
//!   answered.
//! - **Ceiling**: the limit where congestion was last seen. Growth holds one below it, so a
//!   receiver with a hard capacity of N settles at N without a 503 per window; after
//!   `probe_after` fast successes at that level growth may reach the ceiling again (a probe).
//!   A probe that succeeds for a full window lifts the ceiling; one that fails goes back one
//!   step (not half) and doubles the wait before the next.

use serde::{Deserialize, Serialize};

/// Successes held below a fresh ceiling before probing it.
pub const FIRST_PROBE_AFTER: u32 = 200;
/// The longest wait between probes, in successes.
pub const LAST_PROBE_AFTER: u32 = 25_600;
/// A success this many times slower than the baseline (and [`SLOW_MARGIN_MS`] slower) is congestion.
pub const SLOW_FACTOR: f64 = 4.0;
pub const SLOW_MARGIN_MS: f64 = 250.0;
/// A success within twice the baseline (plus 10 ms) counts toward growth.
const FAST_FACTOR: f64 = 2.0;
const FAST_MARGIN_MS: f64 = 10.0;
/// Weight of a new sample in the latency baseline.
const EWMA_WEIGHT: f64 = 0.1;

/// What the limit remembers between batches (stored as JSON in the webhook's row).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveState {
    /// Fast successes counted toward the next increase (or, held below the ceiling, the next probe).
    #[serde(default)]
    pub credit: u32,
    /// The limit at which congestion was last seen.
    #[serde(default)]
    pub ceiling: Option<u32>,
    /// Whether growth may reach the ceiling (a probe is on).
    #[serde(default)]
    pub probing: bool,
    /// Fast successes at the held level before the next probe.
    #[serde(default)]
    pub probe_after: u32,
    /// Recent latency of successful attempts, ms (EWMA).
    #[serde(default)]
    pub baseline_ms: Option<f64>,
    /// When the limit last decreased (ms since the epoch).
    #[serde(default)]
    pub decreased_at_ms: i64,
    /// When the limit last changed: only attempts started after it count toward growth.
    #[serde(default)]
    pub changed_at_ms: i64,
}

/// What one attempt says about the receiver's capacity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Signal {
    /// A 2xx after this many milliseconds.
    Success { duration_ms: u64 },
    /// 429, 503, timeout, refused connection.
    Congestion,
    /// Anything else (a 4xx or 500 says nothing about load).
    Neutral,
}

impl Signal {
    /// The signal of an attempt's outcome.
    pub fn of(o: &crate::AttemptOutcome) -> Self {
        use crate::AttemptKind;
        if o.is_success() {
            return Self::Success { duration_ms: o.duration.as_millis() as u64 };
        }
        match (o.kind, o.status_code) {
            (AttemptKind::Response, 429 | 503) | (AttemptKind::Timeout | AttemptKind::ConnectError, _) => {
                Self::Congestion
            }
            _ => Self::Neutral,
        }
    }
}

/// One attempt's signal and when it started (ms since the epoch).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub started_ms: i64,
    pub signal: Signal,
}

/// Steps the limit `limit` (1..=`max`) through `samples` (one batch of one webhook's
/// outcomes, recorded at `now_ms`); returns the new limit and updates `state`.
pub fn step(limit: u32, max: u32, state: &mut AdaptiveState, samples: &[Sample], now_ms: i64) -> u32 {
    let max = max.max(1);
    let mut limit = limit.clamp(1, max);
    if state.probe_after == 0 {
        state.probe_after = FIRST_PROBE_AFTER;
    }
    for s in samples {
        let congested = match s.signal {
            Signal::Congestion => true,
            Signal::Success { duration_ms } => {
                let d = duration_ms as f64;
                match state.baseline_ms {
                    Some(b) if d > b * SLOW_FACTOR && d > b + SLOW_MARGIN_MS => true,
                    b => {
                        let fast = b.is_none_or(|b| d <= b * FAST_FACTOR + FAST_MARGIN_MS);
                        state.baseline_ms = Some(b.map_or(d, |b| b + EWMA_WEIGHT * (d - b)));
                        if fast && s.started_ms > state.changed_at_ms {
                            let grown = grow(limit, max, state);
                            if grown != limit {
                                state.changed_at_ms = now_ms;
                            }
                            limit = grown;
                        }
                        false
                    }
                }
            }
            Signal::Neutral => false,
        };
        // Congestion of an attempt that started before the last decrease was answered by it.
        if congested && s.started_ms > state.decreased_at_ms {
            let failed_probe = state.probing && state.ceiling == Some(limit);
            state.probe_after =
                if failed_probe { (state.probe_after * 2).min(LAST_PROBE_AFTER) } else { FIRST_PROBE_AFTER };
            state.ceiling = Some(limit);
            state.probing = false;
            state.credit = 0;
            state.decreased_at_ms = now_ms;
            state.changed_at_ms = now_ms;
            // A failed probe goes back to the level known to work; other congestion halves.
            limit = if failed_probe { limit - 1 } else { limit / 2 }.max(1);
        }
    }
    limit
}

/// One fast success: credit, and growth once a window is full.
fn grow(limit: u32, max: u32, state: &mut AdaptiveState) -> u32 {
    state.credit = state.credit.saturating_add(1);
    let bound = match state.ceiling {
        Some(c) if !state.probing => c.saturating_sub(1).max(1),
        Some(c) => c,
        None => max,
    }
    .min(max);
    if state.credit < limit {
        return limit;
    }
    if limit < bound {
        state.credit = 0;
        return limit + 1;
    }
    match state.ceiling {
        // A full window at the ceiling without congestion: the probe succeeded.
        Some(c) if state.probing && limit >= c => {
            state.ceiling = None;
            state.probing = false;
            state.probe_after = FIRST_PROBE_AFTER;
            state.credit = 0;
            (limit + 1).min(max)
        }
        Some(_) if !state.probing && state.credit >= state.probe_after => {
            state.probing = true;
            state.credit = 0;
            limit
        }
        // At max (or waiting for the probe): keep counting, bounded.
        _ => {
            state.credit = state.credit.min(state.probe_after.max(limit));
            limit
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receiver that serves `capacity` requests at once and answers 503 beyond: each round
    /// sends `limit` requests, all started after the previous round's outcomes were recorded.
    fn run(capacity: u32, max: u32, rounds: usize, start: u32, state: &mut AdaptiveState) -> (u32, Vec<u32>) {
        let mut limit = start;
        let mut rejected = Vec::new();
        let mut t = 1_000i64;
        for _ in 0..rounds {
            t += 10;
            let samples: Vec<Sample> = (0..limit)
                .map(|i| Sample {
                    started_ms: t,
                    signal: if i < capacity { Signal::Success { duration_ms: 5 } } else { Signal::Congestion },
                })
                .collect();
            rejected.push(limit.saturating_sub(capacity));
            t += 10;
            limit = step(limit, max, state, &samples, t);
        }
        (limit, rejected)
    }

    #[test]
    fn a_receiver_of_capacity_n_is_found_and_then_served_without_rejections() {
        let mut state = AdaptiveState::default();
        let (limit, rejected) = run(8, 64, 40, 64, &mut state);
        assert_eq!(limit, 8, "{rejected:?}");
        let total: u32 = rejected.iter().sum();
        assert!(total < 120, "{total} rejected while converging: {rejected:?}");
        // Held at 8 with no rejection until the first probe, after 200 successes.
        let (limit, rejected) = run(8, 64, 24, limit, &mut state);
        assert_eq!((limit, rejected.iter().sum::<u32>()), (8, 0), "{rejected:?}");
    }

    #[test]
    fn probes_are_rare_and_back_off_and_capacity_growth_is_found() {
        let mut state = AdaptiveState::default();
        let (limit, _) = run(8, 64, 60, 64, &mut state);
        assert_eq!(limit, 8);
        // 2,000 more rounds at the same capacity: a handful of probes, each waiting twice as
        // long, each costing one rejection and never the limit's half.
        let (limit, rejected) = run(8, 64, 2000, limit, &mut state);
        let probes = rejected.iter().filter(|r| **r > 0).count();
        assert!((1..=8).contains(&probes), "{probes} probes");
        assert!(rejected.iter().all(|r| *r <= 1));
        assert!((8..=9).contains(&limit));
        // Capacity doubles: the limit follows.
        let (limit, _) = run(16, 64, 20_000, limit, &mut state);
        assert!(limit >= 15, "limit {limit}");
    }

    #[test]
    fn stale_congestion_is_answered_once() {
        let mut state = AdaptiveState::default();
        let burst = |started_ms| Sample { started_ms, signal: Signal::Congestion };
        let l = step(64, 64, &mut state, &[burst(100), burst(100), burst(100)], 200);
        assert_eq!(l, 32, "one decrease for one round trip");
        let l = step(l, 64, &mut state, &[burst(150)], 300);
        assert_eq!(l, 32, "started before the decrease");
        let l = step(l, 64, &mut state, &[burst(250)], 400);
        assert_eq!(l, 16);
    }

    #[test]
    fn a_success_far_above_the_baseline_is_congestion_and_a_moderate_one_is_not() {
        let mut state = AdaptiveState::default();
        let ok = |started_ms, duration_ms| Sample { started_ms, signal: Signal::Success { duration_ms } };
        let samples: Vec<_> = (0..50).map(|_| ok(10, 20)).collect();
        let l = step(10, 10, &mut state, &samples, 20);
        assert_eq!(l, 10);
        assert_eq!(step(l, 10, &mut state, &[ok(30, 60)], 40), 10, "3× slower is not congestion");
        assert_eq!(step(l, 10, &mut state, &[ok(50, 2000)], 60), 5, "100× slower is");
    }

    #[test]
    fn the_limit_never_leaves_one_to_max() {
        let mut state = AdaptiveState::default();
        let c = |t| Sample { started_ms: t, signal: Signal::Congestion };
        let mut l = 4;
        for t in 0..10 {
            l = step(l, 4, &mut state, &[c(t * 10 + 5)], t * 10 + 6);
            assert!(l >= 1);
        }
        assert_eq!(l, 1);
        assert_eq!(step(100, 4, &mut AdaptiveState::default(), &[], 0), 4);
        let n = |e: Signal| Sample { started_ms: 1000, signal: e };
        assert_eq!(step(3, 4, &mut state, &[n(Signal::Neutral)], 2000), 3);
    }
}
