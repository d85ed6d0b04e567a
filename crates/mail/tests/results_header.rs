//! `authentication_results`: the layout, and safety for any input (proptest).

use herald_mail::{AuthResults, DkimResult, SmtpClient, authentication_results};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};

fn client(helo: &str, mail_from: &str) -> SmtpClient {
    SmtpClient { ip: IpAddr::V4(Ipv4Addr::LOCALHOST), helo: helo.into(), mail_from: mail_from.into() }
}

fn dkim(domain: &str, selector: &str, result: &str) -> DkimResult {
    DkimResult { domain: domain.into(), selector: selector.into(), result: result.into() }
}

#[test]
fn every_signature_is_listed_and_long_headers_are_folded() {
    let r = AuthResults {
        spf: "softfail".into(),
        dkim: vec![dkim("a.test", "s1", "pass"), dkim("b.test", "s2", "fail"), dkim("", "", "neutral")],
        dmarc: "fail".into(),
        verified: false,
    };
    let h = authentication_results("mx.herald.test", &r, Some(&client("[127.0.0.1]", "")), "a.test");
    assert_eq!(
        h,
        "Authentication-Results: mx.herald.test; spf=softfail smtp.helo=\"[127.0.0.1]\";\r\n\
         \tdkim=pass header.d=a.test header.s=s1; dkim=fail header.d=b.test header.s=s2;\r\n\
         \tdkim=neutral; dmarc=fail header.from=a.test\r\n"
    );
}

#[test]
fn no_client_is_a_bare_spf_none() {
    let r = AuthResults { dkim: vec![dkim("b.test", "sel", "pass")], ..AuthResults::none() };
    assert_eq!(
        authentication_results("mx.herald.test", &r, None, "b.test"),
        "Authentication-Results: mx.herald.test; spf=none;\r\n\
         \tdkim=pass header.d=b.test header.s=sel; dmarc=none header.from=b.test\r\n"
    );
}

#[test]
fn hostile_values_are_quoted_and_cannot_break_the_header() {
    let r = AuthResults {
        spf: "pass\r\nX-Evil: 1".into(),
        dkim: vec![dkim("d.test;\r\n dmarc=pass", "s\"el", "pass")],
        dmarc: "fail".into(),
        verified: false,
    };
    let c = client("helo", "<\"odd local\"@x.test>");
    let h = authentication_results("mx\r\n.herald.test", &r, Some(&c), "x.test\n");
    assert_eq!(
        h,
        "Authentication-Results: mx.herald.test;\r\n\
         \tspf=passx-evil1 smtp.mailfrom=\"\\\"odd local\\\"@x.test\";\r\n\
         \tdkim=pass header.d=\"d.test; dmarc=pass\" header.s=\"s\\\"el\";\r\n\
         \tdmarc=fail header.from=x.test\r\n"
    );
}

/// The parts of an unfolded header: authserv-id, then (method, result, properties).
type Decoded = (String, Vec<(String, String, Vec<(String, String)>)>);

/// A small RFC 8601 reader for what `authentication_results` writes: values are tokens,
/// addresses or quoted-strings; no comments.
fn decode(header: &str) -> Decoded {
    let body = header.strip_prefix("Authentication-Results: ").expect("the field name").strip_suffix("\r\n").unwrap();
    assert!(!body.contains("\r\n\r\n"));
    let unfolded = body.replace("\r\n\t", " ");
    assert!(!unfolded.contains(['\r', '\n']), "only CRLF TAB folds: {header:?}");
    let mut chars = unfolded.chars().peekable();
    let value = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> String {
        let mut v = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next().expect("a closed quoted-string") {
                    '"' => break,
                    '\\' => v.push(chars.next().expect("an escaped character")),
                    c => v.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' || c == ';' {
                    break;
                }
                v.push(c);
                chars.next();
            }
        }
        v
    };
    let id = value(&mut chars);
    let mut infos = Vec::new();
    loop {
        match chars.next() {
            None => break,
            Some(';') => {}
            Some(c) => panic!("expected ';', got {c:?} in {unfolded:?}"),
        }
        assert_eq!(chars.next(), Some(' '));
        let mut method = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            method.push(c);
        }
        let result = value(&mut chars);
        let mut props = Vec::new();
        while chars.peek() == Some(&' ') {
            chars.next();
            let mut name = String::new();
            for c in chars.by_ref() {
                if c == '=' {
                    break;
                }
                name.push(c);
            }
            props.push((name, value(&mut chars)));
        }
        infos.push((method, result, props));
    }
    (id, infos)
}

