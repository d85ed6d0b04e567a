//! One SMTP session: the per-connection state machine. Command lines are framed here
//! (CRLF, length cap, NUL), parsed by smtp-proto, and answered in order.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use smtp_proto::Request;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::conn::{Closed, Conn};
use crate::data::{self, DataEnd};
use crate::reply::{self, Reply};
use crate::{Envelope, Inbound, InboundError, RecipientCheck, SmtpConfig};

/// Longest command line accepted, CRLF included.
pub(crate) const MAX_LINE: usize = 4096;
/// A session is closed after this many 5xx answers.
pub(crate) const MAX_ERRORS: usize = 20;

/// What all sessions share.
pub(crate) struct Shared {
    pub config: SmtpConfig,
    pub inbound: Arc<dyn Inbound>,
    pub acceptor: Option<TlsAcceptor>,
}

/// A mail transaction: from `MAIL` to the end of the message (or `RSET`).
struct Transaction {
    mail_from: String,
    recipients: Vec<String>,
    /// The chunks received so far, once `BDAT` has started.
    bdat: Option<Vec<u8>>,
}

/// What the session loop does after a command.
enum Flow {
    Continue,
    Quit,
    StartTls,
}

/// The next thing from the client in the command phase.
enum Next {
    Line(Vec<u8>),
    TooLong,
}

struct Session {
    shared: Arc<Shared>,
    client_ip: IpAddr,
    helo: Option<String>,
    tls: bool,
    transaction: Option<Transaction>,
    errors: usize,
    /// Inside an over-long line: bytes are thrown away up to its LF.
    skipping_line: bool,
}

/// Runs one session to its end. Never panics on client input; every way it can end is
/// handled here.
pub(crate) async fn run(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, shutdown: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let mut conn = Conn::new(stream, shared.config.idle_timeout, shared.config.max_session);
    let mut session = Session {
        client_ip: peer.ip().to_canonical(),
        helo: None,
        tls: false,
        transaction: None,
        errors: 0,
        skipping_line: false,
        shared,
    };
    let greeting = format!("220 {} ESMTP Herald\r\n", reply::sanitize(&session.shared.config.hostname));
    conn.reply_raw(greeting.as_bytes());
    tracing::debug!(%peer, "smtp session started");
    loop {
        let next = match session.next_command(&mut conn, &shutdown).await {
            Ok(next) => next,
            Err(closed) => {
                tracing::debug!(%peer, %closed, "smtp session ended");
                match closed {
                    Closed::Idle => conn.reply(&reply::IDLE),
                    Closed::Expired => conn.reply(&reply::EXPIRED),
                    Closed::Shutdown => conn.reply(&reply::SHUTTING_DOWN),
                    Closed::Eof | Closed::Io(_) => {}
                }
                conn.close().await;
                return;
            }
        };
        let flow = match next {
            Next::TooLong => {
                session.reply(&mut conn, &reply::LINE_TOO_LONG);
                Ok(Flow::Continue)
            }
            Next::Line(line) => session.line(&mut conn, &line).await,
        };
        match flow {
            Ok(Flow::Continue) => {}
            Ok(Flow::Quit) => {
                conn.close().await;
                return;
            }
            Ok(Flow::StartTls) => {
                let Some(acceptor) = session.shared.acceptor.clone() else {
                    return;
                };
                conn = match conn.start_tls(&acceptor).await {
                    Ok(conn) => conn,
                    Err(error) => {
                        tracing::debug!(%peer, %error, "smtp TLS handshake failed");
                        return;
                    }
                };
                session.tls = true;
                session.helo = None;
                session.transaction = None;
                session.skipping_line = false;
            }
            Err(closed @ (Closed::Idle | Closed::Expired)) => {
                let why = if matches!(closed, Closed::Idle) { reply::IDLE } else { reply::EXPIRED };
                conn.reply(&why);
                conn.close().await;
                return;
            }
            Err(closed) => {
                tracing::debug!(%peer, %closed, "smtp session ended while reading a message");
                return;
            }
        }
        if session.errors >= MAX_ERRORS {
            conn.reply(&reply::TOO_MANY_ERRORS);
            conn.close().await;
            return;
        }
    }
}

impl Session {
    fn reply(&mut self, conn: &mut Conn, reply: &Reply) {
        if reply.is_error() {
            self.errors += 1;
        }
        conn.reply(reply);
    }

