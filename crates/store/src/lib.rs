//! The storage interface of Herald, named for intentions, and the records it moves.
//!
//! Two implementations exist (SQLite, PostgreSQL). The rules they share:
//! * instants are passed in (`now`), never read from the database clock, so tests
//!   drive time with a manual clock and replicas agree on arithmetic;
//! * a claim leases rows by pushing `next_retry_at` forward and writing a fresh lease
//!   token, and only claims rows of enabled webhooks that are ready (`ready_at`: no
//!   `Retry-After` pause, a token when rate-limited) and below their in-flight limit
//!   (`max_in_flight`, or the adaptive limit; counted as live leases, so it holds across
//!   processes); of a FIFO webhook only the heads of its lanes;
//! * outcomes are compare-and-set on (id, lease token, status = pending);
//! * every account-facing query is scoped by account.
#![forbid(unsafe_code)]

pub mod backlog;
pub mod codec;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod control;
mod error;
mod gauges;
mod inbound;
pub mod plan;
mod portal;
mod records;
pub mod schema;
mod signal;
pub mod sql;
mod stats;

#[doc(hidden)]
pub use sql::__private;

pub use error::{StoreError, error_chain};
pub use gauges::*;
pub use inbound::*;
pub use portal::*;
pub use records::*;
pub use signal::WorkSignal;
pub use stats::*;

use async_trait::async_trait;
use herald_domain::{AccountId, AgentAddress, DeliveryId, EventId, MessageId, WebhookId};
use std::time::Duration;
use time::OffsetDateTime;

pub type StoreResult<T> = Result<T, StoreError>;

/// The whole storage interface: every intention below, on one backend. Object-safe: the
/// app holds an `Arc<dyn Store>` and hands narrower views to the parts that need less
/// (the engine takes an `Arc<dyn EngineStore>`, by trait upcasting).
pub trait Store:
    Health
    + Accounts
    + Webhooks
    + Agents
    + Inbox
    + EventLog
    + Deliveries
    + Idempotency
    + PortalSessions
    + AttemptStats
    + SigningKeys
    + EngineStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: Health
        + Accounts
        + Webhooks
        + Agents
        + Inbox
        + EventLog
        + Deliveries
        + Idempotency
        + PortalSessions
        + AttemptStats
        + SigningKeys
        + EngineStore
        + Send
        + Sync
        + 'static
{
}

/// What the delivery engine uses: the queue, its gauges, the maintenance passes, and the
/// event log (to publish operational events), nothing else.
pub trait EngineStore: Queue + QueueState + Maintenance + EventLog + Send + Sync + 'static {}

impl<T> EngineStore for T where T: Queue + QueueState + Maintenance + EventLog + Send + Sync + 'static {}

/// Liveness of the store (`/readyz`).
#[async_trait]
pub trait Health {
    /// Checks the store answers.
    async fn ping(&self) -> StoreResult<()>;
}

/// Accounts and their API keys (stored as hashes only).
#[async_trait]
pub trait Accounts {
    async fn create_account(&self, name: &str, key_hash: &str, now: OffsetDateTime) -> StoreResult<Account>;
    async fn add_api_key(&self, account: &AccountId, key_hash: &str, now: OffsetDateTime) -> StoreResult<()>;
    async fn account_count(&self) -> StoreResult<u64>;
    async fn account_by_key_hash(&self, key_hash: &str) -> StoreResult<Option<Account>>;
    async fn account_by_name(&self, name: &str) -> StoreResult<Option<Account>>;
    /// Whether the account exists (the public JWK Set answers 404 for one that does not).
    async fn account_exists(&self, account: &AccountId) -> StoreResult<bool>;
}

