//! Webhooks: create, change (re-enable cooldown included), delete, read, rotate the secret.

use crate::signing_keys::signature_scheme;
use crate::{Admit, AppError, AppResult, Conflict, FieldError, Herald, validate};
use herald_domain::operational::Notice;
use herald_domain::{AccountId, DisabledReason, Filters, SignatureScheme, SigningSecret, WebhookId, rfc3339};
use herald_store::{IdempotentAnswer, NewWebhook, Page, Rotated, Rotation, StoreError, Webhook, WebhookPatch};
use std::time::Duration;
use time::OffsetDateTime;

/// A webhook to create, as the caller gave it.
#[derive(Clone, Debug)]
pub struct WebhookDraft {
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub filters: Option<Filters>,
    pub enabled: Option<bool>,
    pub max_in_flight: Option<u32>,
    pub control: crate::ControlChange,
    /// `hmac` (default) or `ed25519`.
    pub signature: Option<String>,
}

impl WebhookDraft {
    /// A webhook of `url` for `events`, every other field at its default.
    pub fn new(url: &str, events: &[&str]) -> Self {
        Self {
            url: url.to_owned(),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            description: None,
            filters: None,
            enabled: None,
            max_in_flight: None,
            control: crate::ControlChange::default(),
            signature: None,
        }
    }
}

/// A partial change; `None` keeps a field.
#[derive(Clone, Debug, Default)]
pub struct WebhookChange {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    pub filters: Option<Filters>,
    pub enabled: Option<bool>,
    pub max_in_flight: Option<u32>,
    pub control: crate::ControlChange,
    /// `hmac` or `ed25519`; switching to `hmac` gives the webhook a fresh secret.
    pub signature: Option<String>,
}

/// The answer of a rotation; stored as is under an idempotency key and replayed. (Its
/// `Debug` hides the secret.)
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RotateAnswer {
    pub signing_secret: String,
    pub previous_secret_expires_at: String,
}

impl std::fmt::Debug for RotateAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotateAnswer")
            .field("signing_secret", &"***")
            .field("previous_secret_expires_at", &self.previous_secret_expires_at)
            .finish()
    }
}

/// The grace of the secret replaced when a webhook or agent switches to HMAC.
pub(crate) const SWITCH_GRACE: Duration = Duration::from_secs(86_400);

/// Longest grace a rotated-out secret may get.
pub const MAX_GRACE: Duration = Duration::from_secs(7 * 86_400);

impl Herald {
    /// Creates a webhook with a fresh signing secret (returned once, here; an Ed25519
    /// webhook never uses it: its account's keys sign).
    pub async fn create_webhook(&self, account: &AccountId, d: WebhookDraft) -> AppResult<(Webhook, SigningSecret)> {
        let mut errs = Vec::new();
        let events = self.subscription(account, &d.events, &mut errs).await?;
        let description = d.description.unwrap_or_default();
        validate::description("description", &description, &mut errs);
        let mut filters = d.filters.unwrap_or_default();
        validate::filters(&mut filters, &mut errs);
        let max_in_flight = d.max_in_flight.unwrap_or(1);
        self.check_max_in_flight(max_in_flight, &mut errs);
        let mut controls = WebhookPatch::default();
        d.control.apply(&mut controls, &mut errs);
        let signature = match &d.signature {
            Some(s) => signature_scheme("signature", s, &mut errs).unwrap_or_default(),
            None => SignatureScheme::Hmac,
        };
        let url = self.check_url("url", &d.url, &mut errs).await;
        let Some(url) = url.filter(|_| errs.is_empty()) else {
            return Err(AppError::Invalid(errs));
        };
        if signature == SignatureScheme::Ed25519 {
            self.ensure_signing_key(account).await?;
        }
        let secret = SigningSecret::generate();
        let new = NewWebhook {
            id: WebhookId::generate(),
            account_id: account.clone(),
            url,
            description,
            events,
            filters,
            enabled: d.enabled.unwrap_or(true),
            max_in_flight,
            control: crate::control::for_new_webhook(&controls),
            signature,
            secret: secret.clone(),
            created_at: self.clock.now(),
        };
        let limit = self.config.webhooks_per_account;
        let created = self.store.create_webhook(new, limit).await.map_err(|e| match e {
            StoreError::LimitReached => AppError::Conflict(Conflict::WebhookLimit { limit }),
            e => e.into(),
        })?;
        Ok((created, secret))
    }

