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

/// The window and the bucket length, as durations like `24h`, `90m` or `7d` (units `s`,
/// `m`, `h`, `d`, `w` and their longer names; parts may be combined: `1h 30m`).
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// How far back: 1m..31d, a whole number of buckets; default 24h.
    #[param(
        pattern = "^ *[0-9]+ *(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|wks?|weeks?)( *[0-9]+ *(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|wks?|weeks?))* *$",
        example = "24h"
    )]
    pub window: Option<String>,
    /// The bucket length: whole seconds, at least 1m, at most the window, at most 1000
    /// buckets in the window; default 1h.
    #[param(
        pattern = "^ *[0-9]+ *(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|wks?|weeks?)( *[0-9]+ *(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|wks?|weeks?))* *$",
        example = "1h"
    )]
    pub bucket: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StatsBucketOut {
    /// The bucket's start (RFC 3339 UTC); it ends where the next one starts.
    #[schema(value_type = crate::schemas::Rfc3339)]
    pub start: String,
    /// Attempts the endpoint answered with 2xx.
    pub delivered: u64,
    /// Attempts that failed: another status, a timeout, a refused connection.
    pub failed: u64,
    /// Attempt duration percentiles in milliseconds; null without attempts.
    #[schema(required = true)]
    pub p50_ms: Option<u64>,
    #[schema(required = true)]
    pub p99_ms: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StatsOut {
    #[schema(value_type = crate::schemas::Rfc3339)]
    pub since: String,
    #[schema(value_type = crate::schemas::Rfc3339)]
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
    params(crate::schemas::WebhookPath, StatsQuery),
    responses(
        (status = 200, body = StatsOut, description = "the webhook's attempts per bucket"),
        (status = 400, description = "invalid: also a window or bucket out of its bounds"),
    ))]
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
