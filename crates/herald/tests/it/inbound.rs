//! Inbound mail end to end: agents through the API, messages over SMTP (lettre, a real
//! client, on loopback) and through the API, delivered to the agent's own endpoint as the
//! seed's Payload and to subscribed webhooks as `email.received`.

use crate::support::*;
use base64::Engine as _;
use herald_domain::SigningSecret;
use herald_domain::inbound::{auth_signature, body_hash};
use lettre::address::Envelope;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use reqwest::Method;
use serde_json::{Value, json};
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

pub fn with_smtp() -> Options {
    Options { tweak: Box::new(|s| s.smtp_listen = Some("127.0.0.1:0".parse().unwrap())), ..Default::default() }
}

pub async fn create_agent(app: &TestApp, address: &str, url: Option<String>) -> Value {
    let (s, v) = app.call(Method::POST, "/api/v1/agents", Some(json!({"address": address, "webhook_url": url}))).await;
    assert_eq!(s, 201, "{v}");
    v
}

pub fn raw_message(message_id: &str, to: &str) -> String {
    format!(
        "From: Alice <alice@sender.test>\r\nTo: {to}\r\nReply-To: replies@sender.test\r\n\
         Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <{message_id}>\r\n\
         Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\nHello agent.\r\n"
    )
}

pub fn transport(addr: SocketAddr) -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(addr.port())
        .hello_name(ClientId::Domain("client.sender.test".into()))
        .build()
}

pub async fn send(addr: SocketAddr, from: &str, to: &[&str], raw: &str) -> Result<String, String> {
    let envelope = Envelope::new(Some(from.parse().unwrap()), to.iter().map(|t| t.parse().unwrap()).collect()).unwrap();
    transport(addr)
        .send_raw(&envelope, raw.as_bytes())
        .await
        .map(|r| format!("{} {}", r.code(), r.message().collect::<Vec<_>>().join(" ")))
        .map_err(|e| e.to_string())
}

/// One SMTP dialogue over a raw socket: each line sent, the reply's last line returned.
pub async fn dialogue(addr: SocketAddr, lines: &[&str]) -> Vec<String> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut replies = vec![read_reply(&mut r).await];
    for line in lines {
        w.write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
        replies.push(read_reply(&mut r).await);
    }
    replies
}

async fn read_reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.unwrap() == 0 {
            return String::new();
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return line.trim_end().to_owned();
        }
    }
}

