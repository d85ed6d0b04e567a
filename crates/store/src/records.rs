//! Records the store takes and returns. Domain types inside; no database types.

use herald_domain::{
    AccountId, AttemptOutcome, DeliveryId, DeliveryStatus, Envelope, EventId, Filters, RoutingAttributes, SecretSet,
    SigningSecret, Verdict, WebhookId,
};
use std::time::Duration;
use time::OffsetDateTime;

/// Cursor pagination: items newer-first, `after` = the last id of the previous page.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub after: Option<String>,
    pub limit: u32,
}

#[derive(Clone, Debug)]
pub struct Account {
    pub id: AccountId,
    pub name: String,
    pub created_at: OffsetDateTime,
}

#[derive(Clone, Debug)]
pub struct Webhook {
    pub id: WebhookId,
    pub account_id: AccountId,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub filters: Filters,
    pub enabled: bool,
    pub disabled_reason: Option<herald_domain::DisabledReason>,
    pub auto_disabled_at: Option<OffsetDateTime>,
    pub max_in_flight: u32,
    /// The in-flight limit claims use now: `max_in_flight` when fixed, the adaptive limit otherwise.
    pub effective_max_in_flight: u32,
    pub control: herald_domain::DeliveryControl,
    pub signature: herald_domain::SignatureScheme,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub last_delivered_at: Option<OffsetDateTime>,
}

#[derive(Clone, Debug)]
pub struct NewWebhook {
    pub id: WebhookId,
    pub account_id: AccountId,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub filters: Filters,
    pub enabled: bool,
    pub max_in_flight: u32,
    pub control: herald_domain::DeliveryControl,
    pub signature: herald_domain::SignatureScheme,
    pub secret: SigningSecret,
    pub created_at: OffsetDateTime,
}

/// A partial update; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub events: Option<Vec<String>>,
    pub filters: Option<Filters>,
    pub enabled: Option<bool>,
    pub max_in_flight: Option<u32>,
    pub concurrency: Option<herald_domain::Concurrency>,
    /// `Some(None)` removes the limit.
    pub rate_limit_per_second: Option<Option<u32>>,
    pub ordering: Option<herald_domain::OrderingMode>,
    pub on_final_failure: Option<herald_domain::OnFinalFailure>,
    /// `Some(None)` goes back to the server's schedule.
    pub retry_schedule: Option<Option<Vec<Duration>>>,
    pub max_age: Option<Option<Duration>>,
    pub signature: Option<herald_domain::SignatureScheme>,
}

impl WebhookPatch {
    /// Whether the patch changes what claims may take (limit, rate, order, enabled).
    pub fn frees_work(&self) -> bool {
        self.enabled == Some(true)
            || self.max_in_flight.is_some()
            || self.concurrency.is_some()
            || self.rate_limit_per_second.is_some()
            || self.ordering.is_some()
    }
}

#[derive(Clone, Debug)]
pub struct NewEvent {
    pub id: EventId,
    pub account_id: AccountId,
    pub event_type: String,
    pub envelope: Envelope,
    pub routing: RoutingAttributes,
    /// The FIFO lane within each webhook with `ordering: fifo` (none = the webhook's one lane).
    pub ordering_key: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: OffsetDateTime,
}

impl NewEvent {
    /// The event a checked draft makes (`herald_domain::input::check_event_draft`): a fresh
    /// id, the envelope receivers get, created at `now`.
    pub fn from_draft(
        account: &AccountId,
        event_type: &herald_domain::EventType,
        d: herald_domain::input::EventDraft,
        now: OffsetDateTime,
    ) -> Self {
        let id = EventId::generate();
        let envelope = herald_domain::Envelope::build(&id, event_type.as_str(), now, &d.data);
        Self {
            id,
            account_id: account.clone(),
            event_type: event_type.as_str().to_owned(),
            envelope,
            routing: herald_domain::RoutingAttributes {
                agent_id: d.agent_id,
                conversation_id: d.conversation_id,
                labels: d.labels,
            },
            ordering_key: d.ordering_key,
            idempotency_key: d.idempotency_key,
            created_at: now,
        }
    }
}

impl NewEvent {
    /// An operational event of `account` (no routing attributes, no idempotency key).
    pub fn notice(account: &AccountId, notice: &herald_domain::operational::Notice, at: OffsetDateTime) -> Self {
        let id = EventId::generate();
        let data = serde_json::value::to_raw_value(&notice.data).expect("plain data serialises");
        Self {
            envelope: Envelope::build(&id, notice.event_type, at, &data),
            id,
            account_id: account.clone(),
            event_type: notice.event_type.to_owned(),
            routing: RoutingAttributes::default(),
            ordering_key: None,
            idempotency_key: None,
            created_at: at,
        }
    }
}

/// The rules a publish applies when it fans out.
#[derive(Clone, Debug)]
pub struct FanoutRules {
    pub max_attempts: u32,
    pub event_ttl: Duration,
    pub delivery_ttl: Duration,
    pub idempotency_window: Duration,
}

