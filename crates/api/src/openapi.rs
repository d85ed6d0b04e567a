//! The OpenAPI 3.1 document, generated from the handlers' annotations, and `/docs`.
//!
//! It is the API contract: every status an operation can answer, with its content type and
//! schema, and the constraints the server enforces on every field and parameter (what JSON
//! Schema cannot say is in the field's description). `tests/it/openapi_contract.rs` walks it
//! against the running server.

mod answers;

pub use answers::PROBLEM_JSON;

use answers::SharedAnswers;

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// What the document says about every operation (its `info.description`).
const CONTRACT: &str = "Durable, signed webhook delivery.

**Errors** are RFC 9457 `application/problem+json`: `{type, title, status, detail, errors?}`, `status` \
equal to the HTTP status and `type` one of `/problems/…`; a validation error (400 `/problems/validation`) \
lists each invalid field in `errors: [{field, message}]`. Validation is 400, never 422.

**Statuses.** Each operation lists every status it can answer. Besides its own: every operation can \
answer 500; one that needs an API key 401 (with `WWW-Authenticate`) and 503 when the store is \
unreachable (with `Retry-After`; nothing was changed); one with a path parameter 404 (another \
account's resources are 404 too, never 403); one of the management API (`/api/v1`) or with a JSON body \
400; one with a body 413 (over the route's limit) and 415 (another content type). A method a path does not list \
answers 405 and an unknown path 404, both as problems.

**Unknown fields and parameters are refused.** A request body field, a filter key or a query \
parameter that the operation does not define is a 400 naming it in `errors[].field` (nested fields \
by path: `filters.label`), as is a query parameter given twice: a typo is never silently ignored. \
This holds for every operation under `/api/v1`, also those that take no parameters. Unknown headers \
are ignored. Answers may gain fields: clients should ignore the ones they do not know.

**Bodies.** A JSON body needs `Content-Type: application/json`. An optional body (rotate, test, \
portal sessions) may be empty or `null`: all defaults. Lengths count Unicode characters.";

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Herald", description = CONTRACT),
    modifiers(&BearerAuth, &SharedAnswers),
    components(schemas(crate::problem::Problem)),
    paths(
        crate::webhooks::create_webhook,
        crate::webhooks::list_webhooks,
        crate::webhooks::get_webhook,
        crate::webhooks::patch_webhook,
        crate::webhooks::delete_webhook,
        crate::deliveries::list_deliveries,
        crate::deliveries::get_delivery,
        crate::deliveries::retry_delivery,
        crate::deliveries::skip_delivery,
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
        crate::signing_keys::list_signing_keys,
        crate::signing_keys::rotate_signing_key,
        crate::signing_keys::jwks,
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

#[cfg(test)]
mod tests {
    use serde_json::Value;

    /// The limits the document states are the ones the application enforces.
    #[test]
    fn the_documented_limits_are_the_enforced_ones() {
        let doc = serde_json::to_value(super::document()).unwrap();
        let schema = |name: &str| doc["components"]["schemas"][name].clone();
        let number = |v: &Value| v.as_u64().unwrap();
        assert_eq!(number(&schema("Description")["maxLength"]), herald_app::validate::MAX_DESCRIPTION as u64);
        assert_eq!(number(&schema("TargetUrl")["maxLength"]), herald_domain::target_url::MAX_URL_LEN as u64);
        assert_eq!(number(&schema("AgentAddress")["maxLength"]), herald_domain::agent::MAX_ADDRESS_LEN as u64);
        let filters = schema("Filters");
        for key in ["agent_ids", "conversation_ids", "labels"] {
            assert_eq!(
                number(&filters["properties"][key]["maxItems"]),
                herald_domain::webhook::MAX_FILTER_VALUES as u64
            );
        }
        let limit = u64::from(herald_app::AppConfig::default().max_in_flight_limit);
        for body in ["WebhookIn", "WebhookPatchIn", "AgentIn", "AgentPatchIn"] {
            assert_eq!(number(&schema(body)["properties"]["max_in_flight"]["maximum"]), limit, "{body}");
        }
        let grace = &schema("RotateIn")["properties"]["grace_period_seconds"];
        assert_eq!(number(&grace["maximum"]), herald_app::MAX_GRACE.as_secs());
        let ttl = &schema("PortalSessionIn")["properties"]["expires_in_seconds"];
        assert_eq!(number(&ttl["maximum"]), herald_app::MAX_PORTAL_LINK_TTL.as_secs());
    }

    /// Every value a documented enum lists is one the domain names (and the walk against the
    /// server checks that every value answered is listed).
    #[test]
    fn the_documented_enums_are_the_domain_names() {
        let doc = serde_json::to_value(super::document()).unwrap();
        let values = |name: &str| -> Vec<String> {
            let e = doc["components"]["schemas"][name]["enum"].as_array().unwrap().clone();
            e.into_iter().map(|v| v.as_str().unwrap().to_owned()).collect()
        };
        type Names = fn(&str) -> bool;
        let parses: [(&str, Names); 4] = [
            ("SignatureScheme", |v| herald_domain::SignatureScheme::parse(v).is_some()),
            ("DeliveryStatus", |v| herald_domain::DeliveryStatus::parse(v).is_some()),
            ("DisabledReason", |v| herald_domain::DisabledReason::parse(v).is_some()),
            ("AttemptOutcome", |v| herald_domain::AttemptKind::parse(v).is_some()),
        ];
        for (name, parse) in parses {
            for v in values(name) {
                assert!(parse(&v), "{name} lists {v}, which the domain does not name");
            }
        }
        assert_eq!(values("AttemptOutcome").len(), 7);
        assert_eq!(values("SignatureScheme"), ["hmac", "ed25519"]);
    }
}
