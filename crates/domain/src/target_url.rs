//! A webhook target URL, parsed at the edge: scheme, length, no userinfo, and, when the
//! host is an IP literal in any spelling, the address policy.

use crate::ip_policy::IpPolicy;
use std::net::IpAddr;

/// Longest accepted URL.
pub const MAX_URL_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("URL is longer than {MAX_URL_LEN} characters")]
    TooLong,
    #[error("URL is not valid: {0}")]
    Invalid(String),
    #[error("URL scheme must be https")]
    HttpsRequired,
    #[error("URL scheme must be http or https")]
    Scheme,
    #[error("URL must not contain credentials")]
    Userinfo,
    #[error("URL must have a host")]
    NoHost,
    #[error("{0}")]
    Refused(String),
}

/// A URL Herald may deliver to (modulo DNS, checked at connect time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetUrl(url::Url);

impl TargetUrl {
    pub fn parse(s: &str, require_https: bool, policy: &IpPolicy) -> Result<Self, UrlError> {
        if s.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(UrlError::Invalid("contains whitespace or control characters".into()));
        }
        let u = url::Url::parse(s).map_err(|e| UrlError::Invalid(e.to_string()))?;
        // The normalised form (percent-encoded, punycode) is what is stored and sent.
        if u.as_str().len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        match u.scheme() {
            "https" => {}
            "http" if !require_https => {}
            "http" => return Err(UrlError::HttpsRequired),
            _ => return Err(UrlError::Scheme),
        }
        if !u.username().is_empty() || u.password().is_some() {
            return Err(UrlError::Userinfo);
        }
        let t = Self(u);
        if let Some(ip) = t.ip_literal() {
            policy.check(ip).map_err(|e| UrlError::Refused(e.to_string()))?;
        } else if t.host().is_empty() {
            return Err(UrlError::NoHost);
        }
        Ok(t)
    }

    /// The host as an address when the URL names one (the URL parser has already
    /// normalised decimal, hex, octal and short IPv4 forms).
    pub fn ip_literal(&self) -> Option<IpAddr> {
        match self.0.host()? {
            url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            url::Host::Domain(_) => None,
        }
    }

    pub fn host(&self) -> &str {
        self.0.host_str().unwrap_or("")
    }

    pub fn port(&self) -> u16 {
        self.0.port_or_known_default().unwrap_or(80)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn as_url(&self) -> &url::Url {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> IpPolicy {
        IpPolicy::default()
    }

    #[test]
    fn accepts_ordinary_public_urls() {
        assert!(TargetUrl::parse("https://hooks.example.com/in?x=1", true, &strict()).is_ok());
        assert!(TargetUrl::parse("http://8.8.8.8:8080/", false, &strict()).is_ok());
    }

    #[test]
    fn rejects_bad_shapes() {
        let p = strict();
        assert_eq!(TargetUrl::parse("ftp://x.example/", false, &p), Err(UrlError::Scheme));
        assert_eq!(TargetUrl::parse("http://x.example/", true, &p), Err(UrlError::HttpsRequired));
        assert_eq!(TargetUrl::parse("https://u:p@x.example/", false, &p), Err(UrlError::Userinfo));
        assert!(matches!(TargetUrl::parse("https://x.example/a\r\nb", false, &p), Err(UrlError::Invalid(_))));
        assert!(matches!(TargetUrl::parse("not a url", false, &p), Err(UrlError::Invalid(_))));
        let long = format!("https://x.example/{}", "a".repeat(2048));
        assert_eq!(TargetUrl::parse(&long, false, &p), Err(UrlError::TooLong));
    }

    #[test]
    fn the_length_limit_applies_to_the_stored_normalised_form() {
        // 1,000 × "é" is 2,000 bytes typed but 6,000 once percent-encoded.
        let typed = format!("https://x.example/{}", "é".repeat(1000));
        assert!(typed.chars().count() <= MAX_URL_LEN);
        assert_eq!(TargetUrl::parse(&typed, false, &strict()), Err(UrlError::TooLong));
        let ok = format!("https://x.example/{}", "é".repeat(300));
        assert!(TargetUrl::parse(&ok, false, &strict()).unwrap().as_str().len() <= MAX_URL_LEN);
    }

    #[test]
    fn every_spelling_of_a_private_literal_is_refused() {
        for u in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://10.0.0.1/",
            "http://169.254.169.254/latest/",
            "http://0/",
        ] {
            assert!(matches!(TargetUrl::parse(u, false, &strict()), Err(UrlError::Refused(_))), "{u}");
        }
        assert!(TargetUrl::parse("http://127.0.0.1:9/", false, &IpPolicy::allow_all()).is_ok());
    }
}