/// Each account's Ed25519 signing keys: one current, earlier ones signing until their grace
/// ends. Private keys are stored sealed (`HERALD_SECRET_KEY`) and never leave the store
/// except as a claim's [`herald_domain::KeyRing`].
#[async_trait]
pub trait SigningKeys {
    /// The account's current key and those whose grace has not ended at `now`, newest first.
    async fn signing_keys(&self, account: &AccountId, now: OffsetDateTime) -> StoreResult<Vec<SigningKeyInfo>>;
    /// Makes `key` the account's current key unless it has one (concurrent callers agree
    /// on one); says whether `key` was stored.
    async fn ensure_signing_key(
        &self,
        account: &AccountId,
        key: &herald_domain::SigningKeyPair,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// Makes `key` current; the key it replaces keeps signing until `grace_until` (keys
    /// already in grace keep their own end). Keys whose grace has ended are deleted, and of
    /// those in grace only the `keep` that sign longest are kept (every delivery carries one
    /// signature per key). Atomic: concurrent rotations never leave two current keys, and
    /// lose none of the kept ones.
    async fn rotate_signing_key(
        &self,
        account: &AccountId,
        key: &herald_domain::SigningKeyPair,
        grace_until: OffsetDateTime,
        keep: usize,
        now: OffsetDateTime,
    ) -> StoreResult<()>;
}

/// Webhook subscriptions: CRUD and secret rotation.
#[async_trait]
pub trait Webhooks {
    /// Creates a webhook unless the account already has `limit` (atomic) → `LimitReached`.
    async fn create_webhook(&self, new: NewWebhook, limit: u32) -> StoreResult<Webhook>;
    async fn get_webhook(&self, account: &AccountId, id: &WebhookId) -> StoreResult<Option<Webhook>>;
    async fn list_webhooks(&self, account: &AccountId, page: Page) -> StoreResult<Vec<Webhook>>;
    /// Applies a partial update; enabling clears the disabled reason and wakes the engine.
    async fn update_webhook(
        &self,
        account: &AccountId,
        id: &WebhookId,
        patch: WebhookPatch,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Webhook>>;
    /// Deletes a webhook; its pending deliveries end as `failed` with `webhook deleted`.
    async fn delete_webhook(&self, account: &AccountId, id: &WebhookId, now: OffsetDateTime) -> StoreResult<bool>;
    /// Makes `new_secret` current; the old current secret keeps signing until `grace_until`.
    /// Expired previous secrets are dropped and at most `keep` previous ones are kept. The
    /// read-modify-write is atomic (concurrent rotations never lose a secret), and with an
    /// idempotency answer, a second rotation under the same key is answered from the first.
    async fn rotate_secret(&self, rotation: Rotation) -> StoreResult<Rotated>;
}

/// Agents: addresses hosted here, each with an optional own endpoint and its own secret.
#[async_trait]
pub trait Agents {
    /// Creates the agent and its delivery target. An address taken in any account →
    /// `AlreadyExists`; the account already has `limit` agents → `LimitReached`.
    async fn create_agent(&self, new: NewAgent, limit: u32) -> StoreResult<Agent>;
    async fn get_agent(&self, account: &AccountId, address: &AgentAddress) -> StoreResult<Option<Agent>>;
    /// The account's agents in address order, after `page.after` (an address).
    async fn list_agents(&self, account: &AccountId, page: Page) -> StoreResult<Vec<Agent>>;
    async fn update_agent(
        &self,
        account: &AccountId,
        address: &AgentAddress,
        patch: AgentPatch,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Agent>>;
    /// Deletes the agent; its pending deliveries end as `failed` with `agent deleted`.
    async fn delete_agent(&self, account: &AccountId, address: &AgentAddress, now: OffsetDateTime)
    -> StoreResult<bool>;
    /// Where mail for `address` (already lowercased) goes, whichever account owns it.
    async fn find_recipient(&self, address: &AgentAddress) -> StoreResult<Option<Recipient>>;
}

/// Inbound messages: ingest (message, event, deliveries in one transaction), conversations,
/// and reading them back.
#[async_trait]
pub trait Inbox {
    /// Commits every item in ONE transaction: per item, unless the same message reached
    /// the same agent of the same account within the dedupe window, the message, its event with one delivery per
    /// matching subscription, and the per-agent delivery. All or nothing. Wakes the engine.
    async fn ingest(&self, items: Vec<InboundItem>, rules: &InboundRules) -> StoreResult<Vec<Ingested>>;
    /// The conversation of the agent's most recent stored message (in this account: an
    /// address deleted and created again starts afresh) whose `Message-ID` is one of
    /// `message_ids`.
    async fn conversation_of(
        &self,
        account: &AccountId,
        agent: &AgentAddress,
        message_ids: &[String],
    ) -> StoreResult<Option<String>>;
    /// The agent's messages, newest first, after `page.after` (a message id).
    async fn list_messages(&self, account: &AccountId, agent: &AgentAddress, page: Page) -> StoreResult<Vec<Message>>;
    async fn get_message(&self, account: &AccountId, id: &MessageId) -> StoreResult<Option<Message>>;
    /// The stored bytes of a message.
    async fn raw_message(&self, account: &AccountId, id: &MessageId) -> StoreResult<Option<Vec<u8>>>;
}

/// Events: publishing with fan-out, direct (test) enqueue, recovery, the events log and
/// the account's custom event types.
#[async_trait]
pub trait EventLog {
    /// Commits the event and one delivery per matching enabled webhook in ONE transaction.
    /// An `idempotency_key` seen within `idempotency_window` returns the earlier event.
    async fn publish(&self, new: NewEvent, rules: &FanoutRules) -> StoreResult<Published>;
    /// Stores an event and one delivery of it to this webhook only (test sends), whatever
    /// the webhook subscribes to. `None` if the webhook is not the account's.
    async fn enqueue_direct(
        &self,
        webhook: &WebhookId,
        new: NewEvent,
        rules: &FanoutRules,
    ) -> StoreResult<Option<DeliveryId>>;
    /// The account's stored, unexpired events created before `until`, after `cursor` in
    /// `(created_at, id)` order, at most `limit` (an index range scan: a page costs its rows).
    async fn events_after(
        &self,
        account: &AccountId,
        cursor: &EventCursor,
        until: OffsetDateTime,
        now: OffsetDateTime,
        limit: u32,
    ) -> StoreResult<Vec<EventRouting>>;
    /// Inserts one batch of recovered deliveries to `webhook` in one short write, extending
    /// each event's expiry to its delivery's; events gone meanwhile get none. Wakes the
    /// engine. `None` if the webhook no longer exists.
    async fn enqueue_recovered(
        &self,
        account: &AccountId,
        webhook: &WebhookId,
        batch: RecoveredBatch,
        now: OffsetDateTime,
    ) -> StoreResult<Option<u64>>;
    async fn list_events(&self, account: &AccountId, filter: EventFilter, page: Page) -> StoreResult<Vec<Event>>;
    async fn get_event(&self, account: &AccountId, id: &EventId) -> StoreResult<Option<(Event, Vec<Delivery>)>>;
    /// Whether `name` is one of the account's custom event types.
    async fn custom_event_type_exists(&self, account: &AccountId, name: &str) -> StoreResult<bool>;
    async fn create_event_type(
        &self,
        account: &AccountId,
        name: &str,
        description: &str,
        now: OffsetDateTime,
    ) -> StoreResult<EventTypeRecord>;
    async fn list_event_types(&self, account: &AccountId) -> StoreResult<Vec<EventTypeRecord>>;
}

/// Re-delivers (or with `dry_run` only counts) the account's stored events created in
/// `[since, until)` that match the webhook now (the fan-out rule, `Filters::wants`), in
/// batches of [`RECOVER_BATCH`] events, one short write each, so other writers are never
/// held up for long. Not all-or-nothing: an error part-way leaves the earlier batches
/// enqueued. `None` if the webhook is not the account's.
pub async fn recover(store: &dyn Store, r: Recovery, rules: &FanoutRules) -> StoreResult<Option<u64>> {
    let Some(w) = store.get_webhook(&r.account, &r.webhook).await? else { return Ok(None) };
    let mut cursor = EventCursor { created_at_ms: herald_domain::to_millis(r.since), id: String::new() };
    let mut total = 0u64;
    loop {
        let page = store.events_after(&r.account, &cursor, r.until, r.now, RECOVER_BATCH).await?;
        let Some(last) = page.last() else { break };
        cursor = EventCursor { created_at_ms: last.created_at_ms, id: last.id.to_string() };
        let deliveries: Vec<(DeliveryId, EventId)> = page
            .iter()
            .filter(|e| w.filters.wants(&w.events, &e.event_type, &e.routing))
            .map(|e| (DeliveryId::generate(), e.id.clone()))
            .collect();
        if r.dry_run {
            total += deliveries.len() as u64;
        } else if !deliveries.is_empty() {
            let now_ms = herald_domain::to_millis(r.now);
            let batch = RecoveredBatch {
                deliveries,
                max_attempts: rules.max_attempts,
                expires_ms: rules.delivery_expiry(now_ms),
            };
            let Some(n) = store.enqueue_recovered(&r.account, &r.webhook, batch, r.now).await? else { break };
            total += n;
        }
        if page.len() < RECOVER_BATCH as usize {
            break;
        }
    }
    Ok(Some(total))
}

/// Deliveries as the account sees them: listing, inspection, manual retry.
#[async_trait]
pub trait Deliveries {
    async fn list_deliveries(&self, query: DeliveryQuery) -> StoreResult<Vec<Delivery>>;
    async fn get_delivery(&self, account: &AccountId, id: &DeliveryId)
    -> StoreResult<Option<(Delivery, Vec<Attempt>)>>;
    /// `failed` or `blocked` → `pending` with one more attempt allowed, due now; otherwise
    /// `RetryRefused` (not failed, or its webhook deleted) — the domain's manual-retry rule.
    async fn retry_delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Delivery>>;
    /// A `pending` or `blocked` delivery ends `failed` with the error `skipped` (its FIFO
    /// lane moves on; an attempt in flight no longer records); otherwise `SkipRefused`.
    async fn skip_delivery(
        &self,
        account: &AccountId,
        id: &DeliveryId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Delivery>>;
}

/// Answers of idempotent requests, kept for a window.
#[async_trait]
pub trait Idempotency {
    /// The response stored under an idempotency key within the window, if any.
    async fn idempotent_response(
        &self,
        account: &AccountId,
        scope: &str,
        key: &str,
        since: OffsetDateTime,
    ) -> StoreResult<Option<String>>;
    async fn save_idempotent_response(
        &self,
        account: &AccountId,
        scope: &str,
        key: &str,
        response: &str,
        now: OffsetDateTime,
    ) -> StoreResult<()>;
}

/// The engine's queue: lease due work, record outcomes, give leases back, know what is next.
#[async_trait]
pub trait Queue {
    /// Leases up to `limit` due deliveries of enabled webhooks below their cap (tests; the
    /// engine calls [`Queue::claim_due_with_finished`]).
    async fn claim_due(&self, now: OffsetDateTime, lease: Duration, limit: u32) -> StoreResult<Vec<Claimed>> {
        self.claim_due_with_finished(now, lease, limit, &[]).await
    }
    /// Leases up to `limit` due deliveries of enabled webhooks below their cap, where the
    /// caller's `finished` leases (delivery, lease token) — attempts that have ended, whose
    /// outcomes are not recorded yet — do not count against the cap. A live lease otherwise
    /// counts until its outcome commits, although its request is over. Only leases the cap
    /// count includes (live, with that token) are subtracted: one recorded or taken over
    /// meanwhile is not subtracted.
    async fn claim_due_with_finished(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
        finished: &[(DeliveryId, String)],
    ) -> StoreResult<Vec<Claimed>>;
    /// Records outcomes (compare-and-set each) in one transaction; says which applied and
    /// which webhooks it disabled as gone. Raises the work signal after the commit (the
    /// engine relies on it: slots were freed).
    async fn record_batch(&self, outcomes: &[Outcome], now: OffsetDateTime) -> StoreResult<Recorded>;
    /// [`Queue::record_batch`], answering per outcome whether it applied.
    async fn record_outcomes(&self, outcomes: &[Outcome], now: OffsetDateTime) -> StoreResult<Vec<bool>> {
        Ok(self.record_batch(outcomes, now).await?.applied)
    }
    /// Gives leases back unattempted (shutdown): due at `now`, no attempt counted.
    async fn release_leases(&self, leases: &[(DeliveryId, String)], now: OffsetDateTime) -> StoreResult<()>;
    /// The earliest `next_retry_at` strictly after `now` among pending deliveries of enabled
    /// webhooks, or the `ready_at` of one whose due work waits for a token or a pause.
    async fn next_due_after(&self, now: OffsetDateTime) -> StoreResult<Option<OffsetDateTime>>;
    /// Raised when work may have become claimable, here or (shared stores) in a replica.
    fn work_signal(&self) -> WorkSignal;
}

/// Periodic upkeep: expiry, auto-disable, secret pruning.
#[async_trait]
pub trait Maintenance {
    /// Deletes expired deliveries, attempts and events (an event only once no delivery
    /// references it), and expired portal sessions, at most `batch` rows a statement.
    async fn delete_expired(&self, now: OffsetDateTime, batch: u32) -> StoreResult<u64>;
    /// Disables every enabled webhook with ≥ `threshold` failed and no delivered deliveries
    /// among those created since `since`; returns their accounts and ids.
    async fn auto_disable(
        &self,
        since: OffsetDateTime,
        threshold: u32,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<(AccountId, WebhookId)>>;
    /// Drops previous signing secrets and signing keys whose grace has ended; returns how
    /// many webhooks changed.
    async fn prune_secrets(&self, now: OffsetDateTime) -> StoreResult<u64>;
}
