//! SPF, DKIM and DMARC against a DNS server on loopback (`herald_testkit::LoopbackDns`):
//! messages are DKIM-signed here, with keys made here, and every record is published by the
//! test. Nothing reaches public DNS.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use herald_mail::{AuthResults, Authenticator, DkimResult, SmtpClient, authentication_results, domain_of, parse};
use herald_testkit::{LoopbackDns, unused_loopback_addr};
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

const HOST: &str = "mx.herald.test";

/// A message from `from`, unsigned.
fn message(from: &str) -> String {
    format!(
        "From: Alice <{from}>\r\nTo: bob@herald.test\r\nSubject: Quarterly numbers\r\n\
         Message-ID: <m1@sender.test>\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\n\
         Hello Bob,\r\nthe numbers are attached.\r\n"
    )
}

/// A signing key and the DKIM TXT record of its public half.
enum Key {
    Ed25519(Ed25519Key),
    Rsa(RsaKey<Sha256>),
}

impl Key {
    fn ed25519() -> Key {
        let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
        Key::Ed25519(Ed25519Key::from_pkcs8_der(&pkcs8).unwrap())
    }

    #[allow(deprecated)] // from_key_der needs rustls-pki-types; this is the same thing
    fn rsa() -> Key {
        use aws_lc_rs::encoding::AsDer;
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der = pair.as_der().unwrap();
        Key::Rsa(RsaKey::<Sha256>::from_pkcs8_der(der.as_ref()).unwrap())
    }

    fn record(&self) -> String {
        match self {
            Key::Ed25519(k) => format!("v=DKIM1; k=ed25519; p={}", B64.encode(k.public_key())),
            Key::Rsa(k) => format!("v=DKIM1; k=rsa; p={}", B64.encode(k.public_key())),
        }
    }

    /// `msg` with a DKIM-Signature of `domain`/`selector` in front.
    fn sign(self, msg: &str, domain: &str, selector: &str) -> String {
        let headers = ["From", "To", "Subject", "Message-ID", "Date"];
        let sig = match self {
            Key::Ed25519(k) => {
                DkimSigner::from_key(k).domain(domain).selector(selector).headers(headers).sign(msg.as_bytes())
            }
            Key::Rsa(k) => {
                DkimSigner::from_key(k).domain(domain).selector(selector).headers(headers).sign(msg.as_bytes())
            }
        }
        .unwrap();
        format!("{}{msg}", sig.to_header())
    }
}

/// Publishes a fresh key at `selector._domainkey.domain` and signs `msg` with it.
fn sign_ed25519(dns: &LoopbackDns, msg: &str, domain: &str, selector: &str) -> String {
    let key = Key::ed25519();
    dns.add_txt(&format!("{selector}._domainkey.{domain}"), &key.record());
    key.sign(msg, domain, selector)
}

fn client(ip: [u8; 4], mail_from: &str) -> SmtpClient {
    SmtpClient { ip: IpAddr::V4(Ipv4Addr::from(ip)), helo: "mail.sender.test".into(), mail_from: mail_from.into() }
}

fn dkim(domain: &str, selector: &str, result: &str) -> DkimResult {
    DkimResult { domain: domain.into(), selector: selector.into(), result: result.into() }
}

async fn authenticator(dns: &LoopbackDns) -> Authenticator {
    Authenticator::new(Some(dns.addr())).unwrap()
}

#[tokio::test]
async fn signed_aligned_mail_passes_spf_dkim_and_dmarc() {
    let dns = LoopbackDns::start().await;
    dns.add_txt("sender.test", "v=spf1 ip4:127.0.0.1 -all");
    dns.add_txt("_dmarc.sender.test", "v=DMARC1; p=reject");
    let raw = sign_ed25519(&dns, &message("alice@sender.test"), "sender.test", "sel");
    let c = client([127, 0, 0, 1], "<alice@sender.test>");

    let r = authenticator(&dns).await.authenticate(raw.as_bytes(), Some(&c), HOST).await;

    assert_eq!(
        r,
        AuthResults {
            spf: "pass".into(),
            dkim: vec![dkim("sender.test", "sel", "pass")],
            dmarc: "pass".into(),
            verified: true
        }
    );
    assert!(dns.queries("sel._domainkey.sender.test") >= 1, "the key came from the loopback server");
    let from = domain_of(&parse(raw.as_bytes()).unwrap().from);
    assert_eq!(
        authentication_results(HOST, &r, Some(&c), &from),
        "Authentication-Results: mx.herald.test;\r\n\
         \tspf=pass smtp.mailfrom=alice@sender.test;\r\n\
         \tdkim=pass header.d=sender.test header.s=sel;\r\n\
         \tdmarc=pass header.from=sender.test\r\n"
    );
}