    pub async fn webhook(&self, account: &AccountId, id: &WebhookId) -> AppResult<Webhook> {
        self.store.get_webhook(account, id).await?.ok_or(AppError::NotFound("webhook"))
    }

    pub async fn webhooks(&self, account: &AccountId, page: Page) -> AppResult<Vec<Webhook>> {
        Ok(self.store.list_webhooks(account, page).await?)
    }

    /// Applies a change. The URL is re-checked only when it changes; re-enabling sooner than
    /// the cooldown after an automatic disable is a conflict. Switching from `ed25519` to
    /// `hmac` gives the webhook a fresh secret, answered here (shown once).
    pub async fn change_webhook(
        &self,
        account: &AccountId,
        id: &WebhookId,
        c: WebhookChange,
    ) -> AppResult<(Webhook, Option<RotateAnswer>)> {
        let current = self.webhook(account, id).await?;
        let mut errs = Vec::new();
        let mut patch = WebhookPatch::default();
        c.control.apply(&mut patch, &mut errs);
        if let Some(s) = &c.signature {
            patch.signature = signature_scheme("signature", s, &mut errs);
        }
        if let Some(events) = &c.events {
            patch.events = Some(self.subscription(account, events, &mut errs).await?);
        }
        if let Some(d) = c.description {
            validate::description("description", &d, &mut errs);
            patch.description = Some(d);
        }
        if let Some(mut f) = c.filters {
            validate::filters(&mut f, &mut errs);
            patch.filters = Some(f);
        }
        if let Some(m) = c.max_in_flight {
            self.check_max_in_flight(m, &mut errs);
            patch.max_in_flight = Some(m);
        }
        if let Some(url) = c.url.filter(|u| *u != current.url) {
            patch.url = self.check_url("url", &url, &mut errs).await;
        }
        if c.enabled == Some(true)
            && !current.enabled
            && let Some(at) = current.auto_disabled_at
        {
            let since = self.clock.now() - at;
            if since < self.config.reenable_cooldown {
                return Err(Conflict::ReenableCooldown {
                    reason: current.disabled_reason,
                    since_secs: since.whole_seconds().max(0),
                    cooldown_secs: self.config.reenable_cooldown.as_secs(),
                }
                .into());
            }
        }
        patch.enabled = c.enabled;
        if !errs.is_empty() {
            return Err(AppError::Invalid(errs));
        }
        if patch.signature == Some(SignatureScheme::Ed25519) {
            self.ensure_signing_key(account).await?;
        }
        let to_hmac = patch.signature == Some(SignatureScheme::Hmac) && current.signature == SignatureScheme::Ed25519;
        let switched = match to_hmac {
            true => Some(self.rotate_for_switch(account, id, "webhook").await?),
            false => None,
        };
        let updated = self
            .store
            .update_webhook(account, id, patch, self.clock.now())
            .await?
            .ok_or(AppError::NotFound("webhook"))?;
        if updated.enabled != current.enabled {
            let notice = if updated.enabled {
                Notice::webhook_enabled(id)
            } else {
                Notice::webhook_disabled(id, DisabledReason::Manual)
            };
            self.notify(account, notice).await;
        }
        // The switch's rotation is announced now that the switch is stored.
        let secret = match switched {
            Some((answer, applied)) => {
                if let Some(expires) = applied {
                    self.notify(account, Notice::secret_rotated(id, expires)).await;
                }
                Some(answer)
            }
            None => None,
        };
        Ok((updated, secret))
    }

    /// Deletes a webhook; its pending deliveries end as failed.
    pub async fn delete_webhook(&self, account: &AccountId, id: &WebhookId) -> AppResult<()> {
        if self.store.delete_webhook(account, id, self.clock.now()).await? {
            Ok(())
        } else {
            Err(AppError::NotFound("webhook"))
        }
    }

    /// Rotates the signing secret; the old one signs for `grace` more. With an idempotency
    /// key, a repeat within the window (even a concurrent one) gets the first answer.
    pub async fn rotate_secret(
        &self,
        account: &AccountId,
        id: &WebhookId,
        grace: Duration,
        idempotency_key: Option<String>,
        admit: impl Admit,
    ) -> AppResult<RotateAnswer> {
        // Only a webhook of the account: an agent's endpoint (a hidden `webhooks` row) is
        // rotated through its agent, never through a webhook id.
        if self.webhook(account, id).await?.signature == SignatureScheme::Ed25519 {
            return Err(Conflict::NoSharedSecret("webhook").into());
        }
        self.rotate(account, id, "webhook", grace, idempotency_key, admit).await
    }

