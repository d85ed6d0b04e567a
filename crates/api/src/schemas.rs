//! Named value types of the API contract, for the OpenAPI document only: each carries the
//! constraints the server enforces on such a value (the rules themselves live in
//! `herald-app` and `herald-domain`; `openapi::tests` checks the numbers agree). Nothing
//! here is ever built: request and response types name these in `value_type`.
#![allow(dead_code)]

use utoipa::ToSchema;

// The pattern `^[^\u0000-\u001F\u007F-\u009F]*$` below is "no control characters"
// (Unicode category Cc), what every name, id, label and description is checked for.

/// An event type name: dot-separated segments of a-z, 0-9, `_` and `-`. Where a type is
/// used (publish, subscribe, test) it must also be built in or registered by the account
/// (400 otherwise, naming the allowed ones). The operational types (`webhook.disabled`,
/// `webhook.enabled`, `delivery.failed`, `secret.rotated`) can be subscribed to; only Herald
/// publishes them (400 on publish and test send).
#[derive(ToSchema)]
#[schema(pattern = "^[a-z0-9_-]+(\\.[a-z0-9_-]+)*$", min_length = 1, max_length = 100, example = "email.received")]
pub struct EventTypeName(String);

/// A description or name: at most 200 characters, no control characters.
#[derive(ToSchema)]
#[schema(max_length = 200, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
pub struct Description(String);

/// A label: 1..100 characters, no control characters.
#[derive(ToSchema)]
#[schema(min_length = 1, max_length = 100, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
pub struct Label(String);

/// A filter value: 1..256 characters, no control characters.
#[derive(ToSchema)]
#[schema(min_length = 1, max_length = 256, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
pub struct FilterValue(String);

/// An `http` or `https` URL without credentials, at most 2048 characters once normalised
/// (non-ASCII percent-encoded, the host in punycode). Only `https` when the server requires
/// it (`HERALD_REQUIRE_HTTPS`). Every address its host resolves to must be allowed by the
/// server's address policy (public addresses by default), checked when it is written and
/// again at every connection; a refused URL is a 400 on `url` (or `webhook_url`).
#[derive(ToSchema)]
#[schema(
    format = "uri",
    max_length = 2048,
    pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s]+$",
    example = "https://example.com/hooks"
)]
pub struct TargetUrl(String);

/// An RFC 3339 time (UTC in answers).
#[derive(ToSchema)]
#[schema(format = DateTime, example = "2026-01-01T00:00:00Z")]
pub struct Rfc3339(String);

/// An agent's email address, `local@domain` (dot-atom local part of at most 64
/// characters); any case, stored lowercased. On create the domain must be one the server
/// accepts mail for (`HERALD_SMTP_DOMAINS`; 400 names them).
#[derive(ToSchema)]
#[schema(
    max_length = 254,
    pattern = "^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$",
    example = "bot@agents.example.com"
)]
pub struct AgentAddress(String);

/// A delivery's state.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
    /// Finally failed at the head of a FIFO lane of a webhook with `on_final_failure: block`:
    /// the lane waits until it is retried or skipped.
    Blocked,
}

/// How a webhook's in-flight limit is set: `adaptive` (between 1 and `max_in_flight`,
/// following the receiver) or `fixed` (`max_in_flight`).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum Concurrency {
    Adaptive,
    Fixed,
}

/// `hmac` (a shared secret) or `ed25519` (the account's key; public keys at `jwks_url`).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum SignatureScheme {
    Hmac,
    Ed25519,
}

/// `none`, or `fifo`: one lane per `ordering_key`, delivered in publish order.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum OrderingMode {
    None,
    Fifo,
}

/// What a FIFO lane does after a final failure: `block` or `skip`.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum OnFinalFailure {
    Block,
    Skip,
}

/// A duration: numbers with a unit (`ms`, `s`, `m`, `h`, `d`), space-separated parts
/// adding up (`1h 30m`).
#[derive(ToSchema)]
#[schema(max_length = 40, pattern = "^[0-9]+(ms|s|m|h|d)( [0-9]+(ms|s|m|h|d))*$", example = "5m")]
pub struct DurationText(String);

/// Why a webhook (or an agent's endpoint) is disabled: `manual` (through the API),
/// `failing` (the auto-disable pass), `gone` (the receiver answered `410 Gone`).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum DisabledReason {
    Manual,
    Failing,
    Gone,
}

/// What an attempt came to.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Response,
    BodyError,
    Timeout,
    ConnectError,
    ProtocolError,
    RefusedByPolicy,
    NotSent,
}

/// Routing filters: OR within a key, AND across keys; a non-empty key never matches an
/// event that lacks that attribute. Duplicates are removed before the limit of 50 values
/// per key is checked.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    #[serde(default)]
    #[schema(max_items = 50, value_type = Vec<FilterValue>)]
    agent_ids: Vec<String>,
    #[serde(default)]
    #[schema(max_items = 50, value_type = Vec<FilterValue>)]
    conversation_ids: Vec<String>,
    #[serde(default)]
    #[schema(max_items = 50, value_type = Vec<FilterValue>)]
    labels: Vec<String>,
}

/// What authenticating the message found; results are RFC 8601 words (`pass`, `fail`,
/// `softfail`, `neutral`, `none`, `temperror`, `permerror`).
#[derive(ToSchema)]
pub struct AuthResults {
    /// SPF of the envelope sender; `none` for a message injected through the API.
    spf: String,
    /// Every DKIM signature, in the order of the message.
    dkim: Vec<DkimResult>,
    /// DMARC with identifier alignment against the header `From` domain.
    dmarc: String,
    /// True only when DMARC passes.
    verified: bool,
}

/// One DKIM signature's result.
#[derive(ToSchema)]
pub struct DkimResult {
    domain: String,
    selector: String,
    result: String,
}

/// One attachment: never its content.
#[derive(ToSchema)]
pub struct Attachment {
    name: String,
    content_type: String,
    #[schema(minimum = 0)]
    size: u64,
}

/// `{id}` of a webhook.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WebhookPath {
    /// A webhook id; any other value is a 404.
    #[param(pattern = "^wh_[0-9a-f]{32}$")]
    id: String,
}

/// `{id}` of a delivery.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DeliveryPath {
    /// A delivery id; any other value is a 404.
    #[param(pattern = "^whd_[0-9a-f]{32}$")]
    id: String,
}

/// `{id}` of an event.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EventPath {
    /// An event id; any other value is a 404.
    #[param(pattern = "^evt_[0-9a-f]{32}$")]
    id: String,
}

/// `{id}` of a message.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MessagePath {
    /// A message id; any other value is a 404.
    #[param(pattern = "^msg_[0-9a-f]{32}$")]
    id: String,
}

/// `{address}` of an agent.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AgentPath {
    /// The agent's address, in any case; any other value is a 404.
    #[param(max_length = 254)]
    address: String,
}

/// The `Idempotency-Key` header of a rotation.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyHeader {
    /// A repeat with the same key within 24 h answers the first rotation's answer and
    /// rotates nothing: 1..255 visible ASCII characters.
    #[param(rename = "Idempotency-Key", min_length = 1, max_length = 255, pattern = "^[\\x20-\\x7E]+$")]
    idempotency_key: Option<String>,
}
