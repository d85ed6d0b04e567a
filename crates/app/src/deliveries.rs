//! Deliveries as an account sees them: list a webhook's, inspect one, retry a failed one,
//! skip a pending or blocked one.

use crate::{AppError, AppResult, Herald};
use herald_domain::{AccountId, DeliveryId};
use herald_store::{Attempt, Delivery, DeliveryQuery};

impl Herald {
    /// A page of one webhook's deliveries (the webhook must be the account's).
    pub async fn deliveries(&self, query: DeliveryQuery) -> AppResult<Vec<Delivery>> {
        self.webhook(&query.account, &query.webhook).await?;
        Ok(self.store.list_deliveries(query).await?)
    }

    /// One delivery with its attempts.
    pub async fn delivery(&self, account: &AccountId, id: &DeliveryId) -> AppResult<(Delivery, Vec<Attempt>)> {
        self.store.get_delivery(account, id).await?.ok_or(AppError::NotFound("delivery"))
    }

    /// A failed or blocked delivery back to pending with one more attempt (see the domain's rule).
    pub async fn retry_delivery(&self, account: &AccountId, id: &DeliveryId) -> AppResult<Delivery> {
        self.store.retry_delivery(account, id, self.clock.now()).await?.ok_or(AppError::NotFound("delivery"))
    }

    /// A pending or blocked delivery ends failed (`skipped`): its FIFO lane moves on.
    pub async fn skip_delivery(&self, account: &AccountId, id: &DeliveryId) -> AppResult<Delivery> {
        self.store.skip_delivery(account, id, self.clock.now()).await?.ok_or(AppError::NotFound("delivery"))
    }
}
