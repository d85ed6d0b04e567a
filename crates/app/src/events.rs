//! Events: publish (checked by `herald_domain::input`, the same check `herald-outbox`
//! runs), the events log, custom event types.

use crate::{AppError, AppResult, Conflict, FieldError, Herald, validate};
use herald_domain::event_type::BUILT_IN;
use herald_domain::{AccountId, EventId, EventType};
use herald_store::{Delivery, Event, EventFilter, NewEvent, Page, Published, StoreError};
use time::OffsetDateTime;

pub use herald_domain::input::EventDraft;

/// One event type an account can use.
#[derive(Clone, Debug)]
pub struct EventTypeView {
    pub name: String,
    pub description: String,
    pub built_in: bool,
    pub created_at: Option<OffsetDateTime>,
}

impl Herald {
    /// Validates and publishes: the event and all its deliveries are committed together.
    pub async fn publish(&self, account: &AccountId, d: EventDraft) -> AppResult<Published> {
        let event_type = self.known_event_type(account, &d.event_type).await?;
        let errs = herald_domain::input::check_event_draft(&d, event_type.as_ref());
        let Some(event_type) = event_type.filter(|_| errs.is_empty()) else {
            return Err(AppError::Invalid(errs));
        };
        let new = NewEvent::from_draft(account, &event_type, d, self.clock.now());
        let published = self.store.publish(new, &self.config.fanout).await?;
        if !published.replayed {
            count_published("api", published.deliveries);
        }
        Ok(published)
    }

    /// A page of the events log; a type filter must be a type name.
    pub async fn events(&self, account: &AccountId, filter: EventFilter, page: Page) -> AppResult<Vec<Event>> {
        if let Some(t) = &filter.event_type
            && EventType::parse(t).is_none()
        {
            return Err(AppError::field("type", "must be an event type name (dot-separated a-z, 0-9, _ and -)"));
        }
        Ok(self.store.list_events(account, filter, page).await?)
    }

    /// One event with the deliveries it made.
    pub async fn event(&self, account: &AccountId, id: &EventId) -> AppResult<(Event, Vec<Delivery>)> {
        self.store.get_event(account, id).await?.ok_or(AppError::NotFound("event"))
    }

    /// Built-in types first, then the account's own.
    pub async fn event_types(&self, account: &AccountId) -> AppResult<Vec<EventTypeView>> {
        let mut out: Vec<EventTypeView> = BUILT_IN
            .iter()
            .map(|n| EventTypeView { name: (*n).into(), description: String::new(), built_in: true, created_at: None })
            .collect();
        for t in self.store.list_event_types(account).await? {
            out.push(EventTypeView {
                name: t.name,
                description: t.description,
                built_in: false,
                created_at: Some(t.created_at),
            });
        }
        Ok(out)
    }

    /// Registers a custom event type for the account.
    pub async fn create_event_type(
        &self,
        account: &AccountId,
        name: &str,
        description: &str,
    ) -> AppResult<EventTypeView> {
        let Some(t) = EventType::parse(name) else {
            return Err(AppError::field("name", "dot-separated segments of a-z, 0-9, _ and -, at most 100 characters"));
        };
        let mut errs = Vec::new();
        if t.is_built_in() {
            errs.push(FieldError { field: "name".into(), message: "is a built-in type".into() });
        }
        validate::description("description", description, &mut errs);
        if !errs.is_empty() {
            return Err(AppError::Invalid(errs));
        }
        let rec = self.store.create_event_type(account, t.as_str(), description, self.clock.now()).await.map_err(
            |e| match e {
                StoreError::AlreadyExists => AppError::Conflict(Conflict::EventTypeExists(t.as_str().to_owned())),
                e => e.into(),
            },
        )?;
        Ok(EventTypeView {
            name: rec.name,
            description: rec.description,
            built_in: false,
            created_at: Some(rec.created_at),
        })
    }
}

/// Counts one stored event (`herald_events_published_total{source}`: `api` or `mail`) and
/// the deliveries its fan-out created (`herald_deliveries_created_total`).
pub(crate) fn count_published(source: &'static str, deliveries: u32) {
    metrics::counter!("herald_events_published_total", "source" => source).increment(1);
    metrics::counter!("herald_deliveries_created_total").increment(u64::from(deliveries));
}
