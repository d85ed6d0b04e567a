//! A webhook's attempt history counted into time buckets (the stats API and the portal's
//! charts).

use crate::StoreResult;
use async_trait::async_trait;
use herald_domain::{AccountId, WebhookId};
use std::time::Duration;
use time::OffsetDateTime;

/// Which attempts to count: one webhook of one account, started in `[since, until)`, in
/// buckets of `bucket` from `since`.
#[derive(Clone, Debug)]
pub struct AttemptWindow {
    pub account: AccountId,
    pub webhook: WebhookId,
    pub since: OffsetDateTime,
    pub until: OffsetDateTime,
    pub bucket: Duration,
}

/// How many attempts of one bucket, with one outcome, took `duration_ms` (to three
/// significant digits: exact below 1 s, then rounded down to 10 ms, and to 100 ms from 10 s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptCount {
    /// Index of the bucket from the window's start.
    pub bucket: u32,
    /// The endpoint answered 2xx.
    pub success: bool,
    pub duration_ms: u64,
    pub count: u64,
}

/// A webhook's attempt history, counted (not listed), so a day of heavy traffic costs a
/// bounded answer: at most one row per (bucket, outcome, duration to three significant digits).
#[async_trait]
pub trait AttemptStats {
    async fn attempt_counts(&self, window: &AttemptWindow) -> StoreResult<Vec<AttemptCount>>;
}
