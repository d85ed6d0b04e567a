//! `GET /api/v1/webhooks/{id}/stats`: a webhook's attempts per time bucket by outcome, with
//! latency percentiles (what the portal's chart draws, for tools too).

use crate::AppState;
use crate::auth::Authed;
use crate::extract::{PathId, Query};
use crate::problem::ApiError;
use crate::webhooks::webhook_id;
use axum::extract::State;
use herald_app::{StatsBucket, WebhookStats};
use herald_domain::rfc3339;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    pub window: Option<String>,
    pub bucket: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StatsBucketOut {
    /// The bucket's start (RFC 3339 UTC); it ends where the next one starts.
    pub start: String,
    /// Attempts the endpoint answered with 2xx.
    pub delivered: u64,
    /// Attempts that failed: another status, a timeout, a refused connection.
    pub failed: u64,
    /// Attempt duration percentiles in milliseconds; null without attempts.
    pub p50_ms: Option<u64>,
    pub p99_ms: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StatsOut {
    pub since: String,
    pub until: String,
    pub window_seconds: u64,
    pub bucket_seconds: u64,
    /// Oldest first, aligned to multiples of the bucket length (UTC); the last holds now.
    pub buckets: Vec<StatsBucketOut>,
    /// The whole window (`start` is the window's start).
    pub totals: StatsBucketOut,
}

impl From<StatsBucket> for StatsBucketOut {
    fn from(b: StatsBucket) -> Self {
        Self { start: rfc3339(b.start), delivered: b.delivered, failed: b.failed, p50_ms: b.p50_ms, p99_ms: b.p99_ms }
    }
}

impl From<WebhookStats> for StatsOut {
    fn from(s: WebhookStats) -> Self {
        Self {
            since: rfc3339(s.since),
            until: rfc3339(s.until),
            window_seconds: (s.until - s.since).whole_seconds().max(0) as u64,
            bucket_seconds: s.bucket.as_secs(),
            buckets: s.buckets.into_iter().map(StatsBucketOut::from).collect(),
            totals: s.totals.into(),
        }
    }
}

/// A duration like `24h`, `90m`, `1d`.
pub(crate) fn duration_param(field: &str, v: Option<&str>, default: Duration) -> Result<Duration, ApiError> {
    match v {
        None => Ok(default),
        Some(v) => humantime::parse_duration(v.trim())
            .map_err(|_| ApiError::field(field, "must be a duration like 24h, 30m or 7d")),
    }
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/stats", tag = "webhooks", security(("bearer" = [])),
    params(("id" = String, Path), ("window" = Option<String>, Query, description = "how far back, e.g. 24h (default), at most 31d"),
           ("bucket" = Option<String>, Query, description = "bucket length, e.g. 1h (default), at least 1m; at most 1000 buckets")),
    responses((status = 200, body = StatsOut), (status = 400, body = crate::problem::Problem), (status = 404, body = crate::problem::Problem)))]
pub async fn webhook_stats(
    State(s): State<AppState>,
    Authed(account): Authed,
    PathId(id): PathId,
    Query(q): Query<StatsQuery>,
) -> Result<axum::Json<StatsOut>, ApiError> {
    let id = webhook_id(&id)?;
    let window = duration_param("window", q.window.as_deref(), Duration::from_secs(86_400))?;
    let bucket = duration_param("bucket", q.bucket.as_deref(), Duration::from_secs(3600))?;
    Ok(axum::Json(s.app.webhook_stats(&account.id, &id, window, bucket).await?.into()))
}
