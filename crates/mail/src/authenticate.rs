//! SPF, DKIM and DMARC of an inbound message (with mail-auth, over hickory DNS).
//!
//! Never fails and never panics: a DNS failure is a `temperror`, a message mail-auth cannot
//! read has no DKIM signatures and DMARC `none`.

use crate::parse::one_line;
use herald_domain::{AuthResults, DkimResult};
use mail_auth::dkim::DkimError;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, DkimOutput, DmarcResult, Error, MessageAuthenticator, SpfOutput, SpfResult};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::time::{Instant, timeout_at};

/// How long one DNS query may take before it is retried, with a configured DNS server.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(2);
/// How many times a DNS query that failed is sent again, with a configured DNS server
/// (hickory's `attempts`): a lookup of a dead server gives up after 3 × 2 s.
pub const DNS_RETRIES: usize = 2;
/// How long [`Authenticator::authenticate`] may take in all, by default; checks not finished
/// by then are `temperror`.
pub const DEFAULT_TIME_LIMIT: Duration = Duration::from_secs(20);

/// The facts of the SMTP session that SPF needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpClient {
    /// The address of the connected client.
    pub ip: IpAddr,
    /// The name given in `HELO`/`EHLO`.
    pub helo: String,
    /// The reverse path of `MAIL FROM` (with or without angle brackets; empty for `<>`).
    pub mail_from: String,
}

impl SmtpClient {
    /// The reverse path without white space or angle brackets (empty for the null path).
    pub fn envelope_sender(&self) -> &str {
        envelope_sender(&self.mail_from)
    }
}

pub(crate) fn envelope_sender(mail_from: &str) -> &str {
    let s = mail_from.trim();
    let s = s.strip_prefix('<').unwrap_or(s);
    let s = s.strip_suffix('>').unwrap_or(s);
    s.trim()
}

/// The resolver could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("cannot set up the DNS resolver: {0}")]
    Resolver(String),
}

/// Checks SPF, DKIM and DMARC. Cheap to clone (the resolver and its cache are shared).
#[derive(Clone)]
pub struct Authenticator {
    inner: MessageAuthenticator,
    time_limit: Duration,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("time_limit", &self.time_limit).finish_non_exhaustive()
    }
}

impl Authenticator {
    /// With `Some(server)`, every DNS query goes to that server (UDP, and TCP for long
    /// answers), with no search domains and no hosts file, each query timing out after
    /// [`DNS_TIMEOUT`] and sent again [`DNS_RETRIES`] times (see
    /// [`Authenticator::with_dns_server`]). With `None`, the system's resolver configuration
    /// (`/etc/resolv.conf`, its timeouts included) is used.
    ///
    /// # Errors
    /// [`AuthError::Resolver`] when the system configuration cannot be read.
    pub fn new(dns_server: Option<SocketAddr>) -> Result<Self, AuthError> {
        match dns_server {
            Some(server) => Self::with_dns_server(server, DNS_TIMEOUT, DNS_RETRIES),
            None => Self::from_resolver(MessageAuthenticator::new_system_conf()),
        }
    }

    /// Every DNS query goes to `server` (UDP, and TCP for long answers), with no search
    /// domains and no hosts file; a query times out after `timeout` and is retried `retries`
    /// times (so one lookup of a dead server takes `timeout × (retries + 1)`).
    ///
    /// # Errors
    /// [`AuthError::Resolver`] when the resolver cannot be built.
    pub fn with_dns_server(server: SocketAddr, timeout: Duration, retries: usize) -> Result<Self, AuthError> {
        let mut udp = ConnectionConfig::udp();
        udp.port = server.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = server.port();
        let config =
            ResolverConfig::from_parts(None, vec![], vec![NameServerConfig::new(server.ip(), true, vec![udp, tcp])]);
        let mut opts = ResolverOpts::default();
        opts.timeout = timeout;
        opts.attempts = retries;
        opts.use_hosts_file = ResolveHosts::Never;
        Self::from_resolver(MessageAuthenticator::new(config, opts))
    }

