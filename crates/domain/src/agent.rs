//! Agents: email addresses hosted here. An address is stored lowercased (recipient lookup
//! is case-insensitive) and must be on one of the accepted domains.

use std::fmt;

/// Longest address accepted (RFC 5321 path limit).
pub const MAX_ADDRESS_LEN: usize = 254;

/// A syntactically valid, lowercased `local@domain`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, serde::Serialize)]
pub struct AgentAddress(String);

/// Why an address is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("not an email address (expected local@domain)")]
    Malformed,
    #[error("the domain is not one this server accepts mail for (accepted: {accepted})")]
    DomainNotAccepted { accepted: String },
}

impl AgentAddress {
    /// Parses `local@domain`: trimmed, lowercased, at most 254 bytes, a dot-atom local part
    /// of at most 64 bytes and a domain of letters, digits, hyphens and dots.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        let s = s.trim().to_ascii_lowercase();
        if s.len() > MAX_ADDRESS_LEN {
            return Err(AddressError::Malformed);
        }
        let (local, domain) = s.rsplit_once('@').ok_or(AddressError::Malformed)?;
        let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && local.split('.').all(|part| !part.is_empty() && part.chars().all(atext));
        let domain_ok = domain.len() >= 3
            && domain.contains('.')
            && domain.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok { Ok(Self(s)) } else { Err(AddressError::Malformed) }
    }

    /// Wraps a value read back from the store, which only holds valid addresses.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

impl fmt::Display for AgentAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The domains this server accepts mail for (`HERALD_SMTP_DOMAINS`), lowercased.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AcceptedDomains(Vec<String>);

impl AcceptedDomains {
    /// From a comma list; blanks are ignored.
    pub fn parse(list: &str) -> Self {
        Self(
            list.split(',')
                .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|d| !d.is_empty())
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Whether `domain` (any case) is one of ours.
    pub fn contains(&self, domain: &str) -> bool {
        let d = domain.trim_end_matches('.');
        self.0.iter().any(|ours| ours.eq_ignore_ascii_case(d))
    }

    /// Parses an agent address and checks its domain is accepted.
    pub fn address(&self, s: &str) -> Result<AgentAddress, AddressError> {
        let a = AgentAddress::parse(s)?;
        if self.contains(a.domain()) {
            Ok(a)
        } else {
            let accepted = if self.0.is_empty() { "none configured".to_owned() } else { self.0.join(", ") };
            Err(AddressError::DomainNotAccepted { accepted })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_lowercased_and_checked_against_the_accepted_domains() {
        let ours = AcceptedDomains::parse(" Agents.Example.com, other.test ,");
        assert_eq!(ours.as_slice(), ["agents.example.com", "other.test"]);
        assert_eq!(ours.address(" Bot@AGENTS.example.com ").unwrap().as_str(), "bot@agents.example.com");
        let err = ours.address("bot@elsewhere.test").unwrap_err();
        assert!(err.to_string().contains("agents.example.com, other.test"), "{err}");
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in ["", "bot", "@x.test", "bot@", "a..b@x.test", "bot@x", "bot@-x.test", "b ot@x.test", "bot@x_y.test"]
        {
            assert_eq!(AgentAddress::parse(bad), Err(AddressError::Malformed), "{bad:?}");
        }
        let long = format!("{}@x.test", "a".repeat(65));
        assert_eq!(AgentAddress::parse(&long), Err(AddressError::Malformed));
        assert!(AgentAddress::parse("first.last+tag@sub.x.test").is_ok());
    }
}
