//! Which addresses deliveries may connect to. One policy, used at registration and at
//! every connection.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

/// IPv4 special-purpose ranges (IANA) that are never public destinations.
static DENY_V4: LazyLock<Vec<Ipv4Net>> = LazyLock::new(|| {
    [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    ]
    .iter()
    .map(|s| s.parse().expect("valid CIDR"))
    .collect()
});

/// IPv6 ranges refused outright. Besides the non-public ranges this includes every
/// transition prefix that embeds an IPv4 address (NAT64, 6to4, Teredo): a webhook never
/// needs them and they are a classic way around IPv4 checks.
static DENY_V6: LazyLock<Vec<Ipv6Net>> = LazyLock::new(|| {
    [
        "::/128",
        "::1/128",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "2002::/16",
        "3fff::/20",
        "5f00::/16",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    ]
    .iter()
    .map(|s| s.parse().expect("valid CIDR"))
    .collect()
});

/// Why an address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("destination address {0} is not allowed (private, loopback or reserved)")]
pub struct Refused(pub IpAddr);

/// The address policy: deny special ranges unless allowed.
#[derive(Clone, Debug, Default)]
pub struct IpPolicy {
    /// Allow every address (`HERALD_ALLOW_PRIVATE_TARGETS=true`).
    pub allow_private: bool,
    /// Ranges allowed even though they are special (checked first).
    pub allow: Vec<IpNet>,
}

impl IpPolicy {
    pub fn allow_all() -> Self {
        Self { allow_private: true, allow: Vec::new() }
    }

    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        if self.allow_private {
            return Ok(());
        }
        let canonical = canonical(ip);
        if self.allow.iter().any(|n| n.contains(&ip) || n.contains(&canonical)) {
            return Ok(());
        }
        // IPv4 embedded in IPv6 (mapped, compatible) is refused in every form, even when the
        // IPv4 address itself is public: the spelling exists to slip past filters.
        if is_public(ip) { Ok(()) } else { Err(Refused(ip)) }
    }
}

/// Unwraps IPv4-mapped (`::ffff:a.b.c.d`) and IPv4-compatible (`::a.b.c.d`) addresses, so an
/// allow-list entry for an IPv4 range also admits its embedded spellings.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
                return IpAddr::V4(Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7])));
            }
            ip
        }
        v4 => v4,
    }
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !DENY_V4.iter().any(|n| n.contains(&v4)),
        IpAddr::V6(v6) => is_global_unicast_v6(v6) && !DENY_V6.iter().any(|n| n.contains(&v6)),
    }
}

/// Only 2000::/3 is allocated global unicast; everything else is reserved.
fn is_global_unicast_v6(v6: Ipv6Addr) -> bool {
    (v6.segments()[0] & 0xe000) == 0x2000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_table() {
        let p = IpPolicy::default();
        let refused = [
            "127.0.0.1",
            "127.255.255.254",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "198.19.255.255",
            "240.0.0.1",
            "192.0.0.8",
            "192.88.99.1",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::10.0.0.1",
            "::ffff:8.8.8.8",
            "::ffff:1.2.3.4",
            "::1.2.3.4",
            "::8.8.8.8",
            "64:ff9b::8.8.8.8",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:0808:0808::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "100::1",
            "fec0::1",
            "3fff::1",
            "4000::1",
            "::2:3:4:5:6",
            "1::1",
        ];
        for a in refused {
            let ip: IpAddr = a.parse().unwrap();
            assert!(p.check(ip).is_err(), "{a} should be refused");
        }
        let allowed = [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "192.169.0.1",
            "169.253.0.1",
            "11.0.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
        ];
        for a in allowed {
            let ip: IpAddr = a.parse().unwrap();
            assert!(p.check(ip).is_ok(), "{a} should be allowed");
        }
    }

    #[test]
    fn allow_private_and_allow_list_open_the_policy() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(IpPolicy::allow_all().check(ip).is_ok());
        let p = IpPolicy { allow_private: false, allow: vec!["127.0.0.0/8".parse().unwrap()] };
        assert!(p.check(ip).is_ok());
        assert!(p.check("::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert!(p.check("10.0.0.1".parse().unwrap()).is_err());
    }
}
