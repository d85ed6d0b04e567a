//! Herald's inbound SMTP server adapter (RFC 5321).
//!
//! Shaped like tokio-rs/mini-redis: [`serve`] runs the accept loop (listener), each
//! connection gets its own task running a session (the per-connection state machine),
//! and each command line is parsed with [`smtp_proto`] into a request and answered.
//!
//! The application plugs in through the [`Inbound`] trait: it is asked whether a
//! recipient is hosted here ([`Inbound::check_recipient`]) and is handed each complete
//! message ([`Inbound::accept_message`]), which it must store durably before answering.
//!
//! What the server offers (in its `EHLO` answer): `PIPELINING`, `8BITMIME`, `SMTPUTF8`,
//! `ENHANCEDSTATUSCODES`, `CHUNKING` (`BDAT`), `SIZE <max>`, and `STARTTLS` when
//! [`SmtpConfig::tls`] is set (see [`load_tls`]) and the session is not yet encrypted.
//!
//! Protections: command lines are capped at 4096 bytes; bare LF, stray CR and NUL in
//! command lines are refused; a `DATA` body with a bare LF (the SMTP-smuggling vector) is
//! refused; message sizes are counted while reading and never buffered beyond the
//! maximum; bytes pipelined after `STARTTLS` are discarded; idle sessions are closed;
//! the number of concurrent sessions is capped; a session is closed after 20 errors.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn example(inbound: Arc<dyn herald_smtp::Inbound>) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:25").await?;
//! let config = herald_smtp::SmtpConfig {
//!     hostname: "mx.example.com".into(),
//!     ..Default::default()
//! };
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! herald_smtp::serve(listener, config, inbound, shutdown).await;
//! # Ok(())
//! # }
//! ```

mod conn;
mod data;
mod ingest;
mod listener;
mod reply;
mod session;
mod tls;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub use ingest::AppInbound;
pub use listener::serve;
pub use tls::{TlsError, load_tls};

/// `herald_smtp_messages_total{answer}`: how a message's transfer ended — `accepted` (250
/// after the commit), `temporary_failure` (451), `rejected` (554: no parse, no recipient
/// left), `rejected_too_big` (552, declared or sent), `rejected_bare_lf` (bare LF in DATA).
pub(crate) fn message_answered(answer: &'static str) {
    metrics::counter!("herald_smtp_messages_total", "answer" => answer).increment(1);
}

/// The SMTP envelope of one message: who connected, who it is from and to whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The peer's address (IPv4-mapped IPv6 addresses are given as IPv4).
    pub client_ip: IpAddr,
    /// The name the client gave in `EHLO`/`HELO`.
    pub helo: String,
    /// The reverse path of `MAIL FROM`, without angle brackets; `""` for the null sender `<>`.
    pub mail_from: String,
    /// The recipients as accepted by [`Inbound::check_recipient`], in the order given.
    pub recipients: Vec<String>,
    /// Whether the message was received over TLS (after `STARTTLS`).
    pub tls: bool,
}

/// The answer to "is this address hosted here?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientCheck {
    /// The address is hosted here: `250 2.1.5`.
    Accepted,
    /// No such address: `550 5.1.1`.
    Unknown,
}

/// Why the application could not take a recipient or a message.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// Try again later: `451 4.3.0`.
    #[error("temporarily unavailable")]
    Temporary,
    /// Refused for good, with a reason for the client: `554 5.6.0 <text>` for a message,
    /// `550 5.7.1 <text>` for a recipient (RFC 5321 has no 554 answer to `RCPT`).
    /// Control characters in the text are replaced by spaces.
    #[error("{0}")]
    Rejected(String),
}

/// What the application provides to the SMTP server.
#[async_trait::async_trait]
pub trait Inbound: Send + Sync + 'static {
    /// RCPT TO: is this address hosted here? (the implementation compares case-insensitively)
    async fn check_recipient(&self, address: &str) -> Result<RecipientCheck, InboundError>;

    /// The whole message after DATA/BDAT LAST: store it durably; `Ok(queue id)` →
    /// `250 2.0.0 Ok: queued as <id>`.
    async fn accept_message(&self, envelope: &Envelope, raw: Vec<u8>) -> Result<String, InboundError>;
}

/// Settings of the SMTP server.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// The name the server gives in its greeting and `EHLO` answer.
    pub hostname: String,
    /// The largest message accepted, in bytes (after dot-unstuffing); advertised as `SIZE`.
    pub max_message_size: usize,
    /// The most recipients accepted in one transaction; more get `452 4.5.3`.
    pub max_recipients: usize,
    /// A session that sends nothing for this long gets `421 4.4.2` and is closed.
    pub idle_timeout: Duration,
    /// The most sessions at once; a connection beyond it gets `421 4.3.2` and is closed.
    pub max_connections: usize,
    /// The most sessions at once from one client address; beyond it `421 4.7.0`.
    pub max_connections_per_ip: usize,
    /// The longest a session may last, however busy; then `421 4.4.2` and close.
    pub max_session: Duration,
    /// When set, `STARTTLS` is offered with this configuration.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".to_owned(),
            max_message_size: 10 * 1024 * 1024,
            max_recipients: 50,
            idle_timeout: Duration::from_secs(30),
            max_connections: 256,
            max_connections_per_ip: 32,
            max_session: Duration::from_secs(600),
            tls: None,
        }
    }
}
