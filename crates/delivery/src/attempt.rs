//! One attempt of a claimed delivery: send it (or fail it unsent), classify the answer under
//! the webhook's own retry policy, and make the outcome the recorder applies.

use crate::engine::Engine;
use herald_domain::delivery::{TOO_OLD, classify, within_deadline};
use herald_domain::{AttemptOutcome, RetryPolicy, Verdict};
use herald_store::{Claimed, Outcome};
use std::future::Future;
use std::time::Duration;

impl Engine {
    pub(crate) async fn run_attempt(&self, mut c: Claimed) -> Outcome {
        // The webhook's own schedule, or the server's; no retry past its `max_age`.
        let own_policy;
        let policy = match c.retry_schedule.take() {
            Some(schedule) => {
                own_policy = RetryPolicy { schedule, ..self.cfg.retry.clone() };
                &own_policy
            }
            None => &self.cfg.retry,
        };
        let verdict_of = |result: &AttemptOutcome| {
            let now = self.clock.now();
            within_deadline(classify(result, c.attempt, c.max_attempts, policy, now, unit_random()), c.deadline)
        };
        let (result, verdict) = match c.body.take() {
            // Older than the webhook's max_age: not sent at all.
            // Never blocks its lane: a retry could not send it either.
            Some(_) if c.deadline.is_some_and(|d| self.clock.now() > d) => {
                c.blocks_lane = false;
                (failure_without_response(self.clock.now(), TOO_OLD), Verdict::Failed { gone: false })
            }
            // The secrets or keys cannot be opened (another HERALD_SECRET_KEY): never send unsigned.
            Some(_) if let Err(why) = c.signer() => {
                let result = failure_without_response(self.clock.now(), why);
                let verdict = verdict_of(&result);
                (result, verdict)
            }
            Some(body) => {
                let result = shielded(self.sender.attempt(&c, body), self.clock.now()).await;
                let verdict = verdict_of(&result);
                (result, verdict)
            }
            // The event is gone: sending an empty body would be signed and "delivered".
            None => (failure_without_response(self.clock.now(), MISSING_BODY), Verdict::Failed { gone: false }),
        };
        crate::telemetry::attempt_finished(&result, &c.webhook_id, self.cfg.metrics_per_webhook);
        tracing::debug!(
            delivery_id = %c.delivery_id,
            webhook_id = %c.webhook_id,
            attempt = c.attempt,
            kind = result.kind.as_str(),
            status = result.status_code,
            ms = result.duration.as_millis() as u64,
            error = result.error.as_deref(),
            "attempt finished"
        );
        Outcome {
            delivery_id: c.delivery_id,
            webhook_id: c.webhook_id,
            lease_token: c.lease_token,
            attempt: c.attempt,
            result,
            verdict,
            blocks_lane: c.blocks_lane,
        }
    }
}

/// The error of a delivery whose event no longer exists.
const MISSING_BODY: &str = "not sent: the event of this delivery no longer exists";

/// A failed attempt with no response to show (nothing sent, or the attempt broke).
pub(crate) fn failure_without_response(at: time::OffsetDateTime, error: &str) -> AttemptOutcome {
    AttemptOutcome {
        kind: herald_domain::AttemptKind::NotSent,
        started_at: at,
        duration: Duration::ZERO,
        status_code: 0,
        error: Some(error.to_owned()),
        response_body: None,
        retry_after: None,
    }
}

/// Runs one attempt so that a panic inside it still ends as a recorded failed attempt
/// (and is retried on the schedule), never as a delivery stuck with its lease.
async fn shielded(attempt: impl Future<Output = AttemptOutcome>, started_at: time::OffsetDateTime) -> AttemptOutcome {
    use futures_util::FutureExt;
    std::panic::AssertUnwindSafe(attempt).catch_unwind().await.unwrap_or_else(|_| {
        tracing::error!("an attempt panicked; recorded as a failed attempt");
        failure_without_response(started_at, "internal error during the attempt")
    })
}

/// A uniform number in [0, 1) for jitter.
fn unit_random() -> f64 {
    let b = herald_domain::random_bytes::<8>();
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_attempt_becomes_a_failed_attempt() {
        let at = herald_domain::from_millis(1_700_000_000_000);
        let out = shielded(
            async {
                let mut s = "é".repeat(10);
                let cut = std::hint::black_box(3);
                s.truncate(cut); // panics: not a character boundary
                failure_without_response(at, &s)
            },
            at,
        )
        .await;
        assert_eq!(out.status_code, 0);
        assert!(!out.is_success());
        assert!(out.error.unwrap().contains("internal error"));
    }

    #[tokio::test]
    async fn a_normal_attempt_passes_through_the_shield() {
        let at = herald_domain::from_millis(1_700_000_000_000);
        let out = shielded(async { failure_without_response(at, "x") }, at).await;
        assert_eq!(out.error.as_deref(), Some("x"));
    }
}
