//! The RFC 8601 `Authentication-Results:` header field of an [`AuthResults`].
//!
//! Total and safe: whatever the inputs, the output is one header field, CRLF-terminated and
//! folded with CRLF + TAB only, whose lines are at most 78 bytes where a fold can make them
//! so and never more than 998; no CR, LF or other control character from the inputs reaches
//! it, values are cut to 255 bytes, and every value is a MIME token, a plain
//! `local@domain` or a quoted-string (RFC 8601 §2.2).

use crate::authenticate::{SmtpClient, envelope_sender};
use herald_domain::AuthResults;

/// Lines are folded to stay within this many bytes (RFC 5322 §2.1.1 SHOULD).
const LINE: usize = 78;
/// Values are cut to this many bytes, so that no line can exceed 998 (RFC 5322 MUST).
const MAX_VALUE: usize = 255;
/// Result words are cut to this many characters.
const MAX_WORD: usize = 32;

/// One `Authentication-Results:` header field naming `hostname` as the authserv-id, e.g.
///
/// ```text
/// Authentication-Results: mx.herald.test; spf=pass smtp.mailfrom=a@b.test;
///  dkim=pass header.d=b.test header.s=sel; dmarc=pass header.from=b.test
/// ```
///
/// (one resinfo is moved to the next line, after CRLF TAB, when it would make the line
/// longer than 78 bytes). SPF names `smtp.mailfrom` (or `smtp.helo` for the null reverse path) when there is a
/// client, and is a bare `spf=none` without one; each DKIM signature is one `dkim=` with
/// `header.d` and `header.s` (`dkim=none` when the message has none); DMARC names
/// `header.from` (the header `From` domain) when it is known. Ends with CRLF.
pub fn authentication_results(
    hostname: &str,
    r: &AuthResults,
    client: Option<&SmtpClient>,
    header_from_domain: &str,
) -> String {
    let mut resinfos: Vec<Vec<String>> = Vec::new();

    let mut spf = vec![format!("spf={}", word(&r.spf))];
    if let Some(client) = client {
        let sender = clean(envelope_sender(&client.mail_from));
        let helo = clean(&client.helo);
        if !sender.is_empty() {
            spf.push(format!("smtp.mailfrom={}", pvalue(&sender)));
        } else if !helo.is_empty() {
            spf.push(format!("smtp.helo={}", pvalue(&helo)));
        }
    }
    resinfos.push(spf);

    if r.dkim.is_empty() {
        resinfos.push(vec!["dkim=none".into()]);
    }
    for d in &r.dkim {
        let mut dkim = vec![format!("dkim={}", word(&d.result))];
        if !clean(&d.domain).is_empty() {
            dkim.push(format!("header.d={}", pvalue(&d.domain)));
        }
        if !clean(&d.selector).is_empty() {
            dkim.push(format!("header.s={}", pvalue(&d.selector)));
        }
        resinfos.push(dkim);
    }

    let mut dmarc = vec![format!("dmarc={}", word(&r.dmarc))];
    if !clean(header_from_domain).is_empty() {
        dmarc.push(format!("header.from={}", pvalue(header_from_domain)));
    }
    resinfos.push(dmarc);

    // "Authentication-Results: id;" then the resinfos, a ';' after each but the last.
    let n = resinfos.len();
    for (i, info) in resinfos.iter_mut().enumerate() {
        if i + 1 < n
            && let Some(last) = info.last_mut()
        {
            last.push(';');
        }
    }
    let mut groups = vec![vec![format!("Authentication-Results: {};", pvalue(hostname))]];
    groups.extend(resinfos);
    fold(&groups)
}

/// Lays out groups of words (the resinfos): words of a group are separated by one space,
/// groups by one space or a fold (CRLF TAB) when the next group does not fit on the line;
/// a group longer than a line is itself folded between its words. Ends with CRLF.
fn fold(groups: &[Vec<String>]) -> String {
    let len = |w: &String| w.len();
    let mut out = String::new();
    let mut line_len = 0;
    for (i, group) in groups.iter().enumerate() {
        let group_len = group.iter().map(len).sum::<usize>() + group.len().saturating_sub(1);
        for (j, w) in group.iter().enumerate() {
            let fits = if j == 0 { line_len + 1 + group_len <= LINE } else { line_len + 1 + len(w) <= LINE };
            if i == 0 && j == 0 {
                out.push_str(w);
                line_len = len(w);
            } else if fits {
                out.push(' ');
                out.push_str(w);
                line_len += 1 + len(w);
            } else {
                out.push_str("\r\n\t");
                out.push_str(w);
                line_len = 1 + len(w);
            }
        }
    }
    out.push_str("\r\n");
    out
}

/// Drops control characters (CR and LF among them), trims, and cuts to at most
/// [`MAX_VALUE`] bytes (at a character boundary).
fn clean(s: &str) -> String {
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    let s = s.trim();
    let mut end = s.len().min(MAX_VALUE);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].trim_end().to_owned()
}

