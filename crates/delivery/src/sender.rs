//! One attempt: POST the stored bytes with the signature headers, classify the result.

use crate::resolver::{GuardedResolver, RefusedDestination};
use herald_domain::{AttemptKind, AttemptOutcome, Clock, TargetUrl, UrlError, retry::parse_retry_after, text};
use herald_store::{Claimed, Signer};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most of a response body kept in the attempt log.
pub const RESPONSE_SNIPPET: usize = 4096;

#[derive(Clone, Debug)]
pub struct SenderConfig {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub require_https: bool,
    pub user_agent: String,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            require_https: false,
            user_agent: format!("herald/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Makes attempts. Holds the HTTP client (pooled connections, no proxies, no redirects).
pub struct Sender {
    client: reqwest::Client,
    /// The same client without a pool: a request sent again because a pooled connection
    /// closed under it goes out on a connection of its own.
    unpooled: reqwest::Client,
    resolver: GuardedResolver,
    clock: Arc<dyn Clock>,
    cfg: SenderConfig,
}

impl Sender {
    pub fn new(resolver: GuardedResolver, clock: Arc<dyn Clock>, cfg: SenderConfig) -> Result<Self, reqwest::Error> {
        let client = |idle_per_host| {
            reqwest::Client::builder()
                .dns_resolver(Arc::new(resolver.clone()))
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .connect_timeout(cfg.connect_timeout)
                .timeout(cfg.timeout)
                .pool_idle_timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(idle_per_host)
                .tcp_nodelay(true)
                .user_agent(cfg.user_agent.clone())
                .build()
        };
        Ok(Self { client: client(256)?, unpooled: client(0)?, resolver, clock, cfg })
    }

    pub fn resolver(&self) -> &GuardedResolver {
        &self.resolver
    }

    /// Performs one attempt of a claimed delivery, POSTing `body`. Never returns an error:
    /// every failure is an outcome with status 0 and a short error string.
    pub async fn attempt(&self, c: &Claimed, body: Vec<u8>) -> AttemptOutcome {
        let started_at = self.clock.now();
        let t0 = Instant::now();
        let fail = |kind: AttemptKind, error: String| AttemptOutcome {
            kind,
            started_at,
            duration: t0.elapsed(),
            status_code: 0,
            error: Some(error),
            response_body: None,
            retry_after: None,
        };
        // IP literals skip the resolver: apply the same policy here, at connect time.
        let url = match TargetUrl::parse(&c.url, self.cfg.require_https, self.resolver.policy()) {
            Ok(u) => u,
            Err(e @ UrlError::Refused(_)) => {
                return fail(AttemptKind::RefusedByPolicy, format!("destination refused: {e}"));
            }
            Err(e) => return fail(AttemptKind::NotSent, format!("invalid target: {e}")),
        };
        // What signs this delivery: the webhook's secrets (HMAC) or its account's keys.
        let signer = match c.signer() {
            Ok(signer) => signer,
            Err(why) => return fail(AttemptKind::NotSent, why.into()),
        };
        // A per-agent delivery: the stored Payload gets this attempt's auth timestamp and
        // signature (HMAC agents only), in the body and as headers.
        let (body, auth_headers) = if c.agent_payload {
            let Some(raw) = &c.message_raw else {
                return fail(AttemptKind::NotSent, "not sent: the message of this delivery no longer exists".into());
            };
            let secret = match signer {
                Signer::Hmac(secrets) => Some(&secrets.current),
                Signer::Ed25519(_) => None,
            };
            match herald_domain::inbound::payload_for_attempt(&body, raw, secret, started_at) {
                Ok(signed) => signed,
                Err(e) => return fail(AttemptKind::NotSent, format!("not sent: {e}")),
            }
        } else {
            (body, Vec::new())
        };
        let mut req = self
            .client
            .post(url.as_url().clone())
            .header("content-type", "application/json")
            .header("webhook-id", c.event_id.as_str())
            .header("x-e2a-event-type", c.event_type.as_str())
            .header("x-e2a-event-id", c.event_id.as_str())
            .header("x-e2a-delivery-id", c.delivery_id.as_str())
            .header("x-e2a-attempt", c.attempt.to_string());
        req = match signer {
            Signer::Hmac(secrets) => {
                let sig = secrets.sign(c.event_id.as_str(), &body, started_at);
                req.header("x-e2a-signature", sig.e2a_signature)
                    .header("webhook-timestamp", sig.timestamp.to_string())
                    .header("webhook-signature", sig.webhook_signature)
            }
            // No shared secret, so no X-E2A-Signature: only the Standard Webhooks `v1a`.
            Signer::Ed25519(keys) => {
                let t = started_at.unix_timestamp();
                req.header("webhook-timestamp", t.to_string())
                    .header("webhook-signature", keys.sign(c.event_id.as_str(), t, &body))
                    .header("webhook-key-id", keys.current_kid())
            }
        };
        // The auth values as headers too, for HMAC agents: their X-E2A-Auth-Signature covers
        // them. An Ed25519 agent's only signature covers the body, so they are read there.
        if matches!(signer, Signer::Hmac(_)) {
            for (name, value) in auth_headers {
                req = req.header(name, value);
            }
        }
        let req = match req.body(body).build() {
            Ok(req) => req,
            Err(e) => return fail(AttemptKind::NotSent, describe(&e)),
        };
        let resend = req.try_clone();
        let sent = match (self.client.execute(req).await, resend) {
            // The receiver closed a pooled connection as this request went out on it (its
            // keep-alive timeout racing ours) before answering: send once more, on a new
            // connection, within what is left of the attempt's time, rather than fail the
            // attempt and wait for a retry.
            (Err(e), Some(mut resend)) if closed_before_answering(&e) && t0.elapsed() < self.cfg.timeout / 2 => {
                tracing::debug!(delivery = %c.delivery_id, "connection closed before an answer; sent again");
                *resend.timeout_mut() = Some(self.cfg.timeout.saturating_sub(t0.elapsed()));
                self.unpooled.execute(resend).await
            }
            (sent, _) => sent,
        };
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => return fail(kind_of(&e), describe(&e)),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, started_at));
        // Read at most the snippet, then drop the response: an endless body costs nothing more.
        let mut snippet = Vec::new();
        let mut body_error = None;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = RESPONSE_SNIPPET - snippet.len();
                    snippet.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if snippet.len() >= RESPONSE_SNIPPET {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    body_error = Some(describe(&e));
                    break;
                }
            }
        }
        let success = (200..300).contains(&status);
        AttemptOutcome {
            kind: if body_error.is_some() { AttemptKind::BodyError } else { AttemptKind::Response },
            started_at,
            duration: t0.elapsed(),
            status_code: status,
            error: if success { None } else { Some(body_error.unwrap_or_else(|| format!("HTTP {status}"))) },
            // Whatever the receiver sent (binary, invalid UTF-8, NUL) becomes storable text.
            response_body: (!snippet.is_empty()).then(|| text::snippet(&snippet, RESPONSE_SNIPPET)),
            retry_after,
        }
    }
}

