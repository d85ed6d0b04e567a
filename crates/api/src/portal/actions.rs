//! Portal actions: test send (answer shown inline), rotate (new secret shown once, on the
//! shared `SecretPage`),
//! recovery (a dry-run count first), retry of a failed delivery, skip of a pending or
//! blocked one.

use super::form::FormFields;
use super::views::{Layout, SecretOccasion, SecretPage};
use super::webhook_pages::{DetailQuery, Shown, TestView, render_detail, webhook_id};
use super::{PortalError, Session, html};
use crate::AppState;
use crate::ratelimit::admit;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use herald_app::{AppError, RecoveryRequest, TestSend};
use herald_domain::DeliveryId;
use std::time::Duration;
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// `POST /portal/webhooks/{id}/test`: sends a test event, waits for the first attempt and
/// shows the endpoint's answer on the webhook's page.
pub(crate) async fn test_send(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    f: FormFields,
) -> Result<Response, PortalError> {
    session.check_change(f.csrf())?;
    let id = webhook_id(&id)?;
    let account = session.account.clone();
    let send = TestSend { event_type: f.get("type").map(str::to_owned), data: None, wait: true };
    let sent = s.app.send_test(&account, &id, send, || admit(&s.limits.test_per_account, account.as_str())).await?;
    let shown = Shown { test: Some(TestView::from(sent)), notice: None };
    render_detail(&s, &session, &id, &DetailQuery::default(), shown, StatusCode::OK).await
}

/// `POST /portal/webhooks/{id}/rotate`: a new secret, shown once; the old one keeps
/// signing for the chosen grace.
pub(crate) async fn rotate(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    f: FormFields,
) -> Result<Response, PortalError> {
    session.check_change(f.csrf())?;
    let id = webhook_id(&id)?;
    // The app checks the grace (at most 7 days) like the API's.
    let grace_hours: u64 = f
        .get("grace_hours")
        .unwrap_or("24")
        .parse()
        .map_err(|_| PortalError::BadForm("the grace period must be a whole number of hours".into()))?;
    let account = session.account.clone();
    let grace = Duration::from_secs(grace_hours.saturating_mul(3600));
    let answer = s
        .app
        .rotate_secret(&account, &id, grace, None, || admit(&s.limits.rotate_per_account, account.as_str()))
        .await?;
    let page = SecretPage::new(
        &session,
        id.to_string(),
        answer.signing_secret,
        SecretOccasion::Rotated,
        Some(answer.previous_secret_expires_at),
    );
    Ok(html(StatusCode::OK, &page))
}

#[derive(Template)]
#[template(path = "portal/recover.html")]
struct RecoverPage {
    layout: Option<Layout>,
    webhook_id: String,
    since: String,
    until: String,
    /// Minutes east of UTC of `since` and of `until` on their dates (the page's script).
    tz_offset: String,
    tz_offset_until: String,
    /// The dry run's count, when one ran.
    count: Option<u64>,
    error: Option<String>,
}

