//! The events log (what was published, its payload, where it went) and a delivery's page
//! (every attempt, retry when failed or blocked, skip when pending or blocked).

use super::views::{AttemptView, DeliveryView, EventView, Layout, paginate};
use super::{PortalError, Session, html};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use herald_app::AppError;
use herald_domain::{DeliveryId, EventId};
use herald_store::{EventFilter, Page};
use serde::Deserialize;

const PAGE: u32 = 25;

#[derive(Template)]
#[template(path = "portal/events.html")]
struct EventsPage {
    layout: Option<Layout>,
    events: Vec<EventView>,
    event_type: String,
    next: Option<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct EventsQuery {
    after: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
}

/// `GET /portal/events`: newest first, filtered by type, paginated.
pub(crate) async fn list(
    State(s): State<AppState>,
    session: Session,
    Query(q): Query<EventsQuery>,
) -> Result<Response, PortalError> {
    let after = q.after.filter(|a| EventId::parse(a).is_some());
    let event_type = q.event_type.filter(|t| !t.trim().is_empty() && t.len() <= 100);
    let filter = EventFilter { event_type: event_type.clone(), since: None, until: None };
    let rows = s.app.events(&session.account, filter, Page { after, limit: PAGE + 1 }).await?;
    let (rows, next) = paginate(rows, PAGE, |e| e.id.to_string());
    let page = EventsPage {
        layout: Some((&session).into()),
        events: rows.iter().map(EventView::summary).collect(),
        event_type: event_type.unwrap_or_default(),
        next,
    };
    Ok(html(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "portal/event.html")]
struct EventPage {
    layout: Option<Layout>,
    e: EventView,
    deliveries: Vec<DeliveryView>,
}

/// `GET /portal/events/{id}`: the payload and every delivery of it.
pub(crate) async fn event(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PortalError> {
    let id = EventId::parse(&id).ok_or(PortalError::App(AppError::NotFound("event")))?;
    let (e, deliveries) = s.app.event(&session.account, &id).await?;
    let page = EventPage {
        layout: Some((&session).into()),
        e: EventView::full(&e),
        deliveries: deliveries.into_iter().map(DeliveryView::from).collect(),
    };
    Ok(html(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "portal/delivery.html")]
struct DeliveryPage {
    layout: Option<Layout>,
    d: DeliveryView,
    attempts: Vec<AttemptView>,
    notice: Option<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct DeliveryQuery {
    done: Option<String>,
}

/// `GET /portal/deliveries/{id}`: the delivery and each attempt (time, status, duration,
/// error, the start of the answer).
pub(crate) async fn delivery(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<DeliveryQuery>,
) -> Result<Response, PortalError> {
    let id = DeliveryId::parse(&id).ok_or(PortalError::App(AppError::NotFound("delivery")))?;
    let (d, attempts) = s.app.delivery(&session.account, &id).await?;
    let notice = match q.done.as_deref() {
        Some("retried") => Some("Retry queued: one more attempt, now.".to_owned()),
        Some("skipped") => Some("Skipped: no more attempts; the next event of its ordering key may go.".to_owned()),
        _ => None,
    };
    let page = DeliveryPage {
        layout: Some((&session).into()),
        d: d.into(),
        attempts: attempts.into_iter().rev().map(AttemptView::from).collect(),
        notice,
    };
    Ok(html(StatusCode::OK, &page))
}
