//! The bench's mail side: unique DKIM-signed messages and a plain SMTP client session that
//! pipelines the envelope and times the end of `DATA`.

use super::*;

/// Builds unique, DKIM-signed (ed25519) messages from `alice@sender.bench`.
pub(super) struct Mails {
    signer: DkimSigner<Ed25519Key, Done>,
    nonce: String,
}

impl Mails {
    /// A fresh key; returns the builder and the DKIM TXT record of the public key.
    pub(super) fn new() -> anyhow::Result<(Mails, String)> {
        let pkcs8 = Ed25519Key::generate_pkcs8().map_err(|e| anyhow::anyhow!("DKIM key: {e}"))?;
        let key = Ed25519Key::from_pkcs8_der(&pkcs8).map_err(|e| anyhow::anyhow!("DKIM key: {e}"))?;
        let record =
            format!("v=DKIM1; k=ed25519; p={}", base64::engine::general_purpose::STANDARD.encode(key.public_key()));
        let signer = DkimSigner::from_key(key).domain(SENDER_DOMAIN).selector(SELECTOR).headers([
            "From",
            "To",
            "Subject",
            "Message-ID",
            "Date",
        ]);
        let nonce = herald_domain::ApiKey::generate().expose()[3..15].to_owned();
        Ok((Mails { signer, nonce }, record))
    }

    /// Message `seq` with a body of `body_size` bytes (CRLF lines of at most 78 bytes), a
    /// `DKIM-Signature` in front, dot-stuffed for `DATA` (ends with CRLF).
    pub(super) fn build(&self, seq: u64, body_size: usize) -> anyhow::Result<Vec<u8>> {
        let date = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap_or_else(|_| "Sat, 28 Nov 2026 10:00:00 +0000".into());
        let mut msg = Vec::with_capacity(body_size + 1024);
        write!(
            msg,
            "From: Alice <{SENDER}>\r\nTo: <{AGENT}>\r\nSubject: bench message {seq}\r\n\
             Message-ID: <bench.{seq}.{}@{SENDER_DOMAIN}>\r\nDate: {date}\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=us-ascii\r\n\r\n",
            self.nonce
        )?;
        const FILLER: &str = "the quick brown fox jumps over the lazy dog; pack my box with five dozen jugs";
        let end = msg.len() + body_size;
        let mut line = 0u64;
        while msg.len() + 2 < end {
            let room = (end - msg.len() - 2).min(76);
            let text = format!("m{seq:08} l{line:07} {FILLER}");
            msg.extend_from_slice(&text.as_bytes()[..room.min(text.len())]);
            msg.extend_from_slice(b"\r\n");
            line += 1;
        }
        let signature = self.signer.sign(&msg).map_err(|e| anyhow::anyhow!("DKIM signing: {e}"))?;
        let mut signed = signature.to_header().into_bytes();
        signed.extend_from_slice(&msg);
        Ok(dot_stuff(&signed))
    }
}

/// A leading `.` of every line doubled (RFC 5321 4.5.2).
pub(super) fn dot_stuff(msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 16);
    let mut line_start = true;
    for &b in msg {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    out
}

/// A plain SMTP client on one connection: `MAIL`, `RCPT` and `DATA` sent in one write
/// (`PIPELINING`, RFC 2920), the message after the `354`.
pub(super) struct SmtpSession {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    line: String,
}

impl SmtpSession {
    pub(super) async fn connect(addr: SocketAddr) -> anyhow::Result<SmtpSession> {
        let stream = TcpStream::connect(addr).await.context("connecting to the SMTP listener")?;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        let mut s = SmtpSession { reader: BufReader::new(r), writer: w, line: String::new() };
        s.expect(220, "greeting").await?;
        s.writer.write_all(format!("EHLO {HELO}\r\n").as_bytes()).await?;
        let ehlo = s.expect(250, "EHLO").await?;
        anyhow::ensure!(ehlo.contains("PIPELINING"), "the server does not offer PIPELINING: {ehlo}");
        Ok(s)
    }

    /// One reply, all its lines: the code and the text.
    async fn reply(&mut self) -> anyhow::Result<(u16, String)> {
        let mut text = String::new();
        loop {
            self.line.clear();
            let n = self.reader.read_line(&mut self.line).await?;
            anyhow::ensure!(n > 0, "the SMTP server closed the connection");
            text.push_str(&self.line);
            if self.line.as_bytes().get(3) != Some(&b'-') {
                let code = self.line.get(..3).and_then(|c| c.parse().ok()).context("an SMTP reply without a code")?;
                return Ok((code, text));
            }
        }
    }

    async fn expect(&mut self, code: u16, what: &str) -> anyhow::Result<String> {
        let (got, text) = self.reply().await?;
        anyhow::ensure!(got == code, "{what}: expected {code}, got {}", text.trim_end());
        Ok(text)
    }

    /// Sends one dot-stuffed message; records the moment before the final dot and the `250`.
    pub(super) async fn send(&mut self, data: &[u8], seq: usize, sink: &Sink) -> anyhow::Result<()> {
        let commands = format!("MAIL FROM:<{SENDER}> SIZE={}\r\nRCPT TO:<{AGENT}>\r\nDATA\r\n", data.len());
        self.writer.write_all(commands.as_bytes()).await?;
        self.expect(250, "MAIL FROM").await?;
        self.expect(250, "RCPT TO").await?;
        self.expect(354, "DATA").await?;
        self.writer.write_all(data).await?;
        sink.dot[seq].store(sink.micros(), Ordering::Relaxed);
        self.writer.write_all(b".\r\n").await?;
        self.expect(250, "end of DATA").await?;
        sink.accepted[seq].store(sink.micros(), Ordering::Relaxed);
        Ok(())
    }

    pub(super) async fn quit(mut self) {
        if self.writer.write_all(b"QUIT\r\n").await.is_ok() {
            let _ = self.reply().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench_smtp::seq_of;

    #[test]
    fn messages_are_signed_sized_and_numbered() {
        let (mails, record) = Mails::new().unwrap();
        assert!(record.starts_with("v=DKIM1; k=ed25519; p="));
        let m = mails.build(42, 10_000).unwrap();
        assert!(m.starts_with(b"DKIM-Signature: "));
        assert!(m.ends_with(b"\r\n"));
        assert_eq!(seq_of(&m), Some(42));
        let body = m.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(m.len() - body, 10_000);
        assert!(m.split(|b| *b == b'\n').all(|l| l.len() <= 998));
    }

    #[test]
    fn dot_stuffing_doubles_leading_dots() {
        assert_eq!(dot_stuff(b".a\r\nb.\r\n..\r\n"), b"..a\r\nb.\r\n...\r\n");
    }
}
