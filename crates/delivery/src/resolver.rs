//! Name resolution with the address policy applied to every answer.
//!
//! reqwest calls [`GuardedResolver`] for every new connection to a host name and dials
//! only the addresses it returns, so the address checked is the address connected to.
//! IP-literal URLs bypass resolvers in reqwest; [`crate::sender`] checks those itself.

use herald_domain::{IpPolicy, TargetUrl, UrlError};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Turns a host name into addresses. Injectable so tests never touch public DNS.
pub trait Lookup: Send + Sync + 'static {
    fn lookup(&self, host: String) -> Pin<Box<dyn Future<Output = Result<Vec<IpAddr>, BoxError>> + Send>>;
}

/// The system's DNS configuration through hickory.
pub struct HickoryLookup(hickory_resolver::TokioResolver);

impl HickoryLookup {
    pub fn from_system() -> Result<Self, BoxError> {
        Ok(Self(hickory_resolver::TokioResolver::builder_tokio()?.build()?))
    }

    /// Every lookup goes to the DNS server at `server` (UDP, then TCP), never the system's
    /// configuration (`HERALD_DNS_SERVER`: a local caching resolver, or a test's).
    pub fn with_server(server: SocketAddr) -> Result<Self, BoxError> {
        use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
        let mut udp = ConnectionConfig::udp();
        udp.port = server.port();
        let mut tcp = ConnectionConfig::tcp();
        tcp.port = server.port();
        let config =
            ResolverConfig::from_parts(None, vec![], vec![NameServerConfig::new(server.ip(), true, vec![udp, tcp])]);
        let provider = hickory_resolver::net::runtime::TokioRuntimeProvider::default();
        Ok(Self(hickory_resolver::TokioResolver::builder_with_config(config, provider).build()?))
    }
}

impl Lookup for HickoryLookup {
    fn lookup(&self, host: String) -> Pin<Box<dyn Future<Output = Result<Vec<IpAddr>, BoxError>> + Send>> {
        let r = self.0.clone();
        Box::pin(async move {
            let ips = r.lookup_ip(host.as_str()).await?;
            Ok(ips.iter().collect())
        })
    }
}

/// A fixed table of answers (tests, benchmarks). Unknown names fail to resolve.
#[derive(Clone, Default)]
pub struct StaticLookup(pub Arc<std::sync::Mutex<HashMap<String, Vec<IpAddr>>>>);

impl StaticLookup {
    pub fn set(&self, host: &str, ips: Vec<IpAddr>) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(host.to_owned(), ips);
    }
}

impl Lookup for StaticLookup {
    fn lookup(&self, host: String) -> Pin<Box<dyn Future<Output = Result<Vec<IpAddr>, BoxError>> + Send>> {
        let found = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&host).cloned();
        Box::pin(async move { found.ok_or_else(|| format!("no such host: {host}").into()) })
    }
}

/// Error returned when every address of a name is refused by the policy.
#[derive(Debug, thiserror::Error)]
#[error("destination refused: {host} resolves only to addresses that are not allowed")]
pub struct RefusedDestination {
    pub host: String,
}

/// A resolver that filters every answer through the address policy.
#[derive(Clone)]
pub struct GuardedResolver {
    lookup: Arc<dyn Lookup>,
    policy: IpPolicy,
}

impl GuardedResolver {
    pub fn new(lookup: Arc<dyn Lookup>, policy: IpPolicy) -> Self {
        Self { lookup, policy }
    }

    pub fn policy(&self) -> &IpPolicy {
        &self.policy
    }

    /// Resolves `host` and keeps only allowed addresses; an error if none is left.
    pub async fn resolve_allowed(&self, host: &str) -> Result<Vec<IpAddr>, BoxError> {
        let ips = self.lookup.lookup(host.to_owned()).await?;
        if ips.is_empty() {
            // No address at all is a DNS failure (retried), not a refusal by the policy.
            return Err(format!("{host} has no address").into());
        }
        let allowed: Vec<IpAddr> = ips.into_iter().filter(|ip| self.policy.check(*ip).is_ok()).collect();
        if allowed.is_empty() {
            return Err(Box::new(RefusedDestination { host: host.to_owned() }));
        }
        Ok(allowed)
    }

    /// Registration-time check: an IP literal against the policy (done by parsing), a
    /// name by resolving it — every resolved address must be allowed.
    pub async fn vet(&self, url: &TargetUrl) -> Result<(), UrlError> {
        if url.ip_literal().is_some() {
            return Ok(());
        }
        let ips = self
            .lookup
            .lookup(url.host().to_owned())
            .await
            .map_err(|_| UrlError::Refused(format!("host {} does not resolve", url.host())))?;
        if ips.is_empty() {
            return Err(UrlError::Refused(format!("host {} does not resolve", url.host())));
        }
        for ip in ips {
            self.policy.check(ip).map_err(|e| UrlError::Refused(e.to_string()))?;
        }
        Ok(())
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let ips = this.resolve_allowed(&host).await?;
            // Port 0: reqwest puts the URL's port back.
            let addrs: reqwest::dns::Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guarded(table: &[(&str, &str)]) -> GuardedResolver {
        let l = StaticLookup::default();
        for (h, ip) in table {
            l.set(h, vec![ip.parse().unwrap()]);
        }
        GuardedResolver::new(Arc::new(l), IpPolicy::default())
    }

    #[tokio::test]
    async fn names_resolving_inside_are_refused_at_registration() {
        let r = guarded(&[("inside.test", "10.0.0.7"), ("outside.test", "93.184.216.34")]);
        let p = IpPolicy::default();
        let inside = TargetUrl::parse("https://inside.test/hook", false, &p).unwrap();
        let outside = TargetUrl::parse("https://outside.test/hook", false, &p).unwrap();
        assert!(matches!(r.vet(&inside).await, Err(UrlError::Refused(_))));
        assert!(r.vet(&outside).await.is_ok());
    }

    #[tokio::test]
    async fn resolver_filters_refused_addresses_out() {
        let l = StaticLookup::default();
        l.set("mixed.test", vec!["127.0.0.1".parse().unwrap(), "93.184.216.34".parse().unwrap()]);
        let r = GuardedResolver::new(Arc::new(l), IpPolicy::default());
        assert_eq!(r.resolve_allowed("mixed.test").await.unwrap(), vec!["93.184.216.34".parse::<IpAddr>().unwrap()]);
        assert!(r.resolve_allowed("nowhere.test").await.is_err());
    }
}
