//! Operational events the engine publishes (`herald_domain::operational`): a delivery that
//! ended failed, a webhook disabled because its receiver answered 410 or kept failing.
//! They are published after the change they report has committed, through the store's
//! ordinary publish (same fan-out rules as any event).

use crate::engine::Engine;
use herald_domain::operational::Notice;
use herald_domain::{AccountId, DisabledReason, EventId, Verdict};
use herald_store::{NewEvent, Outcome};
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

/// Publish attempts per batch of notices before they are given up (and logged).
const TRIES: u32 = 3;

/// The notices the applied outcomes cause: `delivery.failed` for each delivery that ended
/// failed, and `webhook.disabled` (`gone`) once per webhook whose receiver answered 410.
/// Agents' own deliveries cause none (their endpoint is not a webhook of the account).
pub(crate) fn after_outcomes<'a>(applied: impl Iterator<Item = (&'a Outcome, &'a About)>) -> Vec<(AccountId, Notice)> {
    let mut out: Vec<(AccountId, Notice)> = Vec::new();
    for (o, about) in applied.filter(|(_, a)| !a.agent) {
        let Verdict::Failed { gone } = o.verdict else { continue };
        if gone {
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
                    Ok(_) => break,
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
