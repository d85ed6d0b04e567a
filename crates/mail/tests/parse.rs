//! `parse`: the fields Herald keeps from a message, and never a panic.

use herald_mail::{Attachment, ParseError, ParsedMail, parse};

fn crlf(s: &str) -> Vec<u8> {
    s.replace("\r\n", "\n").replace('\n', "\r\n").into_bytes()
}

#[test]
fn a_plain_message() {
    let raw = crlf(
        "From: \"Alice A.\" <alice@sender.test>\n\
         To: Bob <bob@herald.test>, carol@herald.test\n\
         Cc: dave@herald.test\n\
         Subject: Lunch\n\
         Message-ID: <m1@sender.test>\n\
         In-Reply-To: <m0@herald.test>\n\
         References: <r1@x.test> <r2@x.test>\n \
         <m0@herald.test>\n\
         X-E2A-Conversation-Id:   conv_123  \n\
         \n\
         Hi!\n",
    );
    assert_eq!(
        parse(&raw).unwrap(),
        ParsedMail {
            message_id: Some("m1@sender.test".into()),
            from: "alice@sender.test".into(),
            to: vec!["bob@herald.test".into(), "carol@herald.test".into()],
            cc: vec!["dave@herald.test".into()],
            reply_to: vec![],
            subject: "Lunch".into(),
            in_reply_to: vec!["m0@herald.test".into()],
            references: vec!["r1@x.test".into(), "r2@x.test".into(), "m0@herald.test".into()],
            conversation_header: Some("conv_123".into()),
            attachments: vec![],
        }
    );
}

#[test]
fn encoded_words_in_the_subject_are_decoded() {
    let raw = crlf(
        "From: a@x.test\n\
         Subject: =?UTF-8?Q?Caf=C3=A9?= =?ISO-8859-1?Q?_cr=E8me?= and\n =?UTF-8?B?8J+OiQ==?= more\n\
         \n\
         body\n",
    );
    assert_eq!(parse(&raw).unwrap().subject, "Café crème and 🎉 more");
}

#[test]
fn line_breaks_smuggled_in_encoded_words_do_not_survive() {
    let raw = crlf(
        "From: a@x.test\n\
         Subject: =?UTF-8?Q?hello=0D=0ABcc:_victim@x.test?=\n\
         X-E2A-Conversation-Id: =?UTF-8?Q?c=0Ax?= conv\n\
         \n\
         body\n",
    );
    let m = parse(&raw).unwrap();
    assert_eq!(m.subject, "helloBcc: victim@x.test");
    assert!(!m.conversation_header.unwrap().contains(['\r', '\n']));
}

#[test]
fn group_members_are_flattened_and_empty_groups_give_nothing() {
    let raw = crlf(
        "From: Team: alice@sender.test, bob@sender.test;\n\
         To: Friends: a@x.test, \"B\" <b@x.test>;, c@y.test\n\
         Cc: undisclosed-recipients:;\n\
         \n\
         body\n",
    );
    let m = parse(&raw).unwrap();
    assert_eq!(m.from, "alice@sender.test", "the first member of the first group");
    assert_eq!(m.to, vec!["a@x.test", "b@x.test", "c@y.test"]);
    assert!(m.cc.is_empty());
}

#[test]
fn repeated_address_fields_are_all_kept_and_single_fields_come_from_the_first() {
    let two_from = crlf("From: first@x.test\nFrom: second@y.test\n\nbody\n");
    assert_eq!(parse(&two_from), Err(herald_mail::ParseError::SeveralFrom), "a second From is refused");
    let raw = crlf(
        "From: first@x.test\n\
         To: a@x.test\n\
         To: b@x.test\n\
         Subject: one\n\
         Subject: two\n\
         \n\
         body\n",
    );
    let m = parse(&raw).unwrap();
    assert_eq!(m.from, "first@x.test");
    assert_eq!(m.to, vec!["a@x.test", "b@x.test"]);
    assert_eq!(m.subject, "one");
}