    /// Frames the next command line from the pending bytes, reading more when needed.
    async fn next_command(&mut self, conn: &mut Conn, shutdown: &CancellationToken) -> Result<Next, Closed> {
        loop {
            if shutdown.is_cancelled() {
                return Err(Closed::Shutdown);
            }
            let pending = conn.pending();
            let newline = pending.iter().position(|&b| b == b'\n');
            if self.skipping_line {
                match newline {
                    Some(at) => {
                        conn.consume(at + 1);
                        self.skipping_line = false;
                        continue;
                    }
                    None => conn.consume(pending.len()),
                }
            } else if let Some(at) = newline {
                let line = (at < MAX_LINE).then(|| pending[..=at].to_vec());
                conn.consume(at + 1);
                return Ok(line.map_or(Next::TooLong, Next::Line));
            } else if pending.len() >= MAX_LINE {
                conn.consume(pending.len());
                self.skipping_line = true;
                return Ok(Next::TooLong);
            }
            conn.fill(Some(shutdown)).await?;
        }
    }

    /// Checks the framing of one command line (ending in LF) and runs it.
    async fn line(&mut self, conn: &mut Conn, line: &[u8]) -> Result<Flow, Closed> {
        let body = &line[..line.len() - 1];
        let Some(body) = body.strip_suffix(b"\r") else {
            self.reply(conn, &reply::BARE_LF_COMMAND);
            return Ok(Flow::Continue);
        };
        if body.contains(&0) {
            self.reply(conn, &reply::NUL_COMMAND);
            return Ok(Flow::Continue);
        }
        if body.contains(&b'\r') {
            self.reply(conn, &reply::BARE_CR_COMMAND);
            return Ok(Flow::Continue);
        }
        match Request::parse(&mut line.iter()) {
            Ok(request) => self.command(conn, request).await,
            Err(error) => {
                let answer = reply::parse_error(&error);
                self.reply(conn, &answer);
                Ok(Flow::Continue)
            }
        }
    }

    async fn command(&mut self, conn: &mut Conn, request: Request<Cow<'_, str>>) -> Result<Flow, Closed> {
        match request {
            Request::Ehlo { host } => {
                self.helo = Some(host.into_owned());
                self.transaction = None;
                let ehlo = self.ehlo();
                conn.reply_raw(ehlo.as_bytes());
            }
            Request::Helo { host } => {
                self.helo = Some(host.into_owned());
                self.transaction = None;
                let hostname = reply::sanitize(&self.shared.config.hostname);
                conn.reply_raw(format!("250 {hostname}\r\n").as_bytes());
            }
            Request::Mail { from } => {
                let answer = if self.helo.is_none() {
                    reply::NEED_HELO
                } else if self.transaction.is_some() {
                    reply::NESTED_MAIL
                } else if from.size > self.shared.config.max_message_size {
                    crate::message_answered("rejected_too_big");
                    reply::TOO_BIG
                } else {
                    self.transaction =
                        Some(Transaction { mail_from: from.address.into_owned(), recipients: Vec::new(), bdat: None });
                    reply::MAIL_OK
                };
                self.reply(conn, &answer);
            }
            Request::Rcpt { to } => {
                let answer = self.recipient(&to.address).await;
                self.reply(conn, &answer);
            }
            Request::Data => return self.data(conn).await,
            Request::Bdat { chunk_size, is_last } => return self.bdat(conn, chunk_size, is_last).await,
            Request::Rset => {
                self.transaction = None;
                self.reply(conn, &reply::OK);
            }
            Request::Noop { .. } => self.reply(conn, &reply::OK),
            Request::Vrfy { .. } => self.reply(conn, &reply::VRFY),
            Request::Help { .. } => self.reply(conn, &reply::HELP),
            Request::Quit => {
                self.reply(conn, &reply::BYE);
                return Ok(Flow::Quit);
            }
            Request::StartTls => {
                let answer = if self.shared.acceptor.is_none() {
                    reply::TLS_UNAVAILABLE
                } else if self.tls {
                    reply::TLS_ACTIVE
                } else if self.helo.is_none() {
                    reply::NEED_HELO
                } else {
                    self.reply(conn, &reply::READY_TLS);
                    return Ok(Flow::StartTls);
                };
                self.reply(conn, &answer);
            }
            Request::Lhlo { .. } => self.reply(conn, &reply::UNKNOWN_COMMAND),
            Request::Auth { .. }
            | Request::Expn { .. }
            | Request::Etrn { .. }
            | Request::Atrn { .. }
            | Request::Burl { .. } => self.reply(conn, &reply::NOT_IMPLEMENTED),
        }
        Ok(Flow::Continue)
    }

    fn ehlo(&self) -> String {
        let config = &self.shared.config;
        let mut lines = vec![
            format!("{} Hello", reply::sanitize(&config.hostname)),
            "PIPELINING".to_owned(),
            "8BITMIME".to_owned(),
            "SMTPUTF8".to_owned(),
            "ENHANCEDSTATUSCODES".to_owned(),
            "CHUNKING".to_owned(),
            format!("SIZE {}", config.max_message_size),
        ];
        if self.shared.acceptor.is_some() && !self.tls {
            lines.push("STARTTLS".to_owned());
        }
        let last = lines.len() - 1;
        lines
            .iter()
            .enumerate()
            .map(|(i, line)| format!("250{}{line}\r\n", if i == last { ' ' } else { '-' }))
            .collect()
    }

