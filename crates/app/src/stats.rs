//! A webhook's attempts over a window, counted per bucket by outcome, with latency
//! percentiles: the stats API and the portal's charts.

use crate::{AppError, AppResult, Herald};
use herald_domain::{AccountId, WebhookId, from_millis, to_millis};
use herald_store::{AttemptCount, AttemptWindow};
use std::time::Duration;
use time::OffsetDateTime;

/// The most buckets one answer may hold.
pub const MAX_BUCKETS: u64 = 1000;
/// The longest window (older attempts are gone with the retention anyway).
pub const MAX_WINDOW: Duration = Duration::from_secs(31 * 86_400);
/// The shortest bucket.
pub const MIN_BUCKET: Duration = Duration::from_secs(60);

/// One bucket (or the totals): attempts answered 2xx (`delivered`) and otherwise
/// (`failed`: another status, a timeout, a refused connection), and the attempts' duration
/// percentiles (`None` without attempts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsBucket {
    pub start: OffsetDateTime,
    pub delivered: u64,
    pub failed: u64,
    pub p50_ms: Option<u64>,
    pub p99_ms: Option<u64>,
}

impl StatsBucket {
    /// A bucket without attempts.
    pub fn empty(start: OffsetDateTime) -> Self {
        Self { start, delivered: 0, failed: 0, p50_ms: None, p99_ms: None }
    }

    pub fn attempts(&self) -> u64 {
        self.delivered + self.failed
    }

    /// The share of attempts answered 2xx, in percent; `None` without attempts.
    pub fn success_percent(&self) -> Option<f64> {
        let n = self.attempts();
        (n > 0).then(|| 100.0 * self.delivered as f64 / n as f64)
    }
}

/// A window of a webhook's attempts: buckets oldest first, aligned to multiples of the
/// bucket length (UTC), the last one holding now.
#[derive(Clone, Debug)]
pub struct WebhookStats {
    pub since: OffsetDateTime,
    pub until: OffsetDateTime,
    pub bucket: Duration,
    pub buckets: Vec<StatsBucket>,
    pub totals: StatsBucket,
}

impl Herald {
    /// The webhook's attempts in the last `window`, in buckets of `bucket`.
    pub async fn webhook_stats(
        &self,
        account: &AccountId,
        id: &WebhookId,
        window: Duration,
        bucket: Duration,
    ) -> AppResult<WebhookStats> {
        check_window(window, bucket)?;
        self.webhook(account, id).await?;
        let bucket_ms = bucket.as_millis() as i64;
        let now_ms = to_millis(self.clock.now());
        let until_ms = (now_ms.div_euclid(bucket_ms) + 1) * bucket_ms;
        let since_ms = until_ms - window.as_millis() as i64;
        let w = AttemptWindow {
            account: account.clone(),
            webhook: id.clone(),
            since: from_millis(since_ms),
            until: from_millis(until_ms),
            bucket,
        };
        let counts = self.store.attempt_counts(&w).await?;
        let n = (window.as_millis() / bucket.as_millis()) as usize;
        Ok(summarise(&w, n, &counts))
    }
}

fn check_window(window: Duration, bucket: Duration) -> AppResult<()> {
    let mut errs = Vec::new();
    if window.is_zero() || window > MAX_WINDOW {
        errs.push(crate::FieldError { field: "window".into(), message: "must be between 1m and 31d".into() });
    }
    if bucket < MIN_BUCKET || bucket > window || bucket.subsec_nanos() != 0 {
        errs.push(crate::FieldError {
            field: "bucket".into(),
            message: "must be whole seconds, at least 1m and at most the window".into(),
        });
    } else if !window.as_millis().is_multiple_of(bucket.as_millis()) {
        errs.push(crate::FieldError { field: "window".into(), message: "must be a whole number of buckets".into() });
    } else if (window.as_millis() / bucket.as_millis()) as u64 > MAX_BUCKETS {
        errs.push(crate::FieldError {
            field: "bucket".into(),
            message: format!("at most {MAX_BUCKETS} buckets per window"),
        });
    }
    if errs.is_empty() { Ok(()) } else { Err(AppError::Invalid(errs)) }
}

