//! Operational events: what Herald tells an account about its own webhooks, delivered like
//! any event to the account's webhooks that subscribe to these built-in types. Herald alone
//! publishes them (the API refuses them), and a failed delivery of one never causes a
//! `delivery.failed` (a failing subscriber would otherwise feed itself).

use crate::{DeliveryId, DisabledReason, EventId, WebhookId};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// `data: {webhook_id, reason}` — reason `manual`, `failing` (auto-disabled) or `gone` (410).
pub const WEBHOOK_DISABLED: &str = "webhook.disabled";
/// `data: {webhook_id}` — enabled again through the API or the portal.
pub const WEBHOOK_ENABLED: &str = "webhook.enabled";
/// `data: {delivery_id, webhook_id, event_id, event_type, attempts, last_error}` — a
/// delivery ended failed (attempts exhausted, 410, refused address, or its event gone).
pub const DELIVERY_FAILED: &str = "delivery.failed";
/// `data: {webhook_id, previous_secret_expires_at}` — never a secret.
pub const SECRET_ROTATED: &str = "secret.rotated";

/// Every operational type.
pub const TYPES: [&str; 4] = [WEBHOOK_DISABLED, WEBHOOK_ENABLED, DELIVERY_FAILED, SECRET_ROTATED];

/// True for a type only Herald publishes.
pub fn is_operational(event_type: &str) -> bool {
    TYPES.contains(&event_type)
}

/// An operational event to publish: its type and `data`.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub event_type: &'static str,
    pub data: Value,
}

impl Notice {
    pub fn webhook_disabled(webhook: &WebhookId, reason: DisabledReason) -> Self {
        Self { event_type: WEBHOOK_DISABLED, data: json!({"webhook_id": webhook, "reason": reason.as_str()}) }
    }

    pub fn webhook_enabled(webhook: &WebhookId) -> Self {
        Self { event_type: WEBHOOK_ENABLED, data: json!({"webhook_id": webhook}) }
    }

    /// `None` for a delivery of an operational or test event: those end quietly.
    pub fn delivery_failed(
        delivery: &DeliveryId,
        webhook: &WebhookId,
        event: &EventId,
        event_type: &str,
        attempts: u32,
        last_error: &str,
    ) -> Option<Self> {
        (!is_operational(event_type) && event_type != "webhook.test").then(|| Self {
            event_type: DELIVERY_FAILED,
            data: json!({
                "delivery_id": delivery,
                "webhook_id": webhook,
                "event_id": event,
                "event_type": event_type,
                "attempts": attempts,
                "last_error": last_error,
            }),
        })
    }

    pub fn secret_rotated(webhook: &WebhookId, previous_secret_expires_at: OffsetDateTime) -> Self {
        Self {
            event_type: SECRET_ROTATED,
            data: json!({"webhook_id": webhook, "previous_secret_expires_at": crate::rfc3339(previous_secret_expires_at)}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_delivery_of_an_operational_or_test_event_is_not_reported() {
        let (d, w, e) = (DeliveryId::generate(), WebhookId::generate(), EventId::generate());
        let n = Notice::delivery_failed(&d, &w, &e, "order.paid", 8, "HTTP 503").unwrap();
        assert_eq!(n.data["attempts"], 8);
        assert_eq!(n.data["delivery_id"], d.as_str());
        for quiet in [DELIVERY_FAILED, WEBHOOK_DISABLED, "webhook.test"] {
            assert!(Notice::delivery_failed(&d, &w, &e, quiet, 8, "x").is_none(), "{quiet}");
        }
        assert!(crate::event_type::BUILT_IN.iter().filter(|t| is_operational(t)).count() == TYPES.len());
    }
}