async fn agents_are_managed_through_the_api(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let rx = Receiver::start().await;
    let bot = create_agent(&app, " Bot@Agents.TEST ", Some(rx.url("bot"))).await;
    assert_eq!(bot["address"], "bot@agents.test", "stored lowercased");
    assert!(bot["signing_secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(bot["max_in_flight"], 1);
    let (s, v) = app.call(Method::POST, "/api/v1/agents", Some(json!({"address": "x@elsewhere.test"}))).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("agents.test"), "names the accepted domains: {v}");
    let (s, _) = app.call(Method::POST, "/api/v1/agents", Some(json!({"address": "not an address"}))).await;
    assert_eq!(s, 400);
    let (s, v) = app.call(Method::POST, "/api/v1/agents", Some(json!({"address": "BOT@agents.test"}))).await;
    assert_eq!(s, 409, "unique: {v}");
    let bad = json!({"address": "x@agents.test", "webhook_url": "ftp://127.0.0.1/x"});
    assert_eq!(app.call(Method::POST, "/api/v1/agents", Some(bad)).await.0, 400, "the URL policy applies");
    for n in 0..3 {
        create_agent(&app, &format!("a{n}@agents.test"), None).await;
    }
    let (_, page) = app.call(Method::GET, "/api/v1/agents?limit=2", None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = app.call(Method::GET, &format!("/api/v1/agents?limit=2&cursor={cursor}"), None).await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 2, "4 agents in 2 pages: {rest}");
    let (s, got) = app.call(Method::GET, "/api/v1/agents/BOT@agents.test", None).await;
    assert_eq!((s, got["webhook_url"].as_str()), (200, Some(rx.url("bot").as_str())));
    assert!(got.get("signing_secret").is_none(), "the secret is shown only on create and rotate");
    let patch = json!({"name": "Bot", "webhook_url": null, "max_in_flight": 3});
    let (s, p) = app.call(Method::PATCH, "/api/v1/agents/bot@agents.test", Some(patch)).await;
    assert_eq!(
        (s, p["name"].as_str(), p.get("webhook_url"), p["max_in_flight"].as_u64()),
        (200, Some("Bot"), None, Some(3))
    );
    let bad = json!({"webhook_url": "http://user:pw@127.0.0.1/x"});
    assert_eq!(app.call(Method::PATCH, "/api/v1/agents/bot@agents.test", Some(bad)).await.0, 400);
    let (s, r) = app.call(Method::POST, "/api/v1/agents/bot@agents.test/rotate-secret", None).await;
    assert_eq!(s, 200, "{r}");
    assert!(r["signing_secret"].as_str().unwrap().starts_with("whsec_"));
    let other = herald_domain::ApiKey::generate();
    app.store.create_account("other", &other.hash(), time::OffsetDateTime::now_utc()).await.unwrap();
    let (s, _) = app.call_as(other.expose(), Method::GET, "/api/v1/agents/bot@agents.test", None).await;
    assert_eq!(s, 404, "another account's agent is not found");
    let (_, theirs) = app.call_as(other.expose(), Method::GET, "/api/v1/agents", None).await;
    assert!(theirs["items"].as_array().unwrap().is_empty());
    let (_, hooks) = app.call(Method::GET, "/api/v1/webhooks", None).await;
    assert!(hooks["items"].as_array().unwrap().is_empty(), "an agent's endpoint is not a webhook");
    assert_eq!(app.call(Method::DELETE, "/api/v1/agents/bot@agents.test", None).await.0, 204);
    assert_eq!(app.call(Method::GET, "/api/v1/agents/bot@agents.test", None).await.0, 404);
}

async fn mail_over_smtp_reaches_the_agent_and_the_subscribers(backend: Backend) {
    let Some(app) = spawn_on(backend, with_smtp()).await else { return };
    let smtp = app.smtp_addr.unwrap();
    let rx = Receiver::start().await;
    let bot = create_agent(&app, "bot@agents.test", Some(rx.url("bot"))).await;
    let secret = SigningSecret::from_stored(bot["signing_secret"].as_str().unwrap().to_owned());
    app.create_webhook(json!({"url": rx.url("hook"), "events": ["email.received"]})).await;
    let raw = raw_message("m1@sender.test", "Bot@Agents.Test");
    let answer = send(smtp, "alice@sender.test", &["BOT@agents.test"], &raw).await.unwrap();
    assert!(answer.starts_with("250"), "{answer}");
    let got = rx.wait_for("bot", 1).await.remove(0);
    let p = got.json();
    assert_eq!(p["recipient"], "bot@agents.test");
    assert_eq!(p["from"], "alice@sender.test");
    assert_eq!(p["reply_to"], json!(["replies@sender.test"]));
    assert!(p["message_id"].as_str().unwrap().starts_with("msg_"));
    assert!(p["conversation_id"].as_str().unwrap().starts_with("cnv_"));
    let stored = base64::engine::general_purpose::STANDARD.decode(p["raw_message"].as_str().unwrap()).unwrap();
    let stored = String::from_utf8(stored).unwrap();
    assert!(stored.starts_with("Received: from client.sender.test ([127.0.0.1])"), "{stored}");
    assert!(stored.contains("\r\nAuthentication-Results: mx.herald.test;"), "{stored}");
    // (lettre ends the data with one more CRLF of its own.)
    assert!(
        stored.trim_end().ends_with(raw.trim_end()),
        "the received bytes are kept after the added header: {stored:?}"
    );
    // The seed's auth headers: in the body and as HTTP headers, signed with the agent's secret.
    let h = |n: &str| got.header(n).to_owned();
    assert_eq!(h("x-e2a-auth-verified"), "false", "nothing authenticated this message");
    assert_eq!(h("x-e2a-auth-sender"), "alice@sender.test");
    assert_eq!(h("x-e2a-auth-entity-type"), "human");
    assert_eq!(h("x-e2a-auth-body-hash"), body_hash(stored.as_bytes()));
    let signed = [
        h("x-e2a-auth-verified"),
        h("x-e2a-auth-sender"),
        h("x-e2a-auth-entity-type"),
        h("x-e2a-auth-domain-check"),
        String::new(),
        h("x-e2a-auth-timestamp"),
        h("x-e2a-auth-message-id"),
        h("x-e2a-auth-body-hash"),
    ]
    .join("\n");
    assert_eq!(h("x-e2a-auth-signature"), auth_signature(&secret, &signed));
    assert_eq!(p["auth_headers"]["X-E2A-Auth-Signature"], h("x-e2a-auth-signature"));
    assert!(herald_domain::signing::verify_e2a(&h("x-e2a-signature"), &got.body, &secret));
    // The subscriber gets the email.received event.
    let ev = rx.wait_for("hook", 1).await.remove(0).json();
    assert_eq!(ev["type"], "email.received");
    assert_eq!(ev["data"]["agent"], "bot@agents.test");
    assert_eq!(ev["data"]["subject"], "Grüße");
    assert_eq!(ev["data"]["message_id"], p["message_id"]);
    // The message through the API.
    let (_, list) = app.call(Method::GET, "/api/v1/agents/bot@agents.test/messages", None).await;
    let m = &list["items"][0];
    assert_eq!((m["subject"].as_str(), m["message_id_header"].as_str()), (Some("Grüße"), Some("m1@sender.test")));
    assert_eq!(m["auth"]["spf"], "none", "no SPF record for sender.test on this test's DNS");
    let raw_back = app
        .http
        .get(app.url(&format!("/api/v1/messages/{}/raw", m["id"].as_str().unwrap())))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(raw_back.headers()["content-type"], "message/rfc822");
    assert_eq!(raw_back.text().await.unwrap(), stored);
    let d = eventually("the agent's delivery is recorded as delivered", || async {
        let (_, ds) = app.call(Method::GET, "/api/v1/agents/bot@agents.test/deliveries?status=delivered", None).await;
        ds["items"].as_array().and_then(|a| a.first().cloned())
    })
    .await;
    assert_eq!((d["agent"].as_str(), d.get("webhook_id")), (Some("bot@agents.test"), None));
    // An MTA retry of the same message: 250 again, nothing new.
    assert!(send(smtp, "alice@sender.test", &["bot@agents.test"], &raw).await.unwrap().starts_with("250"));
    let (_, list) = app.call(Method::GET, "/api/v1/agents/bot@agents.test/messages", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "deduplicated");
    let (_, ds) = app.call(Method::GET, "/api/v1/agents/bot@agents.test/deliveries", None).await;
    assert_eq!(ds["items"].as_array().unwrap().len(), 1);
}

async fn a_reply_joins_the_conversation_it_answers(backend: Backend) {
    let Some(app) = spawn_on(backend, with_smtp()).await else { return };
    let smtp = app.smtp_addr.unwrap();
    create_agent(&app, "bot@agents.test", None).await;
    send(smtp, "alice@sender.test", &["bot@agents.test"], &raw_message("first@x", "bot@agents.test")).await.unwrap();
    let reply = raw_message("second@x", "bot@agents.test")
        .replace("Message-ID: <second@x>", "Message-ID: <second@x>\r\nIn-Reply-To: <first@x>");
    send(smtp, "alice@sender.test", &["bot@agents.test"], &reply).await.unwrap();
    // Our domain in MAIL FROM, but SPF does not pass for it: the header is not trusted.
    let spoof = raw_message("third@x", "bot@agents.test")
        .replace("Message-ID: <third@x>", "Message-ID: <third@x>\r\nX-E2A-Conversation-Id: cnv_spoofed");
    send(smtp, "forged@agents.test", &["bot@agents.test"], &spoof).await.unwrap();
    app.dns.add_txt("agents.test", "v=spf1 ip4:127.0.0.1 -all");
    let own = raw_message("fourth@x", "bot@agents.test")
        .replace("Message-ID: <fourth@x>", "Message-ID: <fourth@x>\r\nX-E2A-Conversation-Id: cnv_ours");
    send(smtp, "other@agents.test", &["bot@agents.test"], &own).await.unwrap();
    let (_, list) = app.call(Method::GET, "/api/v1/agents/bot@agents.test/messages", None).await;
    let convs: Vec<&str> =
        list["items"].as_array().unwrap().iter().map(|m| m["conversation_id"].as_str().unwrap()).collect();
    // Newest first: fourth, third, second, first.
    assert_eq!(convs[0], "cnv_ours", "our own domain's header is trusted when SPF passes for it");
    assert_ne!(convs[1], "cnv_spoofed", "a forged MAIL FROM of our domain is not");
    assert_eq!(convs[2], convs[3], "a reply joins the conversation of the message it answers");
    assert_ne!(convs[1], convs[3]);
}

async fn unknown_recipients_are_refused_and_known_ones_found_in_any_case(backend: Backend) {
    let Some(app) = spawn_on(backend, with_smtp()).await else { return };
    create_agent(&app, "bot@agents.test", None).await;
    let r = dialogue(
        app.smtp_addr.unwrap(),
        &[
            "EHLO client.test",
            "MAIL FROM:<a@sender.test>",
            "RCPT TO:<BoT@AGENTS.test>",
            "RCPT TO:<nobody@agents.test>",
            "RCPT TO:<bot@elsewhere.test>",
            "QUIT",
        ],
    )
    .await;
    assert!(r[0].starts_with("220 mx.herald.test"), "{r:?}");
    assert!(r[3].starts_with("250"), "{r:?}");
    assert!(r[4].starts_with("550 5.1.1"), "{r:?}");
    assert!(r[5].starts_with("550 5.1.1"), "{r:?}");
}

async fn a_message_injected_through_the_api_takes_the_same_path(backend: Backend) {
    let Some(app) = spawn_on(backend, Options::default()).await else { return };
    let rx = Receiver::start().await;
    create_agent(&app, "bot@agents.test", Some(rx.url("bot"))).await;
    let inject = |body: &'static str, ct: &'static str, q: &'static str| {
        app.http
            .post(app.url(&format!("/api/v1/agents/bot@agents.test/messages{q}")))
            .bearer_auth(KEY)
            .header("content-type", ct)
            .body(body)
    };
    let r = inject("Subject: x\r\n\r\nhi", "application/json", "").send().await.unwrap();
    assert_eq!(r.status(), 415);
    let raw: &'static str =
        "From: a@sender.test\r\nTo: bot@agents.test\r\nMessage-ID: <api1@x>\r\nSubject: API\r\n\r\nHi\r\n";
    let r = inject(raw, "message/rfc822", "?wait=true").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["success"].as_bool(), v["status_code"].as_u64()), (Some(true), Some(200)), "{v}");
    let got = rx.received("bot");
    assert_eq!(got.len(), 1);
    assert!(got[0].json()["auth_headers"]["X-E2A-Auth-Domain-Check"].as_str().unwrap().starts_with("spf=none"));
    let r = inject(raw, "message/rfc822", "").send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["duplicate"], true, "{v}");
    let r = app
        .http
        .post(app.url("/api/v1/agents/nobody@agents.test/messages"))
        .bearer_auth(KEY)
        .header("content-type", "message/rfc822")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = inject("", "message/rfc822", "").send().await.unwrap();
    assert_eq!(r.status(), 400, "an empty body is not a message");
}

