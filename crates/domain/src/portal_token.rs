//! Portal tokens: a one-time link token (`hpl_` + 48 hex) and the session cookie it is
//! exchanged for (`hps_` + 48 hex). Both are stored only as SHA-256 hashes; the session's
//! CSRF token is derived from the cookie (a page can show it; the cookie stays `HttpOnly`).

use sha2::{Digest, Sha256};

/// What a portal token is for; its prefix says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortalTokenKind {
    /// In the link handed to a user; exchanged once for a session.
    Link,
    /// The session cookie.
    Session,
}

impl PortalTokenKind {
    fn prefix(self) -> &'static str {
        match self {
            Self::Link => "hpl_",
            Self::Session => "hps_",
        }
    }
}

/// A portal token in clear. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct PortalToken(String);

impl std::fmt::Debug for PortalToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PortalToken(***)")
    }
}

impl PortalToken {
    pub fn generate(kind: PortalTokenKind) -> Self {
        Self(format!("{}{}", kind.prefix(), hex::encode(crate::random_bytes::<24>())))
    }

    /// Accepts a token of `kind`'s documented shape only.
    pub fn parse(kind: PortalTokenKind, s: &str) -> Option<Self> {
        let hex = s.strip_prefix(kind.prefix())?;
        (hex.len() == 48 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then(|| Self(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The value stored and looked up: lowercase hex SHA-256 of the token.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// The CSRF token of the session this cookie opens: a one-way function of the cookie,
    /// so it needs no storage and a page that shows it does not reveal the cookie.
    pub fn csrf(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"herald portal csrf\0");
        h.update(self.0.as_bytes());
        hex::encode(&h.finalize()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_only_as_their_own_kind() {
        let link = PortalToken::generate(PortalTokenKind::Link);
        assert!(link.expose().starts_with("hpl_"));
        assert_eq!(PortalToken::parse(PortalTokenKind::Link, link.expose()), Some(link.clone()));
        assert_eq!(PortalToken::parse(PortalTokenKind::Session, link.expose()), None);
        assert_eq!(PortalToken::parse(PortalTokenKind::Link, "hpl_short"), None);
        assert_eq!(PortalToken::parse(PortalTokenKind::Link, &link.expose().to_uppercase()), None);
        assert_ne!(link.hash(), PortalToken::generate(PortalTokenKind::Link).hash());
        assert_eq!(link.hash().len(), 64);
    }

    #[test]
    fn csrf_is_stable_per_session_and_differs_between_sessions() {
        let a = PortalToken::generate(PortalTokenKind::Session);
        let b = PortalToken::generate(PortalTokenKind::Session);
        assert_eq!(a.csrf(), a.clone().csrf());
        assert_ne!(a.csrf(), b.csrf());
        assert_eq!(a.csrf().len(), 32);
        assert!(!a.csrf().contains(&a.expose()[4..]));
    }
}