#[tokio::test]
async fn an_rsa_signature_with_a_key_longer_than_one_txt_string_passes() {
    let dns = LoopbackDns::start().await;
    dns.add_txt("_dmarc.sender.test", "v=DMARC1; p=quarantine");
    let key = Key::rsa();
    let record = key.record();
    assert!(record.len() > 255, "the record is split into several strings");
    dns.add_txt("rsa2048._domainkey.sender.test", &record);
    let raw = key.sign(&message("alice@sender.test"), "sender.test", "rsa2048");

    let r = authenticator(&dns).await.authenticate(raw.as_bytes(), None, HOST).await;

    assert_eq!(r.spf, "none", "no SMTP client: no SPF");
    assert_eq!(r.dkim, vec![dkim("sender.test", "rsa2048", "pass")]);
    assert_eq!(r.dmarc, "pass", "an aligned DKIM pass is enough");
    assert!(r.verified);
}

#[tokio::test]
async fn a_signature_of_another_domain_passes_dkim_but_fails_dmarc() {
    let dns = LoopbackDns::start().await;
    dns.add_txt("other.test", "v=spf1 ip4:127.0.0.1 -all");
    dns.add_txt("_dmarc.sender.test", "v=DMARC1; p=reject");
    let raw = sign_ed25519(&dns, &message("alice@sender.test"), "other.test", "sel");
    let c = client([127, 0, 0, 1], "bounces@other.test");

    let r = authenticator(&dns).await.authenticate(raw.as_bytes(), Some(&c), HOST).await;

    assert_eq!(r.spf, "pass", "SPF passes for other.test");
    assert_eq!(r.dkim, vec![dkim("other.test", "sel", "pass")]);
    assert_eq!(r.dmarc, "fail", "neither identifier is aligned with From: sender.test");
    assert!(!r.verified);
}

#[tokio::test]
async fn spf_fail_without_a_dmarc_record_is_dmarc_none() {
    let dns = LoopbackDns::start().await;
    dns.add_txt("sender.test", "v=spf1 ip4:127.0.0.1 -all");
    let raw = message("alice@sender.test");
    let c = client([127, 0, 0, 2], "alice@sender.test");

    let r = authenticator(&dns).await.authenticate(raw.as_bytes(), Some(&c), HOST).await;

    assert_eq!(r, AuthResults { spf: "fail".into(), dkim: vec![], dmarc: "none".into(), verified: false });
    assert_eq!(
        authentication_results(HOST, &r, Some(&c), "sender.test"),
        "Authentication-Results: mx.herald.test;\r\n\
         \tspf=fail smtp.mailfrom=alice@sender.test; dkim=none;\r\n\
         \tdmarc=none header.from=sender.test\r\n"
    );
}

#[tokio::test]
async fn softfail_neutral_and_permerror_spf_words() {
    let dns = LoopbackDns::start().await;
    dns.add_txt("soft.test", "v=spf1 ip4:10.0.0.1 ~all");
    dns.add_txt("neutral.test", "v=spf1 ?all");
    dns.add_txt("broken.test", "v=spf1 ip4:not-an-address -all");
    let auth = authenticator(&dns).await;
    for (domain, word) in
        [("soft.test", "softfail"), ("neutral.test", "neutral"), ("broken.test", "permerror"), ("none.test", "none")]
    {
        let c = client([127, 0, 0, 1], &format!("a@{domain}"));
        let r = auth.authenticate(message(&format!("a@{domain}")).as_bytes(), Some(&c), HOST).await;
        assert_eq!(r.spf, word, "{domain}");
    }
}

#[tokio::test]
async fn the_null_reverse_path_checks_the_helo_identity() {
    let dns = LoopbackDns::start().await;
    dns.add_txt("mail.sender.test", "v=spf1 ip4:127.0.0.1 -all");
    dns.add_txt("_dmarc.sender.test", "v=DMARC1; p=reject");
    let c = client([127, 0, 0, 1], "<>");

    let r = authenticator(&dns).await.authenticate(message("alice@sender.test").as_bytes(), Some(&c), HOST).await;

    assert_eq!(r.spf, "pass");
    assert_eq!(r.dmarc, "pass", "the HELO domain mail.sender.test is aligned (relaxed) with sender.test");
    assert!(dns.queries("mail.sender.test") >= 1);
    let header = authentication_results(HOST, &r, Some(&c), "sender.test");
    assert!(header.contains("spf=pass smtp.helo=mail.sender.test;"), "{header}");
}

