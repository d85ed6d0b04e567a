//! The delivery state machine and the classification of one attempt's outcome.

use crate::retry::RetryPolicy;
use std::time::Duration;
use time::OffsetDateTime;

/// `pending` → `delivered` | `failed`; a manual retry moves `failed` back to `pending`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
    /// Finally failed at the head of a FIFO lane that blocks: the lane waits for a manual
    /// retry or a skip.
    Blocked,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Blocked => "blocked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            "blocked" => Some(Self::Blocked),
            _ => None,
        }
    }
}

/// Why a manual retry is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RetryRefused {
    #[error("delivery is {}, only failed or blocked deliveries can be retried", .0.as_str())]
    NotFailed(DeliveryStatus),
    #[error("the webhook of this delivery was deleted")]
    WebhookDeleted,
}

/// Why a skip is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SkipRefused {
    /// Only a delivery that has not ended (pending) or holds its lane (blocked) can be skipped.
    #[error("delivery is {}, only pending or blocked deliveries can be skipped", .0.as_str())]
    Ended(DeliveryStatus),
    /// An attempt is in flight: skipping now would let the next of its lane overtake it.
    #[error("an attempt of this delivery is in flight; skip it when the attempt has ended")]
    InFlight,
}

/// The skip rule: a pending (with no attempt in flight) or blocked delivery ends `failed`
/// with [`SKIPPED`], and its lane (if any) moves on.
pub fn check_skip(status: DeliveryStatus, in_flight: bool) -> Result<(), SkipRefused> {
    match status {
        DeliveryStatus::Pending if in_flight => Err(SkipRefused::InFlight),
        DeliveryStatus::Pending | DeliveryStatus::Blocked => Ok(()),
        other => Err(SkipRefused::Ended(other)),
    }
}

/// The error a skipped delivery ends with.
pub const SKIPPED: &str = "skipped";

/// The error of a delivery not attempted because it is older than its webhook's `max_age`.
pub const TOO_OLD: &str = "not sent: older than the webhook's max_age";

/// The error a pending delivery ends with when its webhook is deleted.
pub const WEBHOOK_DELETED: &str = "webhook deleted";

/// How long a manually retried delivery lives at least, from the retry.
pub const MANUAL_RETRY_LIFETIME: Duration = Duration::from_secs(86_400);

/// The manual-retry rule: only a `failed` delivery of a webhook that still exists may be
/// retried; it becomes `pending`, due now, with one more attempt allowed, and lives at least
/// [`MANUAL_RETRY_LIFETIME`] from now.
pub fn check_manual_retry(status: DeliveryStatus, webhook_exists: bool) -> Result<(), RetryRefused> {
    match (status, webhook_exists) {
        (DeliveryStatus::Failed | DeliveryStatus::Blocked, true) => Ok(()),
        (DeliveryStatus::Failed | DeliveryStatus::Blocked, false) => Err(RetryRefused::WebhookDeleted),
        (other, _) => Err(RetryRefused::NotFailed(other)),
    }
}

/// What kind of thing happened in one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttemptKind {
    /// The receiver answered with a status (`status_code`).
    Response,
    /// The receiver answered a status, then the body broke off.
    BodyError,
    /// No complete answer within the attempt timeout.
    Timeout,
    /// No connection (refused, reset, DNS failure, TLS failure).
    ConnectError,
    /// Connected, but the answer was not valid HTTP (malformed or oversized head, reset).
    ProtocolError,
    /// The address policy refused every address of the target: nothing was sent.
    RefusedByPolicy,
    /// Herald did not send it (the event is gone, or the attempt broke inside Herald).
    NotSent,
}

impl AttemptKind {
    /// The kinds that name an attempt's outcome class on their own (no status to class by).
    pub const FAILURES: [Self; 5] =
        [Self::Timeout, Self::ConnectError, Self::ProtocolError, Self::RefusedByPolicy, Self::NotSent];