/// Folds the store's counts into `n` buckets and the totals.
fn summarise(w: &AttemptWindow, n: usize, counts: &[AttemptCount]) -> WebhookStats {
    let mut per_bucket: Vec<Vec<(u64, u64)>> = vec![Vec::new(); n];
    let mut all: Vec<(u64, u64)> = Vec::new();
    let mut buckets: Vec<StatsBucket> = (0..n).map(|i| StatsBucket::empty(w.since + w.bucket * i as u32)).collect();
    let mut totals = StatsBucket::empty(w.since);
    for c in counts {
        let Some(b) = buckets.get_mut(c.bucket as usize) else { continue };
        for s in [&mut *b, &mut totals] {
            if c.success {
                s.delivered += c.count;
            } else {
                s.failed += c.count;
            }
        }
        per_bucket[c.bucket as usize].push((c.duration_ms, c.count));
        all.push((c.duration_ms, c.count));
    }
    for (b, durations) in buckets.iter_mut().zip(per_bucket.iter_mut()) {
        (b.p50_ms, b.p99_ms) = (percentile(durations, 0.50), percentile(durations, 0.99));
    }
    (totals.p50_ms, totals.p99_ms) = (percentile(&mut all, 0.50), percentile(&mut all, 0.99));
    WebhookStats { since: w.since, until: w.until, bucket: w.bucket, buckets, totals }
}

/// The nearest-rank percentile `p` of (duration, count) pairs.
fn percentile(durations: &mut [(u64, u64)], p: f64) -> Option<u64> {
    let total: u64 = durations.iter().map(|d| d.1).sum();
    if total == 0 {
        return None;
    }
    durations.sort_unstable();
    let rank = ((p * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (ms, count) in durations.iter() {
        seen += count;
        if seen >= rank {
            return Some(*ms);
        }
    }
    durations.last().map(|d| d.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_over_counted_durations() {
        assert_eq!(percentile(&mut [], 0.5), None);
        assert_eq!(percentile(&mut [(7, 1)], 0.99), Some(7));
        // 1..=100 ms once each: p50 = 50, p99 = 99.
        let mut d: Vec<(u64, u64)> = (1..=100).rev().map(|ms| (ms, 1)).collect();
        assert_eq!(percentile(&mut d, 0.50), Some(50));
        assert_eq!(percentile(&mut d, 0.99), Some(99));
        // 98 fast, 2 slow: p99 is slow.
        assert_eq!(percentile(&mut [(1000, 2), (3, 98)], 0.99), Some(1000));
        assert_eq!(percentile(&mut [(1000, 1), (3, 99)], 0.99), Some(3));
    }

    #[test]
    fn windows_must_hold_whole_buckets_within_bounds() {
        let h = |s| Duration::from_secs(s);
        assert!(check_window(h(86_400), h(3600)).is_ok());
        assert!(check_window(h(3600), h(60)).is_ok());
        assert!(check_window(h(86_400), h(59)).is_err());
        assert!(check_window(h(3600), h(7200)).is_err());
        assert!(check_window(h(3600), h(3599)).is_err(), "not whole buckets");
        assert!(check_window(h(32 * 86_400), h(86_400)).is_err());
        assert!(check_window(h(31 * 86_400), h(60)).is_err(), "too many buckets");
        assert!(check_window(Duration::ZERO, h(60)).is_err());
    }

    #[test]
    fn counts_fold_into_buckets_and_totals() {
        let w = AttemptWindow {
            account: AccountId::generate(),
            webhook: WebhookId::generate(),
            since: from_millis(0),
            until: from_millis(3 * 3_600_000),
            bucket: Duration::from_secs(3600),
        };
        let c = |bucket, success, duration_ms, count| AttemptCount { bucket, success, duration_ms, count };
        let s = summarise(&w, 3, &[c(0, true, 10, 3), c(0, false, 5000, 1), c(2, true, 20, 1), c(9, true, 1, 1)]);
        assert_eq!(s.buckets.len(), 3);
        assert_eq!((s.buckets[0].delivered, s.buckets[0].failed), (3, 1));
        assert_eq!((s.buckets[0].p50_ms, s.buckets[0].p99_ms), (Some(10), Some(5000)));
        assert_eq!(s.buckets[1], StatsBucket::empty(from_millis(3_600_000)));
        assert_eq!((s.totals.delivered, s.totals.failed), (4, 1), "a row outside the window is ignored");
        assert_eq!(s.totals.p50_ms, Some(10));
    }
}
