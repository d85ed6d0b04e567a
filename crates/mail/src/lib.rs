//! Herald's inbound mail: parsing a message into the fields Herald keeps ([`parse`]) and
//! authenticating it with SPF, DKIM and DMARC ([`Authenticator`]), and the RFC 8601
//! `Authentication-Results:` header field of the outcome ([`authentication_results`]).
//!
//! The types produced live in `herald-domain` ([`ParsedMail`], [`Attachment`],
//! [`AuthResults`], [`DkimResult`]) and are re-exported here.

mod authenticate;
mod fields;
mod parse;
mod results_header;

pub use authenticate::{
    AuthError, Authenticator, DEFAULT_TIME_LIMIT, DNS_RETRIES, DNS_TIMEOUT, MAX_DKIM_SIGNATURES, SmtpClient,
};
pub use herald_domain::{Attachment, AuthResults, DkimResult, ParsedMail};
pub use parse::{CONVERSATION_HEADER, ParseError, parse};
pub use results_header::{authentication_results, without_forged_results};

/// The domain of an address (after its last `@`), lower-cased; empty when there is none.
/// For the `header_from_domain` of [`authentication_results`]: `domain_of(&parsed.from)`.
pub fn domain_of(address: &str) -> String {
    address.rsplit_once('@').map(|(_, d)| d.trim().trim_end_matches('>').to_ascii_lowercase()).unwrap_or_default()
}
