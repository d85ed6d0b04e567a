//! Hostile or broken input, limits, timeouts and shutdown (raw TCP scripts).

mod common;

use std::time::Duration;

use common::{Client, DEADLINE, Recorder, TestServer, config};
use herald_smtp::SmtpConfig;

#[tokio::test]
async fn garbage_gets_clear_errors_and_the_session_goes_on() {
    let server = TestServer::start(config()).await;
    let mut client = server.client().await;
    client.send(b"\xff\xfe\x80garbage\r\n").await;
    assert!(client.reply().await.code >= 500);
    client.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n").await;
    assert!(client.reply().await.code >= 500);
    client.cmd_expect("EHLO client.test", "250").await;
    client.cmd_expect("NOOP", "250 2.0.0").await;
}

#[tokio::test]
async fn nul_bare_lf_and_bare_cr_in_command_lines() {
    let server = TestServer::start(config()).await;
    let mut client = server.client().await;
    client.send(b"NOOP\0\r\n").await;
    client.expect("500 5.5.2").await;
    client.send("NOOP\n").await;
    client.expect("500 5.5.2").await;
    client.send("\n").await;
    client.expect("500 5.5.2").await;
    client.send("NOOP\rQUIT\r\n").await;
    client.expect("500 5.5.2").await;
    client.cmd_expect("NOOP", "250 2.0.0").await;
}

#[tokio::test]
async fn over_long_command_lines() {
    let server = TestServer::start(config()).await;
    let mut client = server.ehlo_client().await;
    // Longer than 4096 bytes, arriving in one piece with its CRLF.
    client.send(format!("MAIL FROM:<{}@b.test>\r\nNOOP\r\n", "a".repeat(5000))).await;
    client.expect("500 5.5.6").await;
    client.expect("250 2.0.0").await;
    // Longer than 4096 bytes in several writes: one answer, then the line is skipped.
    client.send("NOOP ".to_owned() + &"x".repeat(3000)).await;
    client.send("y".repeat(3000)).await;
    client.expect("500 5.5.6").await;
    client.send("z".repeat(20_000) + "\r\nNOOP\r\n").await;
    client.expect("250 2.0.0").await;
    // 4096 bytes with the CRLF is still accepted.
    client.cmd_expect(&format!("NOOP {}", "n".repeat(4096 - 7)), "250 2.0.0").await;
}

#[tokio::test]
async fn bare_lf_in_data_is_refused_and_nothing_is_accepted() {
    let server = TestServer::start(config()).await;
    let mut client = server.ehlo_client().await;
    // The SMTP-smuggling shape: `<LF>.<CRLF>` must not end the message, and a message
    // holding it is refused.
    client.envelope("a@b.test", "alice@example.com").await;
    client.cmd_expect("DATA", "354").await;
    client
        .send(
            "Subject: one\r\n\r\nbody\n.\r\nMAIL FROM:<evil@x.test>\r\n\
             RCPT TO:<bob@example.com>\r\nDATA\r\n\r\nsmuggled\r\n.\r\n",
        )
        .await;
    client.expect("554 5.6.11").await;
    // A leading bare LF too.
    client.envelope("a@b.test", "alice@example.com").await;
    client.cmd_expect("DATA", "354").await;
    client.send("\nbody\r\n.\r\n").await;
    client.expect("554 5.6.11").await;
    client.cmd_expect("NOOP", "250").await;
    assert!(server.inbound.messages().is_empty());
}

#[tokio::test]
async fn twenty_errors_close_the_session() {
    let server = TestServer::start(config()).await;
    let mut client = server.client().await;
    client.send("XYZZY\r\n".repeat(19)).await;
    for _ in 0..19 {
        client.expect("500 5.5.2").await;
    }
    client.cmd_expect("NOOP", "250").await;
    client.cmd_expect("XYZZY", "500 5.5.2").await;
    client.expect("421 4.7.0").await;
    client.expect_closed().await;
}

#[tokio::test]
async fn idle_timeout_closes_the_session() {
    let server = TestServer::start(SmtpConfig { idle_timeout: Duration::from_millis(200), ..config() }).await;
    let mut client = server.client().await;
    client.expect("421 4.4.2").await;
    client.expect_closed().await;
    // Also in the middle of a message.
    let mut client = server.ehlo_client().await;
    client.envelope("a@b.test", "alice@example.com").await;
    client.cmd_expect("DATA", "354").await;
    client.send("partial\r\n").await;
    client.expect("421 4.4.2").await;
    client.expect_closed().await;
    assert!(server.inbound.messages().is_empty());
}