impl Default for FanoutRules {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            event_ttl: Duration::from_secs(30 * 86400),
            delivery_ttl: Duration::from_secs(30 * 86400),
            idempotency_window: Duration::from_secs(86400),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Published {
    pub id: EventId,
    pub event_type: String,
    pub created_at: OffsetDateTime,
    pub deliveries: u32,
    /// True when an earlier event with the same idempotency key was returned.
    pub replayed: bool,
}

#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    /// The agent, for a per-agent delivery (its `webhook_id` is then the agent's target).
    pub agent: Option<String>,
    pub event_id: EventId,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub max_attempts: u32,
    pub last_error: Option<String>,
    pub last_status_code: Option<u16>,
    pub last_attempt_at: Option<OffsetDateTime>,
    pub next_retry_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
}

#[derive(Clone, Debug)]
pub struct Attempt {
    pub number: u32,
    /// What happened (`None` for attempts recorded before kinds were stored).
    pub kind: Option<herald_domain::AttemptKind>,
    pub started_at: OffsetDateTime,
    pub duration_ms: u64,
    pub status_code: u16,
    pub error: Option<String>,
    pub response_body: Option<String>,
}

impl Attempt {
    /// The endpoint answered 2xx (what delivers a delivery; the stats count these as
    /// `delivered` — the SQL of `attempt_counts` says the same).
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status_code)
    }
}

/// A leased delivery with everything one attempt needs.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub delivery_id: DeliveryId,
    pub webhook_id: WebhookId,
    /// The account the delivery belongs to (for the operational events its end may cause).
    pub account_id: AccountId,
    pub event_id: EventId,
    pub event_type: String,
    pub url: String,
    /// The signing secrets of an HMAC webhook; `None` when they cannot be opened (encrypted
    /// under another `HERALD_SECRET_KEY`: such a delivery is not sent, and other webhooks are
    /// unaffected), and always for Ed25519 (not opened: they sign nothing).
    pub secrets: Option<SecretSet>,
    /// How this delivery is signed: with `secrets`, or with `keys`.
    pub signature: herald_domain::SignatureScheme,
    /// For an Ed25519 webhook, its account's keys that sign now; `None` when there are
    /// none or they cannot be opened (such a delivery is not sent). Always `None` for HMAC.
    pub keys: Option<std::sync::Arc<herald_domain::KeyRing>>,
    /// The bytes to POST; `None` when the event they came from no longer exists (such a
    /// delivery is never sent: it fails with a clear error).
    pub body: Option<Vec<u8>>,
    /// True for a per-agent delivery: the body is a stored `Payload` whose auth headers
    /// each attempt re-signs (`inbound::payload_for_attempt`).
    pub agent_payload: bool,
    /// For a per-agent delivery, the stored message (the Payload's `raw_message`); `None`
    /// when it no longer exists (such a delivery is never sent).
    pub message_raw: Option<Vec<u8>>,
    /// The number this attempt will have (attempts so far + 1).
    pub attempt: u32,
    pub max_attempts: u32,
    /// The webhook's own retry schedule (`None`: the server's).
    pub retry_schedule: Option<Vec<Duration>>,
    /// No attempt after this instant (creation + the webhook's `max_age`).
    pub deadline: Option<OffsetDateTime>,
    /// The delivery is in a FIFO lane: its end lets the next one of its lane go.
    pub in_lane: bool,
    /// A final failure holds the lane (status `blocked`).
    pub blocks_lane: bool,
    pub lease_token: String,
    /// This claim took every free slot of its webhook (whether or not more of its work is
    /// due): when this attempt ends, the worker claims again at once rather than waiting for
    /// the outcome's commit to raise the work signal.
    pub filled_webhook: bool,
}

/// What signs a claimed delivery.
#[derive(Clone, Copy, Debug)]
pub enum Signer<'a> {
    /// The webhook's secrets: `X-E2A-Signature` and `webhook-signature: v1,…`.
    Hmac(&'a SecretSet),
    /// The account's keys: `webhook-signature: v1a,…` and `webhook-key-id`.
    Ed25519(&'a herald_domain::KeyRing),
}

/// Why an HMAC delivery is not sent: its webhook's secrets do not open.
pub const UNSIGNABLE: &str = "not sent: the signing secret cannot be decrypted (check HERALD_SECRET_KEY)";

/// Why an Ed25519 delivery is not sent: its account has no key that opens.
pub const NO_SIGNING_KEY: &str =
    "not sent: the account's signing key is missing or cannot be decrypted (check HERALD_SECRET_KEY)";

impl Claimed {
    /// What signs this delivery under its webhook's scheme, or why it cannot be signed (such
    /// a delivery is never sent).
    pub fn signer(&self) -> Result<Signer<'_>, &'static str> {
        match self.signature {
            herald_domain::SignatureScheme::Hmac => self.secrets.as_ref().map(Signer::Hmac).ok_or(UNSIGNABLE),
            herald_domain::SignatureScheme::Ed25519 => self.keys.as_deref().map(Signer::Ed25519).ok_or(NO_SIGNING_KEY),
        }
    }
}

/// What recording a batch of outcomes did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Per outcome, whether it applied (compare-and-set on its lease).
    pub applied: Vec<bool>,
    /// Webhooks this batch disabled because their receiver answered 410 (each was enabled
    /// until then: a webhook disabled before keeps its reason and is not listed).
    pub disabled_gone: Vec<WebhookId>,
}

