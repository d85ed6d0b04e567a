//! Agents: create (on an accepted domain, with its own secret), change (the URL checked on
//! every write), delete, read, rotate the secret, list its deliveries.

use crate::signing_keys::signature_scheme;
use crate::{Admit, AppError, AppResult, Conflict, FieldError, Herald, RotateAnswer, validate};
use herald_domain::{AccountId, AgentAddress, DeliveryStatus, SignatureScheme, SigningSecret, WebhookId};
use herald_store::{Agent, AgentPatch, Delivery, DeliveryQuery, NewAgent, Page, StoreError};
use std::time::Duration;

/// An agent to create, as the caller gave it.
#[derive(Clone, Debug, Default)]
pub struct AgentDraft {
    pub address: String,
    pub name: Option<String>,
    pub webhook_url: Option<String>,
    pub max_in_flight: Option<u32>,
    /// `hmac` (default) or `ed25519`.
    pub signature: Option<String>,
}

/// A partial change; `None` keeps a field, `webhook_url: Some(None)` removes the URL.
#[derive(Clone, Debug, Default)]
pub struct AgentChange {
    pub name: Option<String>,
    pub webhook_url: Option<Option<String>>,
    pub max_in_flight: Option<u32>,
    /// `hmac` or `ed25519`; switching to `hmac` gives the agent a fresh secret.
    pub signature: Option<String>,
}

impl Herald {
    /// Creates an agent with a fresh signing secret (returned once, here).
    pub async fn create_agent(&self, account: &AccountId, d: AgentDraft) -> AppResult<(Agent, SigningSecret)> {
        let mut errs = Vec::new();
        let address = match self.config.inbound.domains.address(&d.address) {
            Ok(a) => Some(a),
            Err(e) => {
                errs.push(FieldError { field: "address".into(), message: e.to_string() });
                None
            }
        };
        let name = d.name.unwrap_or_default();
        validate::description("name", &name, &mut errs);
        let max_in_flight = d.max_in_flight.unwrap_or(1);
        self.check_max_in_flight(max_in_flight, &mut errs);
        let webhook_url = match &d.webhook_url {
            Some(u) => self.check_url("webhook_url", u, &mut errs).await,
            None => None,
        };
        let signature = match &d.signature {
            Some(s) => signature_scheme("signature", s, &mut errs).unwrap_or_default(),
            None => SignatureScheme::Hmac,
        };
        let Some(address) = address.filter(|_| errs.is_empty()) else {
            return Err(AppError::Invalid(errs));
        };
        if signature == SignatureScheme::Ed25519 {
            self.ensure_signing_key(account).await?;
        }
        let secret = SigningSecret::generate();
        let new = NewAgent {
            address,
            account_id: account.clone(),
            name,
            webhook_url,
            max_in_flight,
            secret: secret.clone(),
            signature,
            target: WebhookId::generate(),
            created_at: self.clock.now(),
        };
        let limit = self.config.inbound.agents_per_account;
        let created = self.store.create_agent(new, limit).await.map_err(|e| match e {
            StoreError::LimitReached => AppError::Conflict(Conflict::AgentLimit { limit }),
            StoreError::AlreadyExists => AppError::Conflict(Conflict::AddressTaken),
            e => e.into(),
        })?;
        Ok((created, secret))
    }

    pub async fn agent(&self, account: &AccountId, address: &str) -> AppResult<Agent> {
        let Ok(address) = AgentAddress::parse(address) else { return Err(AppError::NotFound("agent")) };
        self.store.get_agent(account, &address).await?.ok_or(AppError::NotFound("agent"))
    }

    pub async fn agents(&self, account: &AccountId, page: Page) -> AppResult<Vec<Agent>> {
        Ok(self.store.list_agents(account, page).await?)
    }

    /// Applies a change; a URL given is checked by the target policy (every write).
    /// Switching from `ed25519` to `hmac` gives the agent a fresh secret, answered here.
    pub async fn change_agent(
        &self,
        account: &AccountId,
        address: &str,
        c: AgentChange,
    ) -> AppResult<(Agent, Option<RotateAnswer>)> {
        let current = self.agent(account, address).await?;
        let mut errs = Vec::new();
        let mut patch = AgentPatch::default();
        if let Some(n) = c.name {
            validate::description("name", &n, &mut errs);
            patch.name = Some(n);
        }
        if let Some(m) = c.max_in_flight {
            self.check_max_in_flight(m, &mut errs);
            patch.max_in_flight = Some(m);
        }
        match c.webhook_url {
            Some(Some(u)) => patch.webhook_url = self.check_url("webhook_url", &u, &mut errs).await.map(Some),
            Some(None) => patch.webhook_url = Some(None),
            None => {}
        }
        if let Some(s) = &c.signature {
            patch.signature = signature_scheme("signature", s, &mut errs);
        }
        if !errs.is_empty() {
            return Err(AppError::Invalid(errs));
        }
        if patch.signature == Some(SignatureScheme::Ed25519) {
            self.ensure_signing_key(account).await?;
        }
        let to_hmac = patch.signature == Some(SignatureScheme::Hmac) && current.signature == SignatureScheme::Ed25519;
        let secret = match to_hmac {
            true => Some(self.rotate_for_switch(account, &current.target, "agent").await?.0),
            false => None,
        };
        let updated = self
            .store
            .update_agent(account, &current.address, patch, self.clock.now())
            .await?
            .ok_or(AppError::NotFound("agent"))?;
        Ok((updated, secret))
    }

    /// Deletes an agent; its pending deliveries end as failed.
    pub async fn delete_agent(&self, account: &AccountId, address: &str) -> AppResult<()> {
        let Ok(address) = AgentAddress::parse(address) else { return Err(AppError::NotFound("agent")) };
        if self.store.delete_agent(account, &address, self.clock.now()).await? {
            Ok(())
        } else {
            Err(AppError::NotFound("agent"))
        }
    }

    /// Rotates the agent's signing secret, with the same grace and idempotency rules as a
    /// webhook's.
    pub async fn rotate_agent_secret(
        &self,
        account: &AccountId,
        address: &str,
        grace: Duration,
        idempotency_key: Option<String>,
        admit: impl Admit,
    ) -> AppResult<RotateAnswer> {
        let agent = self.agent(account, address).await?;
        if agent.signature == SignatureScheme::Ed25519 {
            return Err(Conflict::NoSharedSecret("agent").into());
        }
        self.rotate(account, &agent.target, "agent", grace, idempotency_key, admit).await
    }

    /// A page of the agent's own deliveries.
    pub async fn agent_deliveries(
        &self,
        account: &AccountId,
        address: &str,
        status: Option<DeliveryStatus>,
        page: Page,
    ) -> AppResult<Vec<Delivery>> {
        let agent = self.agent(account, address).await?;
        let query = DeliveryQuery { account: account.clone(), webhook: agent.target, status, page };
        Ok(self.store.list_deliveries(query).await?)
    }
}