    fn from_resolver<E: std::fmt::Display>(r: Result<MessageAuthenticator, E>) -> Result<Self, AuthError> {
        let inner = r.map_err(|e| AuthError::Resolver(e.to_string()))?;
        Ok(Self { inner, time_limit: DEFAULT_TIME_LIMIT })
    }

    /// Sets how long one [`Authenticator::authenticate`] may take in all
    /// ([`DEFAULT_TIME_LIMIT`] unless set).
    #[must_use]
    pub fn with_time_limit(mut self, limit: Duration) -> Self {
        self.time_limit = limit;
        self
    }

    /// Authenticates one message.
    ///
    /// - SPF checks the `MAIL FROM` identity of `client` (its `HELO` identity when the reverse
    ///   path is empty) for the client's address; `none` when there is no client (a message
    ///   injected through the API).
    /// - DKIM: every `DKIM-Signature`, in message order, with its `d=`, `s=` and result (a
    ///   malformed signature is `neutral`).
    /// - DMARC: the header `From` domain's policy with identifier alignment (relaxed or strict
    ///   as its `adkim`/`aspf` say); `verified` is true only when DMARC passes.
    ///
    /// `hostname` is this server's name (the SPF `%{r}` macro).
    pub async fn authenticate(&self, raw: &[u8], client: Option<&SmtpClient>, hostname: &str) -> AuthResults {
        let deadline = Instant::now() + self.time_limit;

        // SPF
        let (spf, spf_domain) = match client {
            Some(client) => {
                let sender = client.envelope_sender();
                let helo = client.helo.trim();
                let params = if sender.is_empty() {
                    SpfParameters::verify_ehlo(client.ip, helo, hostname)
                } else {
                    SpfParameters::verify_mail_from(client.ip, helo, hostname, sender)
                };
                // The domain SPF checked is the RFC5321.MailFrom domain of DMARC (the HELO
                // domain for the null reverse path).
                let domain = match sender.rsplit_once('@') {
                    Some((_, d)) if !sender.is_empty() => d.to_owned(),
                    _ => helo.to_owned(),
                };
                let out = timeout_at(deadline, self.inner.verify_spf(params))
                    .await
                    .unwrap_or_else(|_| SpfOutput::new(domain.clone()).with_result(SpfResult::TempError));
                (out, domain)
            }
            None => (SpfOutput::default(), String::new()),
        };

        // Only the first signatures are checked: each costs a DNS lookup and a public-key
        // operation, and a message may carry thousands (the rest are listed as `policy`).
        let capped;
        let (raw, skipped) = match count_signatures(raw) {
            n if n > MAX_DKIM_SIGNATURES => {
                let mut seen = 0;
                capped = crate::fields::retain_fields(raw, |f| {
                    !crate::fields::is_named(f, "dkim-signature") || {
                        seen += 1;
                        seen <= MAX_DKIM_SIGNATURES
                    }
                });
                (capped.as_slice(), n - MAX_DKIM_SIGNATURES)
            }
            _ => (raw, 0),
        };
        let Some(message) = AuthenticatedMessage::parse(raw) else {
            // No header section mail-auth can read: no signature, no From to align with.
            return AuthResults {
                spf: spf_word(spf.result()).into(),
                dkim: Vec::new(),
                dmarc: "none".into(),
                verified: false,
            };
        };

        // DKIM
        let (dkim_outputs, dkim_timed_out) = match timeout_at(deadline, self.inner.verify_dkim(&message)).await {
            Ok(outputs) => (outputs, false),
            Err(_) => (Vec::new(), true),
        };
        let mut dkim = dkim_in_message_order(&message, &dkim_outputs, dkim_timed_out);
        dkim.extend((0..skipped).map(|_| DkimResult {
            domain: String::new(),
            selector: String::new(),
            result: "policy".into(),
        }));

        // DMARC
        let params = DmarcParameters::new(&message, &dkim_outputs, &spf_domain, &spf);
        let dmarc = match timeout_at(deadline, self.inner.verify_dmarc(params)).await {
            Ok(out) => dmarc_word(&out.result()),
            Err(_) => "temperror",
        };
        // Without the DKIM results DMARC could only pass through SPF; anything else is unknown.
        let dmarc = if dkim_timed_out && dmarc != "pass" { "temperror" } else { dmarc };

        AuthResults { spf: spf_word(spf.result()).into(), dkim, dmarc: dmarc.into(), verified: dmarc == "pass" }
    }
}