#[test]
fn reply_to_is_a_list_and_is_never_filled_from_from() {
    let with = crlf("From: a@x.test\nReply-To: r1@x.test, Team <r2@x.test>\n\nbody\n");
    assert_eq!(parse(&with).unwrap().reply_to, vec!["r1@x.test", "r2@x.test"]);
    let without = crlf("From: a@x.test\n\nbody\n");
    let m = parse(&without).unwrap();
    assert_eq!(m.from, "a@x.test");
    assert!(m.reply_to.is_empty());
}

#[test]
fn missing_headers_are_empty() {
    let m = parse(&crlf("Subject: only a subject\n\nbody\n")).unwrap();
    assert_eq!(
        m,
        ParsedMail { subject: "only a subject".into(), ..ParsedMail::default() },
        "no From, To, ids, conversation header or attachments"
    );
    let m = parse(&crlf("X-Nothing: here\n")).unwrap();
    assert_eq!(m, ParsedMail::default(), "a header section without a body is a message");
}

#[test]
fn a_header_section_that_ends_the_input_keeps_its_ids() {
    let m = parse(b"Message-ID: <m1@x.test>\r\nIn-Reply-To: <m0@x.test>").unwrap();
    assert_eq!(m.message_id.as_deref(), Some("m1@x.test"));
    assert_eq!(m.in_reply_to, vec!["m0@x.test"]);
}

#[test]
fn ids_without_angle_brackets_are_kept() {
    let m =
        parse(&crlf("From: a@x.test\nMessage-ID: bare-id@x.test\nIn-Reply-To: <a@x.test> <b@x.test>\n\nb\n")).unwrap();
    assert_eq!(m.message_id.as_deref(), Some("bare-id@x.test"));
    assert_eq!(m.in_reply_to, vec!["a@x.test", "b@x.test"]);
}

#[test]
fn attachments_with_names_types_and_decoded_sizes() {
    let raw = crlf(
        "From: a@x.test\n\
         Subject: files\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\n\
         \n\
         --b1\n\
         Content-Type: multipart/alternative; boundary=\"b2\"\n\
         \n\
         --b2\n\
         Content-Type: text/plain; charset=utf-8\n\
         \n\
         the text body\n\
         --b2\n\
         Content-Type: text/html; charset=utf-8\n\
         \n\
         <p>the html body</p>\n\
         --b2--\n\
         --b1\n\
         Content-Type: Application/PDF; name=\"ignored.pdf\"\n\
         Content-Disposition: attachment; filename=\"report.pdf\"\n\
         Content-Transfer-Encoding: base64\n\
         \n\
         JVBERi0xLjQK\n\
         --b1\n\
         Content-Type: text/csv\n\
         Content-Disposition: attachment; filename*=UTF-8''na%C3%AFve%20data.csv\n\
         \n\
         a,b\n\
         --b1\n\
         Content-Type: image/png; name==?UTF-8?Q?logo=0D=0A.png?=\n\
         Content-Transfer-Encoding: base64\n\
         \n\
         iVBORw0KGgo=\n\
         --b1\n\
         Content-Type: message/rfc822\n\
         \n\
         From: inner@x.test\n\
         Subject: forwarded\n\
         \n\
         inner body\n\
         --b1--\n",
    );
    let m = parse(&raw).unwrap();
    assert_eq!(
        m.attachments,
        vec![
            Attachment { name: "report.pdf".into(), content_type: "application/pdf".into(), size: 9 },
            Attachment { name: "naïve data.csv".into(), content_type: "text/csv".into(), size: 3 },
            Attachment { name: "logo.png".into(), content_type: "image/png".into(), size: 8 },
            Attachment { name: "".into(), content_type: "message/rfc822".into(), size: 52 },
        ]
    );
}

