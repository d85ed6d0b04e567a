//! Rate limits (GCRA via `governor`): per account on test sends, rotations, recoveries and
//! messages injected through the API,
//! and one recovery per webhook per interval. Exceeding one answers 429 with `Retry-After`.

use crate::ApiConfig;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use herald_app::AppError;
use std::num::NonZeroU32;
use std::time::Duration;

type Keyed = DefaultKeyedRateLimiter<String>;

pub(crate) struct Limits {
    pub recover_per_webhook: Keyed,
    pub recover_per_account: Keyed,
    pub test_per_account: Keyed,
    pub rotate_per_account: Keyed,
    pub inject_per_account: Keyed,
}

fn per_minute(n: u32) -> Keyed {
    Keyed::keyed(Quota::per_minute(NonZeroU32::new(n.max(1)).expect("at least 1")))
}

fn one_per(period: Duration) -> Keyed {
    let q = Quota::with_period(period.max(Duration::from_millis(1))).expect("a positive period");
    Keyed::keyed(q)
}

impl Limits {
    pub(crate) fn new(c: &ApiConfig) -> Self {
        Self {
            recover_per_webhook: one_per(c.recover_interval),
            recover_per_account: per_minute(c.recoveries_per_minute),
            test_per_account: per_minute(c.test_sends_per_minute),
            rotate_per_account: per_minute(c.rotations_per_minute),
            inject_per_account: per_minute(c.injects_per_minute),
        }
    }
}

impl Limits {
    /// A recovery's admission: per account (dry runs too: they read the whole window) and,
    /// for a real one, one per webhook per interval.
    pub(crate) fn admit_recovery(&self, account: &str, webhook: &str, dry_run: bool) -> Result<(), AppError> {
        admit(&self.recover_per_account, account)?;
        if !dry_run {
            admit(&self.recover_per_webhook, webhook)?;
        }
        Ok(())
    }
}

/// Takes one from `limiter` for `key`, or says how long to wait (the application's
/// admission step, asked after every other check passed).
pub(crate) fn admit(limiter: &Keyed, key: &str) -> Result<(), AppError> {
    limiter.check_key(&key.to_owned()).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        AppError::RateLimited(wait.max(Duration::from_secs(1)))
    })
}