/// What kind of failure a request error is; a refusal by the guarded resolver is told apart
/// from the network failing by its type, never by its text.
fn kind_of(e: &reqwest::Error) -> AttemptKind {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<RefusedDestination>() {
            return AttemptKind::RefusedByPolicy;
        }
        source = s.source();
    }
    if e.is_timeout() {
        AttemptKind::Timeout
    } else if e.is_connect() {
        AttemptKind::ConnectError
    } else {
        AttemptKind::ProtocolError
    }
}

/// Whether an established connection ended before the receiver's answer (its status line
/// and headers) was complete: hyper's "connection closed before message completed", or the
/// socket closed or reset under the request (what TLS without `close_notify` and a request
/// arriving at a closed socket look like). Never a timeout, a failed connect or TLS handshake,
/// or an answer that came but was malformed.
fn closed_before_answering(e: &reqwest::Error) -> bool {
    if e.is_timeout() || e.is_connect() {
        return false;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            let io = std::error::Error::source(h).and_then(|s| s.downcast_ref::<std::io::Error>());
            return h.is_incomplete_message()
                || io.is_some_and(|io| {
                    use std::io::ErrorKind::{BrokenPipe, ConnectionReset, UnexpectedEof};
                    matches!(io.kind(), UnexpectedEof | ConnectionReset | BrokenPipe)
                });
        }
        source = s.source();
    }
    false
}

/// A short error string: the kind and the innermost cause, never the URL.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "response body error"
    } else {
        "request failed"
    };
    let Some(mut cause) = std::error::Error::source(e) else {
        return kind.to_owned();
    };
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let mut described = text::storable(&format!("{kind}: {cause}"));
    text::truncate(&mut described, 300);
    described
}
