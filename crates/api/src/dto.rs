//! Wire shapes: `…In` (requests), `…Out` (responses), `…Patch`. Field names are the contract.

use herald_domain::{Filters, rfc3339};
use herald_store::{Attempt, Delivery, Webhook};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A webhook to create.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookIn {
    #[schema(value_type = crate::schemas::TargetUrl)]
    pub url: String,
    /// The event types to deliver: at least one, each built in or registered; duplicates
    /// are removed.
    #[schema(value_type = Vec<crate::schemas::EventTypeName>, min_items = 1)]
    pub events: Vec<String>,
    /// Default empty.
    #[serde(default)]
    #[schema(value_type = Option<crate::schemas::Description>)]
    pub description: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<crate::schemas::Filters>)]
    pub filters: Option<Filters>,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Attempts in flight to this webhook at once; default 1. With `concurrency: adaptive`
    /// the most the adaptive limit may reach.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 256)]
    pub max_in_flight: Option<u32>,
    /// `adaptive` (default for new webhooks): the in-flight limit moves between 1 and
    /// `max_in_flight` with the receiver's answers; `fixed`: it is `max_in_flight`.
    #[serde(default)]
    #[schema(value_type = Option<crate::schemas::Concurrency>)]
    pub concurrency: Option<String>,
    /// Most attempts started per second, across replicas; 0 removes the limit.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 10000)]
    pub rate_limit_per_second: Option<u32>,
    /// `fifo`: events of one `ordering_key` are delivered in publish order, one at a time.
    #[serde(default)]
    #[schema(value_type = Option<crate::schemas::OrderingMode>)]
    pub ordering: Option<String>,
    /// With `ordering: fifo`, what a lane does after a final failure: `block` (default;
    /// it waits for a retry or a skip) or `skip`.
    #[serde(default)]
    #[schema(value_type = Option<crate::schemas::OnFinalFailure>)]
    pub on_final_failure: Option<String>,
    /// Waits between attempts (`30s`, `5m`, `1h`…): at most 20 steps, at most 7 days in
    /// total; `[]` goes back to the server's schedule.
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::schemas::DurationText>>, max_items = 20)]
    pub retry_schedule: Option<Vec<String>>,
    /// No attempt after a delivery is this old (at most `7d`); `0s` removes the limit.
    #[serde(default)]
    #[schema(value_type = Option<crate::schemas::DurationText>)]
    pub max_age: Option<String>,
    /// `hmac` (default): a shared secret signs (`X-E2A-Signature`, `webhook-signature: v1,…`);
    /// `ed25519`: the account's key signs (`webhook-signature: v1a,…`, `webhook-key-id`), and
    /// receivers verify with the public keys at `jwks_url`.
    #[serde(default)]
    #[schema(value_type = Option<crate::schemas::SignatureScheme>)]
    pub signature: Option<String>,
}

/// A partial change: an absent (or `null`) field keeps its value. The URL is checked
/// again only when it changes.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatchIn {
    #[schema(value_type = Option<crate::schemas::TargetUrl>)]
    pub url: Option<String>,
    /// At least one, each built in or registered; duplicates are removed.
    #[schema(value_type = Option<Vec<crate::schemas::EventTypeName>>, min_items = 1)]
    pub events: Option<Vec<String>>,
    #[schema(value_type = Option<crate::schemas::Description>)]
    pub description: Option<String>,
    #[schema(value_type = Option<crate::schemas::Filters>)]
    pub filters: Option<Filters>,
    /// `true` within the re-enable cooldown of an automatic disable is a 409.
    pub enabled: Option<bool>,
    #[schema(minimum = 1, maximum = 256)]
    pub max_in_flight: Option<u32>,
    /// `adaptive` (default for new webhooks): the in-flight limit moves between 1 and
    /// `max_in_flight` with the receiver's answers; `fixed`: it is `max_in_flight`.
    #[serde(default)]
    #[schema(value_type = Option<crate::schemas::Concurrency>)]
    pub concurrency: Option<String>,
    /// Most attempts started per second, across replicas; 0 removes the limit.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 10000)]
    pub rate_limit_per_second: Option<u32>,
    /// `fifo`: events of one `ordering_key` are delivered in publish order, one at a time.
    #[serde(default)]
    #[schema(value_type = Option<crate::schemas::OrderingMode>)]
    pub ordering: Option<String>,
    /// With `ordering: fifo`, what a lane does after a final failure: `block` (default;
    /// it waits for a retry or a skip) or `skip`.
    #[serde(default)]
    #[schema(value_type = Option<crate::schemas::OnFinalFailure>)]
    pub on_final_failure: Option<String>,
    /// Waits between attempts (`30s`, `5m`, `1h`…): at most 20 steps, at most 7 days in
    /// total; `[]` goes back to the server's schedule.
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::schemas::DurationText>>, max_items = 20)]
    pub retry_schedule: Option<Vec<String>>,
    /// No attempt after a delivery is this old (at most `7d`); `0s` removes the limit.
    #[serde(default)]
    #[schema(value_type = Option<crate::schemas::DurationText>)]
    pub max_age: Option<String>,
    /// `hmac` (default): a shared secret signs (`X-E2A-Signature`, `webhook-signature: v1,…`);
    /// `ed25519`: the account's key signs (`webhook-signature: v1a,…`, `webhook-key-id`), and
    /// receivers verify with the public keys at `jwks_url`. Switching to `hmac` answers a
    /// fresh `signing_secret` (a rotation: the stored secret signs beside it for 24 h).
    #[serde(default)]
    #[schema(value_type = Option<crate::schemas::SignatureScheme>)]
    pub signature: Option<String>,
}

