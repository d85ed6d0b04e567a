//! RFC 5322 / MIME parsing of an inbound message into [`ParsedMail`] (with mail-parser).
//!
//! Total: any byte string gives either a [`ParsedMail`] or a [`ParseError`], never a panic.
//! Every text field is one line: CR, LF and other control characters that a sender may have
//! smuggled in (folding, RFC 2047 encoded words) are removed, so a field can be copied into
//! a header or a log line as it is.

use herald_domain::{Attachment, ParsedMail};
use mail_parser::{Address, HeaderName, HeaderValue, Message, MessageParser, MimeHeaders, PartType};
use std::borrow::Cow;

/// The header Herald threads conversations with.
pub const CONVERSATION_HEADER: &str = "X-E2A-Conversation-Id";

/// Why the bytes are not an e-mail message at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not an e-mail message: the input is empty")]
    Empty,
    #[error("not an e-mail message: it does not begin with a header field (`Name: value`)")]
    NoHeaderSection,
    /// RFC 5322 §3.6 allows one `From`; a second one is how a replayed, validly signed
    /// message is given another visible sender (DKIM signs the bottom-most instance).
    #[error("the message has more than one From header field")]
    SeveralFrom,
}

/// Parses one message (the bytes received after SMTP `DATA`, or given to the API).
///
/// Single-valued fields (`From`, `Subject`, `Message-ID`, `In-Reply-To`, `References`,
/// `X-E2A-Conversation-Id`) come from the first header field of that name; `To`, `Cc` and
/// `Reply-To` collect every field of that name, group members included.
///
/// # Errors
/// [`ParseError`] when the input is empty or does not begin with a header field.
pub fn parse(raw: &[u8]) -> Result<ParsedMail, ParseError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    if !starts_with_header_field(raw) {
        return Err(ParseError::NoHeaderSection);
    }
    // mail-parser drops a structured header field (ids) that ends the input without a line
    // break, so a message without one is parsed from a copy that has it.
    let raw: Cow<'_, [u8]> = if raw.ends_with(b"\n") {
        Cow::Borrowed(raw)
    } else {
        let mut owned = Vec::with_capacity(raw.len() + 2);
        owned.extend_from_slice(raw);
        owned.extend_from_slice(b"\r\n");
        Cow::Owned(owned)
    };
    let message = MessageParser::default().parse(raw.as_ref()).ok_or(ParseError::NoHeaderSection)?;
    if message.root_part().headers().is_empty() {
        return Err(ParseError::NoHeaderSection);
    }
    if message.root_part().headers().iter().filter(|h| h.name == HeaderName::From).count() > 1 {
        return Err(ParseError::SeveralFrom);
    }
    Ok(ParsedMail {
        message_id: first(&message, HeaderName::MessageId).and_then(|v| ids(v).into_iter().next()),
        from: first(&message, HeaderName::From).map(addresses).and_then(|a| a.into_iter().next()).unwrap_or_default(),
        to: all(&message, HeaderName::To),
        cc: all(&message, HeaderName::Cc),
        reply_to: all(&message, HeaderName::ReplyTo),
        subject: first(&message, HeaderName::Subject).map(text).unwrap_or_default(),
        in_reply_to: first(&message, HeaderName::InReplyTo).map(ids).unwrap_or_default(),
        references: first(&message, HeaderName::References).map(ids).unwrap_or_default(),
        conversation_header: first(&message, HeaderName::Other(CONVERSATION_HEADER.into()))
            .map(text)
            .filter(|s| !s.is_empty()),
        attachments: message.attachments().map(attachment).collect(),
    })
}

/// `field-name ":"` on the first line (RFC 5322 §2.2: printable US-ASCII but `:`; the
/// obsolete white space before the colon, RFC 5322 §4.5, is accepted).
fn starts_with_header_field(raw: &[u8]) -> bool {
    let name_len = raw.iter().take_while(|&&b| (33..=126).contains(&b) && b != b':').count();
    if name_len == 0 {
        return false;
    }
    let rest = &raw[name_len..];
    let ws = rest.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    rest.get(ws) == Some(&b':')
}

fn first<'a>(message: &'a Message<'_>, name: HeaderName<'static>) -> Option<&'a HeaderValue<'a>> {
    message.root_part().headers().iter().find(|h| h.name == name).map(|h| &h.value)
}

fn all(message: &Message<'_>, name: HeaderName<'static>) -> Vec<String> {
    message.root_part().headers().iter().filter(|h| h.name == name).flat_map(|h| addresses(&h.value)).collect()
}

/// The bare addresses of an address header (group members flattened; display names and
/// members without an address dropped).
fn addresses(value: &HeaderValue<'_>) -> Vec<String> {
    let HeaderValue::Address(address) = value else { return Vec::new() };
    let list: Box<dyn Iterator<Item = &mail_parser::Addr<'_>>> = match address {
        Address::List(list) => Box::new(list.iter()),
        Address::Group(groups) => Box::new(groups.iter().flat_map(|g| g.addresses.iter())),
    };
    list.filter_map(|a| a.address.as_deref()).map(one_line).filter(|a| !a.is_empty()).collect()
}

/// Message ids, without angle brackets.
fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    let list: Vec<&str> = match value {
        HeaderValue::Text(t) => vec![t.as_ref()],
        HeaderValue::TextList(l) => l.iter().map(AsRef::as_ref).collect(),
        _ => Vec::new(),
    };
    list.into_iter()
        .map(|id| one_line(id.trim().trim_start_matches('<').trim_end_matches('>')))
        .filter(|id| !id.is_empty())
        .collect()
}

fn text(value: &HeaderValue<'_>) -> String {
    match value {
        HeaderValue::Text(t) => one_line(t),
        HeaderValue::TextList(l) => one_line(&l.join(", ")),
        _ => String::new(),
    }
}

fn attachment(part: &mail_parser::MessagePart<'_>) -> Attachment {
    let content_type = match part.content_type() {
        Some(ct) => {
            let subtype =
                ct.subtype().unwrap_or(if ct.ctype().eq_ignore_ascii_case("text") { "plain" } else { "octet-stream" });
            one_line(&format!("{}/{}", ct.ctype(), subtype)).to_ascii_lowercase()
        }
        None => match &part.body {
            PartType::Message(_) => "message/rfc822".into(),
            PartType::Text(_) => "text/plain".into(),
            PartType::Html(_) => "text/html".into(),
            _ => "application/octet-stream".into(),
        },
    };
    Attachment {
        name: part.attachment_name().map(one_line).unwrap_or_default(),
        content_type,
        size: u64::try_from(part.len()).unwrap_or(u64::MAX),
    }
}

/// One line of text: line breaks (with the white space of a fold) and other control
/// characters removed, tabs turned into spaces, the ends trimmed.
pub(crate) fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_field_start() {
        assert!(starts_with_header_field(b"From: a@b\r\n"));
        assert!(starts_with_header_field(b"X-Odd-Name :v\n"));
        assert!(!starts_with_header_field(b": v\n"));
        assert!(!starts_with_header_field(b"hello world\n"));
        assert!(!starts_with_header_field(b"From a@b Mon Jan  1 00:00:00 2026\n"));
        assert!(!starts_with_header_field(b"\r\nFrom: a@b\r\n"));
        assert!(!starts_with_header_field(b"\xff\xfe: x"));
    }

    #[test]
    fn one_line_removes_breaks_and_controls() {
        assert_eq!(one_line(" a\r\n\tb\0c\x1b "), "a bc");
        assert_eq!(one_line("héllo\u{85}"), "héllo");
    }
}
