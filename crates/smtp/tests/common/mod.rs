//! Test harness: a recording `Inbound`, a server on 127.0.0.1, and a raw SMTP client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_smtp::{Envelope, Inbound, InboundError, RecipientCheck, SmtpConfig};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a test waits for any one thing before failing.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// What `accept_message` answers.
#[derive(Debug, Clone)]
pub enum AcceptMode {
    Ok,
    Temporary,
    Rejected(String),
}

/// A stand-in for the application: hosts `alice@example.com`, `bob@example.com` and
/// every `user*@example.com`; `temp@example.com` fails temporarily and
/// `blocked@example.com` is rejected. Records every message it gets.
pub struct Recorder {
    pub messages: Mutex<Vec<(Envelope, Vec<u8>)>>,
    pub mode: Mutex<AcceptMode>,
    /// When set, `accept_message` waits for a permit (see [`Recorder::release`]).
    gate: Option<Semaphore>,
    /// Signalled when `accept_message` is entered.
    pub entered: Notify,
}

impl Default for Recorder {
    fn default() -> Self {
        Self { messages: Mutex::default(), mode: Mutex::new(AcceptMode::Ok), gate: None, entered: Notify::new() }
    }
}

impl Recorder {
    pub fn gated() -> Self {
        Self { gate: Some(Semaphore::new(0)), ..Self::default() }
    }

    pub fn release(&self) {
        if let Some(gate) = &self.gate {
            gate.add_permits(1);
        }
    }

    pub fn set_mode(&self, mode: AcceptMode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn messages(&self) -> Vec<(Envelope, Vec<u8>)> {
        self.messages.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Inbound for Recorder {
    async fn check_recipient(&self, address: &str) -> Result<RecipientCheck, InboundError> {
        let address = address.to_ascii_lowercase();
        match address.as_str() {
            "temp@example.com" => Err(InboundError::Temporary),
            "blocked@example.com" => Err(InboundError::Rejected("blocked by policy".into())),
            "alice@example.com" | "bob@example.com" => Ok(RecipientCheck::Accepted),
            a if a.starts_with("user") && a.ends_with("@example.com") => Ok(RecipientCheck::Accepted),
            _ => Ok(RecipientCheck::Unknown),
        }
    }

    async fn accept_message(&self, envelope: &Envelope, raw: Vec<u8>) -> Result<String, InboundError> {
        self.entered.notify_one();
        if let Some(gate) = &self.gate {
            gate.acquire().await.unwrap().forget();
        }
        let mode = self.mode.lock().unwrap().clone();
        match mode {
            AcceptMode::Ok => {
                let mut messages = self.messages.lock().unwrap();
                messages.push((envelope.clone(), raw));
                Ok(format!("Q{}", messages.len()))
            }
            AcceptMode::Temporary => Err(InboundError::Temporary),
            AcceptMode::Rejected(text) => Err(InboundError::Rejected(text)),
        }
    }
}

pub fn config() -> SmtpConfig {
    SmtpConfig { hostname: "mx.test".into(), ..SmtpConfig::default() }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub inbound: Arc<Recorder>,
    pub shutdown: CancellationToken,
    pub handle: JoinHandle<()>,
}

impl TestServer {
    pub async fn start(config: SmtpConfig) -> Self {
        Self::start_with(config, Recorder::default()).await
    }

    pub async fn start_with(config: SmtpConfig, inbound: Recorder) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inbound = Arc::new(inbound);
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(herald_smtp::serve(listener, config, inbound.clone(), shutdown.clone()));
        Self { addr, inbound, shutdown, handle }
    }

    /// Connects and reads the greeting.
    pub async fn client(&self) -> Client {
        let mut client = Client::connect(self.addr).await;
        client.expect("220 mx.test ESMTP Herald").await;
        client
    }

    /// Connects, reads the greeting and says EHLO.
    pub async fn ehlo_client(&self) -> Client {
        let mut client = self.client().await;
        let reply = client.cmd("EHLO client.test").await;
        assert_eq!(reply.code, 250, "{reply:?}");
        client
    }

    /// Cancels the token and waits for `serve` to return.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.handle).await.expect("serve returns after shutdown").unwrap();
    }
}

/// One SMTP reply, possibly multi-line.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    /// Every line without its CRLF, e.g. `"250-PIPELINING"`, `"250 SIZE 100"`.
    pub lines: Vec<String>,
}