/// `GET /portal/webhooks/{id}/recover`.
pub(crate) async fn recover_form(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, PortalError> {
    let id = webhook_id(&id)?;
    s.app.webhook(&session.account, &id).await?;
    let page = RecoverPage {
        layout: Some((&session).into()),
        webhook_id: id.to_string(),
        since: String::new(),
        until: String::new(),
        tz_offset: "0".into(),
        tz_offset_until: "0".into(),
        count: None,
        error: None,
    };
    Ok(html(StatusCode::OK, &page))
}

/// A `datetime-local` value in the viewer's zone (`tz_offset` minutes east of UTC, set
/// by the page's script; UTC without it).
fn local_time(field: &str, v: &str, offset_minutes: i32) -> Result<OffsetDateTime, AppError> {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let with_secs = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let t = PrimitiveDateTime::parse(v, &format)
        .or_else(|_| PrimitiveDateTime::parse(v, &with_secs))
        .map_err(|_| AppError::field(field, "must be a date and time"))?;
    let offset = UtcOffset::from_whole_seconds(offset_minutes.saturating_mul(60))
        .map_err(|_| AppError::field("tz_offset", "is not a time zone offset"))?;
    t.assume_offset(offset).checked_to_offset(UtcOffset::UTC).ok_or_else(|| AppError::field(field, "is out of range"))
}

/// `POST /portal/webhooks/{id}/recover`: without `confirm`, counts (a dry run) and asks;
/// with it, re-delivers and returns to the webhook's page.
pub(crate) async fn recover(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    f: FormFields,
) -> Result<Response, PortalError> {
    let dry_run = f.get("confirm").is_none();
    // A dry run only counts: read-only sessions may ask it.
    if dry_run {
        session.check_csrf(f.csrf())?
    } else {
        session.check_change(f.csrf())?
    }
    let id = webhook_id(&id)?;
    // Minutes east of UTC, sent by the page's script for each date; without it, UTC.
    let offset = |name: &str| match f.get(name).map(str::parse::<i32>) {
        None => Ok(0),
        Some(Ok(m)) if (-1080..=1080).contains(&m) => Ok(m),
        Some(_) => Err(AppError::field(name, "must be minutes east of UTC, -1080..1080")),
    };
    let offsets = offset("tz_offset").and_then(|s| Ok((s, offset("tz_offset_until")?)));
    let mut page = RecoverPage {
        layout: Some((&session).into()),
        webhook_id: id.to_string(),
        since: f.get("since").unwrap_or_default().to_owned(),
        until: f.get("until").unwrap_or_default().to_owned(),
        tz_offset: f.get("tz_offset").unwrap_or("0").to_owned(),
        tz_offset_until: f.get("tz_offset_until").unwrap_or("0").to_owned(),
        count: None,
        error: None,
    };
    let (since_offset, until_offset) = match offsets {
        Ok(m) => m,
        Err(e) => {
            page.error = Some(error_text(e));
            return Ok(html(StatusCode::BAD_REQUEST, &page));
        }
    };
    let since = local_time("since", &page.since, since_offset);
    let until = f.get("until").map(|u| local_time("until", u, until_offset)).transpose();
    let (since, until) = match (since, until) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => {
            page.error = Some(error_text(e));
            return Ok(html(StatusCode::BAD_REQUEST, &page));
        }
    };
    let account = session.account.clone();
    let limit = || s.limits.admit_recovery(account.as_str(), id.as_str(), dry_run);
    let count = match s.app.recover(&account, &id, RecoveryRequest { since, until, dry_run }, limit).await {
        Ok(n) => n,
        Err(AppError::Invalid(errs)) => {
            page.error = Some(error_text(AppError::Invalid(errs)));
            return Ok(html(StatusCode::BAD_REQUEST, &page));
        }
        Err(e) => return Err(e.into()),
    };
    if dry_run {
        page.count = Some(count);
        return Ok(html(StatusCode::OK, &page));
    }
    let notice = format!(
        "Recovery queued {count} deliveries of events from {} to {}.",
        since.format(&Rfc3339).unwrap_or_default(),
        until.map_or_else(|| "now".to_owned(), |u| u.format(&Rfc3339).unwrap_or_default())
    );
    render_detail(
        &s,
        &session,
        &id,
        &DetailQuery::default(),
        Shown { test: None, notice: Some(notice) },
        StatusCode::OK,
    )
    .await
}

fn error_text(e: AppError) -> String {
    match e {
        AppError::Invalid(errs) => super::error::field_list(&errs),
        e => e.to_string(),
    }
}

/// `POST /portal/deliveries/{id}/retry`: a failed or blocked delivery gets one more attempt, now.
pub(crate) async fn retry(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    f: FormFields,
) -> Result<Response, PortalError> {
    session.check_change(f.csrf())?;
    let id = DeliveryId::parse(&id).ok_or(PortalError::App(AppError::NotFound("delivery")))?;
    s.app.retry_delivery(&session.account, &id).await?;
    Ok(Redirect::to(&format!("/portal/deliveries/{id}?done=retried")).into_response())
}

/// `POST /portal/deliveries/{id}/skip`: a pending or blocked delivery ends failed (no more
/// attempts); the next delivery of its FIFO lane may go.
pub(crate) async fn skip(
    State(s): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    f: FormFields,
) -> Result<Response, PortalError> {
    session.check_change(f.csrf())?;
    let id = DeliveryId::parse(&id).ok_or(PortalError::App(AppError::NotFound("delivery")))?;
    s.app.skip_delivery(&session.account, &id).await?;
    Ok(Redirect::to(&format!("/portal/deliveries/{id}?done=skipped")).into_response())
}
