//! Records of agents and inbound messages.

use crate::{FanoutRules, NewEvent};
use herald_domain::{
    AccountId, AgentAddress, AuthResults, DeliveryId, EventId, MessageId, ParsedMail, SigningSecret, WebhookId,
};
use std::time::Duration;
use time::OffsetDateTime;

/// An agent: an address hosted here. Its own endpoint (`webhook_url`) is a delivery target
/// the store keeps beside the account's webhooks (`target`), never listed as a webhook,
/// so per-agent deliveries use the same queue, leases, caps and secrets.
#[derive(Clone, Debug)]
pub struct Agent {
    pub address: AgentAddress,
    pub account_id: AccountId,
    pub name: String,
    pub webhook_url: Option<String>,
    pub max_in_flight: u32,
    pub created_at: OffsetDateTime,
    /// The delivery target of the agent's own deliveries.
    pub target: WebhookId,
    /// Whether its own endpoint is being delivered to: false without a `webhook_url`, or
    /// after the endpoint answered `410 Gone` (setting `webhook_url` again enables it).
    pub enabled: bool,
    pub disabled_reason: Option<herald_domain::DisabledReason>,
    pub signature: herald_domain::SignatureScheme,
}

#[derive(Clone, Debug)]
pub struct NewAgent {
    pub address: AgentAddress,
    pub account_id: AccountId,
    pub name: String,
    pub webhook_url: Option<String>,
    pub max_in_flight: u32,
    pub secret: SigningSecret,
    pub signature: herald_domain::SignatureScheme,
    pub target: WebhookId,
    pub created_at: OffsetDateTime,
}

/// A partial update; `None` leaves a field as it is, `webhook_url: Some(None)` removes it
/// (pending deliveries then wait until a URL is set again).
#[derive(Clone, Debug, Default)]
pub struct AgentPatch {
    pub name: Option<String>,
    pub webhook_url: Option<Option<String>>,
    pub max_in_flight: Option<u32>,
    pub signature: Option<herald_domain::SignatureScheme>,
}

/// Where mail for an address goes (found case-insensitively, across accounts).
#[derive(Clone, Debug)]
pub struct Recipient {
    pub address: AgentAddress,
    pub account_id: AccountId,
    pub target: WebhookId,
    pub has_webhook_url: bool,
}

/// One message for one agent, as stored.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub id: MessageId,
    pub account_id: AccountId,
    pub agent: AgentAddress,
    /// The agent's delivery target when it was looked up: if the agent is no longer that
    /// one (deleted, perhaps created again) the item is not stored ([`Ingested::AgentGone`]).
    pub target: WebhookId,
    pub conversation_id: String,
    /// What identifies the message among the agent's recent ones (`inbound::dedupe_key`).
    pub dedupe_key: String,
    pub parsed: ParsedMail,
    pub auth: AuthResults,
    /// The bytes kept (with the `Authentication-Results` header added).
    pub raw: Vec<u8>,
    pub received_at: OffsetDateTime,
}

/// Everything one accepted message means for one agent, committed together.
#[derive(Clone, Debug)]
pub struct InboundItem {
    pub message: NewMessage,
    /// The `email.received` event, fanned out to the account's subscribed webhooks.
    pub event: NewEvent,
    /// The per-agent delivery, when the agent has its own endpoint.
    pub agent_delivery: Option<AgentDelivery>,
}

/// A per-agent delivery: its id, target and stored `Payload`.
#[derive(Clone, Debug)]
pub struct AgentDelivery {
    pub id: DeliveryId,
    pub target: WebhookId,
    pub payload: Vec<u8>,
}

/// The rules an ingest applies.
#[derive(Clone, Debug)]
pub struct InboundRules {
    pub fanout: FanoutRules,
    pub dedupe_window: Duration,
    pub message_ttl: Duration,
    pub agent_delivery_ttl: Duration,
}

impl Default for InboundRules {
    fn default() -> Self {
        Self {
            fanout: FanoutRules::default(),
            dedupe_window: herald_domain::inbound::DEDUPE_WINDOW,
            message_ttl: herald_domain::inbound::MESSAGE_TTL,
            agent_delivery_ttl: herald_domain::inbound::AGENT_DELIVERY_TTL,
        }
    }
}

/// What an ingest did for one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ingested {
    Stored {
        message: MessageId,
        event: EventId,
        deliveries: u32,
        agent_delivery: Option<DeliveryId>,
    },
    /// The same message reached this agent within the dedupe window: nothing new.
    Duplicate {
        message: MessageId,
    },
    /// The agent was deleted (or replaced) after it was looked up: nothing stored for it.
    AgentGone,
}

/// A stored message as the API shows it.
#[derive(Clone, Debug)]
pub struct Message {
    pub id: MessageId,
    pub account_id: AccountId,
    pub agent: String,
    pub conversation_id: String,
    pub parsed: ParsedMail,
    pub auth: AuthResults,
    pub size: u64,
    pub received_at: OffsetDateTime,
}
