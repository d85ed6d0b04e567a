//! A webhook's delivery controls (SPEC §11 names): how its in-flight limit is set, how fast
//! attempts may start, whether its events keep their order, and its own retry policy. The
//! moving parts are pure functions elsewhere: [`crate::adaptive`] (the limit) and
//! [`crate::rate`] (the token bucket).

use std::time::Duration;

/// How a webhook's in-flight limit is set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Concurrency {
    /// The limit moves between 1 and `max_in_flight` with what the receiver shows (AIMD).
    #[default]
    Adaptive,
    /// The limit is `max_in_flight`.
    Fixed,
}

/// Whether a webhook's events of one ordering key are delivered in publish order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OrderingMode {
    #[default]
    None,
    /// One lane per ordering key: the next event of a key is not attempted before the
    /// previous one is delivered or has finally failed.
    Fifo,
}

/// What a FIFO lane does after a delivery in it has finally failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnFinalFailure {
    /// The failed delivery stays at the head (status `blocked`) until it is retried or skipped.
    #[default]
    Block,
    /// The lane moves on to the next event.
    Skip,
}

macro_rules! named {
    ($t:ty { $($v:ident = $s:literal),+ }) => {
        impl $t {
            /// Every value, in documented order.
            pub const ALL: &'static [Self] = &[$(Self::$v),+];

            /// The stored and shown name.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }
    };
}
named!(Concurrency { Adaptive = "adaptive", Fixed = "fixed" });
named!(OrderingMode { None = "none", Fifo = "fifo" });
named!(OnFinalFailure { Block = "block", Skip = "skip" });

/// The most steps a webhook's own retry schedule may have.
pub const MAX_SCHEDULE_STEPS: usize = 20;
/// The longest a webhook's own retry schedule may last in total (and the longest `max_age`).
pub const MAX_SCHEDULE_TOTAL: Duration = Duration::from_secs(7 * 86400);
/// The highest `rate_limit_per_second`.
pub const MAX_RATE_PER_SECOND: u32 = 10_000;

/// A webhook's delivery controls as stored; `None` schedule / age = the server's.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeliveryControl {
    pub concurrency: Concurrency,
    pub rate_limit_per_second: Option<u32>,
    pub ordering: OrderingMode,
    pub on_final_failure: OnFinalFailure,
    pub retry_schedule: Option<Vec<Duration>>,
    pub max_age: Option<Duration>,
}

impl DeliveryControl {
    /// Whether a failed delivery of this webhook holds its lane.
    pub fn blocks_on_final_failure(&self) -> bool {
        self.ordering == OrderingMode::Fifo && self.on_final_failure == OnFinalFailure::Block
    }
}

/// Checks a webhook's own retry schedule: at least one and at most
/// [`MAX_SCHEDULE_STEPS`] steps, none zero, summing to at most [`MAX_SCHEDULE_TOTAL`].
pub fn check_schedule(steps: &[Duration]) -> Result<(), String> {
    if steps.is_empty() {
        return Err("must have at least one step (or be null for the server's schedule)".into());
    }
    if steps.len() > MAX_SCHEDULE_STEPS {
        return Err(format!("must have at most {MAX_SCHEDULE_STEPS} steps"));
    }
    if steps.iter().any(|d| d.is_zero()) {
        return Err("steps must be longer than zero".into());
    }
    let total: Duration = steps.iter().sum();
    if total > MAX_SCHEDULE_TOTAL {
        return Err("must last at most 7 days in total".into());
    }
    Ok(())
}

/// Checks `max_age`: longer than zero, at most [`MAX_SCHEDULE_TOTAL`].
pub fn check_max_age(age: Duration) -> Result<(), String> {
    if age.is_zero() || age > MAX_SCHEDULE_TOTAL {
        return Err("must be longer than zero and at most 7 days".into());
    }
    Ok(())
}

/// Reads a duration as the API takes it: numbers with a unit (`ms`, `s`, `m`, `h`, `d`),
/// space-separated parts adding up (`1h 30m`), at most 40 characters.
pub fn parse_api_duration(s: &str) -> Result<Duration, String> {
    const BAD: &str = "must be a duration like 30s, 5m, 1h or 1h 30m (units ms, s, m, h, d)";
    if s.is_empty() || s.len() > 40 {
        return Err(BAD.into());
    }
    let mut total = Duration::ZERO;
    for part in s.split(' ') {
        let digits = part.bytes().take_while(u8::is_ascii_digit).count();
        let (n, unit) = part.split_at(digits);
        let n: u64 = n.parse().map_err(|_| BAD.to_owned())?;
        let ms = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(BAD.into()),
        };
        total = total.saturating_add(Duration::from_millis(n.saturating_mul(ms)));
    }
    Ok(total)
}

/// A duration as the API shows it (`90s` → `1m 30s`, `1h`): what [`parse_api_duration`] reads.
pub fn show_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut parts = Vec::new();
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
        if ms >= size {
            parts.push(format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Concurrency::ALL {
            assert_eq!(Concurrency::parse(c.as_str()), Some(*c));
        }
        assert_eq!(OrderingMode::parse("fifo"), Some(OrderingMode::Fifo));
        assert_eq!(OnFinalFailure::parse("skip"), Some(OnFinalFailure::Skip));
        assert_eq!(OrderingMode::parse("FIFO"), None);
        assert_eq!(Concurrency::default(), Concurrency::Adaptive);
    }

    #[test]
    fn schedules_are_bounded_in_steps_and_total() {
        let s = |v: &[u64]| v.iter().map(|x| Duration::from_secs(*x)).collect::<Vec<_>>();
        assert!(check_schedule(&s(&[5, 60, 3600])).is_ok());
        assert!(check_schedule(&[]).is_err());
        assert!(check_schedule(&s(&[1; 21])).is_err());
        assert!(check_schedule(&s(&[1; 20])).is_ok());
        assert!(check_schedule(&s(&[0, 5])).is_err());
        assert!(check_schedule(&s(&[7 * 86400])).is_ok());
        assert!(check_schedule(&s(&[7 * 86400, 1])).is_err());
        assert!(check_max_age(Duration::ZERO).is_err());
        assert!(check_max_age(Duration::from_secs(7 * 86400 + 1)).is_err());
        assert!(check_max_age(Duration::from_secs(3600)).is_ok());
    }

    #[test]
    fn durations_show_in_the_syntax_they_are_read_in() {
        for d in [
            Duration::from_secs(90),
            Duration::from_millis(200),
            Duration::from_secs(86400),
            Duration::from_millis(3_723_004),
        ] {
            assert_eq!(parse_api_duration(&show_duration(d)).unwrap(), d, "{}", show_duration(d));
        }
        for bad in ["", "5", "5 m", "5min", "1h  30m", " 5m", "-5s", "5m ", &"1s ".repeat(14)] {
            assert!(parse_api_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(show_duration(Duration::from_secs(300)), "5m");
    }
}