#[tokio::test]
async fn relaxed_alignment_accepts_a_subdomain_strict_does_not() {
    let dns = LoopbackDns::start().await;
    dns.add_txt("_dmarc.sender.test", "v=DMARC1; p=reject");
    dns.add_txt("_dmarc.strict.test", "v=DMARC1; p=reject; adkim=s");
    let auth = authenticator(&dns).await;

    let relaxed = sign_ed25519(&dns, &message("alice@sender.test"), "sub.sender.test", "sel");
    let r = auth.authenticate(relaxed.as_bytes(), None, HOST).await;
    assert_eq!(r.dkim, vec![dkim("sub.sender.test", "sel", "pass")]);
    assert_eq!(r.dmarc, "pass", "adkim=r (the default): sub.sender.test is aligned with sender.test");
    assert!(r.verified);

    let strict = sign_ed25519(&dns, &message("alice@strict.test"), "sub.strict.test", "sel");
    let r = auth.authenticate(strict.as_bytes(), None, HOST).await;
    assert_eq!(r.dkim, vec![dkim("sub.strict.test", "sel", "pass")]);
    assert_eq!(r.dmarc, "fail", "adkim=s: only strict.test itself is aligned");
    assert!(!r.verified);
}

#[tokio::test]
async fn strict_spf_alignment() {
    let dns = LoopbackDns::start().await;
    dns.add_txt("bounce.sender.test", "v=spf1 ip4:127.0.0.1 -all");
    dns.add_txt("bounce.strict.test", "v=spf1 ip4:127.0.0.1 -all");
    dns.add_txt("_dmarc.sender.test", "v=DMARC1; p=reject");
    dns.add_txt("_dmarc.strict.test", "v=DMARC1; p=reject; aspf=s");
    let auth = authenticator(&dns).await;

    let c = client([127, 0, 0, 1], "b@bounce.sender.test");
    let r = auth.authenticate(message("alice@sender.test").as_bytes(), Some(&c), HOST).await;
    assert_eq!((r.spf.as_str(), r.dmarc.as_str(), r.verified), ("pass", "pass", true));

    let c = client([127, 0, 0, 1], "b@bounce.strict.test");
    let r = auth.authenticate(message("alice@strict.test").as_bytes(), Some(&c), HOST).await;
    assert_eq!((r.spf.as_str(), r.dmarc.as_str(), r.verified), ("pass", "fail", false));
}

#[tokio::test]
async fn a_changed_body_fails_dkim() {
    let dns = LoopbackDns::start().await;
    dns.add_txt("_dmarc.sender.test", "v=DMARC1; p=reject");
    let raw = sign_ed25519(&dns, &message("alice@sender.test"), "sender.test", "sel");
    let tampered = raw.replace("attached", "ATTACHED");
    let changed_header = raw.replace("Quarterly", "Yearly");
    let auth = authenticator(&dns).await;

    for raw in [tampered, changed_header] {
        let r = auth.authenticate(raw.as_bytes(), None, HOST).await;
        assert_eq!(r.dkim, vec![dkim("sender.test", "sel", "fail")]);
        assert_eq!(r.dmarc, "fail");
        assert!(!r.verified);
    }
}

#[tokio::test]
async fn a_missing_key_is_permerror_and_a_malformed_signature_neutral_in_message_order() {
    let dns = LoopbackDns::start().await;
    dns.add_txt("_dmarc.sender.test", "v=DMARC1; p=reject");
    let signed = sign_ed25519(&dns, &message("alice@sender.test"), "sender.test", "good");
    // Signed with a key that is not published.
    let raw = Key::ed25519().sign(&signed, "sender.test", "gone");
    // And a signature that cannot be read, first.
    let raw = format!("DKIM-Signature: v=1; a=rsa-sha256; d=Broken.test;\r\n\ts=sel1; b=\r\n{raw}");

    let r = authenticator(&dns).await.authenticate(raw.as_bytes(), None, HOST).await;

    assert_eq!(
        r.dkim,
        vec![
            dkim("broken.test", "sel1", "neutral"),
            dkim("sender.test", "gone", "permerror"),
            dkim("sender.test", "good", "pass"),
        ]
    );
    assert_eq!(r.dkim_summary(), "pass");
    assert_eq!(r.dmarc, "pass");
}