/// The delivery controls of a create or patch body (the same six fields in both).
macro_rules! control_change {
    ($input:expr) => {
        herald_app::ControlChange {
            concurrency: $input.concurrency,
            rate_limit_per_second: $input.rate_limit_per_second,
            ordering: $input.ordering,
            on_final_failure: $input.on_final_failure,
            retry_schedule: $input.retry_schedule,
            max_age: $input.max_age,
        }
    };
}
pub(crate) use control_change;

#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookOut {
    #[schema(pattern = "^wh_[0-9a-f]{32}$")]
    pub id: String,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    #[schema(value_type = crate::schemas::Filters)]
    pub filters: Filters,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schemas::DisabledReason>)]
    pub disabled_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schemas::Rfc3339>)]
    pub auto_disabled_at: Option<String>,
    pub max_in_flight: u32,
    #[schema(value_type = crate::schemas::Concurrency)]
    pub concurrency: String,
    /// The in-flight limit now: `max_in_flight` when fixed, the adaptive limit otherwise.
    pub effective_max_in_flight: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_second: Option<u32>,
    #[schema(value_type = crate::schemas::OrderingMode)]
    pub ordering: String,
    #[schema(value_type = crate::schemas::OnFinalFailure)]
    pub on_final_failure: String,
    /// The schedule in effect (the server's unless the webhook has its own).
    #[schema(value_type = Vec<crate::schemas::DurationText>)]
    pub retry_schedule: Vec<String>,
    /// Whether `retry_schedule` is the webhook's own.
    pub custom_retry_schedule: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schemas::DurationText>)]
    pub max_age: Option<String>,
    #[schema(value_type = crate::schemas::SignatureScheme)]
    pub signature: String,
    /// With `signature: ed25519`: the account's public keys (a JWK Set, no auth needed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    #[schema(value_type = crate::schemas::Rfc3339)]
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schemas::Rfc3339>)]
    pub last_delivered_at: Option<String>,
    /// Only on create with `signature: hmac`, and on a switch to `hmac`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^whsec_[0-9a-f]{64}$")]
    pub signing_secret: Option<String>,
}

/// Where an account's JWK Set is served, under the server's public address.
pub fn jwks_url(public_url: &str, account: &herald_domain::AccountId) -> String {
    format!("{}/.well-known/herald/{account}/jwks.json", public_url.trim_end_matches('/'))
}

/// `jwks_url` for a target signing with `signature`.
pub(crate) fn jwks_url_for(
    signature: herald_domain::SignatureScheme,
    public_url: &str,
    account: &herald_domain::AccountId,
) -> Option<String> {
    (signature == herald_domain::SignatureScheme::Ed25519).then(|| jwks_url(public_url, account))
}

impl WebhookOut {
    /// The shape of `w`, whose schedule is `server_schedule` unless it has its own, served
    /// at `public_url`.
    pub fn of(w: Webhook, server_schedule: &[std::time::Duration], public_url: &str) -> Self {
        let show = herald_domain::control::show_duration;
        let c = &w.control;
        Self {
            signature: w.signature.as_str().to_owned(),
            jwks_url: jwks_url_for(w.signature, public_url, &w.account_id),
            concurrency: c.concurrency.as_str().to_owned(),
            effective_max_in_flight: w.effective_max_in_flight,
            rate_limit_per_second: c.rate_limit_per_second,
            ordering: c.ordering.as_str().to_owned(),
            on_final_failure: c.on_final_failure.as_str().to_owned(),
            retry_schedule: c.retry_schedule.as_deref().unwrap_or(server_schedule).iter().map(|d| show(*d)).collect(),
            custom_retry_schedule: c.retry_schedule.is_some(),
            max_age: c.max_age.map(show),
            id: w.id.to_string(),
            url: w.url,
            description: w.description,
            events: w.events,
            filters: w.filters,
            enabled: w.enabled,
            disabled_reason: w.disabled_reason.map(|r| r.as_str().to_owned()),
            auto_disabled_at: w.auto_disabled_at.map(rfc3339),
            max_in_flight: w.max_in_flight,
            created_at: rfc3339(w.created_at),
            last_delivered_at: w.last_delivered_at.map(rfc3339),
            signing_secret: None,
        }
    }
}

