//! One valid request per operation, keyed by `operationId`, over a few resources made
//! first. An operation without an example fails the walk: add one here.

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

/// What the valid requests point at.
pub struct Fixtures {
    pub receiver: Receiver,
    /// Enabled, subscribed to `email.received`, answered 200.
    pub webhook: String,
    /// Disabled: its receiver answered `410 Gone`.
    pub disabled_webhook: String,
    /// A `failed` delivery (the one that met the `410 Gone`).
    pub failed_delivery: String,
    /// A delivered delivery.
    pub delivered: String,
    /// A custom event type of the account.
    pub event_type: String,
    pub event: String,
    /// An agent with its own `webhook_url`.
    pub agent: String,
    pub message: String,
    /// The test account's id (its public JWK Set's address).
    pub account: String,
}

pub enum Body {
    None,
    Json(Value),
    /// Content type and bytes.
    Raw(&'static str, Vec<u8>),
}

/// A valid request: path parameters by name, query, body.
pub struct Example {
    pub path: Vec<(&'static str, String)>,
    pub query: Vec<(String, String)>,
    pub body: Body,
}

impl Example {
    fn new(body: Body) -> Self {
        Self { path: Vec::new(), query: Vec::new(), body }
    }

    fn at(mut self, name: &'static str, value: &str) -> Self {
        self.path.push((name, value.to_owned()));
        self
    }
}

pub async fn fixtures(app: &TestApp) -> Fixtures {
    let receiver = Receiver::start().await;
    receiver.always("gone", Reply::status(410));
    let (webhook, _) = app.webhook(&receiver.url("live")).await;
    let gone = app.create_webhook(json!({"url": receiver.url("gone"), "events": ["email.sent"]})).await;
    app.publish(json!({"type": "email.sent", "data": {"n": 1}})).await;
    let gone = gone["id"].as_str().unwrap().to_owned();
    let failed = eventually("a failed delivery", || async {
        let d = app.deliveries(&gone).await.into_iter().next()?;
        (d["status"] == "failed").then(|| d["id"].as_str().unwrap().to_owned())
    })
    .await;
    let event = app.publish_received().await["id"].as_str().unwrap().to_owned();
    let delivered = app.wait_delivery(&webhook, "a delivery", |d| d["status"] == "delivered").await;
    let agent = "walker@agents.test".to_owned();
    let body = json!({"address": agent, "webhook_url": receiver.url("agent")});
    let (s, v) = app.call(Method::POST, "/api/v1/agents", Some(body)).await;
    assert_eq!(s, 201, "{v}");
    let message = inject(app, &agent, 0).await;
    let event_type = "walk.registered".to_owned();
    let (s, v) = app.call(Method::POST, "/api/v1/event-types", Some(json!({"name": event_type}))).await;
    assert_eq!(s, 201, "{v}");
    Fixtures {
        receiver,
        webhook,
        disabled_webhook: gone,
        failed_delivery: failed,
        delivered: delivered["id"].as_str().unwrap().to_owned(),
        event_type,
        event,
        agent,
        message,
        account: app.store.account_by_name("default").await.unwrap().expect("the bootstrap account").id.to_string(),
    }
}

/// A raw message for `agent`, unique by `n`.
pub fn raw_message(agent: &str, n: usize) -> Vec<u8> {
    format!(
        "From: Sender <sender@example.com>\r\nTo: {agent}\r\nSubject: walk {n}\r\n\
         Message-ID: <walk{n}@example.com>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nhello\r\n"
    )
    .into_bytes()
}

async fn inject(app: &TestApp, agent: &str, n: usize) -> String {
    let r = app
        .http
        .post(app.url(&format!("/api/v1/agents/{agent}/messages")))
        .bearer_auth(KEY)
        .header("content-type", "message/rfc822")
        .body(raw_message(agent, n))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    r.json::<Value>().await.unwrap()["message_id"].as_str().unwrap().to_owned()
}

/// The valid request of `operation`; `n` makes names unique. `None`: no example yet.
pub async fn example(app: &TestApp, fx: &Fixtures, operation: &str, n: usize) -> Option<Example> {
    use Body::{Json, None as Empty};
    let wh = fx.webhook.as_str();
    let agent = fx.agent.as_str();
    Some(match operation {
        "create_webhook" => Example::new(Json(json!({"url": fx.receiver.url("live"), "events": ["email.received"]}))),
        "list_webhooks" | "list_events" | "list_event_types" | "list_agents" => Example::new(Empty),
        "get_webhook" | "list_deliveries" | "webhook_stats" => Example::new(Empty).at("id", wh),
        "patch_webhook" => Example::new(Json(json!({"description": "changed"}))).at("id", wh),
        "delete_webhook" => {
            let (fresh, _) = app.webhook(&fx.receiver.url("live")).await;
            Example::new(Empty).at("id", &fresh)
        }
        "rotate_secret" => Example::new(Json(json!({"grace_period_seconds": 60}))).at("id", wh),
        "test_webhook" => Example::new(Json(json!({"type": "webhook.test"}))).at("id", wh),
        "recover_webhook" => Example::new(Json(json!({"since": "2020-01-01T00:00:00Z", "dry_run": true}))).at("id", wh),
        "create_portal_session" => Example::new(Json(json!({"expires_in_seconds": 600}))),
        "create_event" => Example::new(Json(json!({"type": "email.received", "data": {"n": n}}))),
        "get_event" => Example::new(Empty).at("id", &fx.event),
        "create_event_type" => Example::new(Json(json!({"name": format!("walk.type{n}")}))),
        "get_delivery" | "retry_delivery" => Example::new(Empty).at("id", &fx.failed_delivery),
        "skip_delivery" => {
            // A pending delivery, not in flight: its receiver answered 503 and its next attempt
            // is an hour away.
            fx.receiver.always("busy", Reply::status(503));
            let body = json!({"url": fx.receiver.url("busy"), "events": ["email.sent"], "retry_schedule": ["1h"]});
            let busy = app.create_webhook(body).await["id"].as_str().unwrap().to_owned();
            app.publish(json!({"type": "email.sent", "data": {"n": n}})).await;
            // Once its first attempt is recorded: a delivery in flight cannot be skipped.
            let pending = eventually("the first attempt recorded", || async {
                let d = app.deliveries(&busy).await.into_iter().next()?;
                (d["attempts"] == 1).then_some(d)
            })
            .await;
            assert_eq!(pending["status"], "pending", "{pending}");
            Example::new(Empty).at("id", pending["id"].as_str().unwrap())
        }
        "create_agent" => Example::new(Json(json!({"address": format!("walker{n}@agents.test")}))),
        "get_agent" | "list_agent_deliveries" | "list_messages" => Example::new(Empty).at("address", agent),
        "patch_agent" => Example::new(Json(json!({"name": "changed"}))).at("address", agent),
        "delete_agent" => {
            let fresh = format!("leaving{n}@agents.test");
            let (s, v) = app.call(Method::POST, "/api/v1/agents", Some(json!({"address": fresh}))).await;
            assert_eq!(s, 201, "{v}");
            Example::new(Empty).at("address", &fresh)
        }
        "rotate_agent_secret" => Example::new(Json(json!({"grace_period_seconds": 60}))).at("address", agent),
        "inject_message" => {
            Example::new(Body::Raw("message/rfc822", raw_message(agent, n + 1_000_000))).at("address", agent)
        }
        "get_message" | "get_raw_message" => Example::new(Empty).at("id", &fx.message),
        "healthz" | "readyz" | "metrics" | "list_signing_keys" => Example::new(Empty),
        "rotate_signing_key" => Example::new(Json(json!({"grace_period_seconds": 60}))),
        "jwks" => Example::new(Empty).at("account_public_id", &fx.account),
        _ => return None,
    })
}