impl Reply {
    pub fn last(&self) -> &str {
        self.lines.last().map(String::as_str).unwrap_or("")
    }
}

/// A raw SMTP client over loopback (plain TCP, or TLS after STARTTLS).
pub struct Client<S = TcpStream> {
    pub stream: BufReader<S>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        Self::new(stream)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub fn new(stream: S) -> Self {
        Self { stream: BufReader::new(stream) }
    }

    /// The stream, for a TLS handshake; the server must not have sent anything unread.
    pub fn into_inner(self) -> S {
        assert!(self.stream.buffer().is_empty(), "no unread reply bytes");
        self.stream.into_inner()
    }

    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.get_mut().write_all(bytes.as_ref()).await.unwrap();
    }

    /// Reads one (possibly multi-line) reply; fails on EOF or after [`DEADLINE`].
    pub async fn reply(&mut self) -> Reply {
        self.try_reply().await.expect("a reply, not the end of the connection")
    }

    /// Reads one reply, or `None` at the end of the connection.
    pub async fn try_reply(&mut self) -> Option<Reply> {
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            let read = tokio::time::timeout(DEADLINE, self.stream.read_until(b'\n', &mut line))
                .await
                .expect("reply within the deadline");
            match read {
                Ok(0) | Err(_) if lines.is_empty() => return None,
                Ok(0) | Err(_) => panic!("connection ended inside a reply: {lines:?}"),
                Ok(_) => {}
            }
            assert!(line.ends_with(b"\r\n"), "reply line ends with CRLF: {line:?}");
            let line = String::from_utf8(line[..line.len() - 2].to_vec()).unwrap();
            assert!(line.len() >= 3, "reply line too short: {line:?}");
            let code: u16 = line[..3].parse().expect("reply code");
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line);
            if !more {
                return Some(Reply { code, lines });
            }
        }
    }

    /// Reads one reply and checks its last line starts with `prefix`.
    pub async fn expect(&mut self, prefix: &str) -> Reply {
        let reply = self.reply().await;
        assert!(reply.last().starts_with(prefix), "expected {prefix:?}, got {reply:?}");
        reply
    }

    /// Sends a command line (CRLF added) and reads its reply.
    pub async fn cmd(&mut self, line: &str) -> Reply {
        self.send(format!("{line}\r\n")).await;
        self.reply().await
    }

    /// Sends a command line and checks the reply starts with `prefix`.
    pub async fn cmd_expect(&mut self, line: &str, prefix: &str) -> Reply {
        self.send(format!("{line}\r\n")).await;
        self.expect(prefix).await
    }

    /// Waits (up to [`DEADLINE`]) for the server to close the connection, with no further
    /// bytes.
    pub async fn expect_closed(&mut self) {
        let rest = self.read_to_close().await;
        assert!(rest.is_empty(), "no more bytes: {:?}", String::from_utf8_lossy(&rest));
    }

    /// Reads whatever comes until the server closes the connection (up to [`DEADLINE`]).
    pub async fn read_to_close(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(DEADLINE, self.stream.read_to_end(&mut rest))
            .await
            .expect("connection closed within the deadline");
        rest
    }

    /// MAIL + RCPT for one recipient.
    pub async fn envelope(&mut self, from: &str, to: &str) {
        self.cmd_expect(&format!("MAIL FROM:<{from}>"), "250 2.1.0").await;
        self.cmd_expect(&format!("RCPT TO:<{to}>"), "250 2.1.5").await;
    }
}
