//! `/api/v1/webhooks`: create, list, get, patch, delete.

use crate::AppState;
use crate::auth::Authed;
use crate::dto::{ListOut, ListQuery, WebhookIn, WebhookOut, WebhookPatchIn};
use crate::extract::{Json, PathId, Query};
use crate::problem::{ApiError, FieldError};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use herald_domain::event_type::BUILT_IN;
use herald_domain::webhook::MAX_FILTER_VALUES;
use herald_domain::{AccountId, EventType, Filters, SigningSecret, WebhookId};
use herald_store::{NewWebhook, Page, WebhookPatch};

pub const MAX_DESCRIPTION: usize = 200;

pub(crate) fn page(q: &ListQuery) -> Result<Page, ApiError> {
    let limit = q.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 100"));
    }
    if let Some(c) = &q.cursor
        && (c.len() > 64 || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(ApiError::field("cursor", "is not a cursor returned by this API"));
    }
    Ok(Page { after: q.cursor.clone(), limit })
}

/// Builds a list response from one extra row fetched to know whether a next page exists.
pub(crate) fn list_out<T, O>(
    mut rows: Vec<T>,
    limit: u32,
    id: impl Fn(&T) -> String,
    map: impl Fn(T) -> O,
) -> ListOut<O> {
    let next_cursor = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(&id)
    } else {
        None
    };
    ListOut { items: rows.into_iter().map(map).collect(), next_cursor }
}

async fn validate_events(
    s: &AppState,
    account: &AccountId,
    events: &[String],
    errs: &mut Vec<FieldError>,
) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::new();
    if events.is_empty() {
        errs.push(FieldError { field: "events".into(), message: "must name at least one event type".into() });
    }
    for e in events {
        let known = match EventType::parse(e) {
            Some(t) if t.is_built_in() => true,
            Some(t) => s.store.custom_event_type_exists(account, t.as_str()).await?,
            None => false,
        };
        if !known {
            errs.push(FieldError {
                field: "events".into(),
                message: format!(
                    "unknown event type {e:?}; allowed: {} or one of the account's registered types",
                    BUILT_IN.join(", ")
                ),
            });
        } else if !out.contains(e) {
            out.push(e.clone());
        }
    }
    Ok(out)
}

fn validate_description(d: &str, errs: &mut Vec<FieldError>) {
    if d.chars().count() > MAX_DESCRIPTION {
        errs.push(FieldError {
            field: "description".into(),
            message: format!("must be at most {MAX_DESCRIPTION} characters"),
        });
    }
    if d.chars().any(|c| c.is_control()) {
        errs.push(FieldError { field: "description".into(), message: "must not contain control characters".into() });
    }
}

fn validate_filters(f: &mut Filters, errs: &mut Vec<FieldError>) {
    f.dedup();
    for (name, v) in [
        ("filters.agent_ids", &f.agent_ids),
        ("filters.conversation_ids", &f.conversation_ids),
        ("filters.labels", &f.labels),
    ] {
        if v.len() > MAX_FILTER_VALUES {
            errs.push(FieldError { field: name.into(), message: format!("at most {MAX_FILTER_VALUES} values") });
        }
        if v.iter().any(|x| x.is_empty() || x.len() > 256 || x.chars().any(char::is_control)) {
            errs.push(FieldError {
                field: name.into(),
                message: "values must be 1..256 characters without control characters".into(),
            });
        }
    }
}

fn validate_max_in_flight(s: &AppState, m: u32, errs: &mut Vec<FieldError>) {
    if m == 0 || m > s.config.max_in_flight_limit {
        errs.push(FieldError {
            field: "max_in_flight".into(),
            message: format!("must be between 1 and {}", s.config.max_in_flight_limit),
        });
    }
}

async fn validate_url(s: &AppState, url: &str, errs: &mut Vec<FieldError>) -> Option<String> {
    match s.targets.check(url).await {
        Ok(u) => Some(u.as_str().to_owned()),
        Err(e) => {
            errs.push(FieldError { field: "url".into(), message: e.to_string() });
            None
        }
    }
}