    /// A stable name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Response => "response",
            Self::BodyError => "body_error",
            Self::Timeout => "timeout",
            Self::ConnectError => "connect_error",
            Self::ProtocolError => "protocol_error",
            Self::RefusedByPolicy => "refused_by_policy",
            Self::NotSent => "not_sent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Response,
            Self::BodyError,
            Self::Timeout,
            Self::ConnectError,
            Self::ProtocolError,
            Self::RefusedByPolicy,
            Self::NotSent,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// What one HTTP attempt produced.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptOutcome {
    pub kind: AttemptKind,
    pub started_at: OffsetDateTime,
    pub duration: Duration,
    /// 0 when no response arrived (connection error, timeout, refused address).
    pub status_code: u16,
    /// Short error text without secrets; `None` on success.
    pub error: Option<String>,
    /// The first 4 KiB of the response body (lossy UTF-8).
    pub response_body: Option<String>,
    /// Parsed `Retry-After` on 429/503.
    pub retry_after: Option<Duration>,
}

impl AttemptOutcome {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status_code)
    }

    /// The outcome class metrics count attempts by: the answer's status class (`2xx`,
    /// `3xx`, `4xx`, `5xx`, `1xx`) when the receiver answered, otherwise what went wrong
    /// (`timeout`, `connect_error`, `protocol_error`, `refused_by_policy`, `not_sent`).
    pub fn outcome_class(&self) -> &'static str {
        match self.kind {
            AttemptKind::Response | AttemptKind::BodyError => match self.status_code {
                100..=199 => "1xx",
                200..=299 => "2xx",
                300..=399 => "3xx",
                400..=499 => "4xx",
                500..=599 => "5xx",
                _ => "protocol_error",
            },
            other => other.as_str(),
        }
    }
}

/// What happens to the delivery after an attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Delivered,
    /// Stay pending; next attempt at this instant.
    RetryAt(OffsetDateTime),
    /// No more attempts. `gone` = the receiver answered 410 (disable the webhook).
    Failed {
        gone: bool,
    },
}

/// Decides the next state after attempt number `attempt` (1-based) out of `max_attempts`.
pub fn classify(
    outcome: &AttemptOutcome,
    attempt: u32,
    max_attempts: u32,
    policy: &RetryPolicy,
    now: OffsetDateTime,
    unit_random: f64,
) -> Verdict {
    if outcome.is_success() {
        return Verdict::Delivered;
    }
    if outcome.status_code == 410 {
        return Verdict::Failed { gone: true };
    }
    // Refused by our own address policy: the network did not fail, so a network failure's
    // retry schedule does not apply. Fail now, with the reason.
    if outcome.kind == AttemptKind::RefusedByPolicy {
        return Verdict::Failed { gone: false };
    }
    if attempt >= max_attempts {
        return Verdict::Failed { gone: false };
    }
    let mut wait = policy.delay_after(attempt, unit_random);
    if matches!(outcome.status_code, 429 | 503)
        && let Some(ra) = outcome.retry_after
    {
        wait = wait.max(ra.min(crate::retry::MAX_RETRY_AFTER));
    }
    Verdict::RetryAt(now + wait)
}