/// What a value should read back as.
fn clean(s: &str) -> String {
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    let s = s.trim();
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].trim_end().to_owned()
}

fn word(s: &str) -> String {
    let w: String = s.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(32).collect();
    if w.is_empty() { "none".into() } else { w.to_ascii_lowercase() }
}

fn sender(s: &str) -> &str {
    let s = s.trim();
    let s = s.strip_prefix('<').unwrap_or(s);
    s.strip_suffix('>').unwrap_or(s).trim()
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ -~]{0,20}",
        "[a-z0-9.-]{1,12}\\.test",
        "[\\r\\n\\t\";\\\\() ]{0,6}[a-z]{0,4}@[a-z]{1,5}\\.test",
        ".{250,300}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn any_input_gives_one_well_formed_field_that_reads_back(
        hostname in text(),
        spf in text(),
        dmarc in text(),
        dkims in prop::collection::vec((text(), text(), text()), 0..4),
        c in prop::option::of((text(), text())),
        from_domain in text(),
    ) {
        let r = AuthResults {
            spf: spf.clone(),
            dkim: dkims.iter().map(|(d, s, w)| dkim(d, s, w)).collect(),
            dmarc: dmarc.clone(),
            verified: false,
        };
        let c = c.map(|(helo, mail_from)| client(&helo, &mail_from));
        let h = authentication_results(&hostname, &r, c.as_ref(), &from_domain);

        // One field: CRLF at the end, CRLF TAB folds only, lines within 998 bytes.
        prop_assert!(h.ends_with("\r\n"));
        for (i, line) in h.strip_suffix("\r\n").unwrap().split("\r\n").enumerate() {
            prop_assert!(line.len() <= 998, "{} bytes", line.len());
            prop_assert!(!line.contains(['\r', '\n']));
            prop_assert!(line.chars().all(|c| c == '\t' || !c.is_control()), "{line:?}");
            prop_assert_eq!(i > 0, line.starts_with('\t'));
        }

        // It reads back as what was given (cleaned).
        let (id, infos) = decode(&h);
        prop_assert_eq!(id, clean(&hostname));
        let mut expected = Vec::new();
        let spf_props = match &c {
            Some(c) if !clean(sender(&c.mail_from)).is_empty() => vec![("smtp.mailfrom".to_owned(), clean(sender(&c.mail_from)))],
            Some(c) if !clean(&c.helo).is_empty() => vec![("smtp.helo".to_owned(), clean(&c.helo))],
            _ => vec![],
        };
        expected.push(("spf".to_owned(), word(&spf), spf_props));
        if dkims.is_empty() {
            expected.push(("dkim".to_owned(), "none".to_owned(), vec![]));
        }
        for (d, s, w) in &dkims {
            let mut props = vec![];
            if !clean(d).is_empty() {
                props.push(("header.d".to_owned(), clean(d)));
            }
            if !clean(s).is_empty() {
                props.push(("header.s".to_owned(), clean(s)));
            }
            expected.push(("dkim".to_owned(), word(w), props));
        }
        let dmarc_props =
            if clean(&from_domain).is_empty() { vec![] } else { vec![("header.from".to_owned(), clean(&from_domain))] };
        expected.push(("dmarc".to_owned(), word(&dmarc), dmarc_props));
        prop_assert_eq!(infos, expected);
    }

    #[test]
    fn short_values_keep_every_line_within_78_bytes(
        domains in prop::collection::vec("[a-z]{1,20}\\.test", 1..12),
    ) {
        let r = AuthResults {
            spf: "pass".into(),
            dkim: domains.iter().map(|d| dkim(d, "selector2026", "pass")).collect(),
            dmarc: "pass".into(),
            verified: true,
        };
        let h = authentication_results("mx.herald.test", &r, Some(&client("mail.x.test", "bounce@x.test")), "x.test");
        for line in h.split("\r\n") {
            prop_assert!(line.len() <= 78, "{line:?}");
        }
    }
}