#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])), request_body = crate::dto::WebhookIn, responses((status = 201, body = crate::dto::WebhookOut, description = "created; signing_secret shown only here"), (status = 400, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem)))]
pub async fn create_webhook(
    State(s): State<AppState>,
    Authed(account): Authed,
    Json(input): Json<WebhookIn>,
) -> Result<impl IntoResponse, ApiError> {
    let mut errs = Vec::new();
    let events = validate_events(&s, &account.id, &input.events, &mut errs).await?;
    let description = input.description.unwrap_or_default();
    validate_description(&description, &mut errs);
    let mut filters = input.filters.unwrap_or_default();
    validate_filters(&mut filters, &mut errs);
    let max_in_flight = input.max_in_flight.unwrap_or(1);
    validate_max_in_flight(&s, max_in_flight, &mut errs);
    let url = validate_url(&s, &input.url, &mut errs).await;
    let Some(url) = url.filter(|_| errs.is_empty()) else {
        return Err(ApiError::Validation(errs));
    };
    let secret = SigningSecret::generate();
    let created = s
        .store
        .create_webhook(
            NewWebhook {
                id: WebhookId::generate(),
                account_id: account.id,
                url,
                description,
                events,
                filters,
                enabled: input.enabled.unwrap_or(true),
                max_in_flight,
                secret: secret.clone(),
                created_at: s.clock.now(),
            },
            s.config.webhooks_per_account,
        )
        .await
        .map_err(|e| match e {
            herald_store::StoreError::LimitReached => {
                ApiError::Conflict(format!("an account may have at most {} webhooks", s.config.webhooks_per_account))
            }
            e => e.into(),
        })?;
    let mut out = WebhookOut::from(created);
    out.signing_secret = Some(secret.expose().to_owned());
    Ok((StatusCode::CREATED, axum::Json(out)))
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])), params(("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)), responses((status = 200, body = crate::dto::ListOut<crate::dto::WebhookOut>)))]
pub async fn list_webhooks(
    State(s): State<AppState>,
    Authed(account): Authed,
    Query(q): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    if q.status.is_some() {
        return Err(ApiError::field("status", "webhooks have no status filter"));
    }
    let mut p = page(&q)?;
    let limit = p.limit;
    p.limit += 1;
    let rows = s.store.list_webhooks(&account.id, p).await?;
    Ok(axum::Json(list_out(rows, limit, |w| w.id.to_string(), WebhookOut::from)))
}

pub(crate) fn webhook_id(id: &str) -> Result<WebhookId, ApiError> {
    WebhookId::parse(id).ok_or(ApiError::NotFound("webhook"))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])), params(("id" = String, Path)), responses((status = 200, body = crate::dto::WebhookOut), (status = 404, body = crate::problem::Problem)))]
pub async fn get_webhook(
    State(s): State<AppState>,
    Authed(account): Authed,
    PathId(id): PathId,
) -> Result<impl IntoResponse, ApiError> {
    let id = webhook_id(&id)?;
    let w = s.store.get_webhook(&account.id, &id).await?.ok_or(ApiError::NotFound("webhook"))?;
    Ok(axum::Json(WebhookOut::from(w)))
}

#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])), params(("id" = String, Path)), request_body = crate::dto::WebhookPatchIn, responses((status = 200, body = crate::dto::WebhookOut), (status = 400, body = crate::problem::Problem), (status = 404, body = crate::problem::Problem), (status = 409, body = crate::problem::Problem, description = "re-enable within the cooldown of an automatic disable")))]
pub async fn patch_webhook(
    State(s): State<AppState>,
    Authed(account): Authed,
    PathId(id): PathId,
    Json(input): Json<WebhookPatchIn>,
) -> Result<impl IntoResponse, ApiError> {
    let id = webhook_id(&id)?;
    let current = s.store.get_webhook(&account.id, &id).await?.ok_or(ApiError::NotFound("webhook"))?;
    let mut errs = Vec::new();
    let mut patch = WebhookPatch::default();
    if let Some(events) = &input.events {
        patch.events = Some(validate_events(&s, &account.id, events, &mut errs).await?);
    }
    if let Some(d) = input.description {
        validate_description(&d, &mut errs);
        patch.description = Some(d);
    }
    if let Some(mut f) = input.filters {
        validate_filters(&mut f, &mut errs);
        patch.filters = Some(f);
    }
    if let Some(m) = input.max_in_flight {
        validate_max_in_flight(&s, m, &mut errs);
        patch.max_in_flight = Some(m);
    }
    // The URL is re-validated only when it changes.
    if let Some(url) = input.url.filter(|u| *u != current.url) {
        patch.url = validate_url(&s, &url, &mut errs).await;
    }
    if input.enabled == Some(true)
        && !current.enabled
        && let Some(at) = current.auto_disabled_at
    {
        let since = s.clock.now() - at;
        if since < s.config.reenable_cooldown {
            return Err(ApiError::Conflict(format!(
                "the webhook was disabled automatically ({}) {} s ago; it can be re-enabled {} s after that",
                current.disabled_reason.map_or("automatic", |r| r.as_str()),
                since.whole_seconds().max(0),
                s.config.reenable_cooldown.as_secs()
            )));
        }
    }
    patch.enabled = input.enabled;
    if !errs.is_empty() {
        return Err(ApiError::Validation(errs));
    }
    let w =
        s.store.update_webhook(&account.id, &id, patch, s.clock.now()).await?.ok_or(ApiError::NotFound("webhook"))?;
    Ok(axum::Json(WebhookOut::from(w)))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])), params(("id" = String, Path)), responses((status = 204, description = "deleted; pending deliveries end as failed"), (status = 404, body = crate::problem::Problem)))]
pub async fn delete_webhook(
    State(s): State<AppState>,
    Authed(account): Authed,
    PathId(id): PathId,
) -> Result<impl IntoResponse, ApiError> {
    let id = webhook_id(&id)?;
    if s.store.delete_webhook(&account.id, &id, s.clock.now()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("webhook"))
    }
}
