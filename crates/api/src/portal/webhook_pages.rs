//! Webhook pages: the list, the create and edit forms, a webhook's page (state, charts,
//! deliveries, actions) and enable/disable.

use super::chart;
use super::form::{FormErrors, FormFields};
use super::views::{DeliveryView, Layout, SecretOccasion, SecretPage, WebhookView, paginate};
use super::{PortalError, Session, html};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use herald_app::{AppError, TestSent, WebhookChange, WebhookDraft, WebhookStats};
use herald_domain::{AccountId, DeliveryStatus, Filters, SignatureScheme, WebhookId};
use herald_store::{DeliveryQuery, Page};
use serde::Deserialize;
use std::time::Duration;

const PAGE: u32 = 20;
const DAY: Duration = Duration::from_secs(86_400);
const HOUR: Duration = Duration::from_secs(3600);

/// A list row: the webhook and its last day's attempts.
pub(crate) struct WebhookRow {
    pub w: WebhookView,
    pub attempts: u64,
    /// "97.5 %", or "—" without attempts.
    pub success_rate: String,
}

#[derive(Template)]
#[template(path = "portal/webhooks.html")]
struct ListPage {
    layout: Option<Layout>,
    rows: Vec<WebhookRow>,
    next: Option<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct ListQuery {
    after: Option<String>,
}

pub(crate) fn webhook_id(id: &str) -> Result<WebhookId, PortalError> {
    WebhookId::parse(id).ok_or(PortalError::App(AppError::NotFound("webhook")))
}

fn success_rate(s: &WebhookStats) -> String {
    s.totals.success_percent().map_or_else(|| "—".to_owned(), |p| format!("{p:.1} %"))
}

/// `GET /portal/`: the account's webhooks with state, last delivery and success rate.
pub(crate) async fn list(
    State(s): State<AppState>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> Result<Response, PortalError> {
    let after = q.after.filter(|a| WebhookId::parse(a).is_some());
    let rows = s.app.webhooks(&session.account, Page { after, limit: PAGE + 1 }).await?;
    let (rows, next) = paginate(rows, PAGE, |w| w.id.to_string());
    let mut out = Vec::with_capacity(rows.len());
    for w in rows {
        // The last 24 hours (hour-aligned), as on the webhook's page. A webhook deleted
        // since the list was read is left out.
        let stats = match s.app.webhook_stats(&session.account, &w.id, DAY, HOUR).await {
            Ok(stats) => stats,
            Err(AppError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        out.push(WebhookRow { w: w.into(), attempts: stats.totals.attempts(), success_rate: success_rate(&stats) });
    }
    Ok(html(StatusCode::OK, &ListPage { layout: Some((&session).into()), rows: out, next }))
}

/// One event type to tick in the form.
pub(crate) struct TypeChoice {
    pub name: String,
    pub description: String,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "portal/webhook_form.html")]
struct FormPage {
    layout: Option<Layout>,
    /// `None` when creating.
    id: Option<String>,
    url: String,
    description: String,
    types: Vec<TypeChoice>,
    agent_ids: String,
    conversation_ids: String,
    labels: String,
    max_in_flight: String,
    concurrency: String,
    rate_limit_per_second: String,
    ordering: String,
    on_final_failure: String,
    retry_schedule: String,
    max_age: String,
    /// `hmac` or `ed25519`.
    signature: String,
    /// The scheme the webhook had when the form was drawn (kept through a refill).
    signature_was: String,
    /// The server's retry schedule, what an empty `retry_schedule` means.
    server_schedule: String,
    enabled: bool,
    errors: FormErrors,
}

impl FormPage {
    async fn new(
        s: &AppState,
        session: &Session,
        w: Option<WebhookView>,
        chosen: &[String],
    ) -> Result<Self, PortalError> {
        let types = s
            .app
            .event_types(&session.account)
            .await?
            .into_iter()
            .map(|t| TypeChoice { checked: chosen.contains(&t.name), name: t.name, description: t.description })
            .collect();
        let w = w.as_ref();
        // A new webhook's controls: what the app gives one that sets none.
        let defaults = herald_domain::DeliveryControl::default();
        let signature = w.map_or(SignatureScheme::default().as_str(), |w| w.signature).to_owned();
        Ok(Self {
            layout: Some(session.into()),
            id: w.map(|w| w.id.clone()),
            url: w.map(|w| w.url.clone()).unwrap_or_default(),
            description: w.map(|w| w.description.clone()).unwrap_or_default(),
            types,
            agent_ids: w.map(|w| w.agent_ids.clone()).unwrap_or_default(),
            conversation_ids: w.map(|w| w.conversation_ids.clone()).unwrap_or_default(),
            labels: w.map(|w| w.labels.clone()).unwrap_or_default(),
            max_in_flight: w.map_or_else(|| "1".to_owned(), |w| w.max_in_flight.to_string()),
            concurrency: w.map_or(defaults.concurrency.as_str(), |w| w.concurrency).to_owned(),
            rate_limit_per_second: w.map(|w| w.rate_limit_per_second.clone()).unwrap_or_default(),
            ordering: w.map_or(defaults.ordering.as_str(), |w| w.ordering).to_owned(),
            on_final_failure: w.map_or(defaults.on_final_failure.as_str(), |w| w.on_final_failure).to_owned(),
            retry_schedule: w.map(|w| w.retry_schedule.clone()).unwrap_or_default(),
            max_age: w.map(|w| w.max_age.clone()).unwrap_or_default(),
            signature_was: signature.clone(),
            signature,
            server_schedule: server_schedule(s),
            enabled: w.is_none_or(|w| w.enabled),
            errors: FormErrors::default(),
        })
    }

    /// The form again as submitted, with its errors next to the fields.
    fn refill(mut self, f: &FormFields, errs: Vec<herald_app::FieldError>) -> Response {
        self.url = f.get("url").unwrap_or_default().to_owned();
        self.description = f.get("description").unwrap_or_default().to_owned();
        self.agent_ids = f.get("agent_ids").unwrap_or_default().to_owned();
        self.conversation_ids = f.get("conversation_ids").unwrap_or_default().to_owned();
        self.labels = f.get("labels").unwrap_or_default().to_owned();
        self.max_in_flight = f.get("max_in_flight").unwrap_or_default().to_owned();
        // A delivery control the form does not carry keeps its value (see `parse_control`).
        let typed = |field: &mut String, name: &str| {
            if let Some(v) = f.given(name) {
                *field = v.to_owned();
            }
        };
        typed(&mut self.concurrency, "concurrency");
        typed(&mut self.rate_limit_per_second, "rate_limit_per_second");
        typed(&mut self.ordering, "ordering");
        typed(&mut self.on_final_failure, "on_final_failure");
        typed(&mut self.retry_schedule, "retry_schedule");
        typed(&mut self.max_age, "max_age");
        for (field, name) in [(&mut self.signature, "signature"), (&mut self.signature_was, "signature_was")] {
            if let Some(v) = f.get(name) {
                *field = v.to_owned();
            }
        }
        self.enabled = f.get("enabled").is_some();
        self.errors = FormErrors::new(errs);
        html(StatusCode::BAD_REQUEST, &self)
    }
}

/// The server's retry schedule as the pages show it (`1m, 5m, 15m`).
fn server_schedule(s: &AppState) -> String {
    let show = herald_domain::control::show_duration;
    s.app.server_retry_schedule().iter().map(|d| show(*d)).collect::<Vec<_>>().join(", ")
}

/// The form's filters and in-flight cap; a cap that is not a number is a field error.
fn parse_common(f: &FormFields) -> (Filters, Result<u32, herald_app::FieldError>) {
    let filters = Filters {
        agent_ids: f.list("agent_ids"),
        conversation_ids: f.list("conversation_ids"),
        labels: f.list("labels"),
    };
    let cap = f.get("max_in_flight").unwrap_or("1").parse::<u32>().map_err(|_| herald_app::FieldError {
        field: "max_in_flight".into(),
        message: "must be a whole number".into(),
    });
    (filters, cap)
}

/// The delivery controls of the webhook form. A field the form does not carry keeps its
/// value; an empty one clears it (no rate limit, the server's schedule, no max age).
fn parse_control(f: &FormFields) -> Result<herald_app::ControlChange, herald_app::FieldError> {
    let rate = match f.given("rate_limit_per_second") {
        None => None,
        Some("") => Some(0),
        Some(r) => Some(r.parse::<u32>().map_err(|_| herald_app::FieldError {
            field: "rate_limit_per_second".into(),
            message: "must be a whole number (empty: no limit)".into(),
        })?),
    };
    Ok(herald_app::ControlChange {
        concurrency: f.get("concurrency").map(str::to_owned),
        rate_limit_per_second: rate,
        ordering: f.get("ordering").map(str::to_owned),
        on_final_failure: f.get("on_final_failure").map(str::to_owned),
        retry_schedule: f
            .given("retry_schedule")
            .map(|s| s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect()),
        max_age: f.given("max_age").map(|a| if a.is_empty() { "0s".to_owned() } else { a.to_owned() }),
    })
}

/// The scheme the edit form asks for, only when the user chose another than the form was
/// drawn with (`signature_was`): a form opened before someone else switched the scheme must
/// not switch it back by saving an unrelated field.
fn chosen_signature(f: &FormFields) -> Option<String> {
    let chosen = f.get("signature")?;
    (f.get("signature_was") != Some(chosen)).then(|| chosen.to_owned())
}

/// `GET /portal/webhooks/new`.
pub(crate) async fn new_form(State(s): State<AppState>, session: Session) -> Result<Response, PortalError> {
    let page = FormPage::new(&s, &session, None, &[]).await?;
    Ok(html(StatusCode::OK, &page))
}

/// `POST /portal/webhooks`: creates the webhook and shows its secret once (an Ed25519 one,
/// which has none, goes to its page).
pub(crate) async fn create(
    State(s): State<AppState>,
    session: Session,
    f: FormFields,
) -> Result<Response, PortalError> {
    session.check_change(f.csrf())?;
    let events = f.all("events");
    let (filters, cap) = parse_common(&f);
    let page = FormPage::new(&s, &session, None, &events).await?;
    let (max_in_flight, control) = match (cap, parse_control(&f)) {
        (Ok(c), Ok(control)) => (c, control),
        (Err(e), _) | (_, Err(e)) => return Ok(page.refill(&f, vec![e])),
    };
    let draft = WebhookDraft {
        url: f.get("url").unwrap_or_default().to_owned(),
        events,
        description: f.get("description").map(str::to_owned),
        filters: Some(filters),
        enabled: Some(f.get("enabled").is_some()),
        max_in_flight: Some(max_in_flight),
        control,
        signature: f.get("signature").map(str::to_owned),
    };
    match s.app.create_webhook(&session.account, draft).await {
        // An Ed25519 webhook has no secret to show: its page says where the public keys are.
        Ok((w, _)) if w.signature == SignatureScheme::Ed25519 => {
            Ok(Redirect::to(&format!("/portal/webhooks/{}?done=created", w.id)).into_response())
        }
        Ok((w, secret)) => {
            let occasion = SecretOccasion::Created;
            let page = SecretPage::new(&session, w.id.to_string(), secret.expose().to_owned(), occasion, None);
            Ok(html(StatusCode::CREATED, &page))
        }
        Err(AppError::Invalid(errs)) => Ok(page.refill(&f, errs)),
        Err(e) => Err(e.into()),
    }
}

/// `GET /portal/webhooks/{id}/edit`.
pub(crate) async fn edit_form(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PortalError> {
    let w = s.app.webhook(&session.account, &webhook_id(&id)?).await?;
    let chosen = w.events.clone();
    let page = FormPage::new(&s, &session, Some(w.into()), &chosen).await?;
    Ok(html(StatusCode::OK, &page))
}

/// `POST /portal/webhooks/{id}`: applies the edit form.
pub(crate) async fn update(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    f: FormFields,
) -> Result<Response, PortalError> {
    session.check_change(f.csrf())?;
    let id = webhook_id(&id)?;
    let current: WebhookView = s.app.webhook(&session.account, &id).await?.into();
    let events = f.all("events");
    let (filters, cap) = parse_common(&f);
    let page = FormPage::new(&s, &session, Some(current), &events).await?;
    let (max_in_flight, control) = match (cap, parse_control(&f)) {
        (Ok(c), Ok(control)) => (c, control),
        (Err(e), _) | (_, Err(e)) => return Ok(page.refill(&f, vec![e])),
    };
    let change = WebhookChange {
        url: Some(f.get("url").unwrap_or_default().to_owned()),
        events: Some(events),
        description: Some(f.get("description").unwrap_or_default().to_owned()),
        filters: Some(filters),
        enabled: None,
        max_in_flight: Some(max_in_flight),
        control,
        signature: chosen_signature(&f),
    };
    match s.app.change_webhook(&session.account, &id, change).await {
        // A switch from Ed25519 to HMAC answers the fresh secret, shown only now. The stored
        // secret signing beside it for a while was never shown, so its expiry is not either.
        Ok((_, Some(switched))) => {
            let occasion = SecretOccasion::SwitchedToHmac;
            Ok(html(
                StatusCode::OK,
                &SecretPage::new(&session, id.to_string(), switched.signing_secret, occasion, None),
            ))
        }
        Ok((_, None)) => Ok(Redirect::to(&format!("/portal/webhooks/{id}?done=updated")).into_response()),
        Err(AppError::Invalid(errs)) => Ok(page.refill(&f, errs)),
        Err(e) => Err(e.into()),
    }
}

/// `POST /portal/webhooks/{id}/enabled` with `enabled=true|false`.
pub(crate) async fn set_enabled(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    f: FormFields,
) -> Result<Response, PortalError> {
    session.check_change(f.csrf())?;
    let id = webhook_id(&id)?;
    let enabled = match f.get("enabled") {
        Some("true") => true,
        Some("false") => false,
        _ => return Err(PortalError::BadForm("enabled must be true or false".into())),
    };
    let change = WebhookChange { enabled: Some(enabled), ..WebhookChange::default() };
    s.app.change_webhook(&session.account, &id, change).await?;
    let done = if enabled { "enabled" } else { "disabled" };
    Ok(Redirect::to(&format!("/portal/webhooks/{id}?done={done}")).into_response())
}

/// What a webhook's page shows after an action in the same response.
#[derive(Default)]
pub(crate) struct Shown {
    pub test: Option<TestView>,
    pub notice: Option<String>,
}

/// A test send's first attempt, as the page shows it.
pub(crate) struct TestView {
    pub delivery_id: String,
    pub finished: bool,
    pub success: bool,
    pub status: String,
    pub duration_ms: u64,
    pub error: String,
    pub response: String,
}

impl From<TestSent> for TestView {
    fn from(t: TestSent) -> Self {
        let delivery_id = t.delivery_id.to_string();
        match t.first_attempt {
            Some(a) => {
                let a = super::views::AttemptView::from(a);
                Self {
                    delivery_id,
                    finished: true,
                    success: a.success,
                    status: a.status,
                    duration_ms: a.duration_ms,
                    error: a.error,
                    response: a.response,
                }
            }
            None => Self {
                delivery_id,
                finished: false,
                success: false,
                status: String::new(),
                duration_ms: 0,
                error: String::new(),
                response: String::new(),
            },
        }
    }
}

#[derive(Template)]
#[template(path = "portal/webhook.html")]
struct DetailPage {
    layout: Option<Layout>,
    w: WebhookView,
    totals_delivered: u64,
    totals_failed: u64,
    success_rate: String,
    p50: String,
    p99: String,
    attempts_chart: String,
    latency_chart: String,
    deliveries: Vec<DeliveryView>,
    status: String,
    next: Option<String>,
    shown: Shown,
    /// The server's retry schedule, in effect when the webhook has none of its own.
    server_schedule: String,
}

#[derive(Deserialize, Default)]
pub(crate) struct DetailQuery {
    status: Option<String>,
    after: Option<String>,
    done: Option<String>,
}

fn notice(done: Option<&str>) -> Option<String> {
    Some(
        match done? {
            "updated" => "Saved.",
            "created" => "Created.",
            "enabled" => "Enabled: deliveries resume now.",
            "disabled" => "Disabled: new events are not delivered to it until it is enabled again.",
            _ => return None,
        }
        .to_owned(),
    )
}

/// `GET /portal/webhooks/{id}`.
pub(crate) async fn detail(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<DetailQuery>,
) -> Result<Response, PortalError> {
    let id = webhook_id(&id)?;
    let shown = Shown { test: None, notice: notice(q.done.as_deref()) };
    render_detail(&s, &session, &id, &q, shown, StatusCode::OK).await
}

/// A webhook's page with what an action just did.
pub(crate) async fn render_detail(
    s: &AppState,
    session: &Session,
    id: &WebhookId,
    q: &DetailQuery,
    shown: Shown,
    status_code: StatusCode,
) -> Result<Response, PortalError> {
    let account: &AccountId = &session.account;
    let w = s.app.webhook(account, id).await?;
    let stats = s.app.webhook_stats(account, id, DAY, HOUR).await?;
    let status = q.status.as_deref().and_then(DeliveryStatus::parse);
    let after = q.after.clone().filter(|a| herald_domain::DeliveryId::parse(a).is_some());
    let query =
        DeliveryQuery { account: account.clone(), webhook: id.clone(), status, page: Page { after, limit: PAGE + 1 } };
    let rows = s.app.deliveries(query).await?;
    let (rows, next) = paginate(rows, PAGE, |d| d.id.to_string());
    let success_rate = success_rate(&stats);
    let ms = |v: Option<u64>| v.map_or_else(|| "—".to_owned(), |v| format!("{v} ms"));
    let page = DetailPage {
        layout: Some(session.into()),
        totals_delivered: stats.totals.delivered,
        totals_failed: stats.totals.failed,
        success_rate,
        p50: ms(stats.totals.p50_ms),
        p99: ms(stats.totals.p99_ms),
        attempts_chart: chart::attempts_svg(&stats),
        latency_chart: chart::latency_svg(&stats),
        w: w.into(),
        deliveries: rows.into_iter().map(DeliveryView::from).collect(),
        status: status.map(|s| s.as_str().to_owned()).unwrap_or_default(),
        next,
        shown,
        server_schedule: server_schedule(s),
    };
    Ok(html(status_code, &page))
}