#[tokio::test]
async fn an_unreachable_dns_server_gives_temperror() {
    let dns = LoopbackDns::start().await; // only to sign; the authenticator asks a dead address
    let raw = sign_ed25519(&dns, &message("alice@sender.test"), "sender.test", "sel");
    let c = client([127, 0, 0, 1], "alice@sender.test");
    // Short DNS timeouts keep the test fast (3 lookups × 2 tries × 200 ms); the overall time
    // limit (20 s) is not what ends it.
    let auth = Authenticator::with_dns_server(unused_loopback_addr(), Duration::from_millis(200), 1).unwrap();

    let started = Instant::now();
    let r = auth.authenticate(raw.as_bytes(), Some(&c), HOST).await;

    assert_eq!(
        r,
        AuthResults {
            spf: "temperror".into(),
            dkim: vec![dkim("sender.test", "sel", "temperror")],
            dmarc: "temperror".into(),
            verified: false
        }
    );
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    let header = authentication_results(HOST, &r, Some(&c), "sender.test");
    assert!(
        header.contains("spf=temperror") && header.contains("dkim=temperror") && header.contains("dmarc=temperror")
    );
}

#[tokio::test]
async fn a_failing_dmarc_lookup_is_temperror_even_when_spf_and_dkim_pass() {
    let dns = LoopbackDns::start().await;
    dns.add_txt("sender.test", "v=spf1 ip4:127.0.0.1 -all");
    dns.add_servfail("_dmarc.sender.test");
    let raw = sign_ed25519(&dns, &message("alice@sender.test"), "sender.test", "sel");
    let c = client([127, 0, 0, 1], "alice@sender.test");

    let r = authenticator(&dns).await.authenticate(raw.as_bytes(), Some(&c), HOST).await;

    assert_eq!((r.spf.as_str(), r.dkim_summary(), r.dmarc.as_str(), r.verified), ("pass", "pass", "temperror", false));
}

#[tokio::test]
async fn the_time_limit_turns_unfinished_checks_into_temperror() {
    // A UDP socket that never answers (and no TCP listener): each query would wait.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dns = LoopbackDns::start().await;
    let raw = sign_ed25519(&dns, &message("alice@sender.test"), "sender.test", "sel");
    let c = client([127, 0, 0, 1], "alice@sender.test");
    let auth =
        Authenticator::new(Some(silent.local_addr().unwrap())).unwrap().with_time_limit(Duration::from_millis(300));

    let started = Instant::now();
    let r = auth.authenticate(raw.as_bytes(), Some(&c), HOST).await;

    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert_eq!(
        r,
        AuthResults {
            spf: "temperror".into(),
            dkim: vec![dkim("sender.test", "sel", "temperror")],
            dmarc: "temperror".into(),
            verified: false
        }
    );
}

#[tokio::test]
async fn no_client_means_spf_none_and_bytes_that_are_no_message_give_no_results() {
    let dns = LoopbackDns::start().await;
    let auth = authenticator(&dns).await;
    let r = auth.authenticate(b"", None, HOST).await;
    assert_eq!(r, AuthResults::none());
    let r = auth.authenticate(b"\0\xff garbage without headers", None, HOST).await;
    assert_eq!(r, AuthResults::none());
    assert_eq!(
        authentication_results(HOST, &r, None, ""),
        "Authentication-Results: mx.herald.test; spf=none; dkim=none; dmarc=none\r\n"
    );
}

#[tokio::test]
async fn multiple_from_domains_are_exempt_from_dmarc() {
    let dns = LoopbackDns::start().await;
    dns.add_txt("_dmarc.sender.test", "v=DMARC1; p=reject");
    let msg =
        message("alice@sender.test").replace("From: Alice <alice@sender.test>", "From: a@sender.test, b@other.test");
    let raw = sign_ed25519(&dns, &msg, "sender.test", "sel");
    let r = authenticator(&dns).await.authenticate(raw.as_bytes(), None, HOST).await;
    assert_eq!(r.dkim_summary(), "pass");
    assert_eq!(r.dmarc, "none");
    assert!(!r.verified);
}

#[tokio::test]
async fn the_system_resolver_configuration_is_read() {
    if std::path::Path::new("/etc/resolv.conf").exists() {
        Authenticator::new(None).unwrap();
    }
}

