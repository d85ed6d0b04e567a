//! The SMTP dialogue, command by command, with exact answers (raw TCP scripts).

mod common;

use common::{AcceptMode, TestServer, config};
use herald_smtp::SmtpConfig;

#[tokio::test]
async fn greeting_and_ehlo_capabilities() {
    let server = TestServer::start(SmtpConfig { max_message_size: 12345, ..config() }).await;
    let mut client = server.client().await;
    let reply = client.cmd("EHLO client.test").await;
    assert_eq!(reply.code, 250);
    assert!(reply.lines[0].starts_with("250-mx.test"), "{reply:?}");
    let capabilities: Vec<&str> = reply.lines[1..].iter().map(|l| &l[4..]).collect();
    assert_eq!(capabilities, ["PIPELINING", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "CHUNKING", "SIZE 12345"]);
    assert!(reply.last().starts_with("250 "), "{reply:?}");
    client.cmd_expect("QUIT", "221 2.0.0").await;
    client.expect_closed().await;
}

#[tokio::test]
async fn helo_works_and_a_message_goes_through() {
    let server = TestServer::start(config()).await;
    let mut client = server.client().await;
    client.cmd_expect("HELO old.client", "250 mx.test").await;
    client.envelope("sender@remote.test", "alice@example.com").await;
    client.cmd_expect("DATA", "354 ").await;
    client.send("Subject: hi\r\n\r\nline one\r\n..leading dot\r\n.\r\n").await;
    client.expect("250 2.0.0 Ok: queued as Q1").await;
    let messages = server.inbound.messages();
    assert_eq!(messages.len(), 1);
    let (envelope, raw) = &messages[0];
    assert_eq!(envelope.helo, "old.client");
    assert_eq!(envelope.mail_from, "sender@remote.test");
    assert_eq!(envelope.recipients, ["alice@example.com"]);
    assert!(!envelope.tls);
    assert_eq!(envelope.client_ip.to_string(), "127.0.0.1");
    assert_eq!(raw, b"Subject: hi\r\n\r\nline one\r\n.leading dot\r\n");
}

#[tokio::test]
async fn null_sender_and_several_recipients_in_order() {
    let server = TestServer::start(config()).await;
    let mut client = server.ehlo_client().await;
    client.cmd_expect("MAIL FROM:<>", "250 2.1.0").await;
    client.cmd_expect("RCPT TO:<Bob@Example.com>", "250 2.1.5").await;
    client.cmd_expect("RCPT TO:<nobody@example.com>", "550 5.1.1").await;
    client.cmd_expect("RCPT TO:<alice@example.com>", "250 2.1.5").await;
    client.cmd_expect("DATA", "354").await;
    client.send("x\r\n.\r\n").await;
    client.expect("250 2.0.0").await;
    let (envelope, _) = &server.inbound.messages()[0];
    assert_eq!(envelope.mail_from, "");
    assert_eq!(envelope.recipients, ["Bob@Example.com", "alice@example.com"]);
}

#[tokio::test]
async fn simple_commands() {
    let server = TestServer::start(config()).await;
    let mut client = server.client().await;
    client.cmd_expect("NOOP", "250 2.0.0").await;
    client.cmd_expect("VRFY alice", "252 2.1.5").await;
    client.cmd_expect("HELP", "214").await;
    client.cmd_expect("RSET", "250 2.0.0").await;
    client.cmd_expect("EXPN list", "502 5.5.1").await;
    client.cmd_expect("STARTTLS", "502 5.5.1").await;
    client.cmd_expect("QUIT", "221 2.0.0").await;
    client.expect_closed().await;
}

#[tokio::test]
async fn sequence_errors() {
    let server = TestServer::start(config()).await;
    let mut client = server.client().await;
    client.cmd_expect("MAIL FROM:<a@b.test>", "503 5.5.1").await;
    client.cmd_expect("RCPT TO:<alice@example.com>", "503 5.5.1").await;
    client.cmd_expect("DATA", "503 5.5.1").await;
    client.cmd_expect("EHLO client.test", "250 ").await;
    client.cmd_expect("RCPT TO:<alice@example.com>", "503 5.5.1").await;
    client.cmd_expect("MAIL FROM:<a@b.test>", "250 2.1.0").await;
    client.cmd_expect("MAIL FROM:<a@b.test>", "503 5.5.1").await;
    // DATA with no accepted recipient.
    client.cmd_expect("RCPT TO:<nobody@example.com>", "550 5.1.1").await;
    client.cmd_expect("DATA", "503 5.5.1").await;
    // RSET ends the transaction; MAIL is allowed again.
    client.cmd_expect("RSET", "250").await;
    client.cmd_expect("MAIL FROM:<a@b.test>", "250 2.1.0").await;
}

