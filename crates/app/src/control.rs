//! A webhook's delivery controls as the caller gives them (names, durations as text),
//! checked once for every adapter (API, portal, CLI).

use crate::FieldError;
use herald_domain::control::parse_api_duration as parse_duration;
use herald_domain::control::{self, MAX_RATE_PER_SECOND};
use herald_domain::{Concurrency, DeliveryControl, OnFinalFailure, OrderingMode};
use herald_store::WebhookPatch;
use std::time::Duration;

/// Controls to set; `None` keeps (or, on create, defaults) a field. Clearing values:
/// `rate_limit_per_second: 0` (no limit), `retry_schedule: []` (the server's schedule),
/// `max_age: "0s"` (no limit).
#[derive(Clone, Debug, Default)]
pub struct ControlChange {
    pub concurrency: Option<String>,
    pub rate_limit_per_second: Option<u32>,
    pub ordering: Option<String>,
    pub on_final_failure: Option<String>,
    pub retry_schedule: Option<Vec<String>>,
    pub max_age: Option<String>,
}

impl ControlChange {
    /// Checks the change and writes what it sets into `patch`.
    pub(crate) fn apply(&self, patch: &mut WebhookPatch, errs: &mut Vec<FieldError>) {
        let mut err = |field: &str, message: String| errs.push(FieldError { field: field.into(), message });
        if let Some(c) = &self.concurrency {
            patch.concurrency = named(c, Concurrency::parse, Concurrency::ALL.iter().map(|v| v.as_str()))
                .map_err(|m| err("concurrency", m))
                .ok();
        }
        if let Some(o) = &self.ordering {
            patch.ordering = named(o, OrderingMode::parse, OrderingMode::ALL.iter().map(|v| v.as_str()))
                .map_err(|m| err("ordering", m))
                .ok();
        }
        if let Some(o) = &self.on_final_failure {
            patch.on_final_failure = named(o, OnFinalFailure::parse, OnFinalFailure::ALL.iter().map(|v| v.as_str()))
                .map_err(|m| err("on_final_failure", m))
                .ok();
        }
        if let Some(r) = self.rate_limit_per_second {
            if r > MAX_RATE_PER_SECOND {
                err("rate_limit_per_second", format!("must be between 0 (no limit) and {MAX_RATE_PER_SECOND}"));
            } else {
                patch.rate_limit_per_second = Some((r > 0).then_some(r));
            }
        }
        if let Some(steps) = &self.retry_schedule {
            match schedule(steps) {
                Ok(s) => patch.retry_schedule = Some(s),
                Err(m) => err("retry_schedule", m),
            }
        }
        if let Some(age) = &self.max_age {
            match parse_duration(age.trim()) {
                Ok(d) if d.is_zero() => patch.max_age = Some(None),
                Ok(d) => match control::check_max_age(d) {
                    Ok(()) => patch.max_age = Some(Some(d)),
                    Err(m) => err("max_age", m),
                },
                Err(m) => err("max_age", format!("{m}; 0s: no limit")),
            }
        }
    }
}

/// The controls a new webhook gets from a checked patch: adaptive, no rate limit, no
/// ordering, `block`, the server's schedule — unless the patch says otherwise.
pub(crate) fn for_new_webhook(patch: &WebhookPatch) -> DeliveryControl {
    let d = DeliveryControl::default();
    DeliveryControl {
        concurrency: patch.concurrency.unwrap_or(d.concurrency),
        rate_limit_per_second: patch.rate_limit_per_second.flatten(),
        ordering: patch.ordering.unwrap_or(d.ordering),
        on_final_failure: patch.on_final_failure.unwrap_or(d.on_final_failure),
        retry_schedule: patch.retry_schedule.clone().flatten(),
        max_age: patch.max_age.flatten(),
    }
}

fn named<T>(s: &str, parse: impl Fn(&str) -> Option<T>, all: impl Iterator<Item = &'static str>) -> Result<T, String> {
    parse(s).ok_or_else(|| format!("must be one of: {}", all.collect::<Vec<_>>().join(", ")))
}

/// `[]` = the server's schedule; otherwise every step a duration, within the limits.
fn schedule(steps: &[String]) -> Result<Option<Vec<Duration>>, String> {
    if steps.is_empty() {
        return Ok(None);
    }
    let parsed: Vec<Duration> = steps
        .iter()
        .map(|s| parse_duration(s.trim()))
        .collect::<Result<_, _>>()
        .map_err(|m| format!("every step {m}"))?;
    control::check_schedule(&parsed)?;
    Ok(Some(parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(c: ControlChange) -> (WebhookPatch, Vec<String>) {
        let (mut patch, mut errs) = (WebhookPatch::default(), Vec::new());
        c.apply(&mut patch, &mut errs);
        (patch, errs.into_iter().map(|e| e.field).collect())
    }

    #[test]
    fn names_durations_and_clearing_values_are_read() {
        let (p, errs) = checked(ControlChange {
            concurrency: Some("fixed".into()),
            rate_limit_per_second: Some(0),
            ordering: Some("fifo".into()),
            on_final_failure: Some("skip".into()),
            retry_schedule: Some(vec!["5s".into(), "1m".into()]),
            max_age: Some("0s".into()),
        });
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(p.concurrency, Some(Concurrency::Fixed));
        assert_eq!(p.rate_limit_per_second, Some(None));
        assert_eq!(p.retry_schedule, Some(Some(vec![Duration::from_secs(5), Duration::from_secs(60)])));
        assert_eq!(p.max_age, Some(None));
        let c = for_new_webhook(&p);
        assert_eq!((c.ordering, c.on_final_failure), (OrderingMode::Fifo, OnFinalFailure::Skip));
        let (p, _) = checked(ControlChange { retry_schedule: Some(vec![]), ..Default::default() });
        assert_eq!(p.retry_schedule, Some(None));
        assert_eq!(for_new_webhook(&WebhookPatch::default()), DeliveryControl::default());
    }

    #[test]
    fn bad_values_name_their_field() {
        let (_, errs) = checked(ControlChange {
            concurrency: Some("turbo".into()),
            rate_limit_per_second: Some(MAX_RATE_PER_SECOND + 1),
            ordering: Some("lifo".into()),
            on_final_failure: Some("retry".into()),
            retry_schedule: Some(vec!["1d".into(); 8]),
            max_age: Some("soon".into()),
        });
        assert_eq!(
            errs,
            ["concurrency", "ordering", "on_final_failure", "rate_limit_per_second", "retry_schedule", "max_age"]
        );
    }
}
