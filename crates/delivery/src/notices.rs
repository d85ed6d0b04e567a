//! Operational events the engine publishes (`herald_domain::operational`): a delivery that
//! ended failed, a webhook disabled because its receiver answered 410 or kept failing.
//! They are published after the change they report has committed, through the store's
//! ordinary publish (same fan-out rules as any event).

use crate::engine::Engine;
use herald_domain::operational::Notice;
use herald_domain::{AccountId, DisabledReason, EventId, Verdict, WebhookId};
use herald_store::{NewEvent, Outcome};
use std::collections::HashSet;
use std::time::Duration;

/// What the engine knows about a finished attempt beyond its outcome.
#[derive(Clone, Debug)]
pub(crate) struct About {
    pub account_id: AccountId,
    pub event_id: EventId,
    pub event_type: String,
    /// An agent's own delivery: its endpoint is the agent's, not a webhook of the account.
    pub agent: bool,
}

/// Publish attempts per notice before it is given up (and logged).
const TRIES: u32 = 3;

/// Batches of notices (one per recorded batch of outcomes) waiting to be published; beyond
/// it new ones are dropped and counted (`herald_notices_dropped_total`).
pub(crate) const QUEUED_BATCHES: usize = 64;

/// The notices the applied outcomes cause: `delivery.failed` for each delivery that ended
/// failed, and `webhook.disabled` (`gone`) once per webhook the store reports it disabled
/// for a 410 (`disabled_gone`: one already disabled keeps its reason and gets no notice).
/// Agents' own deliveries cause none (their endpoint is not a webhook of the account).
pub(crate) fn after_outcomes<'a>(
    applied: impl Iterator<Item = (&'a Outcome, &'a About)>,
    disabled_gone: &HashSet<WebhookId>,
) -> Vec<(AccountId, Notice)> {
    let mut out: Vec<(AccountId, Notice)> = Vec::new();
    for (o, about) in applied.filter(|(_, a)| !a.agent) {
        let Verdict::Failed { gone } = o.verdict else { continue };
        if gone && disabled_gone.contains(&o.webhook_id) {
            let notice = Notice::webhook_disabled(&o.webhook_id, DisabledReason::Gone);
            if !out.iter().any(|(_, n)| *n == notice) {
                out.push((about.account_id.clone(), notice));
            }
        }
        let last_error = match (&o.result.error, o.result.status_code) {
            (Some(e), _) => e.clone(),
            (None, code) => format!("HTTP {code}"),
        };
        let failed = Notice::delivery_failed(
            &o.delivery_id,
            &o.webhook_id,
            &about.event_id,
            &about.event_type,
            o.attempt,
            &last_error,
        );
        out.extend(failed.map(|n| (about.account_id.clone(), n)));
    }
    out
}

impl Engine {
    /// Publishes the recorder's notices in the order it sends them, until it stops.
    pub(crate) async fn notice_loop(
        self: std::sync::Arc<Self>,
        mut rx: tokio::sync::mpsc::Receiver<Vec<(AccountId, Notice)>>,
    ) {
        while let Some(notices) = rx.recv().await {
            self.notify(notices).await;
        }
    }

    /// Publishes `notices`, each in its own transaction; a store failure is retried a few
    /// times, then the notice is logged and dropped (what it reports has happened and is
    /// visible through the API either way).
    pub(crate) async fn notify(&self, notices: Vec<(AccountId, Notice)>) {
        for (account, notice) in notices {
            let event = NewEvent::notice(&account, &notice, self.clock.now());
            let mut tries = 0;
            loop {
                tries += 1;
                match self.store.publish(event.clone(), &self.cfg.fanout).await {
                    Ok(p) => {
                        crate::telemetry::notice_published(p.deliveries);
                        break;
                    }
                    Err(e) if tries < TRIES => {
                        tracing::warn!(error = %herald_store::error_chain(&e), event_type = notice.event_type, "publishing an operational event failed; retrying");
                        tokio::time::sleep(Duration::from_millis(200 * u64::from(tries))).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %herald_store::error_chain(&e), event_type = notice.event_type, account_id = %account, "an operational event could not be published");
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::{AttemptKind, AttemptOutcome, DeliveryId};

    fn failed(webhook: &WebhookId, status: u16, gone: bool) -> Outcome {
        Outcome {
            delivery_id: DeliveryId::generate(),
            webhook_id: webhook.clone(),
            lease_token: "t".into(),
            attempt: 3,
            result: AttemptOutcome {
                kind: AttemptKind::Response,
                started_at: herald_domain::from_millis(0),
                duration: Duration::ZERO,
                status_code: status,
                error: None,
                response_body: None,
                retry_after: None,
            },
            verdict: Verdict::Failed { gone },
            blocks_lane: false,
        }
    }

    fn about(event_type: &str, agent: bool) -> About {
        About { account_id: AccountId::generate(), event_id: EventId::generate(), event_type: event_type.into(), agent }
    }

    #[test]
    fn failures_are_reported_once_per_delivery_and_gone_once_per_webhook() {
        let (w, other) = (WebhookId::generate(), WebhookId::generate());
        let outcomes = [failed(&w, 410, true), failed(&w, 410, true), failed(&other, 500, false)];
        let abouts = [about("order.paid", false), about("order.paid", false), about("order.paid", false)];
        let n = after_outcomes(outcomes.iter().zip(&abouts), &HashSet::from([w.clone()]));
        let kinds: Vec<_> = n.iter().map(|(_, n)| n.event_type).collect();
        assert_eq!(kinds, ["webhook.disabled", "delivery.failed", "delivery.failed", "delivery.failed"]);
        let already_disabled = after_outcomes(outcomes.iter().zip(&abouts), &HashSet::new());
        assert!(already_disabled.iter().all(|(_, n)| n.event_type == "delivery.failed"), "{already_disabled:?}");
        assert_eq!(n[3].1.data["last_error"], "HTTP 500");
        assert_eq!(n[3].1.data["attempts"], 3);
    }

    #[test]
    fn operational_test_and_agent_deliveries_end_quietly() {
        let w = WebhookId::generate();
        let outcomes = [failed(&w, 500, false), failed(&w, 500, false), failed(&w, 410, true)];
        let abouts = [about("delivery.failed", false), about("webhook.test", false), about("email.received", true)];
        let gone = HashSet::from([w.clone()]);
        assert!(after_outcomes(outcomes.iter().zip(&abouts), &gone).is_empty());
        let delivered = Outcome { verdict: Verdict::Delivered, ..failed(&w, 200, false) };
        assert!(after_outcomes([(&delivered, &about("order.paid", false))].into_iter(), &gone).is_empty());
    }
}
