//! A webhook's rate limit as a token bucket kept in its row: attempts start only with a
//! token; tokens refill at `rate_limit_per_second` up to a burst of 100 ms worth (at least
//! one), so in any window of T seconds at most `burst + rate × T` attempts start.

/// Tokens and when they were last counted.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bucket {
    pub tokens: f64,
    pub refilled_at_ms: i64,
}

/// The most tokens a bucket of `rate` per second holds.
pub fn burst(rate: u32) -> f64 {
    (f64::from(rate) / 10.0).max(1.0)
}

impl Bucket {
    /// Whole attempts that may start at `now_ms`.
    pub fn available(&self, rate: u32, now_ms: i64) -> u32 {
        self.level(rate, now_ms).floor() as u32
    }

    fn level(&self, rate: u32, now_ms: i64) -> f64 {
        let elapsed = (now_ms - self.refilled_at_ms).max(0) as f64 / 1000.0;
        (self.tokens + elapsed * f64::from(rate)).min(burst(rate))
    }

    /// The bucket after `taken` attempts started at `now_ms`, and the instant the next token
    /// is there (`now_ms` when one is left).
    pub fn take(&self, rate: u32, now_ms: i64, taken: u32) -> (Bucket, i64) {
        let left = (self.level(rate, now_ms) - f64::from(taken)).max(0.0);
        // Never move the count back: a claim with an earlier `now` (another replica's clock,
        // a wait for a connection) must not credit the same interval twice.
        let after = Bucket { tokens: left, refilled_at_ms: self.refilled_at_ms.max(now_ms) };
        let mut next = if left >= 1.0 {
            now_ms
        } else {
            after.refilled_at_ms + ((1.0 - left) * 1000.0 / f64::from(rate)).ceil() as i64
        };
        // Rounding must not leave the webhook at its ready instant without a whole token.
        while after.available(rate, next) < 1 {
            next += 1;
        }
        (after, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_bucket_holds_a_burst_and_refills_at_the_rate() {
        let b = Bucket::default();
        assert_eq!(b.available(50, 1_000_000), 5);
        let (b, next) = b.take(50, 1_000_000, 5);
        assert_eq!(b.available(50, 1_000_000), 0);
        assert_eq!(next, 1_000_020, "one token every 20 ms");
        assert_eq!(b.available(50, 1_000_019), 0);
        assert_eq!(b.available(50, 1_000_020), 1);
        assert_eq!(b.available(50, 2_000_000), 5, "never more than the burst");
        assert_eq!(Bucket::default().available(3, 10_000), 1, "at least one token");
    }

    #[test]
    fn the_ready_instant_always_has_a_token_and_an_earlier_clock_credits_nothing_twice() {
        for rate in [1, 3, 7, 85, 999, 10_000] {
            for left in [0.0, 0.065, 0.3333, 0.999_999] {
                let b = Bucket { tokens: left, refilled_at_ms: 5_000 };
                let (after, next) = b.take(rate, 5_000, 0);
                assert!(after.available(rate, next) >= 1, "rate {rate}, left {left}");
            }
        }
        let b = Bucket { tokens: 0.0, refilled_at_ms: 10_000 };
        let (after, _) = b.take(10, 9_900, 0);
        assert_eq!(after.refilled_at_ms, 10_000, "an earlier now does not move the count back");
        assert_eq!(after.available(10, 10_050), 0);
    }

    #[test]
    fn starts_over_any_window_stay_within_burst_plus_rate() {
        // Take every token the moment it is there, for 10 s at 7/s.
        let (rate, mut b, mut t, mut starts) = (7, Bucket::default(), 0i64, Vec::new());
        while t < 10_000 {
            let n = b.available(rate, t);
            let (nb, next) = b.take(rate, t, n);
            starts.extend(std::iter::repeat_n(t, n as usize));
            b = nb;
            t = next.max(t + 1);
        }
        assert!(starts.len() as f64 <= burst(rate) + 70.0, "{}", starts.len());
        assert!(starts.len() >= 69);
    }
}
