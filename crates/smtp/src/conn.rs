//! One client connection: the byte stream (plain or TLS), the bytes read but not yet
//! used, the replies not yet sent, and reads and writes bounded by the idle timeout.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::reply::Reply;

/// How many bytes one read asks for.
const READ_SIZE: usize = 8 * 1024;

/// The transport under a session.
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why no more bytes can be had from the client.
#[derive(Debug)]
pub(crate) enum Closed {
    /// The client closed the connection.
    Eof,
    /// Nothing arrived within the idle timeout.
    Idle,
    /// The session reached its longest allowed duration.
    Expired,
    /// The server is shutting down (only while waiting for a command).
    Shutdown,
    /// A read or write failed, or took longer than the idle timeout.
    Io(io::Error),
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closed::Eof => f.write_str("closed by the client"),
            Closed::Idle => f.write_str("idle timeout"),
            Closed::Expired => f.write_str("session too long"),
            Closed::Shutdown => f.write_str("server shutting down"),
            Closed::Io(error) => write!(f, "I/O error: {error}"),
        }
    }
}

pub(crate) struct Conn {
    stream: Stream,
    /// Bytes read from the client; those before `start` are used up.
    input: Vec<u8>,
    start: usize,
    /// Replies not yet sent: answers to pipelined commands go out together.
    output: Vec<u8>,
    idle_timeout: Duration,
    /// When the session must end, however busy (a client trickling a byte just inside the
    /// idle timeout would otherwise hold its slot for ever).
    deadline: tokio::time::Instant,
}

impl Conn {
    pub fn new(stream: TcpStream, idle_timeout: Duration, max_session: Duration) -> Self {
        Self {
            stream: Stream::Plain(stream),
            input: Vec::with_capacity(READ_SIZE),
            start: 0,
            output: Vec::new(),
            idle_timeout,
            deadline: tokio::time::Instant::now() + max_session,
        }
    }

    /// The bytes received and not yet used.
    pub fn pending(&self) -> &[u8] {
        &self.input[self.start..]
    }

    /// Marks the first `n` pending bytes as used.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.input.len());
        if self.start == self.input.len() {
            self.input.clear();
            self.start = 0;
        }
    }

    /// Queues a reply; it is sent before the next read or by [`Conn::flush`].
    pub fn reply(&mut self, reply: &Reply) {
        reply.write_to(&mut self.output);
    }

    /// Queues raw reply bytes (for multi-line replies).
    pub fn reply_raw(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }

    /// Sends the queued replies.
    pub async fn flush(&mut self) -> Result<(), Closed> {
        if self.output.is_empty() {
            return Ok(());
        }
        let write = async {
            self.stream.write_all(&self.output).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(self.idle_timeout, write).await {
            Ok(Ok(())) => {
                self.output.clear();
                Ok(())
            }
            Ok(Err(e)) => Err(Closed::Io(e)),
            Err(_) => Err(Closed::Io(io::ErrorKind::TimedOut.into())),
        }
    }

    /// Sends the queued replies, then waits (up to the idle timeout) for more bytes and
    /// appends them to the pending ones. With `shutdown`, also stops when it is cancelled.
    pub async fn fill(&mut self, shutdown: Option<&CancellationToken>) -> Result<(), Closed> {
        self.flush().await?;
        if self.start > 0 {
            self.input.drain(..self.start);
            self.start = 0;
        }
        self.input.reserve(READ_SIZE);
        let left = self.deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(Closed::Expired);
        }
        let expires = left < self.idle_timeout;
        let read = tokio::time::timeout(self.idle_timeout.min(left), self.stream.read_buf(&mut self.input));
        let result = match shutdown {
            Some(shutdown) => tokio::select! {
                biased;
                () = shutdown.cancelled() => return Err(Closed::Shutdown),
                result = read => result,
            },
            None => read.await,
        };
        match result {
            Ok(Ok(0)) => Err(Closed::Eof),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Closed::Io(e)),
            Err(_) if expires => Err(Closed::Expired),
            Err(_) => Err(Closed::Idle),
        }
    }

    /// Sends the queued replies, throws away the bytes the client sent after the
    /// `STARTTLS` command (they were not protected by TLS), and runs the TLS handshake.
    pub async fn start_tls(self, acceptor: &TlsAcceptor) -> Result<Self, Closed> {
        let mut conn = self;
        conn.flush().await?;
        let Stream::Plain(tcp) = conn.stream else {
            return Err(Closed::Io(io::Error::other("TLS is already active")));
        };
        let tls = match tokio::time::timeout(conn.idle_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return Err(Closed::Io(e)),
            Err(_) => return Err(Closed::Idle),
        };
        Ok(Self {
            stream: Stream::Tls(Box::new(tls)),
            input: Vec::with_capacity(READ_SIZE),
            start: 0,
            output: Vec::new(),
            idle_timeout: conn.idle_timeout,
            deadline: conn.deadline,
        })
    }

    /// Sends the queued replies (if the client still listens) and closes the connection.
    pub async fn close(mut self) {
        if self.flush().await.is_ok() {
            let _ = tokio::time::timeout(self.idle_timeout, self.stream.shutdown()).await;
        }
    }
}

/// Makes a TLS acceptor from the configuration.
pub(crate) fn acceptor(config: &Option<Arc<rustls::ServerConfig>>) -> Option<TlsAcceptor> {
    config.clone().map(TlsAcceptor::from)
}