crate::on_both_stores!(
    agents_are_managed_through_the_api,
    mail_over_smtp_reaches_the_agent_and_the_subscribers,
    a_reply_joins_the_conversation_it_answers,
    unknown_recipients_are_refused_and_known_ones_found_in_any_case,
    a_message_injected_through_the_api_takes_the_same_path,
);

#[tokio::test]
async fn a_verdict_forged_in_our_name_is_removed_and_a_trace_field_added() {
    let app = spawn_app_with(with_smtp()).await;
    create_agent(&app, "bot@agents.test", None).await;
    let forged = format!(
        "Authentication-Results: MX.HERALD.TEST; dmarc=pass header.from=sender.test\r\n\
         Authentication-Results: relay.example; spf=pass\r\n{}",
        raw_message("forged@sender.test", "bot@agents.test")
    );
    send(app.smtp_addr.unwrap(), "alice@sender.test", &["bot@agents.test"], &forged).await.unwrap();
    let (_, list) = app.call(Method::GET, "/api/v1/agents/bot@agents.test/messages", None).await;
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    let raw = app
        .http
        .get(app.url(&format!("/api/v1/messages/{id}/raw")))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        raw.starts_with("Received: from client.sender.test ([127.0.0.1])\r\n\tby mx.herald.test with ESMTP;"),
        "{raw}"
    );
    assert_eq!(raw.matches("Authentication-Results: mx.herald.test;").count(), 1, "only ours: {raw}");
    assert!(!raw.contains("MX.HERALD.TEST; dmarc=pass"), "the forged verdict is gone: {raw}");
    assert!(raw.contains("Authentication-Results: relay.example; spf=pass"), "others' verdicts are kept");
    assert_eq!(list["items"][0]["auth"]["verified"], false);
    // A second From (a replayed signed message given another visible sender) is refused.
    let two_from = format!("From: ceo@bank.test\r\n{}", raw_message("two@sender.test", "bot@agents.test"));
    let err = send(app.smtp_addr.unwrap(), "alice@sender.test", &["bot@agents.test"], &two_from).await.unwrap_err();
    assert!(err.contains("554") || err.contains("more than one From"), "{err}");
}

