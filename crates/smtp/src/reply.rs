//! SMTP replies: a code, an enhanced status code (RFC 3463) and a text.

use std::borrow::Cow;

use smtp_proto::Error as ParseError;

/// One single-line SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub code: u16,
    /// The enhanced status code and the text, e.g. `"2.0.0 Ok"`.
    pub text: Cow<'static, str>,
}

impl Reply {
    pub const fn fixed(code: u16, text: &'static str) -> Self {
        Self { code, text: Cow::Borrowed(text) }
    }

    /// A reply whose text is built at run time; `text` is made safe with [`sanitize`].
    pub fn new(code: u16, status: &str, text: &str) -> Self {
        Self { code, text: Cow::Owned(format!("{status} {}", sanitize(text))) }
    }

    /// A negative permanent answer (5xx), counted towards the session's error limit.
    pub fn is_error(&self) -> bool {
        self.code >= 500
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("{} {}\r\n", self.code, self.text).as_bytes());
    }
}

/// Longest text taken from the application or the client into a reply.
const MAX_TEXT: usize = 200;

/// Makes text from elsewhere (the application, the client) fit in one reply line: control
/// characters (CR and LF above all, which would forge further replies) become spaces,
/// and the text is cut at [`MAX_TEXT`] characters.
pub(crate) fn sanitize(text: &str) -> String {
    text.chars().take(MAX_TEXT).map(|c| if c.is_control() { ' ' } else { c }).collect()
}

pub(crate) const OK: Reply = Reply::fixed(250, "2.0.0 Ok");
pub(crate) const MAIL_OK: Reply = Reply::fixed(250, "2.1.0 Ok");
pub(crate) const RCPT_OK: Reply = Reply::fixed(250, "2.1.5 Ok");
pub(crate) const START_DATA: Reply = Reply::fixed(354, "End data with <CR><LF>.<CR><LF>");
pub(crate) const BYE: Reply = Reply::fixed(221, "2.0.0 Bye");
pub(crate) const VRFY: Reply =
    Reply::fixed(252, "2.1.5 Cannot VRFY user, but will accept message and attempt delivery");
pub(crate) const HELP: Reply =
    Reply::fixed(214, "2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS");
pub(crate) const READY_TLS: Reply = Reply::fixed(220, "2.0.0 Ready to start TLS");

pub(crate) const NEED_HELO: Reply = Reply::fixed(503, "5.5.1 Send EHLO or HELO first");
pub(crate) const NESTED_MAIL: Reply = Reply::fixed(503, "5.5.1 Sender already given");
pub(crate) const NEED_MAIL: Reply = Reply::fixed(503, "5.5.1 Send MAIL first");
pub(crate) const NEED_RCPT: Reply = Reply::fixed(503, "5.5.1 No valid recipients");
pub(crate) const BDAT_IN_PROGRESS: Reply = Reply::fixed(503, "5.5.1 DATA cannot follow BDAT in the same message");
pub(crate) const RCPT_DURING_BDAT: Reply = Reply::fixed(503, "5.5.1 Recipients cannot be added once BDAT has started");
pub(crate) const TLS_ACTIVE: Reply = Reply::fixed(503, "5.5.1 TLS already active");
pub(crate) const TLS_UNAVAILABLE: Reply = Reply::fixed(502, "5.5.1 STARTTLS not available");
pub(crate) const NOT_IMPLEMENTED: Reply = Reply::fixed(502, "5.5.1 Command not implemented");
pub(crate) const UNKNOWN_COMMAND: Reply = Reply::fixed(500, "5.5.2 Command not recognized");
pub(crate) const BARE_LF_COMMAND: Reply = Reply::fixed(500, "5.5.2 Command lines must end with <CR><LF>");
pub(crate) const BARE_CR_COMMAND: Reply = Reply::fixed(500, "5.5.2 Bare <CR> not allowed in a command line");
pub(crate) const NUL_COMMAND: Reply = Reply::fixed(500, "5.5.2 NUL byte not allowed");
pub(crate) const LINE_TOO_LONG: Reply = Reply::fixed(500, "5.5.6 Line too long");
pub(crate) const BAD_SENDER: Reply = Reply::fixed(501, "5.5.4 Invalid sender address");
pub(crate) const BAD_RECIPIENT: Reply = Reply::fixed(501, "5.5.4 Invalid recipient address");
pub(crate) const TOO_MANY_RECIPIENTS: Reply = Reply::fixed(452, "4.5.3 Too many recipients");
pub(crate) const TOO_BIG: Reply = Reply::fixed(552, "5.3.4 Message too big");
pub(crate) const BARE_LF_DATA: Reply = Reply::fixed(554, "5.6.11 Bare <LF> in message; lines must end with <CR><LF>");
pub(crate) const TEMPORARY: Reply = Reply::fixed(451, "4.3.0 Temporarily unavailable, try again later");

pub(crate) const IDLE: Reply = Reply::fixed(421, "4.4.2 Idle timeout, closing connection");
pub(crate) const EXPIRED: Reply = Reply::fixed(421, "4.4.2 Session too long, closing connection");
pub(crate) const TOO_MANY_FROM_ADDRESS: Reply =
    Reply::fixed(421, "4.7.0 Too many connections from your address, try again later");
pub(crate) const SHUTTING_DOWN: Reply = Reply::fixed(421, "4.3.2 shutting down");
pub(crate) const TOO_MANY_CONNECTIONS: Reply = Reply::fixed(421, "4.3.2 Too many connections, try again later");
pub(crate) const TOO_MANY_ERRORS: Reply = Reply::fixed(421, "4.7.0 Too many errors, closing connection");

/// `501 5.5.4` with the expected syntax.
pub(crate) fn syntax(expected: &str) -> Reply {
    Reply::new(501, "5.5.4", &format!("Syntax: {expected}"))
}

/// The answer to a command line smtp-proto could not parse.
pub(crate) fn parse_error(error: &ParseError) -> Reply {
    match error {
        ParseError::UnknownCommand => UNKNOWN_COMMAND,
        ParseError::InvalidSenderAddress => BAD_SENDER,
        ParseError::InvalidRecipientAddress => BAD_RECIPIENT,
        ParseError::SyntaxError { syntax: expected } => syntax(expected),
        ParseError::InvalidParameter { param } => Reply::new(501, "5.5.4", &format!("Invalid parameter {param}")),
        ParseError::UnsupportedParameter { param } => {
            Reply::new(555, "5.5.4", &format!("Unsupported parameter {param}"))
        }
        ParseError::ResponseTooLong => LINE_TOO_LONG,
        ParseError::NeedsMoreData { .. } | ParseError::InvalidResponse { .. } => syntax("see RFC 5321"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_removes_line_breaks_and_caps_length() {
        assert_eq!(sanitize("a\r\n250 forged"), "a  250 forged");
        assert_eq!(sanitize(&"x".repeat(500)).len(), MAX_TEXT);
    }

    #[test]
    fn replies_are_single_lines() {
        let mut out = Vec::new();
        Reply::new(554, "5.6.0", "no\r\nway").write_to(&mut out);
        assert_eq!(out, b"554 5.6.0 no  way\r\n");
    }
}
