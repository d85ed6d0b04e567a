//! The OpenAPI 3.1 document, generated from the handlers' annotations, and `/docs`.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Herald", description = "Durable, signed webhook delivery. Errors are RFC 9457 application/problem+json."),
    modifiers(&BearerAuth),
    paths(
        crate::webhooks::create_webhook,
        crate::webhooks::list_webhooks,
        crate::webhooks::get_webhook,
        crate::webhooks::patch_webhook,
        crate::webhooks::delete_webhook,
        crate::deliveries::list_deliveries,
        crate::deliveries::get_delivery,
        crate::deliveries::retry_delivery,
        crate::events::create_event,
        crate::lifecycle::list_events,
        crate::lifecycle::get_event,
        crate::lifecycle::rotate_secret,
        crate::lifecycle::test_webhook,
        crate::lifecycle::recover_webhook,
        crate::stats::webhook_stats,
        crate::portal_sessions::create_portal_session,
        crate::lifecycle::list_event_types,
        crate::lifecycle::create_event_type,
        crate::agents::create_agent,
        crate::agents::list_agents,
        crate::agents::get_agent,
        crate::agents::patch_agent,
        crate::agents::delete_agent,
        crate::agents::rotate_agent_secret,
        crate::agents::list_agent_deliveries,
        crate::messages::inject_message,
        crate::messages::list_messages,
        crate::messages::get_message,
        crate::messages::get_raw_message,
        crate::health::healthz,
        crate::health::readyz,
        crate::health::metrics,
    )
)]
pub struct ApiDoc;

/// The document served at `/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