#[test]
fn bytes_that_are_not_a_message_are_errors() {
    assert_eq!(parse(b""), Err(ParseError::Empty));
    assert_eq!(parse(b" \r\n\t\r\n"), Err(ParseError::Empty));
    assert_eq!(parse(b"hello world, no headers here\r\n"), Err(ParseError::NoHeaderSection));
    assert_eq!(parse(b"\r\nFrom: a@x.test\r\n\r\nbody"), Err(ParseError::NoHeaderSection), "an empty header section");
    assert_eq!(parse(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"), Err(ParseError::NoHeaderSection));
    assert_eq!(parse(&[0u8, 159, 146, 150]), Err(ParseError::NoHeaderSection));
    let reason = parse(b"\x00\x01").unwrap_err().to_string();
    assert!(reason.starts_with("not an e-mail message"), "{reason}");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Text that looks like a message: header lines from a set of names with arbitrary
    /// values (encoded words, groups, brackets…), then a body with MIME boundaries.
    fn messageish() -> impl Strategy<Value = Vec<u8>> {
        let name = prop::sample::select(vec![
            "From",
            "To",
            "Cc",
            "Reply-To",
            "Subject",
            "Message-ID",
            "In-Reply-To",
            "References",
            "X-E2A-Conversation-Id",
            "Content-Type",
            "Content-Disposition",
            "Content-Transfer-Encoding",
            "MIME-Version",
        ]);
        let value = prop::collection::vec(
            prop::sample::select(vec![
                "a@x.test",
                "<id@x>",
                "=?UTF-8?Q?=C3=A9?=",
                "=?utf-8?B?8J+OiQ==?=",
                "=?x?",
                "Team:",
                ";",
                ",",
                "\"",
                "<",
                ">",
                "(",
                ")",
                "\\",
                " ",
                "\r\n ",
                "\n",
                "\r",
                "multipart/mixed; boundary=b",
                "base64",
                "quoted-printable",
                "message/rfc822",
                "attachment; filename=",
                "name*=UTF-8''%C3",
                "\u{0}",
                "é",
            ]),
            0..8,
        )
        .prop_map(|parts| parts.concat());
        let header = (name, value).prop_map(|(n, v)| format!("{n}: {v}\r\n"));
        let body = prop::collection::vec(
            prop::sample::select(vec![
                "--b\r\n",
                "--b--\r\n",
                "Content-Type: message/rfc822\r\n",
                "\r\n",
                "text",
                "=41",
                "QUJD",
                "From: y@z\r\n",
            ]),
            0..12,
        )
        .prop_map(|parts| parts.concat());
        (prop::collection::vec(header, 1..10), body, any::<bool>()).prop_map(|(headers, body, blank)| {
            let mut raw = headers.concat();
            if blank {
                raw.push_str("\r\n");
            }
            raw.push_str(&body);
            raw.into_bytes()
        })
    }

    fn one_line(s: &str) -> bool {
        !s.contains(['\r', '\n', '\0'])
    }

    fn check(m: &ParsedMail) {
        let mut fields: Vec<&str> = vec![&m.from, &m.subject];
        fields.extend(m.message_id.as_deref());
        fields.extend(m.conversation_header.as_deref());
        fields.extend(
            m.to.iter().chain(&m.cc).chain(&m.reply_to).chain(&m.in_reply_to).chain(&m.references).map(String::as_str),
        );
        fields.extend(m.attachments.iter().flat_map(|a| [a.name.as_str(), a.content_type.as_str()]));
        for f in fields {
            assert!(one_line(f), "{f:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn any_bytes_parse_or_fail_without_panicking(raw in prop::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(m) = parse(&raw) {
                check(&m);
            }
        }

        #[test]
        fn messageish_bytes_parse_to_one_line_fields(raw in messageish()) {
            match parse(&raw) {
                Ok(m) => check(&m),
                // A second From is refused on purpose (see `ParseError::SeveralFrom`).
                Err(herald_mail::ParseError::SeveralFrom) => {}
                Err(e) => prop_assert!(false, "a message starting with a header field is a message: {e}"),
            }
        }
    }
}