    async fn recipient(&mut self, address: &str) -> Reply {
        let max = self.shared.config.max_recipients;
        let Some(transaction) = self.transaction.as_mut() else {
            return reply::NEED_MAIL;
        };
        if transaction.bdat.is_some() {
            return reply::RCPT_DURING_BDAT;
        }
        if transaction.recipients.len() >= max {
            return reply::TOO_MANY_RECIPIENTS;
        }
        match self.shared.inbound.check_recipient(address).await {
            Ok(RecipientCheck::Accepted) => {
                transaction.recipients.push(address.to_owned());
                reply::RCPT_OK
            }
            Ok(RecipientCheck::Unknown) => Reply::new(550, "5.1.1", &format!("<{address}>: Recipient address unknown")),
            Err(InboundError::Temporary) => reply::TEMPORARY,
            Err(InboundError::Rejected(text)) => Reply::new(550, "5.7.1", &text),
        }
    }

    async fn data(&mut self, conn: &mut Conn) -> Result<Flow, Closed> {
        let refusal = match &self.transaction {
            None => Some(reply::NEED_MAIL),
            Some(t) if t.bdat.is_some() => Some(reply::BDAT_IN_PROGRESS),
            Some(t) if t.recipients.is_empty() => Some(reply::NEED_RCPT),
            Some(_) => None,
        };
        if let Some(refusal) = refusal {
            self.reply(conn, &refusal);
            return Ok(Flow::Continue);
        }
        self.reply(conn, &reply::START_DATA);
        conn.flush().await?;
        let end = data::read_data(conn, self.shared.config.max_message_size).await?;
        let transaction = self.transaction.take();
        let answer = match (end, transaction) {
            (DataEnd::Complete(raw), Some(t)) => self.deliver(t, raw).await,
            (DataEnd::Complete(_), None) => reply::NEED_MAIL,
            (DataEnd::BareLf, _) => {
                crate::message_answered("rejected_bare_lf");
                reply::BARE_LF_DATA
            }
            (DataEnd::TooBig, _) => {
                crate::message_answered("rejected_too_big");
                reply::TOO_BIG
            }
        };
        self.reply(conn, &answer);
        Ok(Flow::Continue)
    }

    async fn bdat(&mut self, conn: &mut Conn, size: usize, last: bool) -> Result<Flow, Closed> {
        let max = self.shared.config.max_message_size;
        let refusal = match &self.transaction {
            None => Some(reply::NEED_MAIL),
            Some(t) if t.recipients.is_empty() => Some(reply::NEED_RCPT),
            Some(t) => {
                let so_far = t.bdat.as_ref().map_or(0, Vec::len);
                (so_far.saturating_add(size) > max).then_some(reply::TOO_BIG)
            }
        };
        if let Some(refusal) = refusal {
            // The chunk is on its way regardless: read it so it is never taken for commands.
            data::discard_chunk(conn, size).await?;
            if refusal == reply::TOO_BIG {
                crate::message_answered("rejected_too_big");
                self.transaction = None;
            }
            self.reply(conn, &refusal);
            return Ok(Flow::Continue);
        }
        let Some(transaction) = self.transaction.as_mut() else {
            return Ok(Flow::Continue);
        };
        let body = transaction.bdat.get_or_insert_with(Vec::new);
        data::read_chunk(conn, size, body).await?;
        if !last {
            let answer = Reply::new(250, "2.0.0", &format!("{size} octets received"));
            self.reply(conn, &answer);
            return Ok(Flow::Continue);
        }
        let answer = match self.transaction.take() {
            Some(mut t) => {
                let raw = t.bdat.take().unwrap_or_default();
                self.deliver(t, raw).await
            }
            None => reply::NEED_MAIL,
        };
        self.reply(conn, &answer);
        Ok(Flow::Continue)
    }

    /// Hands a complete message to the application.
    async fn deliver(&self, transaction: Transaction, raw: Vec<u8>) -> Reply {
        let envelope = Envelope {
            client_ip: self.client_ip,
            helo: self.helo.clone().unwrap_or_default(),
            mail_from: transaction.mail_from,
            recipients: transaction.recipients,
            tls: self.tls,
        };
        let (answer, reply) = match self.shared.inbound.accept_message(&envelope, raw).await {
            Ok(id) => ("accepted", Reply::new(250, "2.0.0", &format!("Ok: queued as {id}"))),
            Err(InboundError::Temporary) => ("temporary_failure", reply::TEMPORARY),
            Err(InboundError::Rejected(text)) => ("rejected", Reply::new(554, "5.6.0", &text)),
        };
        crate::message_answered(answer);
        reply
    }
}
