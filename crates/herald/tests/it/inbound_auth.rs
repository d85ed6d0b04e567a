//! Inbound mail that the network vouches for: DKIM-signed mail verified against records on
//! the test's loopback DNS server, STARTTLS with a certificate made here, auth headers
//! re-signed on every attempt, and a message acknowledged with 250 surviving SIGKILL.

use crate::crash::start_binary_full;
use crate::inbound::{create_agent, raw_message, send, with_smtp};
use crate::support::*;
use base64::Engine as _;
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use reqwest::Method;
use serde_json::Value;
use std::time::Duration;

/// Publishes an ed25519 key at `sel._domainkey.<domain>` and returns `msg` signed with it.
fn dkim_sign(dns: &herald_testkit::LoopbackDns, msg: &str, domain: &str) -> String {
    let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
    let key = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
    let record =
        format!("v=DKIM1; k=ed25519; p={}", base64::engine::general_purpose::STANDARD.encode(key.public_key()));
    dns.add_txt(&format!("sel._domainkey.{domain}"), &record);
    let headers = ["From", "To", "Subject", "Message-ID", "Date"];
    let sig = DkimSigner::from_key(key).domain(domain).selector("sel").headers(headers).sign(msg.as_bytes()).unwrap();
    format!("{}{msg}", sig.to_header())
}

#[tokio::test]
async fn signed_aligned_mail_is_verified_and_unaligned_mail_is_not() {
    let app = spawn_app_with(with_smtp()).await;
    let rx = Receiver::start().await;
    create_agent(&app, "bot@agents.test", Some(rx.url("bot"))).await;
    app.dns.add_txt("sender.test", "v=spf1 ip4:127.0.0.1 -all");
    app.dns.add_txt("_dmarc.sender.test", "v=DMARC1; p=reject");
    let smtp = app.smtp_addr.unwrap();
    let aligned = dkim_sign(&app.dns, &raw_message("signed@sender.test", "bot@agents.test"), "sender.test");
    send(smtp, "alice@sender.test", &["bot@agents.test"], &aligned).await.unwrap();
    // Signed by another domain, sent from another domain's envelope: nothing aligns with From.
    let unaligned = dkim_sign(&app.dns, &raw_message("other@sender.test", "bot@agents.test"), "other.test");
    send(smtp, "bounce@other.test", &["bot@agents.test"], &unaligned).await.unwrap();
    let got = rx.wait_for("bot", 2).await;
    let by_id = |mid: &str| {
        got.iter()
            .find(|r| {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(r.json()["raw_message"].as_str().unwrap())
                    .unwrap();
                String::from_utf8_lossy(&raw).contains(mid)
            })
            .unwrap()
    };
    let ok = by_id("<signed@sender.test>");
    assert_eq!(ok.header("x-e2a-auth-verified"), "true");
    assert_eq!(ok.header("x-e2a-auth-domain-check"), "spf=pass; dkim=pass; dmarc=pass");
    let bad = by_id("<other@sender.test>");
    assert_eq!(bad.header("x-e2a-auth-verified"), "false", "a DKIM pass for another domain is not verification");
    assert_eq!(bad.header("x-e2a-auth-domain-check"), "spf=none; dkim=pass; dmarc=fail");
    let (_, list) = app.call(Method::GET, "/api/v1/agents/bot@agents.test/messages", None).await;
    let signed = list["items"].as_array().unwrap().iter().find(|m| m["message_id_header"] == "signed@sender.test");
    let auth = &signed.unwrap()["auth"];
    assert_eq!(auth["dkim"][0]["domain"], "sender.test");
    assert_eq!(auth["dkim"][0]["selector"], "sel");
    assert_eq!(auth["verified"], true);
}

