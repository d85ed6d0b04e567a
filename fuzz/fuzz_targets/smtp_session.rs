//! Arbitrary bytes as the client side of ONE SMTP session of `herald-smtp`.
//!
//! The session is hard-wired to `tokio::net::TcpStream` (`conn.rs`), so the real
//! `herald_smtp::serve` runs once per process on a loopback listener, in a current-thread
//! runtime, and every input is written to a fresh TCP connection whose replies are read
//! until the server closes it. The server and the client run in the same thread, so each
//! iteration is deterministic apart from the idle timer.
//!
//! Checked on every input:
//! - no panic anywhere in the server (libfuzzer-sys aborts on any panic, even one that
//!   tokio would catch in the session's task);
//! - the session ends (the server closes the connection) within `SESSION_LIMIT`;
//! - every reply before a `STARTTLS` hand-over is a well-formed reply line
//!   (`ddd` + ` `/`-` + text without control characters + CRLF): nothing from the client or
//!   the application can forge a reply;
//! - every message handed to `Inbound::accept_message` is at most `max_message_size`
//!   bytes, has 1..=`max_recipients` recipients, each one `check_recipient` accepted.

#![no_main]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use herald_smtp::{Envelope, Inbound, InboundError, RecipientCheck, SmtpConfig};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

/// The default `max_message_size`; `HERALD_FUZZ_MAX_MESSAGE` overrides it (with inputs of at
/// most 64 KiB, a smaller maximum is needed to reach the "too big while reading DATA" path).
const DEFAULT_MAX_MESSAGE: usize = 64 * 1024;
const MAX_RECIPIENTS: usize = 4;
/// Only matters when the client stops sending without closing (it never does here) or a
/// write blocks: keeps any stall to a few milliseconds.
const IDLE_TIMEOUT: Duration = Duration::from_millis(5);
/// A session still open after this long is a hang: the target panics.
const SESSION_LIMIT: Duration = Duration::from_secs(10);

/// The application: hosts every `*@agents.test` (case-insensitively). Local parts starting
/// with `temp` fail temporarily and `blocked` ones are rejected with a text holding CR/LF;
/// a sender containing `tempfail`/`reject` makes `accept_message` fail likewise. Records
/// every message it accepts.
#[derive(Default)]
struct Recorder {
    messages: Mutex<Vec<(Envelope, usize)>>,
    queued: AtomicU64,
}

fn local_part(address: &str) -> Option<&str> {
    let (local, domain) = address.rsplit_once('@')?;
    domain.eq_ignore_ascii_case("agents.test").then_some(local)
}

fn hosted(address: &str) -> bool {
    local_part(address).is_some()
}

#[async_trait::async_trait]
impl Inbound for Recorder {
    async fn check_recipient(&self, address: &str) -> Result<RecipientCheck, InboundError> {
        let Some(local) = local_part(address) else {
            return Ok(RecipientCheck::Unknown);
        };
        let local = local.to_ascii_lowercase();
        if local.starts_with("temp") {
            Err(InboundError::Temporary)
        } else if local.starts_with("blocked") {
            Err(InboundError::Rejected(format!("<{address}> is blocked\r\n250 forged")))
        } else {
            Ok(RecipientCheck::Accepted)
        }
    }

    async fn accept_message(&self, envelope: &Envelope, raw: Vec<u8>) -> Result<String, InboundError> {
        let sender = envelope.mail_from.to_ascii_lowercase();
        if sender.contains("tempfail") {
            return Err(InboundError::Temporary);
        }
        if sender.contains("reject") {
            return Err(InboundError::Rejected(format!("{} refused\r\n250 2.0.0 forged\0", envelope.mail_from)));
        }
        self.messages.lock().unwrap().push((envelope.clone(), raw.len()));
        let n = self.queued.fetch_add(1, Ordering::Relaxed);
        // An id with control characters: the reply must still be one line.
        Ok(format!("Q{n}\r\n250 forged"))
    }
}

struct Harness {
    runtime: Runtime,
    max_message: usize,
    /// `HERALD_FUZZ_DEBUG` set: print each session's replies to stderr.
    debug: bool,
    addr: SocketAddr,
    recorder: Arc<Recorder>,
}