    /// A switch from Ed25519 to HMAC is a rotation: a fresh secret, answered once. It is made
    /// before the switch is stored, so a stored switch has had its secret answered (a failed
    /// update leaves only an unused secret behind, and a retry answers one that works). The
    /// stored secret, never used while Ed25519 signed, keeps signing beside it for
    /// `SWITCH_GRACE`, so two concurrent switches that each rotate both answer one that verifies.
    /// Quiet: the caller announces it (`secret_rotated`) once the switch is stored.
    pub(crate) async fn rotate_for_switch(
        &self,
        account: &AccountId,
        target: &WebhookId,
        what: &'static str,
    ) -> AppResult<(RotateAnswer, Option<OffsetDateTime>)> {
        self.rotate_quietly(account, target, what, SWITCH_GRACE, None, || Ok(())).await
    }

    /// Rotates the secret of a delivery target (a webhook, or an agent's endpoint), and
    /// announces a webhook's (an agent's endpoint is not a webhook of the account: quiet).
    pub(crate) async fn rotate(
        &self,
        account: &AccountId,
        id: &WebhookId,
        what: &'static str,
        grace: Duration,
        idempotency_key: Option<String>,
        admit: impl Admit,
    ) -> AppResult<RotateAnswer> {
        let (answer, applied) = self.rotate_quietly(account, id, what, grace, idempotency_key, admit).await?;
        if let Some(expires) = applied
            && what == "webhook"
        {
            self.notify(account, Notice::secret_rotated(id, expires)).await;
        }
        Ok(answer)
    }

    /// Rotates without announcing it: the answer, and when the replaced secret stops signing
    /// if the rotation happened now (`None` when an idempotent repeat replayed an earlier one).
    async fn rotate_quietly(
        &self,
        account: &AccountId,
        id: &WebhookId,
        what: &'static str,
        grace: Duration,
        idempotency_key: Option<String>,
        admit: impl Admit,
    ) -> AppResult<(RotateAnswer, Option<OffsetDateTime>)> {
        if grace > MAX_GRACE {
            return Err(AppError::field("grace_period_seconds", "must be between 0 and 604800 (7 days)"));
        }
        admit()?;
        let now = self.clock.now();
        let secret = SigningSecret::generate();
        let expires = now + grace;
        let answer =
            RotateAnswer { signing_secret: secret.expose().to_owned(), previous_secret_expires_at: rfc3339(expires) };
        let idempotency = idempotency_key.map(|key| IdempotentAnswer {
            scope: format!("rotate:{id}"),
            key,
            since: now - self.config.fanout.idempotency_window,
            response: serde_json::to_string(&answer).expect("plain data serialises"),
        });
        let rotation = Rotation {
            account: account.clone(),
            webhook: id.clone(),
            new_secret: secret,
            grace_until: expires,
            keep: self.config.previous_secrets_kept,
            now,
            idempotency,
        };
        match self.store.rotate_secret(rotation).await? {
            Rotated::NotFound => Err(AppError::NotFound(what)),
            Rotated::Applied => Ok((answer, Some(expires))),
            Rotated::Replayed(prior) => serde_json::from_str(&prior)
                .map(|answer| (answer, None))
                .map_err(|e| AppError::Internal(StoreError::corrupt("a stored rotation answer", e))),
        }
    }

    pub(crate) fn check_max_in_flight(&self, m: u32, errs: &mut Vec<FieldError>) {
        if m == 0 || m > self.config.max_in_flight_limit {
            errs.push(FieldError {
                field: "max_in_flight".into(),
                message: format!("must be between 1 and {}", self.config.max_in_flight_limit),
            });
        }
    }

    /// The URL as it will be stored (normalised), if the target policy accepts it; if not,
    /// an error on `field`.
    pub(crate) async fn check_url(&self, field: &str, url: &str, errs: &mut Vec<FieldError>) -> Option<String> {
        match self.targets.check(url).await {
            Ok(u) => Some(u.as_str().to_owned()),
            Err(e) => {
                errs.push(FieldError { field: field.into(), message: e.to_string() });
                None
            }
        }
    }
}
