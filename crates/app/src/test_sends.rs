//! Test sends: one event to one webhook whatever it subscribes to, optionally waiting for
//! the first attempt's outcome (synchronous feedback for the caller).

use crate::{Admit, AppError, AppResult, Conflict, Herald, validate};
use herald_domain::{AccountId, DeliveryId, Envelope, EventId, WebhookId};
use herald_store::{Attempt, NewEvent};
use serde_json::value::RawValue;
use std::time::Duration;

/// A test send, as the caller gave it.
#[derive(Clone, Debug, Default)]
pub struct TestSend {
    /// Default `webhook.test`.
    pub event_type: Option<String>,
    /// Default `{"message":"test event from herald"}`.
    pub data: Option<Box<RawValue>>,
    /// Wait (up to the configured time) for the first attempt.
    pub wait: bool,
}

/// What a test send did.
#[derive(Clone, Debug)]
pub struct TestSent {
    pub delivery_id: DeliveryId,
    /// The first attempt, when waited for and recorded in time.
    pub first_attempt: Option<Attempt>,
}

impl Herald {
    pub async fn send_test(
        &self,
        account: &AccountId,
        webhook: &WebhookId,
        t: TestSend,
        admit: impl Admit,
    ) -> AppResult<TestSent> {
        let w = self.webhook(account, webhook).await?;
        if !w.enabled {
            return Err(Conflict::WebhookDisabled.into());
        }
        let name = t.event_type.unwrap_or_else(|| "webhook.test".into());
        let Some(event_type) = self.known_event_type(account, &name).await? else {
            return Err(AppError::field("type", validate::unknown_type_message(&name)));
        };
        if herald_domain::operational::is_operational(&name) {
            return Err(AppError::field("type", validate::operational_type_message(&name)));
        }
        let data = match t.data {
            Some(d) => d,
            None => RawValue::from_string(r#"{"message":"test event from herald"}"#.into()).expect("valid JSON"),
        };
        validate::check_data(&data).map_err(|m| AppError::field("data", m))?;
        admit()?;
        let id = EventId::generate();
        let now = self.clock.now();
        let new = NewEvent {
            envelope: Envelope::build(&id, event_type.as_str(), now, &data),
            id,
            account_id: account.clone(),
            event_type: event_type.as_str().to_owned(),
            routing: Default::default(),
            ordering_key: None,
            idempotency_key: None,
            created_at: now,
        };
        let delivery_id =
            self.store.enqueue_direct(webhook, new, &self.config.fanout).await?.ok_or(AppError::NotFound("webhook"))?;
        crate::events::count_published("test", 1);
        let first_attempt = if t.wait { self.first_attempt(account, &delivery_id).await? } else { None };
        Ok(TestSent { delivery_id, first_attempt })
    }

    /// Waits (up to `test_wait`) for the delivery's first recorded attempt. The engine runs
    /// apart from the adapters, so this watches the store, backing off from 5 ms to 100 ms.
    pub(crate) async fn first_attempt(&self, account: &AccountId, id: &DeliveryId) -> AppResult<Option<Attempt>> {
        let deadline = tokio::time::Instant::now() + self.config.test_wait;
        let mut pause = Duration::from_millis(5);
        loop {
            if let Some((_, attempts)) = self.store.get_delivery(account, id).await?
                && let Some(a) = attempts.into_iter().next()
            {
                return Ok(Some(a));
            }
            if tokio::time::Instant::now() + pause > deadline {
                // Still in flight: the delivery goes on; the caller is told so, not kept waiting.
                return Ok(None);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }
}
