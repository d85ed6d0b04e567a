//! Inbound mail, once for every adapter (the SMTP listener and `POST /agents/{a}/messages`):
//! find recipients, parse, authenticate, choose conversations, and commit each agent's
//! message, `email.received` event and own delivery in one transaction before answering.

use crate::{Admit, AppError, AppResult, Herald};
use herald_domain::inbound::{self, EMAIL_RECEIVED, Received};
use herald_domain::{
    AccountId, AgentAddress, AuthResults, DeliveryId, Envelope, EventId, MessageId, RoutingAttributes,
};
use herald_mail::SmtpClient;
use herald_store::{AgentDelivery, Attempt, InboundItem, InboundRules, Ingested, NewEvent, NewMessage, Recipient};

/// What an injected message did (`POST /agents/{address}/messages`).
#[derive(Clone, Debug)]
pub struct Injected {
    pub message_id: MessageId,
    /// The agent's own delivery (none when the agent has no `webhook_url`, or for a duplicate).
    pub delivery_id: Option<DeliveryId>,
    /// True when the same message had already reached the agent (nothing new was made).
    pub duplicate: bool,
    /// With `wait`: the first attempt of the agent's delivery, when recorded in time.
    pub first_attempt: Option<Attempt>,
}

/// The `Received:` trace field this server adds to mail taken over SMTP.
fn received_field(c: &SmtpClient, hostname: &str, now: time::OffsetDateTime) -> String {
    let helo: String = herald_domain::text::header_safe(c.helo.trim()).chars().take(255).collect();
    let date = now.format(&time::format_description::well_known::Rfc2822).unwrap_or_default();
    format!("Received: from {helo} ([{}])\r\n\tby {hostname} with ESMTP; {date}\r\n", c.ip)
}

impl Herald {
    /// Where mail for `address` goes; `None` when it is not hosted here (any case matches).
    pub async fn recipient(&self, address: &str) -> AppResult<Option<Recipient>> {
        let Ok(address) = AgentAddress::parse(address) else { return Ok(None) };
        if !self.config.inbound.domains.contains(address.domain()) {
            return Ok(None);
        }
        Ok(self.store.find_recipient(&address).await?)
    }

    /// Accepts one message for hosted recipients: everything is committed in ONE
    /// transaction before this returns; a store failure stores nothing (`Unavailable`).
    /// A message that does not parse is `Invalid` (field `message`).
    pub async fn accept_mail(
        &self,
        raw: &[u8],
        client: Option<&SmtpClient>,
        recipients: &[Recipient],
    ) -> AppResult<Vec<Ingested>> {
        if raw.len() > self.config.inbound.max_message_size {
            return Err(AppError::field(
                "message",
                format!("larger than the {} bytes accepted", self.config.inbound.max_message_size),
            ));
        }
        let _slot = self.ingests.acquire().await.expect("the semaphore is never closed");
        let mut parsed = herald_mail::parse(raw).map_err(|e| AppError::field("message", e.to_string()))?;
        // Ids are kept (and looked up) at most this long: index entries have limits.
        for id in parsed.message_id.iter_mut().chain(&mut parsed.in_reply_to).chain(&mut parsed.references) {
            herald_domain::text::truncate(id, inbound::MAX_KEY_LEN);
        }
        let hostname = &self.config.inbound.hostname;
        let auth = match &self.mail {
            Some(a) => a.authenticate(raw, client, hostname).await,
            None => AuthResults::none(),
        };
        let now = self.clock.now();
        // What is kept: a trace field (RFC 5321 §4.4), this server's verdict, and the message
        // without any verdict forged in this server's name (RFC 8601 §5).
        let mut stored = Vec::with_capacity(raw.len() + 512);
        if let Some(c) = client {
            stored.extend_from_slice(received_field(c, hostname, now).as_bytes());
        }
        let header =
            herald_mail::authentication_results(hostname, &auth, client, &herald_mail::domain_of(&parsed.from));
        stored.extend_from_slice(header.as_bytes());
        stored.extend_from_slice(&herald_mail::without_forged_results(raw, hostname));
        let dedupe_key = inbound::dedupe_key(&parsed, raw);
        // Our own agents' mail carries its conversation in a header; anyone else's is placed
        // by what it replies to. Over SMTP "ours" needs the envelope sender's domain to be one
        // of ours AND SPF to pass for it (anyone can write our domain in MAIL FROM); a message
        // injected through the API comes from the account itself, so its From domain counts.
        let sender = client.map(|c| c.envelope_sender().to_owned()).unwrap_or_else(|| parsed.from.clone());
        let ours = self.config.inbound.domains.contains(&herald_mail::domain_of(&sender))
            && (client.is_none() || auth.spf == "pass");
        let candidates = inbound::reply_candidates(&parsed);
        let mut items = Vec::with_capacity(recipients.len());
        let mut seen = std::collections::HashSet::new();
        for r in recipients.iter().filter(|r| seen.insert(r.address.clone())) {
            let earlier = self.store.conversation_of(&r.account_id, &r.address, &candidates).await?;
            let conversation = inbound::choose_conversation(&parsed, ours, earlier);
            let message_id = MessageId::generate();
            let received = Received {
                message_id: message_id.as_str(),
                conversation_id: &conversation,
                agent: r.address.as_str(),
                parsed: &parsed,
                auth: &auth,
                raw: &stored,
                received_at: now,
            };
            let event_id = EventId::generate();
            let data = serde_json::value::to_raw_value(&received.event_data()).expect("plain data serialises");
            let event = NewEvent {
                envelope: Envelope::build(&event_id, EMAIL_RECEIVED, now, &data),
                id: event_id,
                account_id: r.account_id.clone(),
                event_type: EMAIL_RECEIVED.into(),
                routing: RoutingAttributes {
                    agent_id: Some(r.address.to_string()),
                    conversation_id: Some(conversation.clone()),
                    labels: Vec::new(),
                },
                ordering_key: None,
                idempotency_key: None,
                created_at: now,
            };
            let agent_delivery = r.has_webhook_url.then(|| AgentDelivery {
                id: DeliveryId::generate(),
                target: r.target.clone(),
                payload: serde_json::to_vec(&received.stored_payload()).expect("plain data serialises"),
            });
            items.push(InboundItem {
                message: NewMessage {
                    id: message_id,
                    account_id: r.account_id.clone(),
                    agent: r.address.clone(),
                    target: r.target.clone(),
                    conversation_id: conversation,
                    dedupe_key: dedupe_key.clone(),
                    parsed: parsed.clone(),
                    auth: auth.clone(),
                    raw: stored.clone(),
                    received_at: now,
                },
                event,
                agent_delivery,
            });
        }
        let rules = InboundRules { fanout: self.config.fanout.clone(), ..self.config.inbound.rules.clone() };
        let done = self.store.ingest(items, &rules).await?;
        for d in &done {
            if let Ingested::Stored { deliveries, agent_delivery, .. } = d {
                crate::events::count_published("mail", deliveries + u32::from(agent_delivery.is_some()));
            }
        }
        Ok(done)
    }

