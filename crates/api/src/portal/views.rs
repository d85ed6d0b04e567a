//! What the templates show: records turned into display strings, and the shared page
//! parts (the layout, a message page, a timestamp, the secret shown once).

use super::Session;
use askama::Template;
use herald_domain::rfc3339;
use herald_store::{Attempt, Delivery, Event, Webhook};
use time::OffsetDateTime;

/// A timestamp: rendered as `<time>` with the UTC value on hover; the portal's script
/// rewrites the text into the viewer's time zone.
#[derive(Clone, Debug)]
pub(crate) struct Stamp {
    pub iso: String,
}

impl Stamp {
    pub fn new(t: OffsetDateTime) -> Self {
        Self { iso: rfc3339(t) }
    }
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `iso` is our own RFC 3339 rendering (digits, '-', ':', 'T', 'Z'): nothing to escape.
        let utc = self.iso.replace('T', " ").replace('Z', " UTC");
        write!(f, r#"<time datetime="{}" title="{utc}">{utc}</time>"#, self.iso)
    }
}

/// What every page's frame shows: the session's state and the logout form.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub read_only: bool,
    pub csrf: String,
    pub expires: Stamp,
}

impl From<&Session> for Layout {
    fn from(s: &Session) -> Self {
        Self { read_only: s.read_only, csrf: s.csrf.clone(), expires: Stamp::new(s.expires_at) }
    }
}

/// A page with a title and a sentence (errors, "link expired", signed out).
#[derive(Template)]
#[template(path = "portal/message.html")]
pub(crate) struct MessagePage {
    pub layout: Option<Layout>,
    pub title: String,
    pub message: String,
    pub refresh: bool,
}

impl MessagePage {
    pub fn plain(title: &str, message: &str) -> Self {
        Self { layout: None, title: title.into(), message: message.into(), refresh: false }
    }

