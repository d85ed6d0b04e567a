//! Wire shapes: `…In` (requests), `…Out` (responses), `…Patch`. Field names are the contract.

use herald_domain::{Filters, rfc3339};
use herald_store::{Agent, Attempt, Delivery, Message, Webhook};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookIn {
    pub url: String,
    pub events: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[schema(value_type = Object)]
    #[serde(default)]
    pub filters: Option<Filters>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub max_in_flight: Option<u32>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatchIn {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    #[schema(value_type = Object)]
    pub filters: Option<Filters>,
    pub enabled: Option<bool>,
    pub max_in_flight: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookOut {
    pub id: String,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    #[schema(value_type = Object)]
    pub filters: Filters,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_disabled_at: Option<String>,
    pub max_in_flight: u32,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_delivered_at: Option<String>,
    /// Only on create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

impl From<Webhook> for WebhookOut {
    fn from(w: Webhook) -> Self {
        Self {
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    #[serde(rename = "type")]
    pub event_type: String,
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    pub agent_id: Option<String>,
    #[serde(default)]
    pub conversation_id: Option<String>,
    #[serde(default)]
    pub labels: Option<Vec<String>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct EventOut {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created_at: String,
    pub deliveries: u32,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DeliveryOut {
    pub id: String,
    /// The webhook (absent for a per-agent delivery).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<String>,
    /// The agent, for a per-agent delivery (its own `webhook_url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub event_id: String,
    pub event_type: String,
    pub status: &'static str,
    pub attempts: u32,
    pub max_attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<String>,
    pub next_retry_at: String,
    pub created_at: String,
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
    pub outcome: Option<&'static str>,
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
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub status: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentIn {
    pub address: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub webhook_url: Option<String>,
    #[serde(default)]
    pub max_in_flight: Option<u32>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentPatchIn {
    pub name: Option<String>,
    /// `null` removes the URL (deliveries wait until one is set again).
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<String>)]
    pub webhook_url: Option<Option<String>>,
    pub max_in_flight: Option<u32>,
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn present_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentOut {
    pub address: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    pub max_in_flight: u32,
    /// Whether the agent's own endpoint is delivered to (false without a `webhook_url`, or
    /// after it answered `410 Gone`: set `webhook_url` again to resume).
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    pub created_at: String,
    /// Only on create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

impl From<Agent> for AgentOut {
    fn from(a: Agent) -> Self {
        Self {
            address: a.address.to_string(),
            name: a.name,
            webhook_url: a.webhook_url,
            max_in_flight: a.max_in_flight,
            enabled: a.enabled,
            disabled_reason: a.disabled_reason.map(|r| r.as_str().to_owned()),
            created_at: rfc3339(a.created_at),
            signing_secret: None,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct MessageOut {
    pub id: String,
    pub agent: String,
    pub conversation_id: String,
    pub message_id_header: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub reply_to: Vec<String>,
    pub subject: String,
    pub received_at: String,
    #[schema(value_type = Object)]
    pub auth: herald_domain::AuthResults,
    #[schema(value_type = Vec<Object>)]
    pub attachments: Vec<herald_domain::Attachment>,
    pub size: u64,
}

impl From<Message> for MessageOut {
    fn from(m: Message) -> Self {
        Self {
            id: m.id.to_string(),
            agent: m.agent,
            conversation_id: m.conversation_id,
            message_id_header: m.parsed.message_id,
            from: m.parsed.from,
            to: m.parsed.to,
            cc: m.parsed.cc,
            reply_to: m.parsed.reply_to,
            subject: m.parsed.subject,
            received_at: rfc3339(m.received_at),
            auth: m.auth,
            attachments: m.parsed.attachments,
            size: m.size,
        }
    }
}