    /// Injects a raw RFC 5322 message for one of the account's agents, through the same path
    /// as SMTP (no client IP: SPF is `none`); with `wait`, waits for the first attempt of
    /// the agent's own delivery (the seed's `DeliverSync`).
    pub async fn inject_message(
        &self,
        account: &AccountId,
        address: &str,
        raw: &[u8],
        wait: bool,
        admit: impl Admit,
    ) -> AppResult<Injected> {
        let agent = self.agent(account, address).await?;
        admit()?;
        let recipient = Recipient {
            address: agent.address.clone(),
            account_id: account.clone(),
            target: agent.target.clone(),
            has_webhook_url: agent.webhook_url.is_some(),
        };
        let ingested = self.accept_mail(raw, None, std::slice::from_ref(&recipient)).await?;
        let (message_id, delivery_id, duplicate) = match ingested.into_iter().next() {
            Some(Ingested::Stored { message, agent_delivery, .. }) => (message, agent_delivery, false),
            Some(Ingested::Duplicate { message }) => (message, None, true),
            Some(Ingested::AgentGone) | None => return Err(AppError::NotFound("agent")),
        };
        let first_attempt = match (&delivery_id, wait) {
            (Some(d), true) => self.first_attempt(account, d).await?,
            _ => None,
        };
        Ok(Injected { message_id, delivery_id, duplicate, first_attempt })
    }

    pub async fn messages(
        &self,
        account: &AccountId,
        address: &str,
        page: herald_store::Page,
    ) -> AppResult<Vec<herald_store::Message>> {
        let agent = self.agent(account, address).await?;
        Ok(self.store.list_messages(account, &agent.address, page).await?)
    }

    pub async fn message(&self, account: &AccountId, id: &str) -> AppResult<herald_store::Message> {
        let Some(id) = MessageId::parse(id) else { return Err(AppError::NotFound("message")) };
        self.store.get_message(account, &id).await?.ok_or(AppError::NotFound("message"))
    }

    pub async fn raw_message(&self, account: &AccountId, id: &str) -> AppResult<Vec<u8>> {
        let Some(id) = MessageId::parse(id) else { return Err(AppError::NotFound("message")) };
        self.store.raw_message(account, &id).await?.ok_or(AppError::NotFound("message"))
    }
}