#[tokio::test]
async fn an_agent_endpoint_that_answers_410_is_disabled_until_its_url_is_set_again() {
    let app = spawn_app_with(Options::default()).await;
    let rx = Receiver::start().await;
    rx.script("gone", vec![Reply::status(410)]);
    create_agent(&app, "bot@agents.test", Some(rx.url("gone"))).await;
    let inject = |mid: &str| {
        app.http
            .post(app.url("/api/v1/agents/bot@agents.test/messages"))
            .bearer_auth(KEY)
            .header("content-type", "message/rfc822")
            .body(raw_message(mid, "bot@agents.test"))
            .send()
    };
    assert_eq!(inject("g1@x").await.unwrap().status(), 202);
    let agent = eventually("the endpoint is disabled", || async {
        let (_, a) = app.call(Method::GET, "/api/v1/agents/bot@agents.test", None).await;
        (a["enabled"] == false).then_some(a)
    })
    .await;
    assert_eq!(agent["disabled_reason"], "gone");
    assert_eq!(inject("g2@x").await.unwrap().status(), 202, "mail is still accepted and kept");
    let patch = serde_json::json!({"webhook_url": rx.url("gone")});
    let (_, a) = app.call(Method::PATCH, "/api/v1/agents/bot@agents.test", Some(patch)).await;
    assert_eq!((a["enabled"].as_bool(), a.get("disabled_reason")), (Some(true), None));
    rx.wait_for("gone", 2).await;
}

#[tokio::test]
async fn injection_through_the_api_is_rate_limited_per_account() {
    let app = spawn_app_with(Options { tweak: Box::new(|s| s.injects_per_minute = 2), ..Default::default() }).await;
    create_agent(&app, "bot@agents.test", None).await;
    let mut statuses = Vec::new();
    for n in 0..3 {
        let r = app
            .http
            .post(app.url("/api/v1/agents/bot@agents.test/messages"))
            .bearer_auth(KEY)
            .header("content-type", "message/rfc822")
            .body(raw_message(&format!("rl{n}@x"), "bot@agents.test"))
            .send()
            .await
            .unwrap();
        statuses.push((r.status().as_u16(), r.headers().get("retry-after").is_some()));
    }
    assert_eq!(statuses, vec![(202, false), (202, false), (429, true)]);
    let (_, list) = app.call(Method::GET, "/api/v1/agents/bot@agents.test/messages", None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "the refused one stored nothing");
}