/// An event to publish.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    #[serde(rename = "type")]
    #[schema(value_type = crate::schemas::EventTypeName)]
    pub event_type: String,
    /// Any JSON object: valid string escapes, at most 128 levels deep, numbers within a
    /// double's range. Delivered byte for byte as sent.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
    /// The same key within 24 h answers the same event and makes no new deliveries.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub idempotency_key: Option<String>,
    /// Routing attribute matched by `filters.agent_ids`.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 320, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub agent_id: Option<String>,
    /// Routing attribute matched by `filters.conversation_ids`.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub conversation_id: Option<String>,
    /// Routing attributes matched by `filters.labels`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<crate::schemas::Label>>, max_items = 50)]
    pub labels: Option<Vec<String>>,
    /// The FIFO lane of this event in each webhook with `ordering: fifo` (absent: the
    /// webhook's one lane); ignored by other webhooks.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    pub ordering_key: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventOut {
    #[schema(pattern = "^evt_[0-9a-f]{32}$")]
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[schema(value_type = crate::schemas::Rfc3339)]
    pub created_at: String,
    /// Deliveries the event fanned out to.
    pub deliveries: u32,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryOut {
    #[schema(pattern = "^whd_[0-9a-f]{32}$")]
    pub id: String,
    /// The webhook (absent for a per-agent delivery).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<String>,
    /// The agent, for a per-agent delivery (its own `webhook_url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub event_id: String,
    pub event_type: String,
    #[schema(value_type = crate::schemas::DeliveryStatus)]
    pub status: &'static str,
    pub attempts: u32,
    pub max_attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schemas::Rfc3339>)]
    pub last_attempt_at: Option<String>,
    #[schema(value_type = crate::schemas::Rfc3339)]
    pub next_retry_at: String,
    #[schema(value_type = crate::schemas::Rfc3339)]
    pub created_at: String,
    /// Only on `GET /deliveries/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_log: Option<Vec<AttemptOut>>,
}

impl From<Delivery> for DeliveryOut {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id.to_string(),
            webhook_id: d.agent.is_none().then(|| d.webhook_id.to_string()),
            agent: d.agent,
            event_id: d.event_id.to_string(),
            event_type: d.event_type,
            status: d.status.as_str(),
            attempts: d.attempts,
            max_attempts: d.max_attempts,
            last_error: d.last_error,
            last_status_code: d.last_status_code,
            last_attempt_at: d.last_attempt_at.map(rfc3339),
            next_retry_at: rfc3339(d.next_retry_at),
            created_at: rfc3339(d.created_at),
            attempt_log: None,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AttemptOut {
    pub number: u32,
    /// What happened: `response`, `body_error`, `timeout`, `connect_error`, `protocol_error`,
    /// `refused_by_policy` or `not_sent` (absent for attempts recorded by older versions).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schemas::AttemptOutcome>)]
    pub outcome: Option<&'static str>,
    #[schema(value_type = crate::schemas::Rfc3339)]
    pub started_at: String,
    pub duration_ms: u64,
    pub status_code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
}

impl From<Attempt> for AttemptOut {
    fn from(a: Attempt) -> Self {
        Self {
            number: a.number,
            outcome: a.kind.map(|k| k.as_str()),
            started_at: rfc3339(a.started_at),
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            error: a.error,
            response_body: a.response_body,
        }
    }
}

/// A page of a list.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ListOut<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A page of a list ordered by id.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page.
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before; empty or absent: the first page.
    #[param(pattern = "^[A-Za-z0-9_]{0,64}$", max_length = 64)]
    pub cursor: Option<String>,
}

/// A page of a list of deliveries, optionally of one status.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryPageQuery {
    /// Items per page.
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before; empty or absent: the first page.
    #[param(pattern = "^[A-Za-z0-9_]{0,64}$", max_length = 64)]
    pub cursor: Option<String>,
    /// Only deliveries in this state; empty or absent: all.
    #[param(value_type = Option<crate::schemas::DeliveryStatus>)]
    pub status: Option<String>,
}

pub use crate::inbound_dto::*;