/// Most `DKIM-Signature` fields of one message that are verified.
pub const MAX_DKIM_SIGNATURES: usize = 5;

fn count_signatures(raw: &[u8]) -> usize {
    let mut n = 0;
    crate::fields::retain_fields(raw, |f| {
        n += usize::from(crate::fields::is_named(f, "dkim-signature"));
        false
    });
    n
}

/// One [`DkimResult`] per `DKIM-Signature` header field, in the order of the message.
fn dkim_in_message_order(
    message: &AuthenticatedMessage<'_>,
    outputs: &[DkimOutput<'_>],
    timed_out: bool,
) -> Vec<DkimResult> {
    let mut results = Vec::new();
    for (name, value) in &message.headers {
        if !name.trim_ascii().eq_ignore_ascii_case(b"DKIM-Signature") {
            continue;
        }
        let parsed = message.dkim_headers.iter().find(|h| std::ptr::eq(h.value.as_ptr(), value.as_ptr()));
        let result = match parsed {
            Some(header) => {
                let signature = &header.header;
                let word = if timed_out {
                    "temperror"
                } else {
                    outputs
                        .iter()
                        .find(|o| o.signature().is_some_and(|s| std::ptr::eq(s, signature)))
                        .map_or("temperror", |o| dkim_word(o.result()))
                };
                DkimResult {
                    domain: one_line(&signature.d).to_ascii_lowercase(),
                    selector: one_line(&signature.s),
                    result: word.into(),
                }
            }
            // A signature mail-auth could not read (syntax, version, algorithm, l= …): RFC 8601
            // `neutral`, with whatever d= and s= it has.
            None => DkimResult {
                domain: tag(value, "d").to_ascii_lowercase(),
                selector: tag(value, "s"),
                result: "neutral".into(),
            },
        };
        results.push(result);
    }
    results
}

/// The value of tag `name` in a tag-list (`a=b; c=d`, RFC 6376 §3.2), one line, without
/// white space; empty when absent.
fn tag(value: &[u8], name: &str) -> String {
    let value = String::from_utf8_lossy(value);
    value
        .split(';')
        .filter_map(|spec| spec.split_once('='))
        .find(|(t, _)| t.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| one_line(v).split_whitespace().collect())
        .unwrap_or_default()
}

fn spf_word(result: SpfResult) -> &'static str {
    match result {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

fn dkim_word(result: &mail_auth::DkimResult) -> &'static str {
    use mail_auth::DkimResult as R;
    match result {
        R::Pass => "pass",
        // A body that does not match its hash fails verification (RFC 6376 §6.1.3).
        R::Neutral(Error::Dkim(DkimError::FailedBodyHashMatch)) | R::Fail(_) => "fail",
        R::Neutral(_) => "neutral",
        R::PermError(_) => "permerror",
        R::TempError(_) => "temperror",
        R::None => "none",
    }
}

fn dmarc_word(result: &DmarcResult) -> &'static str {
    match result {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_sender_without_brackets() {
        assert_eq!(envelope_sender(" <a@b.test> "), "a@b.test");
        assert_eq!(envelope_sender("a@b.test"), "a@b.test");
        assert_eq!(envelope_sender("<>"), "");
        assert_eq!(envelope_sender(""), "");
    }

    #[test]
    fn tags_of_a_malformed_signature() {
        let v = b" v=9; a=rsa-sha256; d=Ex\r\n ample.test ; s = sel\r\n\t1; b=xx";
        assert_eq!(tag(v, "d"), "Example.test");
        assert_eq!(tag(v, "s"), "sel1");
        assert_eq!(tag(v, "i"), "");
        assert_eq!(tag(b"\xff\xfe", "d"), "");
    }
}
