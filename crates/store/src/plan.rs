//! Decisions both backends persist, made once here: what an outcome writes, which webhooks
//! outcomes touch, expiry arithmetic and the idempotency window.

use crate::{FanoutRules, Outcome};
use herald_domain::{Verdict, to_millis};

/// The delivery and attempt columns one outcome writes.
#[derive(Clone, Debug)]
pub struct OutcomeRow {
    pub id: String,
    pub token: String,
    /// What happened ([`herald_domain::AttemptKind::as_str`]).
    pub kind: &'static str,
    /// The delivery's new status.
    pub status: &'static str,
    pub attempt: i64,
    /// Storable text (no NUL), or none on success.
    pub error: Option<String>,
    /// 0 when no response arrived.
    pub status_code: i64,
    pub started_ms: i64,
    /// The delivery's new `next_retry_at`.
    pub next_ms: i64,
    pub duration_ms: i64,
    /// Storable text (no NUL).
    pub response_body: Option<String>,
}

impl OutcomeRow {
    pub fn of(o: &Outcome, now_ms: i64) -> Self {
        let (status, next_ms) = match &o.verdict {
            Verdict::Delivered => ("delivered", now_ms),
            Verdict::RetryAt(at) => ("pending", to_millis(*at)),
            Verdict::Failed { .. } if o.blocks_lane => ("blocked", now_ms),
            Verdict::Failed { .. } => ("failed", now_ms),
        };
        let r = &o.result;
        Self {
            id: o.delivery_id.to_string(),
            token: o.lease_token.clone(),
            kind: r.kind.as_str(),
            status,
            attempt: i64::from(o.attempt),
            error: r.error.as_deref().map(herald_domain::text::storable),
            status_code: i64::from(r.status_code),
            started_ms: to_millis(r.started_at),
            next_ms,
            duration_ms: r.duration.as_millis() as i64,
            response_body: r.response_body.as_deref().map(herald_domain::text::storable),
        }
    }
}

/// `last_delivered_at` is written at most this often per webhook (the row is hot).
pub const LAST_DELIVERED_RESOLUTION_MS: i64 = 1000;

/// The webhooks that applied outcomes touch, each once: those with a delivery (for
/// `last_delivered_at`) and those answered `410 Gone` (to disable).
pub fn touched_webhooks(outcomes: &[Outcome], applied: impl Fn(&Outcome) -> bool) -> (Vec<String>, Vec<String>) {
    let mut delivered: Vec<String> = Vec::new();
    let mut gone: Vec<String> = Vec::new();
    for o in outcomes.iter().filter(|o| applied(o)) {
        let list = match &o.verdict {
            Verdict::Delivered => &mut delivered,
            Verdict::Failed { gone: true } => &mut gone,
            _ => continue,
        };
        if !list.iter().any(|w| w == o.webhook_id.as_str()) {
            list.push(o.webhook_id.to_string());
        }
    }
    (delivered, gone)
}

impl FanoutRules {
    /// When an event published at `now_ms` expires.
    pub fn event_expiry(&self, now_ms: i64) -> i64 {
        now_ms + self.event_ttl.as_millis() as i64
    }

    /// When a delivery created at `now_ms` expires.
    pub fn delivery_expiry(&self, now_ms: i64) -> i64 {
        now_ms + self.delivery_ttl.as_millis() as i64
    }

    /// Whether an idempotency key first used at `created_ms` still names that event at `now_ms`.
    pub fn idempotency_holds(&self, created_ms: i64, now_ms: i64) -> bool {
        created_ms > now_ms - self.idempotency_window.as_millis() as i64
    }
}
