//! Recovery: re-deliver the stored events of a window to one webhook.

use crate::{Admit, AppError, AppResult, Herald};
use herald_domain::{AccountId, WebhookId};
use herald_store::Recovery;
use time::OffsetDateTime;

/// A recovery, as the caller gave it (`until` defaults to now).
#[derive(Clone, Debug)]
pub struct RecoveryRequest {
    pub since: OffsetDateTime,
    pub until: Option<OffsetDateTime>,
    pub dry_run: bool,
}

impl Herald {
    /// Re-enqueues (or with `dry_run` counts) the window's events that match the webhook now.
    pub async fn recover(
        &self,
        account: &AccountId,
        webhook: &WebhookId,
        r: RecoveryRequest,
        admit: impl Admit,
    ) -> AppResult<u64> {
        let now = self.clock.now();
        let until = r.until.unwrap_or(now);
        if r.since >= until {
            return Err(AppError::field("since", "must be before until"));
        }
        self.webhook(account, webhook).await?;
        admit()?;
        let request = Recovery {
            account: account.clone(),
            webhook: webhook.clone(),
            since: r.since,
            until,
            dry_run: r.dry_run,
            now,
        };
        herald_store::recover(self.store.as_ref(), request, &self.config.fanout)
            .await?
            .ok_or(AppError::NotFound("webhook"))
    }
}