/// The server's settings: small limits, a few milliseconds of idle timeout, and `STARTTLS`
/// with a self-signed certificate loaded through `herald_smtp::load_tls`.
fn config(max_message: usize) -> SmtpConfig {
    let generated = rcgen::generate_simple_self_signed(vec!["mx.agents.test".to_owned()]).expect("rcgen");
    let dir = std::env::temp_dir().join(format!("herald-fuzz-smtp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, generated.cert.pem()).expect("write cert");
    std::fs::write(&key, generated.signing_key.serialize_pem()).expect("write key");
    let tls = herald_smtp::load_tls(&cert, &key).expect("load_tls");
    let _ = std::fs::remove_dir_all(&dir);
    SmtpConfig {
        hostname: "mx.agents.test".into(),
        max_message_size: max_message,
        max_recipients: MAX_RECIPIENTS,
        idle_timeout: IDLE_TIMEOUT,
        max_connections: 64,
        tls: Some(tls),
    }
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let recorder = Arc::new(Recorder::default());
        let max_message =
            std::env::var("HERALD_FUZZ_MAX_MESSAGE").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_MAX_MESSAGE);
        let config = config(max_message);
        let listener = runtime.block_on(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))).expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let inbound: Arc<dyn Inbound> = recorder.clone();
        // Runs whenever the runtime is driven, i.e. during each iteration's `block_on`.
        runtime.spawn(herald_smtp::serve(listener, config, inbound, CancellationToken::new()));
        let debug = std::env::var_os("HERALD_FUZZ_DEBUG").is_some();
        Harness { runtime, max_message, debug, addr, recorder }
    })
}

/// Writes `input` (then closes the sending half) while reading every reply until the
/// server closes the connection. Returns the replies.
async fn session(addr: SocketAddr, input: &[u8]) -> Vec<u8> {
    let stream = TcpStream::connect(addr).await.expect("connect to the fuzzed server");
    let (mut rx, mut tx) = stream.into_split();
    let write = async {
        // The server may close early (QUIT, too many errors, STARTTLS failure): fine.
        let _ = tx.write_all(input).await;
        let _ = tx.shutdown().await;
    };
    let read = async {
        let mut replies = Vec::new();
        // A reset (the server closed with input unread) ends the session too.
        let _ = rx.read_to_end(&mut replies).await;
        replies
    };
    let ((), replies) = tokio::join!(write, read);
    replies
}

/// Every reply line is `ddd` then ` ` or `-`, text without control characters, CRLF; up to
/// the server's `220` answer to `STARTTLS`, after which TLS bytes may follow.
fn check_replies(replies: &[u8]) {
    let mut rest = replies;
    while !rest.is_empty() {
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
            panic!("reply without CRLF at the end: {:?}", String::from_utf8_lossy(rest));
        };
        let line = &rest[..end];
        let text = std::str::from_utf8(line)
            .unwrap_or_else(|_| panic!("reply line is not UTF-8: {:?}", String::from_utf8_lossy(line)));
        let well_formed = line.len() >= 3
            && line[..3].iter().all(u8::is_ascii_digit)
            && (line.len() == 3 || line[3] == b' ' || line[3] == b'-')
            && !text.chars().any(char::is_control);
        assert!(well_formed, "malformed reply line: {text:?}");
        if text.starts_with("220 2.0.0 Ready to start TLS") {
            return;
        }
        rest = &rest[end + 2..];
    }
}

fuzz_target!(|input: &[u8]| {
    let h = harness();
    let replies = h.runtime.block_on(async {
        match tokio::time::timeout(SESSION_LIMIT, session(h.addr, input)).await {
            Ok(replies) => replies,
            Err(_) => panic!("the session did not end within {SESSION_LIMIT:?}"),
        }
    });
    if h.debug {
        eprintln!("--- replies ---\n{}", String::from_utf8_lossy(&replies));
    }
    assert!(replies.starts_with(b"220 mx.agents.test ESMTP Herald\r\n"), "no greeting: {replies:?}");
    check_replies(&replies);
    for (envelope, size) in std::mem::take(&mut *h.recorder.messages.lock().unwrap()) {
        if h.debug {
            eprintln!("--- accepted {size} bytes: {envelope:?}");
        }
        let max = h.max_message;
        assert!(size <= max, "a message of {size} bytes was accepted (max {max})");
        assert!(
            (1..=MAX_RECIPIENTS).contains(&envelope.recipients.len()),
            "a message with {} recipients was accepted",
            envelope.recipients.len()
        );
        assert!(envelope.recipients.iter().all(|r| hosted(r)), "unhosted recipient in {envelope:?}");
    }
});