#[tokio::test]
async fn a_busy_session_still_ends_at_its_deadline() {
    let config = SmtpConfig { max_session: Duration::from_millis(300), ..config() };
    let server = TestServer::start(config).await;
    let mut client = server.ehlo_client().await;
    // Busy (each NOOP well within the idle timeout) until the session's time is up.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let last = loop {
        client.send("NOOP\r\n").await;
        let reply = client.reply().await;
        if reply.code != 250 {
            break reply;
        }
        assert!(tokio::time::Instant::now() < deadline, "the session ends");
        tokio::task::yield_now().await;
    };
    assert!(last.last().starts_with("421 4.4.2"), "{last:?}");
    client.expect_closed().await;
}

#[tokio::test]
async fn one_address_cannot_take_every_slot() {
    let server = TestServer::start(SmtpConfig { max_connections_per_ip: 2, ..config() }).await;
    let mut first = server.client().await;
    let _second = server.client().await;
    let mut third = Client::connect(server.addr).await;
    third.expect("421 4.7.0").await;
    third.expect_closed().await;
    first.cmd_expect("QUIT", "221").await;
    first.expect_closed().await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let mut next = Client::connect(server.addr).await;
        let reply = next.reply().await;
        if reply.code == 220 {
            break;
        }
        assert!(reply.last().starts_with("421 4.7.0"), "{reply:?}");
        assert!(tokio::time::Instant::now() < deadline, "the address's slot frees up");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused() {
    let server = TestServer::start(SmtpConfig { max_connections: 2, ..config() }).await;
    let mut first = server.client().await;
    let mut second = server.client().await;
    let mut third = Client::connect(server.addr).await;
    third.expect("421 4.3.2").await;
    third.expect_closed().await;
    // The first two still work.
    first.cmd_expect("NOOP", "250").await;
    second.cmd_expect("NOOP", "250").await;
    // Once one leaves, a new connection gets in (the slot frees when its session ends).
    first.cmd_expect("QUIT", "221").await;
    first.expect_closed().await;
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let mut next = Client::connect(server.addr).await;
        let reply = next.reply().await;
        if reply.code == 220 {
            next.cmd_expect("NOOP", "250").await;
            break;
        }
        assert!(reply.last().starts_with("421 4.3.2"), "{reply:?}");
        assert!(tokio::time::Instant::now() < deadline, "a slot frees up");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn shutdown_closes_waiting_sessions_and_serve_returns() {
    let server = TestServer::start(config()).await;
    let mut idle = server.ehlo_client().await;
    let mut fresh = server.client().await;
    let addr = server.addr;
    server.shutdown.cancel();
    idle.expect("421 4.3.2 shutting down").await;
    idle.expect_closed().await;
    fresh.expect("421 4.3.2 shutting down").await;
    fresh.expect_closed().await;
    tokio::time::timeout(DEADLINE, server.handle).await.expect("serve returns").unwrap();
    // The listener is closed.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutdown_lets_a_message_being_accepted_finish() {
    let server = TestServer::start_with(config(), Recorder::gated()).await;
    let mut client = server.ehlo_client().await;
    client.envelope("a@b.test", "alice@example.com").await;
    client.cmd_expect("DATA", "354").await;
    client.send("hello\r\n.\r\n").await;
    tokio::time::timeout(DEADLINE, server.inbound.entered.notified()).await.expect("accept_message is called");
    server.shutdown.cancel();
    server.inbound.release();
    client.expect("250 2.0.0 Ok: queued as Q1").await;
    client.expect("421 4.3.2 shutting down").await;
    client.expect_closed().await;
    tokio::time::timeout(DEADLINE, server.handle).await.expect("serve returns").unwrap();
    assert_eq!(server.inbound.messages().len(), 1);
}

#[tokio::test]
async fn a_broken_session_does_not_affect_another() {
    let server = TestServer::start(config()).await;
    let mut good = server.ehlo_client().await;
    good.envelope("a@b.test", "alice@example.com").await;
    let mut bad = server.client().await;
    bad.send(b"\0\0\0\xff\n\r\n".repeat(1000)).await;
    drop(bad);
    good.cmd_expect("DATA", "354").await;
    good.send("fine\r\n.\r\n").await;
    good.expect("250 2.0.0").await;
    server.stop().await;
}