/// One attempt's result and what it means, recorded under the lease.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub delivery_id: DeliveryId,
    pub webhook_id: WebhookId,
    pub lease_token: String,
    pub attempt: u32,
    pub result: AttemptOutcome,
    pub verdict: Verdict,
    /// A final failure holds the delivery's FIFO lane (it ends `blocked`, not `failed`).
    pub blocks_lane: bool,
}

/// A stored event as the events log shows it.
#[derive(Clone, Debug)]
pub struct Event {
    pub id: EventId,
    pub event_type: String,
    pub created_at: OffsetDateTime,
    pub deliveries: u32,
    pub agent_id: Option<String>,
    pub conversation_id: Option<String>,
    pub labels: Vec<String>,
    /// The envelope bytes (what receivers got).
    pub envelope: Vec<u8>,
    /// The FIFO lane it was published to, if any.
    pub ordering_key: Option<String>,
}

/// Filters of the events log.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub event_type: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

/// A custom event type of an account.
#[derive(Clone, Debug)]
pub struct EventTypeRecord {
    pub name: String,
    pub description: String,
    pub created_at: OffsetDateTime,
}

/// A secret rotation, applied atomically with its idempotency record.
#[derive(Clone, Debug)]
pub struct Rotation {
    pub account: AccountId,
    pub webhook: WebhookId,
    pub new_secret: SigningSecret,
    /// Until when the replaced secret keeps signing.
    pub grace_until: OffsetDateTime,
    /// Most previous secrets kept.
    pub keep: usize,
    pub now: OffsetDateTime,
    pub idempotency: Option<IdempotentAnswer>,
}

/// The answer to store under an idempotency key, and how far back an earlier one counts.
/// (Its `Debug` hides the answer: a rotation's holds a signing secret.)
#[derive(Clone)]
pub struct IdempotentAnswer {
    pub scope: String,
    pub key: String,
    pub since: OffsetDateTime,
    pub response: String,
}

/// What a rotation did. (Its `Debug` hides a replayed answer: it holds a signing secret.)
#[derive(Clone, PartialEq, Eq)]
pub enum Rotated {
    /// No such webhook in the account.
    NotFound,
    /// The new secret is current.
    Applied,
    /// An earlier rotation under the same idempotency key happened; its stored answer.
    Replayed(String),
}

/// How many events one recovery step reads (and deliveries it inserts) at a time.
pub const RECOVER_BATCH: u32 = 1000;

/// A recovery request: re-deliver the events of `[since, until)` to one webhook.
#[derive(Clone, Debug)]
pub struct Recovery {
    pub account: AccountId,
    pub webhook: WebhookId,
    pub since: OffsetDateTime,
    pub until: OffsetDateTime,
    pub dry_run: bool,
    pub now: OffsetDateTime,
}

/// One page of a webhook's deliveries, optionally of one status.
#[derive(Clone, Debug)]
pub struct DeliveryQuery {
    pub account: AccountId,
    pub webhook: WebhookId,
    pub status: Option<DeliveryStatus>,
    pub page: Page,
}

impl std::fmt::Debug for IdempotentAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotentAnswer")
            .field("scope", &self.scope)
            .field("key", &self.key)
            .field("since", &self.since)
            .field("response", &"***")
            .finish()
    }
}

impl std::fmt::Debug for Rotated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFound => f.write_str("NotFound"),
            Self::Applied => f.write_str("Applied"),
            Self::Replayed(_) => f.write_str("Replayed(***)"),
        }
    }
}

/// Where a recovery walk is: past this `(created_at, id)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventCursor {
    pub created_at_ms: i64,
    pub id: String,
}

/// A stored event as recovery sees it: enough to apply the fan-out rule.
#[derive(Clone, Debug)]
pub struct EventRouting {
    pub id: EventId,
    pub event_type: String,
    pub routing: RoutingAttributes,
    pub created_at_ms: i64,
}

/// One batch of recovered deliveries to insert.
#[derive(Clone, Debug)]
pub struct RecoveredBatch {
    /// (new delivery id, event id) per matching event.
    pub deliveries: Vec<(DeliveryId, EventId)>,
    pub max_attempts: u32,
    /// Expiry of the new deliveries (their events are kept at least as long).
    pub expires_ms: i64,
}

/// An account's signing key as stored, public parts only (the JWKS, the API).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeyInfo {
    pub kid: String,
    /// `whpk_…`
    pub public_key: String,
    pub created_at: OffsetDateTime,
    /// `None` for the current key; else when it stops signing.
    pub expires_at: Option<OffsetDateTime>,
}