#[tokio::test]
async fn starttls_carries_the_message_with_the_configured_certificate() {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let (c, k) = (cert.clone(), key.clone());
    let app = spawn_app_with(Options {
        tweak: Box::new(move |s| {
            s.smtp_listen = Some("127.0.0.1:0".parse().unwrap());
            s.smtp_tls_cert = Some(c);
            s.smtp_tls_key = Some(k);
        }),
        ..Default::default()
    })
    .await;
    create_agent(&app, "bot@agents.test", None).await;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    let tls = TlsParameters::builder("localhost".into())
        .add_root_certificate(Certificate::from_pem(generated.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(app.smtp_addr.unwrap().port())
        .tls(Tls::Required(tls))
        .build();
    let envelope = lettre::address::Envelope::new(
        Some("alice@sender.test".parse().unwrap()),
        vec!["bot@agents.test".parse().unwrap()],
    )
    .unwrap();
    let raw = raw_message("tls@sender.test", "bot@agents.test");
    let r = lettre::AsyncTransport::send_raw(&transport, &envelope, raw.as_bytes()).await.unwrap();
    assert_eq!(r.code().to_string(), "250");
    let (_, list) = app.call(Method::GET, "/api/v1/agents/bot@agents.test/messages", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn every_attempt_is_re_signed_with_a_fresh_timestamp_and_keeps_reply_to() {
    let app = spawn_app_with(Options { manual_clock: true, ..with_smtp() }).await;
    let rx = Receiver::start().await;
    rx.script("bot", vec![Reply::status(500)]);
    create_agent(&app, "bot@agents.test", Some(rx.url("bot"))).await;
    send(app.smtp_addr.unwrap(), "alice@sender.test", &["bot@agents.test"], &raw_message("r@x", "bot@agents.test"))
        .await
        .unwrap();
    rx.wait_for("bot", 1).await;
    // The first attempt failed: the retry is due a minute later.
    eventually("the failed attempt is recorded", || async {
        let (_, ds) = app.call(Method::GET, "/api/v1/agents/bot@agents.test/deliveries", None).await;
        (ds["items"][0]["attempts"] == 1).then_some(())
    })
    .await;
    app.advance(Duration::from_secs(61));
    let got = rx.wait_for("bot", 2).await;
    let (a, b) = (&got[0], &got[1]);
    assert_ne!(a.header("x-e2a-auth-timestamp"), b.header("x-e2a-auth-timestamp"));
    assert_ne!(a.header("x-e2a-auth-signature"), b.header("x-e2a-auth-signature"));
    assert_eq!(b.header("x-e2a-attempt"), "2");
    let (pa, pb): (Value, Value) = (a.json(), b.json());
    assert_eq!(pb["reply_to"], pa["reply_to"]);
    assert_eq!(pb["reply_to"][0], "replies@sender.test", "reply_to kept on the retry");
    assert_eq!(pb["auth_headers"]["X-E2A-Auth-Timestamp"], b.header("x-e2a-auth-timestamp"));
}

#[tokio::test]
async fn a_message_answered_250_survives_sigkill_and_reaches_the_agent_after_restart() {
    let rx = Receiver::start().await;
    rx.always("bot", Reply::status(200).gated());
    let dir = tempfile::tempdir().unwrap();
    let dns = herald_testkit::LoopbackDns::start().await;
    let dns_addr = dns.addr().to_string();
    let env = [
        ("HERALD_SMTP_LISTEN", "127.0.0.1:0"),
        ("HERALD_SMTP_DOMAINS", "agents.test"),
        ("HERALD_DNS_SERVER", dns_addr.as_str()),
    ];
    let (mut child, base, smtp) = start_with_smtp(dir.path(), &env).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/api/v1/agents"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"address": "bot@agents.test", "webhook_url": rx.url("bot"), "max_in_flight": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // The first message's attempt is held by the receiver: the second is stored, not attempted.
    let first = raw_message("k1@sender.test", "bot@agents.test");
    let second = raw_message("k2@sender.test", "bot@agents.test");
    send(smtp, "a@sender.test", &["bot@agents.test"], &first).await.unwrap();
    rx.wait_for("bot", 1).await;
    let answer = send(smtp, "a@sender.test", &["bot@agents.test"], &second).await.unwrap();
    assert!(answer.starts_with("250"), "{answer}");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    rx.open_gate();
    let (_child, _, _) = start_with_smtp(dir.path(), &env).await;
    let got = eventually("both messages reach the agent after the restart", || async {
        let got = rx.received("bot");
        let has = |mid: &str| {
            got.iter().any(|r| {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(r.json()["raw_message"].as_str().unwrap())
                    .unwrap();
                String::from_utf8_lossy(&raw).contains(mid)
            })
        };
        (has("<k1@sender.test>") && has("<k2@sender.test>")).then_some(got)
    })
    .await;
    let raws: Vec<String> = got
        .iter()
        .map(|r| {
            let b64 = r.json()["raw_message"].as_str().unwrap().to_owned();
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap()
        })
        .collect();
    let k2 = raws.iter().find(|r| r.contains("<k2@sender.test>")).unwrap();
    assert!(k2.trim_end().ends_with(second.trim_end()), "exactly as received, after the fields Herald adds: {k2}");
}

/// Starts the binary with SMTP on; returns the child, the API base URL and the SMTP address.
async fn start_with_smtp(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (tokio::process::Child, String, std::net::SocketAddr) {
    let (child, base, smtp) = start_binary_full(dir, env).await;
    (child, base, smtp.expect("the binary printed its SMTP address"))
}