/// A result word: lower-case letters, digits and `-` only (`none` if nothing is left).
fn word(s: &str) -> String {
    let w: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(MAX_WORD)
        .collect::<String>()
        .to_ascii_lowercase();
    if w.is_empty() { "none".into() } else { w }
}

/// An RFC 8601 `pvalue`: as it is when it is a MIME token or a plain `local@domain`,
/// otherwise a quoted-string.
fn pvalue(s: &str) -> String {
    let s = clean(s);
    if is_token(&s) || is_plain_address(&s) {
        return s;
    }
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    q
}

/// RFC 2045 token: US-ASCII printable characters except tspecials.
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (33..=126).contains(&b) && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

/// `dot-atom-text "@" domain` with an ASCII letters/digits/hyphen domain.
fn is_plain_address(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else { return false };
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    let dot_atom = |s: &str, ok: &dyn Fn(u8) -> bool| {
        !s.is_empty() && s.split('.').all(|part| !part.is_empty() && part.bytes().all(ok))
    };
    dot_atom(local, &atext) && dot_atom(domain, &|b: u8| b.is_ascii_alphanumeric() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example() {
        let r = AuthResults {
            spf: "pass".into(),
            dkim: vec![herald_domain::DkimResult {
                domain: "b.test".into(),
                selector: "sel".into(),
                result: "pass".into(),
            }],
            dmarc: "pass".into(),
            verified: true,
        };
        let c = SmtpClient { ip: [127, 0, 0, 1].into(), helo: "h.b.test".into(), mail_from: "a@b.test".into() };
        assert_eq!(
            authentication_results("mx.herald.test", &r, Some(&c), "b.test"),
            "Authentication-Results: mx.herald.test; spf=pass smtp.mailfrom=a@b.test;\r\n\
             \tdkim=pass header.d=b.test header.s=sel; dmarc=pass header.from=b.test\r\n"
        );
    }

    #[test]
    fn values() {
        assert_eq!(pvalue("b.test"), "b.test");
        assert_eq!(pvalue("a+tag@b.test"), "a+tag@b.test");
        assert_eq!(pvalue("a b@b.test"), "\"a b@b.test\"");
        assert_eq!(pvalue("[127.0.0.1]"), "\"[127.0.0.1]\"");
        assert_eq!(pvalue("x\"y\\z"), "\"x\\\"y\\\\z\"");
        assert_eq!(pvalue("evil\r\nX-Injected: 1"), "\"evilX-Injected: 1\"");
        assert_eq!(pvalue(""), "\"\"");
        assert_eq!(pvalue("a..b@c.test"), "\"a..b@c.test\"");
        assert_eq!(pvalue("é@c.test"), "\"é@c.test\"");
        assert_eq!(word("Pass"), "pass");
        assert_eq!(word("pa ss\r\n;x"), "passx");
        assert_eq!(word(""), "none");
    }
}

/// `raw` without the `Authentication-Results:` fields that claim to come from
/// `authserv_id` (RFC 8601 §5: a receiver removes such fields before adding its own, so a
/// sender cannot forge this server's verdict). Other fields and the body are untouched.
pub fn without_forged_results(raw: &[u8], authserv_id: &str) -> Vec<u8> {
    crate::fields::retain_fields(raw, |field| !claims(field, authserv_id))
}

/// Whether `field` is an `Authentication-Results` field whose authserv-id is `id`.
fn claims(field: &[u8], id: &str) -> bool {
    if !crate::fields::is_named(field, "authentication-results") {
        return false;
    }
    let Some(colon) = field.iter().position(|&b| b == b':') else { return false };
    let value = &field[colon + 1..];
    let mut rest = value.trim_ascii_start();
    // Skip leading comments, as CFWS allows.
    while rest.first() == Some(&b'(') {
        let close = rest.iter().position(|&b| b == b')').map_or(rest.len(), |p| p + 1);
        rest = rest[close..].trim_ascii_start();
    }
    let token_end = rest.iter().position(|&b| b == b';' || b.is_ascii_whitespace() || b == b'(').unwrap_or(rest.len());
    rest[..token_end].eq_ignore_ascii_case(id.as_bytes())
}

#[cfg(test)]
mod forged_tests {
    use super::without_forged_results;

    #[test]
    fn fields_claiming_this_server_are_removed_and_others_kept() {
        let raw = b"Authentication-Results: MX.Herald.Test; dmarc=pass\r\n\theader.from=x.test\r\n\
                    Authentication-Results: other.test; spf=pass\r\n\
                    Authentication-Results: (c) mx.herald.test;\r\n dkim=pass\r\n\
                    Subject: hi\r\n\r\nAuthentication-Results: mx.herald.test; body stays\r\n";
        let out = without_forged_results(raw, "mx.herald.test");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Authentication-Results: other.test; spf=pass\r\nSubject: hi\r\n\r\n\
             Authentication-Results: mx.herald.test; body stays\r\n"
        );
        assert_eq!(without_forged_results(b"", "x"), b"");
        assert_eq!(without_forged_results(b"no colon\n", "x"), b"no colon\n");
    }
}
