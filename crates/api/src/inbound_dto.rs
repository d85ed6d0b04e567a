//! Wire shapes of the inbound-mail half: agents and their messages (`…In` requests,
//! `…Out` responses, `…PatchIn`). Field names are the contract.

use crate::dto::jwks_url_for;
use herald_domain::rfc3339;
use herald_store::{Agent, Message};
use serde::{Deserialize, Serialize};

/// An agent to create.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentIn {
    /// Unique on the server (409 when taken).
    #[schema(value_type = crate::schemas::AgentAddress)]
    pub address: String,
    /// Default empty.
    #[serde(default)]
    #[schema(value_type = Option<crate::schemas::Description>)]
    pub name: Option<String>,
    /// The agent's own endpoint (the per-agent `Payload` deliveries); default none.
    #[serde(default)]
    #[schema(value_type = Option<crate::schemas::TargetUrl>)]
    pub webhook_url: Option<String>,
    /// Attempts in flight to the agent's endpoint at once; default 1.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 256)]
    pub max_in_flight: Option<u32>,
    /// `hmac` (default) or `ed25519`, as for webhooks. An `ed25519` agent's `Payload` has
    /// no `X-E2A-Auth-Signature`: the body's `v1a` signature covers it.
    #[serde(default)]
    #[schema(value_type = Option<crate::schemas::SignatureScheme>)]
    pub signature: Option<String>,
}

/// A partial change: an absent field keeps its value.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentPatchIn {
    /// `null` keeps the name.
    #[schema(value_type = Option<crate::schemas::Description>)]
    pub name: Option<String>,
    /// `null` removes the URL (deliveries wait until one is set again).
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<crate::schemas::TargetUrl>)]
    pub webhook_url: Option<Option<String>>,
    /// `null` keeps the value.
    #[schema(minimum = 1, maximum = 256)]
    pub max_in_flight: Option<u32>,
    /// `null` keeps it; switching to `hmac` answers a fresh `signing_secret`.
    #[schema(value_type = Option<crate::schemas::SignatureScheme>)]
    pub signature: Option<String>,
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn present_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentOut {
    /// Lowercased.
    pub address: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    pub max_in_flight: u32,
    /// Whether the agent's own endpoint is delivered to (false without a `webhook_url`, or
    /// after it answered `410 Gone`: set `webhook_url` again to resume).
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::schemas::DisabledReason>)]
    pub disabled_reason: Option<String>,
    #[schema(value_type = crate::schemas::SignatureScheme)]
    pub signature: String,
    /// With `signature: ed25519`: the account's public keys (a JWK Set, no auth needed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    #[schema(value_type = crate::schemas::Rfc3339)]
    pub created_at: String,
    /// Only on create with `signature: hmac`, and on a switch to `hmac`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^whsec_[0-9a-f]{64}$")]
    pub signing_secret: Option<String>,
}

impl AgentOut {
    /// The shape of `a`, served at `public_url`.
    pub fn of(a: Agent, public_url: &str) -> Self {
        Self {
            signature: a.signature.as_str().to_owned(),
            jwks_url: jwks_url_for(a.signature, public_url, &a.account_id),
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
    #[schema(pattern = "^msg_[0-9a-f]{32}$")]
    pub id: String,
    pub agent: String,
    pub conversation_id: String,
    /// The `Message-ID` header, when the message has one.
    #[schema(required = true)]
    pub message_id_header: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub reply_to: Vec<String>,
    pub subject: String,
    #[schema(value_type = crate::schemas::Rfc3339)]
    pub received_at: String,
    #[schema(value_type = crate::schemas::AuthResults)]
    pub auth: herald_domain::AuthResults,
    #[schema(value_type = Vec<crate::schemas::Attachment>)]
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