/// A retry that would come after `deadline` (the delivery's creation + its webhook's
/// `max_age`) is a final failure instead.
pub fn within_deadline(verdict: Verdict, deadline: Option<OffsetDateTime>) -> Verdict {
    match (verdict, deadline) {
        (Verdict::RetryAt(at), Some(d)) if at > d => Verdict::Failed { gone: false },
        (v, _) => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_retry_past_the_deadline_is_a_final_failure() {
        let at = NOW + Duration::from_secs(60);
        assert_eq!(within_deadline(Verdict::RetryAt(at), None), Verdict::RetryAt(at));
        assert_eq!(within_deadline(Verdict::RetryAt(at), Some(at)), Verdict::RetryAt(at));
        assert_eq!(within_deadline(Verdict::RetryAt(at), Some(NOW)), Verdict::Failed { gone: false });
        assert_eq!(within_deadline(Verdict::Delivered, Some(NOW)), Verdict::Delivered);
    }

    #[test]
    fn pending_and_blocked_deliveries_can_be_skipped_and_blocked_ones_retried() {
        assert!(check_skip(DeliveryStatus::Pending, false).is_ok());
        assert!(check_skip(DeliveryStatus::Blocked, false).is_ok());
        assert_eq!(check_skip(DeliveryStatus::Pending, true), Err(SkipRefused::InFlight));
        assert_eq!(check_skip(DeliveryStatus::Failed, false), Err(SkipRefused::Ended(DeliveryStatus::Failed)));
        assert!(check_manual_retry(DeliveryStatus::Blocked, true).is_ok());
        assert_eq!(DeliveryStatus::parse("blocked"), Some(DeliveryStatus::Blocked));
    }

    fn outcome(code: u16, retry_after: Option<u64>) -> AttemptOutcome {
        AttemptOutcome {
            kind: if code == 0 { AttemptKind::ConnectError } else { AttemptKind::Response },
            started_at: datetime!(2024-01-01 0:00 UTC),
            duration: Duration::from_millis(3),
            status_code: code,
            error: None,
            response_body: None,
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy { jitter: 0.0, ..RetryPolicy::default() }
    }

    const NOW: OffsetDateTime = datetime!(2024-01-01 0:00 UTC);

    #[test]
    fn a_destination_refused_by_the_address_policy_fails_at_once() {
        let refused = AttemptOutcome { kind: AttemptKind::RefusedByPolicy, ..outcome(0, None) };
        assert_eq!(classify(&refused, 1, 8, &policy(), NOW, 0.5), Verdict::Failed { gone: false });
        let network = outcome(0, None);
        assert!(matches!(classify(&network, 1, 8, &policy(), NOW, 0.5), Verdict::RetryAt(_)));
    }

    #[test]
    fn attempts_are_classed_by_status_class_or_by_what_went_wrong() {
        let classes: Vec<_> = [200, 204, 302, 404, 429, 503, 101].map(|c| outcome(c, None).outcome_class()).into();
        assert_eq!(classes, ["2xx", "2xx", "3xx", "4xx", "4xx", "5xx", "1xx"]);
        let broken_body = AttemptOutcome { kind: AttemptKind::BodyError, ..outcome(502, None) };
        assert_eq!(broken_body.outcome_class(), "5xx");
        assert_eq!(outcome(0, None).outcome_class(), "connect_error");
        for kind in
            [AttemptKind::Timeout, AttemptKind::ProtocolError, AttemptKind::RefusedByPolicy, AttemptKind::NotSent]
        {
            assert_eq!(AttemptOutcome { kind, ..outcome(0, None) }.outcome_class(), kind.as_str());
        }
    }

    #[test]
    fn any_2xx_is_delivered() {
        for c in [200, 201, 204, 299] {
            assert_eq!(classify(&outcome(c, None), 1, 8, &policy(), NOW, 0.5), Verdict::Delivered);
        }
    }

    #[test]
    fn redirects_client_and_server_errors_and_no_response_are_retried() {
        for c in [0, 301, 302, 400, 404, 500, 502] {
            assert_eq!(
                classify(&outcome(c, None), 1, 8, &policy(), NOW, 0.5),
                Verdict::RetryAt(NOW + Duration::from_secs(60)),
                "{c}"
            );
        }
    }

    #[test]
    fn last_attempt_failure_fails_the_delivery() {
        assert_eq!(classify(&outcome(500, None), 8, 8, &policy(), NOW, 0.5), Verdict::Failed { gone: false });
    }

    #[test]
    fn gone_fails_at_once() {
        assert_eq!(classify(&outcome(410, None), 1, 8, &policy(), NOW, 0.5), Verdict::Failed { gone: true });
    }

    #[test]
    fn retry_after_on_429_and_503_wins_when_longer_and_is_capped() {
        let p = policy();
        assert_eq!(
            classify(&outcome(429, Some(600)), 1, 8, &p, NOW, 0.5),
            Verdict::RetryAt(NOW + Duration::from_secs(600))
        );
        assert_eq!(
            classify(&outcome(503, Some(5)), 1, 8, &p, NOW, 0.5),
            Verdict::RetryAt(NOW + Duration::from_secs(60))
        );
        assert_eq!(
            classify(&outcome(500, Some(600)), 1, 8, &p, NOW, 0.5),
            Verdict::RetryAt(NOW + Duration::from_secs(60)),
            "Retry-After only counts on 429/503"
        );
        assert_eq!(
            classify(&outcome(429, Some(10 * 86400)), 1, 8, &p, NOW, 0.5),
            Verdict::RetryAt(NOW + Duration::from_secs(86400))
        );
    }
}
