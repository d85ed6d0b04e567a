//! A real SMTP client (lettre) against the server, and STARTTLS with a certificate made
//! here by rcgen.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{Client, TestServer, config};
use herald_smtp::{SmtpConfig, TlsError, load_tls};
use lettre::message::Mailbox;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use tokio_rustls::TlsConnector;

/// A self-signed certificate for `localhost`, written to PEM files.
struct TestCert {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    cert_pem: String,
}

fn make_cert() -> TestCert {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let cert_pem = generated.cert.pem();
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    TestCert { _dir: dir, cert, key, cert_pem }
}

fn transport(server: &TestServer, tls: Tls) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.addr.port())
        .hello_name(ClientId::Domain("lettre.test".into()))
        .tls(tls)
        .build()
}

fn message(to: &[&str]) -> Message {
    let mut builder =
        Message::builder().from("Sender <sender@remote.test>".parse::<Mailbox>().unwrap()).subject("Hello");
    for address in to {
        builder = builder.to(address.parse::<Mailbox>().unwrap());
    }
    builder.body("Hello from lettre.\r\n.a line with a dot\r\n".to_owned()).unwrap()
}

#[tokio::test]
async fn lettre_sends_a_message() {
    let server = TestServer::start(config()).await;
    let response = transport(&server, Tls::None).send(message(&["alice@example.com"])).await.unwrap();
    assert_eq!(response.code().to_string(), "250");
    let text: Vec<&str> = response.message().collect();
    assert_eq!(text, ["2.0.0 Ok: queued as Q1"]);
    let messages = server.inbound.messages();
    let (envelope, raw) = &messages[0];
    assert_eq!(envelope.helo, "lettre.test");
    assert_eq!(envelope.mail_from, "sender@remote.test");
    assert_eq!(envelope.recipients, ["alice@example.com"]);
    assert!(!envelope.tls);
    let raw = String::from_utf8(raw.clone()).unwrap();
    assert!(raw.contains("Subject: Hello\r\n"), "{raw}");
    assert!(raw.contains("\r\n.a line with a dot\r\n"), "{raw}");
    server.stop().await;
}

#[tokio::test]
async fn lettre_sends_to_several_recipients_and_sees_unknown_ones_refused() {
    let server = TestServer::start(config()).await;
    let transport = transport(&server, Tls::None);
    let to = ["alice@example.com", "bob@example.com", "user7@example.com"];
    transport.send(message(&to)).await.unwrap();
    let error = transport.send(message(&["alice@example.com", "nobody@example.com"])).await.unwrap_err();
    assert!(error.is_permanent(), "{error}");
    let messages = server.inbound.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].0.recipients, to);
}

#[tokio::test]
async fn lettre_uses_starttls_with_the_loaded_certificate() {
    let cert = make_cert();
    let server =
        TestServer::start(SmtpConfig { tls: Some(load_tls(&cert.cert, &cert.key).unwrap()), ..config() }).await;
    let parameters = TlsParameters::builder("localhost".to_owned())
        .certificate_store(CertificateStore::None)
        .add_root_certificate(Certificate::from_pem(cert.cert_pem.as_bytes()).unwrap())
        .build_rustls()
        .unwrap();
    transport(&server, Tls::Required(parameters)).send(message(&["alice@example.com"])).await.unwrap();
    let messages = server.inbound.messages();
    assert!(messages[0].0.tls);
    assert_eq!(messages[0].0.helo, "lettre.test");
}

fn tls_connector(cert_pem: &str) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    let certificate = rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes());
    roots.add(certificate.unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn starttls_resets_the_session_and_drops_pipelined_commands() {
    let cert = make_cert();
    let server =
        TestServer::start(SmtpConfig { tls: Some(load_tls(&cert.cert, &cert.key).unwrap()), ..config() }).await;
    let mut client = server.client().await;
    let reply = client.cmd("EHLO client.test").await;
    assert!(reply.lines.iter().any(|l| l == "250 STARTTLS"), "{reply:?}");
    client.cmd_expect("MAIL FROM:<before@tls.test>", "250").await;
    // Commands injected after STARTTLS in the same packet must not survive the handshake.
    client.send("STARTTLS\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<alice@example.com>\r\n").await;
    client.expect("220 2.0.0").await;
    let stream = client.into_inner();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = tls_connector(&cert.cert_pem).connect(name, stream).await.unwrap();
    let mut client = Client::new(tls);
    // State was reset: EHLO is required again, and no transaction survived.
    client.cmd_expect("MAIL FROM:<a@b.test>", "503 5.5.1").await;
    let reply = client.cmd("EHLO client.test").await;
    assert_eq!(reply.code, 250);
    assert!(!reply.lines.iter().any(|l| l.contains("STARTTLS")), "{reply:?}");
    client.cmd_expect("RCPT TO:<alice@example.com>", "503 5.5.1").await;
    client.cmd_expect("STARTTLS", "503 5.5.1").await;
    client.envelope("a@b.test", "alice@example.com").await;
    client.cmd_expect("DATA", "354").await;
    client.send("secret\r\n.\r\n").await;
    client.expect("250 2.0.0").await;
    client.cmd_expect("QUIT", "221").await;
    let messages = server.inbound.messages();
    assert_eq!(messages.len(), 1);
    assert!(messages[0].0.tls);
    assert_eq!(messages[0].0.mail_from, "a@b.test");
}

#[tokio::test]
async fn starttls_needs_ehlo_and_a_failed_handshake_only_ends_that_session() {
    let cert = make_cert();
    let server =
        TestServer::start(SmtpConfig { tls: Some(load_tls(&cert.cert, &cert.key).unwrap()), ..config() }).await;
    let mut client = server.client().await;
    client.cmd_expect("STARTTLS", "503 5.5.1").await;
    client.cmd_expect("EHLO client.test", "250").await;
    client.cmd_expect("STARTTLS", "220 2.0.0").await;
    // Not a TLS ClientHello: the handshake fails (rustls may send an alert) and the
    // connection is closed without an SMTP answer.
    client.send("EHLO plain.test\r\n").await;
    let rest = client.read_to_close().await;
    assert!(!rest.starts_with(b"250"), "{rest:?}");
    let mut other = server.ehlo_client().await;
    other.cmd_expect("NOOP", "250").await;
}

#[test]
fn load_tls_reports_bad_files() {
    let cert = make_cert();
    let missing = cert.cert.with_file_name("missing.pem");
    assert!(matches!(load_tls(&missing, &cert.key), Err(TlsError::Certificates { .. })));
    assert!(matches!(load_tls(&cert.key, &cert.key), Err(TlsError::NoCertificate(_))));
    assert!(matches!(load_tls(&cert.cert, &cert.cert), Err(TlsError::PrivateKey { .. })));
    let other = make_cert();
    assert!(matches!(load_tls(&cert.cert, &other.key), Err(TlsError::Config(_))));
    assert!(load_tls(&cert.cert, &cert.key).is_ok());
}
