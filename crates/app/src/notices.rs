//! Operational events the application publishes after a change it made has committed:
//! `webhook.enabled` / `webhook.disabled` (manual) and `secret.rotated`.

use crate::Herald;
use herald_domain::AccountId;
use herald_domain::operational::Notice;
use herald_store::NewEvent;

impl Herald {
    /// Publishes `notice` to the account's subscribed webhooks. The change it reports has
    /// committed already, so a store failure here does not fail the request: it is logged
    /// (the change stays visible through the API).
    pub(crate) async fn notify(&self, account: &AccountId, notice: Notice) {
        let event = NewEvent::notice(account, &notice, self.clock.now());
        match self.store.publish(event, &self.config.fanout).await {
            Ok(p) => crate::events::count_published("herald", p.deliveries),
            Err(e) => {
                tracing::error!(error = %herald_store::error_chain(&e), event_type = notice.event_type, "an operational event could not be published")
            }
        }
    }
}
