//! Retry maths as pure functions: the schedule, jitter, and `Retry-After`.

use std::time::Duration;
use time::OffsetDateTime;

/// The longest a receiver's `Retry-After` may push an attempt out.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// When attempts happen: attempt 1 at once, then after failure `n` wait `schedule[n-1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    pub schedule: Vec<Duration>,
    /// Fraction of each wait added or removed at random (0.2 = ±20 %).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            schedule: [60, 300, 900, 3600, 4 * 3600, 8 * 3600, 16 * 3600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// Parses `1m,5m,15m` (the `HERALD_RETRY_SCHEDULE` syntax).
    pub fn parse_schedule(s: &str) -> Result<Vec<Duration>, String> {
        s.split(',').map(|p| parse_duration(p.trim())).collect::<Result<Vec<_>, _>>()
    }

    /// Attempts a delivery gets: the first plus one per schedule step.
    pub fn max_attempts(&self) -> u32 {
        self.schedule.len() as u32 + 1
    }

    /// The wait after failed attempt number `failed_attempt` (1-based), jittered by
    /// `unit_random` in `[0, 1)`. Past the end of the schedule the last step repeats
    /// (a manually retried delivery gets one more attempt).
    pub fn delay_after(&self, failed_attempt: u32, unit_random: f64) -> Duration {
        let Some(last) = self.schedule.len().checked_sub(1) else {
            return Duration::ZERO;
        };
        let idx = (failed_attempt.max(1) as usize - 1).min(last);
        let base = self.schedule[idx].as_secs_f64();
        let factor = 1.0 + self.jitter.clamp(0.0, 1.0) * (2.0 * unit_random.clamp(0.0, 1.0) - 1.0);
        Duration::from_secs_f64((base * factor).max(0.0))
    }
}

/// Parses `200ms`, `30s`, `5m`, `1h`, `1d` (and combinations humantime accepts).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Reads a `Retry-After` value: delta-seconds or an HTTP date, capped at 24 h.
/// Dates in the past mean "now" (zero).
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let v = value.trim();
    let d = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // Seconds; a number too large for any integer is still "later than the cap".
        v.parse::<u64>().map(Duration::from_secs).unwrap_or(MAX_RETRY_AFTER)
    } else {
        let at = httpdate::parse_http_date(v).ok()?;
        let at = OffsetDateTime::from(at);
        let diff = at - now;
        if diff.is_negative() { Duration::ZERO } else { diff.unsigned_abs() }
    };
    Some(d.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn no_jitter() -> RetryPolicy {
        RetryPolicy { jitter: 0.0, ..RetryPolicy::default() }
    }

    #[test]
    fn default_schedule_has_eight_attempts_ending_about_29h21m_after_the_first() {
        let p = no_jitter();
        assert_eq!(p.max_attempts(), 8);
        let total: Duration = (1..p.max_attempts()).map(|n| p.delay_after(n, 0.5)).sum();
        assert_eq!(total, Duration::from_secs(29 * 3600 + 21 * 60));
    }

    #[test]
    fn first_failure_waits_one_minute_not_five() {
        assert_eq!(no_jitter().delay_after(1, 0.0), Duration::from_secs(60));
        assert_eq!(no_jitter().delay_after(2, 0.0), Duration::from_secs(300));
        assert_eq!(no_jitter().delay_after(7, 0.0), Duration::from_secs(16 * 3600));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay_after(1, 0.0), Duration::from_secs(48));
        assert_eq!(p.delay_after(1, 1.0), Duration::from_secs(72));
        assert_eq!(p.delay_after(1, 0.5), Duration::from_secs(60));
    }

    #[test]
    fn past_the_schedule_the_last_step_repeats() {
        assert_eq!(no_jitter().delay_after(9, 0.5), Duration::from_secs(16 * 3600));
    }

    #[test]
    fn schedule_parses_from_the_setting_syntax() {
        let s = RetryPolicy::parse_schedule("1m,5m,15m,1h,4h,8h,16h").unwrap();
        assert_eq!(s, RetryPolicy::default().schedule);
        assert_eq!(
            RetryPolicy::parse_schedule("200ms, 1s").unwrap(),
            vec![Duration::from_millis(200), Duration::from_secs(1)]
        );
        assert!(RetryPolicy::parse_schedule("1m,soon").is_err());
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates_and_caps_at_a_day() {
        let now = datetime!(2023-11-14 22:13:20 UTC);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Tue, 14 Nov 2023 22:15:20 GMT", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("999999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("99999999999999999999999999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