#[tokio::test]
async fn syntax_errors_and_unknown_commands() {
    let server = TestServer::start(config()).await;
    let mut client = server.ehlo_client().await;
    client.cmd_expect("MAIL FROM:a@b.test", "501 5.5.4").await;
    client.cmd_expect("MAIL TO:<a@b.test>", "501 5.5.4").await;
    client.cmd_expect("EHLO", "501 5.5.4").await;
    client.cmd_expect("BDAT x", "501 5.5.4").await;
    client.cmd_expect("FOO bar", "500 5.5.2").await;
    client.cmd_expect("", "500 5.5.2").await;
    client.cmd_expect("MAIL FROM:<a@b.test> SIZE=abc", "501 5.5.4").await;
    // The session is still usable.
    client.cmd_expect("MAIL FROM:<a@b.test>", "250 2.1.0").await;
}

#[tokio::test]
async fn recipient_checks() {
    let server = TestServer::start(SmtpConfig { max_recipients: 3, ..config() }).await;
    let mut client = server.ehlo_client().await;
    client.cmd_expect("MAIL FROM:<a@b.test>", "250").await;
    client.cmd_expect("RCPT TO:<nobody@example.com>", "550 5.1.1").await;
    client.cmd_expect("RCPT TO:<temp@example.com>", "451 4.3.0").await;
    let reply = client.cmd_expect("RCPT TO:<blocked@example.com>", "550 5.7.1").await;
    assert!(reply.last().ends_with("blocked by policy"), "{reply:?}");
    for n in 1..=3 {
        let rcpt = format!("RCPT TO:<user{n}@example.com>");
        client.cmd_expect(&rcpt, "250 2.1.5").await;
    }
    client.cmd_expect("RCPT TO:<user4@example.com>", "452 4.5.3").await;
    client.cmd_expect("DATA", "354").await;
    client.send("x\r\n.\r\n").await;
    client.expect("250 2.0.0").await;
    let (envelope, _) = &server.inbound.messages()[0];
    assert_eq!(envelope.recipients, ["user1@example.com", "user2@example.com", "user3@example.com"]);
}

#[tokio::test]
async fn accept_message_outcomes_and_transaction_reset() {
    let server = TestServer::start(config()).await;
    let mut client = server.ehlo_client().await;

    server.inbound.set_mode(AcceptMode::Temporary);
    client.envelope("a@b.test", "alice@example.com").await;
    client.cmd_expect("DATA", "354").await;
    client.send("one\r\n.\r\n").await;
    client.expect("451 4.3.0").await;

    server.inbound.set_mode(AcceptMode::Rejected("spam\r\n250 forged".into()));
    client.envelope("a@b.test", "alice@example.com").await;
    client.cmd_expect("DATA", "354").await;
    client.send("two\r\n.\r\n").await;
    let reply = client.expect("554 5.6.0 spam  250 forged").await;
    assert_eq!(reply.lines.len(), 1);

    server.inbound.set_mode(AcceptMode::Ok);
    // The transaction was reset: RCPT needs a new MAIL.
    client.cmd_expect("RCPT TO:<alice@example.com>", "503 5.5.1").await;
    client.envelope("c@d.test", "bob@example.com").await;
    client.cmd_expect("DATA", "354").await;
    client.send("three\r\n.\r\n").await;
    client.expect("250 2.0.0 Ok: queued as Q1").await;
    let messages = server.inbound.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].0.mail_from, "c@d.test");
    assert_eq!(messages[0].1, b"three\r\n");
}

#[tokio::test]
async fn empty_message_and_leading_dot() {
    let server = TestServer::start(config()).await;
    let mut client = server.ehlo_client().await;
    client.envelope("a@b.test", "alice@example.com").await;
    client.cmd_expect("DATA", "354").await;
    client.send(".\r\n").await;
    client.expect("250 2.0.0").await;
    client.envelope("a@b.test", "alice@example.com").await;
    client.cmd_expect("DATA", "354").await;
    client.send("..first\r\n.\r\n").await;
    client.expect("250 2.0.0").await;
    let messages = server.inbound.messages();
    assert_eq!(messages[0].1, b"");
    assert_eq!(messages[1].1, b".first\r\n");
}

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let server = TestServer::start(config()).await;
    let mut client = server.client().await;
    client
        .send(
            "EHLO client.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.com>\r\n\
             RCPT TO:<nobody@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n",
        )
        .await;
    assert_eq!(client.reply().await.code, 250);
    client.expect("250 2.1.0").await;
    client.expect("250 2.1.5").await;
    client.expect("550 5.1.1").await;
    client.expect("250 2.1.5").await;
    client.expect("354").await;
    // The message, then a whole new transaction, in one write.
    client
        .send(
            "first\r\n.\r\nMAIL FROM:<c@d.test>\r\nRCPT TO:<alice@example.com>\r\n\
             BDAT 8 LAST\r\nsecond\r\nNOOP\r\nQUIT\r\n",
        )
        .await;
    client.expect("250 2.0.0 Ok: queued as Q1").await;
    client.expect("250 2.1.0").await;
    client.expect("250 2.1.5").await;
    client.expect("250 2.0.0 Ok: queued as Q2").await;
    client.expect("250 2.0.0").await;
    client.expect("221").await;
    client.expect_closed().await;
    let messages = server.inbound.messages();
    assert_eq!(messages[0].1, b"first\r\n");
    assert_eq!(messages[0].0.recipients, ["alice@example.com", "bob@example.com"]);
    assert_eq!(messages[1].1, b"second\r\n");
}

