//! Arbitrary bytes down the path an inbound message takes after SMTP (what
//! `herald_app::Herald::accept_mail` and the delivery sender do with it), minus the store:
//!
//! `herald_mail::parse` → (sometimes) `Authenticator::authenticate` →
//! `herald_mail::authentication_results` → `herald_domain::inbound::{dedupe_key,
//! reply_candidates, choose_conversation}` → `Received { .. }.stored_payload()` (and
//! `event_data()`) → `serde_json` → `payload_for_attempt`.
//!
//! Nothing may panic. Also checked, as their docs promise:
//! - every text field of `ParsedMail` is one line without control characters;
//! - the `Authentication-Results:` field is CRLF-terminated, folded only with CRLF TAB,
//!   has no other control character and no line over 998 bytes;
//! - the stored payload is always accepted by `payload_for_attempt`, keeps the raw bytes,
//!   and every auth header value is printable ASCII;
//! - reply candidates are at most 50, non-empty and distinct; the conversation id is
//!   1..=200 printable ASCII characters.
//!
//! `authenticate` runs for about one input in `HERALD_FUZZ_AUTH_EVERY` (default 16; `0`
//! never, `1` always), chosen by a hash of the input so that a crash reproduces. Its DNS
//! server is a loopback port where nothing listens (`herald_testkit::unused_loopback_addr`),
//! with a 1 ms query timeout, no retry and a 3 ms time limit in all: mail-auth parses the
//! headers and DKIM signatures and computes body hashes, then every lookup is a
//! `temperror`. When it does not run, the auth results are made from text of the message
//! (arbitrary strings in every field) so the header writer and the payload see hostile
//! values too.

#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;
use std::time::Duration;

use herald_domain::inbound::{
    self, Payload, Received, choose_conversation, dedupe_key, payload_for_attempt, reply_candidates,
};
use herald_domain::{AuthResults, DkimResult, ParsedMail, SigningSecret};
use herald_mail::{Authenticator, SmtpClient, authentication_results, domain_of};
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;
use tokio::runtime::Runtime;

const HOSTNAME: &str = "mx.agents.test";

struct Harness {
    runtime: Runtime,
    authenticator: Authenticator,
    auth_every: u64,
    secret: SigningSecret,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let authenticator = runtime.block_on(async {
            Authenticator::with_dns_server(herald_testkit::unused_loopback_addr(), Duration::from_millis(1), 0)
                .expect("resolver")
                .with_time_limit(Duration::from_millis(3))
        });
        let auth_every = std::env::var("HERALD_FUZZ_AUTH_EVERY").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
        Harness { runtime, authenticator, auth_every, secret: SigningSecret::from_stored("whsec_fuzz".into()) }
    })
}

/// FNV-1a: picks the inputs that are authenticated, the same way on every run.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn one_line(field: &str, value: &str) {
    assert!(!value.chars().any(char::is_control), "ParsedMail.{field} has a control character: {value:?}");
}

fn check_parsed(p: &ParsedMail) {
    one_line("from", &p.from);
    one_line("subject", &p.subject);
    for (field, values) in [
        ("to", &p.to),
        ("cc", &p.cc),
        ("reply_to", &p.reply_to),
        ("in_reply_to", &p.in_reply_to),
        ("references", &p.references),
    ] {
        values.iter().for_each(|v| one_line(field, v));
    }
    p.message_id.iter().for_each(|v| one_line("message_id", v));
    p.conversation_header.iter().for_each(|v| one_line("conversation_header", v));
    for a in &p.attachments {
        one_line("attachments.name", &a.name);
        one_line("attachments.content_type", &a.content_type);
    }
}

fn check_results_header(h: &str) {
    assert!(h.starts_with("Authentication-Results: "), "{h:?}");
    assert!(h.ends_with("\r\n"), "not CRLF-terminated: {h:?}");
    let body = &h[..h.len() - 2];
    for (i, line) in body.split("\r\n").enumerate() {
        assert!(line.len() <= 998, "line of {} bytes in {h:?}", line.len());
        let line =
            if i > 0 { line.strip_prefix('\t').unwrap_or_else(|| panic!("a fold without TAB in {h:?}")) } else { line };
        assert!(!line.chars().any(char::is_control), "control character in {h:?}");
    }
}

/// Auth results made of the message's own text, for the inputs not authenticated.
fn hostile_auth(p: &ParsedMail, from_domain: &str) -> AuthResults {
    let pick = |v: &[String], i: usize| v.get(i).cloned().unwrap_or_default();
    AuthResults {
        spf: p.subject.clone(),
        dkim: vec![
            DkimResult { domain: from_domain.to_owned(), selector: pick(&p.to, 0), result: pick(&p.cc, 0) },
            DkimResult { domain: pick(&p.references, 0), selector: pick(&p.in_reply_to, 0), result: "pass".into() },
        ],
        dmarc: p.message_id.clone().unwrap_or_default(),
        verified: p.subject.len() % 2 == 0,
    }
}

fuzz_target!(|raw: &[u8]| {
    let Ok(parsed) = herald_mail::parse(raw) else {
        return;
    };
    check_parsed(&parsed);
    let h = harness();
    let from_domain = domain_of(&parsed.from);
    let client = SmtpClient {
        ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        helo: parsed.subject.clone(),
        mail_from: parsed.from.clone(),
    };
    let authenticate = h.auth_every != 0 && fnv(raw) % h.auth_every == 0;
    let auth = if authenticate {
        h.runtime.block_on(h.authenticator.authenticate(raw, Some(&client), HOSTNAME))
    } else {
        hostile_auth(&parsed, &from_domain)
    };

    let header = authentication_results(HOSTNAME, &auth, Some(&client), &from_domain);
    check_results_header(&header);
    check_results_header(&authentication_results(&parsed.subject, &auth, None, &parsed.from));
    let mut stored = Vec::with_capacity(header.len() + raw.len());
    stored.extend_from_slice(header.as_bytes());
    stored.extend_from_slice(raw);

    let key = dedupe_key(&parsed, raw);
    assert!(!key.is_empty() && key.len() <= 900, "dedupe key of {} bytes", key.len());
    let candidates = reply_candidates(&parsed);
    assert!(candidates.len() <= 50 && candidates.iter().all(|c| !c.is_empty()));
    assert!(candidates.iter().enumerate().all(|(i, c)| !candidates[..i].contains(c)), "{candidates:?}");
    let ours = from_domain == "agents.test" || raw.len() % 2 == 0;
    let conversation = choose_conversation(&parsed, ours, candidates.first().cloned());
    let fresh = choose_conversation(&parsed, ours, None);
    assert!(
        !fresh.is_empty() && fresh.len() <= 200 && fresh.chars().all(|ch| ch.is_ascii_graphic()),
        "conversation id {fresh:?}"
    );

    let received = Received {
        message_id: "msg_fuzz",
        conversation_id: &conversation,
        agent: "bot@agents.test",
        parsed: &parsed,
        auth: &auth,
        raw: &stored,
        received_at: OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000),
    };
    let _ = received.event_data().to_string();
    let payload = serde_json::to_vec(&received.stored_payload()).expect("plain data serialises");
    let now = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_795_000_300);
    let (body, headers) = payload_for_attempt(&payload, received.raw, &h.secret, now).expect("a stored payload is valid");
    let sent: Payload = serde_json::from_slice(&body).expect("the attempt's body is a Payload");
    assert_eq!(sent.raw_message, stored, "the raw message changed on the way");
    for (name, value) in &headers {
        assert!(value.chars().all(|c| c == ' ' || c.is_ascii_graphic()), "{name}: {value:?}");
    }
});