#[test]
fn authenticate_is_send() {
    fn send<T: Send>(_: &T) {}
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let auth = Authenticator::new(Some(unused_loopback_addr())).unwrap();
        let fut = auth.authenticate(b"", None, HOST);
        send(&fut);
    });
}

/// Any bytes, and message-like bytes with (mostly broken) DKIM signatures, authenticate to
/// RFC 8601 words without a panic.
#[test]
fn any_message_authenticates_to_result_words_without_panicking() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let rt = tokio::runtime::Runtime::new().unwrap();
    let dns = rt.block_on(LoopbackDns::start());
    dns.add_txt("x.test", "v=spf1 ip4:127.0.0.1 -all");
    dns.add_txt("_dmarc.x.test", "v=DMARC1; p=reject; adkim=s");
    dns.add_txt("sel._domainkey.x.test", &Key::ed25519().record());
    dns.add_txt("bad._domainkey.x.test", "v=DKIM1; k=rsa; p=!!!");
    let auth = rt.block_on(async { Authenticator::with_dns_server(dns.addr(), Duration::from_secs(1), 0).unwrap() });
    let c = client([127, 0, 0, 1], "a@x.test");

    let tag = prop::sample::select(vec![
        "v=1",
        "v=2",
        "a=rsa-sha256",
        "a=ed25519-sha256",
        "a=rsa-sha1",
        "a=x",
        "d=x.test",
        "d=",
        "d=\u{e9}.test",
        "s=sel",
        "s=bad",
        "s=gone",
        "c=relaxed/relaxed",
        "c=simple",
        "c=x/y",
        "h=from:to",
        "h=",
        "bh=AAAA",
        "bh=!",
        "b=AAAA",
        "b=",
        "l=1",
        "l=x",
        "t=1",
        "x=1",
        "i=@x.test",
        "i=a@other.test",
        "q=dns/txt",
        "z=a:b",
    ]);
    let signature =
        prop::collection::vec(tag, 0..10).prop_map(|tags| format!("DKIM-Signature: {}\r\n", tags.join("; ")));
    let message =
        (prop::collection::vec(signature, 0..3), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(sigs, tail)| {
            let mut raw = sigs.concat().into_bytes();
            raw.extend_from_slice(b"From: a@x.test\r\nTo: b@y.test\r\n\r\n");
            raw.extend(tail);
            raw
        });
    let strategy = prop_oneof![prop::collection::vec(any::<u8>(), 0..512), message];
    let words = ["pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"];

    let mut runner = TestRunner::new(Config { cases: 256, ..Config::default() });
    runner
        .run(&strategy, |raw| {
            let r = rt.block_on(auth.authenticate(&raw, Some(&c), HOST));
            prop_assert!(words.contains(&r.spf.as_str()), "{r:?}");
            prop_assert!(words.contains(&r.dmarc.as_str()), "{r:?}");
            prop_assert!(r.dkim.iter().all(|d| words.contains(&d.result.as_str())), "{r:?}");
            prop_assert_eq!(r.verified, r.dmarc == "pass");
            let h = authentication_results(HOST, &r, Some(&c), "x.test");
            prop_assert!(h.ends_with("\r\n"));
            Ok(())
        })
        .unwrap();
}

#[tokio::test]
async fn only_the_first_signatures_are_verified() {
    let dns = LoopbackDns::start().await;
    let mut raw = message("alice@sender.test");
    for n in 0..(herald_mail::MAX_DKIM_SIGNATURES + 3) {
        raw = sign_ed25519(&dns, &raw, "sender.test", &format!("s{n}"));
    }
    let r = authenticator(&dns).await.authenticate(raw.as_bytes(), None, HOST).await;
    assert_eq!(r.dkim.len(), herald_mail::MAX_DKIM_SIGNATURES + 3, "every signature is listed");
    let checked = r.dkim.iter().filter(|d| d.result != "policy").count();
    assert_eq!(checked, herald_mail::MAX_DKIM_SIGNATURES);
    assert!(dns.total_queries() > 0);
    let looked_up = (0..herald_mail::MAX_DKIM_SIGNATURES + 3)
        .filter(|n| dns.queries(&format!("s{n}._domainkey.sender.test")) > 0)
        .count();
    assert!(looked_up <= herald_mail::MAX_DKIM_SIGNATURES, "no lookups for the signatures past the cap");
}