#[tokio::test]
async fn bdat_chunks() {
    let server = TestServer::start(config()).await;
    let mut client = server.ehlo_client().await;
    client.envelope("a@b.test", "alice@example.com").await;
    // Binary content, CRLF.CRLF inside a chunk, and a command-looking chunk: all data.
    client.send("BDAT 9\r\nab\r\n.\r\ncd").await;
    client.expect("250 2.0.0 9 octets received").await;
    client.cmd_expect("DATA", "503 5.5.1").await;
    client.send("BDAT 6\r\nQUIT\r\n").await;
    client.expect("250 2.0.0 6 octets received").await;
    client.send(b"BDAT 3 LAST\r\n\0\xff\n").await;
    client.expect("250 2.0.0 Ok: queued as Q1").await;
    client.send("BDAT 0 LAST\r\n").await;
    client.expect("503 5.5.1").await;
    let messages = server.inbound.messages();
    assert_eq!(messages[0].1, b"ab\r\n.\r\ncdQUIT\r\n\0\xff\n");
}

#[tokio::test]
async fn bdat_out_of_sequence_is_read_and_refused() {
    let server = TestServer::start(config()).await;
    let mut client = server.ehlo_client().await;
    // The chunk must not be taken for commands.
    client.send("BDAT 6 LAST\r\nQUIT\r\n").await;
    client.expect("503 5.5.1").await;
    client.cmd_expect("MAIL FROM:<a@b.test>", "250").await;
    client.send("BDAT 6 LAST\r\nQUIT\r\n").await;
    client.expect("503 5.5.1").await;
    client.cmd_expect("NOOP", "250").await;
    assert!(server.inbound.messages().is_empty());
}

#[tokio::test]
async fn size_parameter_above_the_maximum_is_refused_at_once() {
    let server = TestServer::start(SmtpConfig { max_message_size: 1000, ..config() }).await;
    let mut client = server.ehlo_client().await;
    client.cmd_expect("MAIL FROM:<a@b.test> SIZE=1001", "552 5.3.4").await;
    client.cmd_expect("MAIL FROM:<a@b.test> SIZE=1000 BODY=8BITMIME SMTPUTF8", "250 2.1.0").await;
}

#[tokio::test]
async fn oversized_data_is_refused_after_the_data_and_the_session_continues() {
    let server = TestServer::start(SmtpConfig { max_message_size: 1000, ..config() }).await;
    let mut client = server.ehlo_client().await;
    // Exactly the maximum is fine, including a line that starts with a dot.
    let exact = format!("..{}\r\n", "a".repeat(997));
    client.envelope("a@b.test", "alice@example.com").await;
    client.cmd_expect("DATA", "354").await;
    client.send(format!("{exact}.\r\n")).await;
    client.expect("250 2.0.0").await;
    assert_eq!(server.inbound.messages()[0].1.len(), 1000);

    let big = "b".repeat(98) + "\r\n";
    client.envelope("a@b.test", "alice@example.com").await;
    client.cmd_expect("DATA", "354").await;
    for _ in 0..100 {
        client.send(&big).await;
    }
    client.send(".\r\n").await;
    client.expect("552 5.3.4").await;

    client.envelope("a@b.test", "alice@example.com").await;
    client.send(format!("BDAT 600\r\n{}", "c".repeat(600))).await;
    client.expect("250 2.0.0").await;
    client.send(format!("BDAT 500 LAST\r\n{}", "d".repeat(500))).await;
    client.expect("552 5.3.4").await;
    client.cmd_expect("RCPT TO:<alice@example.com>", "503 5.5.1").await;

    client.envelope("a@b.test", "alice@example.com").await;
    client.cmd_expect("DATA", "354").await;
    client.send("small\r\n.\r\n").await;
    client.expect("250 2.0.0").await;
    assert_eq!(server.inbound.messages().len(), 2);
}