    /// Moves on to the portal with one more navigation from this origin (see `Session`).
    pub fn continue_page() -> Self {
        Self { layout: None, title: "Opening the portal…".into(), message: String::new(), refresh: true }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct WebhookView {
    pub id: String,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub agent_ids: String,
    pub conversation_ids: String,
    pub labels: String,
    pub enabled: bool,
    /// "disabled (failing)", or "enabled".
    pub state: String,
    pub auto_disabled_at: Option<Stamp>,
    pub max_in_flight: u32,
    /// `adaptive` or `fixed`.
    pub concurrency: &'static str,
    /// The in-flight limit now: the adaptive one, or `max_in_flight` when fixed.
    pub effective_max_in_flight: u32,
    /// Attempts started per second at most; empty without a limit.
    pub rate_limit_per_second: String,
    /// `none` or `fifo`.
    pub ordering: &'static str,
    /// `block` or `skip`.
    pub on_final_failure: &'static str,
    /// The webhook's own schedule (`30s, 5m, 1h`); empty: the server's.
    pub retry_schedule: String,
    /// `3d`; empty without a limit.
    pub max_age: String,
    /// `hmac`, or `ed25519`: signed with the account's Ed25519 key (no shared secret to rotate).
    pub signature: &'static str,
    /// Where the account's public keys are served (same origin).
    pub jwks_path: String,
    pub created_at: Stamp,
    pub last_delivered_at: Option<Stamp>,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        let state = match (w.enabled, w.disabled_reason) {
            (true, _) => "enabled".to_owned(),
            (false, Some(r)) => format!("disabled ({})", r.as_str()),
            (false, None) => "disabled".to_owned(),
        };
        let show = herald_domain::control::show_duration;
        let c = &w.control;
        let retry_schedule =
            c.retry_schedule.as_deref().map(|steps| steps.iter().map(|d| show(*d)).collect::<Vec<_>>().join(", "));
        Self {
            id: w.id.to_string(),
            url: w.url,
            description: w.description,
            events: w.events,
            agent_ids: w.filters.agent_ids.join(", "),
            conversation_ids: w.filters.conversation_ids.join(", "),
            labels: w.filters.labels.join(", "),
            enabled: w.enabled,
            state,
            auto_disabled_at: w.auto_disabled_at.map(Stamp::new),
            max_in_flight: w.max_in_flight,
            concurrency: c.concurrency.as_str(),
            effective_max_in_flight: w.effective_max_in_flight,
            rate_limit_per_second: c.rate_limit_per_second.map(|r| r.to_string()).unwrap_or_default(),
            ordering: c.ordering.as_str(),
            on_final_failure: c.on_final_failure.as_str(),
            retry_schedule: retry_schedule.unwrap_or_default(),
            max_age: c.max_age.map(show).unwrap_or_default(),
            signature: w.signature.as_str(),
            jwks_path: format!("/.well-known/herald/{}/jwks.json", w.account_id),
            created_at: Stamp::new(w.created_at),
            last_delivered_at: w.last_delivered_at.map(Stamp::new),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct DeliveryView {
    pub id: String,
    /// The webhook; `None` for an agent's own delivery (its endpoint is not a webhook).
    pub webhook_id: Option<String>,
    /// The agent, for an agent's own delivery.
    pub agent: String,
    pub event_id: String,
    pub event_type: String,
    pub status: &'static str,
    pub attempts: u32,
    pub max_attempts: u32,
    pub last_error: String,
    pub last_status_code: String,
    pub last_attempt_at: Option<Stamp>,
    pub next_retry_at: Stamp,
    pub created_at: Stamp,
    pub retryable: bool,
    /// Pending or blocked: it can be skipped (it ends failed; the next of its lane may go).
    pub skippable: bool,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id.to_string(),
            webhook_id: d.agent.is_none().then(|| d.webhook_id.to_string()),
            agent: d.agent.unwrap_or_default(),
            event_id: d.event_id.to_string(),
            event_type: d.event_type,
            status: d.status.as_str(),
            attempts: d.attempts,
            max_attempts: d.max_attempts,
            last_error: d.last_error.unwrap_or_default(),
            last_status_code: d.last_status_code.map(|c| c.to_string()).unwrap_or_default(),
            last_attempt_at: d.last_attempt_at.map(Stamp::new),
            next_retry_at: Stamp::new(d.next_retry_at),
            created_at: Stamp::new(d.created_at),
            retryable: matches!(
                d.status,
                herald_domain::DeliveryStatus::Failed | herald_domain::DeliveryStatus::Blocked
            ),
            skippable: matches!(
                d.status,
                herald_domain::DeliveryStatus::Pending | herald_domain::DeliveryStatus::Blocked
            ),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct AttemptView {
    pub number: u32,
    pub started_at: Stamp,
    pub duration_ms: u64,
    /// The status code, or "—" without a response.
    pub status: String,
    pub success: bool,
    pub error: String,
    pub response: String,
}

/// How much of an endpoint's answer a page shows.
pub(crate) const SNIPPET: usize = 512;

pub(crate) fn snippet(s: &str) -> String {
    match s.char_indices().nth(SNIPPET) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> Self {
        Self {
            number: a.number,
            started_at: Stamp::new(a.started_at),
            duration_ms: a.duration_ms,
            status: if a.status_code == 0 { "—".into() } else { a.status_code.to_string() },
            success: a.succeeded(),
            error: a.error.unwrap_or_default(),
            response: snippet(a.response_body.as_deref().unwrap_or_default()),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct EventView {
    pub id: String,
    pub event_type: String,
    pub created_at: Stamp,
    pub deliveries: u32,
    pub routing: String,
    /// The envelope receivers got, pretty-printed when it is JSON.
    pub payload: String,
}

impl EventView {
    /// The event without its payload (lists).
    pub fn summary(e: &Event) -> Self {
        let mut routing = Vec::new();
        if let Some(a) = &e.agent_id {
            routing.push(format!("agent {a}"));
        }
        if let Some(c) = &e.conversation_id {
            routing.push(format!("conversation {c}"));
        }
        if !e.labels.is_empty() {
            routing.push(format!("labels {}", e.labels.join(", ")));
        }
        Self {
            id: e.id.to_string(),
            event_type: e.event_type.clone(),
            created_at: Stamp::new(e.created_at),
            deliveries: e.deliveries,
            routing: routing.join(" · "),
            payload: String::new(),
        }
    }

    /// The event with the envelope receivers got, pretty-printed when it is JSON.
    pub fn full(e: &Event) -> Self {
        let payload = serde_json::from_slice::<serde_json::Value>(&e.envelope)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| String::from_utf8_lossy(&e.envelope).into_owned());
        Self { payload, ..Self::summary(e) }
    }
}

/// Splits one extra row (fetched to know whether a next page exists) off `rows`.
pub(crate) fn paginate<T>(mut rows: Vec<T>, limit: u32, cursor: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
    if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        let next = rows.last().map(cursor);
        (rows, next)
    } else {
        (rows, None)
    }
}

/// Why a secret page is shown.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretOccasion {
    Created,
    Rotated,
    /// An Ed25519 webhook switched to HMAC: the fresh secret that signs from now on.
    SwitchedToHmac,
}

/// A signing secret, shown once (after create, rotate or a switch to HMAC), with a copy
/// button.
#[derive(Template)]
#[template(path = "portal/secret.html")]
pub(crate) struct SecretPage {
    layout: Option<Layout>,
    webhook_id: String,
    secret: String,
    occasion: SecretOccasion,
    previous_expires: Option<String>,
}

impl SecretPage {
    pub fn new(
        session: &Session,
        webhook_id: String,
        secret: String,
        occasion: SecretOccasion,
        previous_expires: Option<String>,
    ) -> Self {
        Self { layout: Some(session.into()), webhook_id, secret, occasion, previous_expires }
    }

    fn title(&self) -> &'static str {
        match self.occasion {
            SecretOccasion::Created => "Webhook created",
            SecretOccasion::Rotated => "Secret rotated",
            SecretOccasion::SwitchedToHmac => "Signing switched to HMAC",
        }
    }

    fn switched(&self) -> bool {
        self.occasion == SecretOccasion::SwitchedToHmac
    }
}
