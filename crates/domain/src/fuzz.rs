//! Property-based fuzzing of the parsers that see untrusted input: URLs and addresses,
//! `Retry-After`, and signature building/verification. Every test name starts with
//! `fuzz_`; `PROPTEST_CASES=200000 cargo test -p herald-domain --release fuzz_` runs a long
//! session (a short one runs with every `cargo test`). Failing inputs are kept by proptest
//! in `proptest-regressions/` and replayed first on every run.

use crate::ip_policy::IpPolicy;
use crate::retry::{MAX_RETRY_AFTER, parse_retry_after};
use crate::signing::{SecretSet, SigningSecret, verify_e2a, verify_standard};
use crate::target_url::TargetUrl;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn now() -> time::OffsetDateTime {
    time::macros::datetime!(2026-11-28 12:00 UTC)
}

proptest! {
    #[test]
    fn fuzz_mapped_and_compatible_ipv6_are_always_refused(v4 in any::<u32>()) {
        let p = IpPolicy::default();
        let a = Ipv4Addr::from(v4);
        prop_assert!(p.check(IpAddr::V6(a.to_ipv6_mapped())).is_err());
        prop_assert!(p.check(IpAddr::V6(a.to_ipv6_compatible())).is_err());
    }

    #[test]
    fn fuzz_every_address_in_a_denied_v4_range_is_refused(host in any::<u32>(), range in 0usize..6) {
        let (base, bits): (u32, u32) = [
            (0x7f00_0000, 8), (0x0a00_0000, 8), (0xac10_0000, 12), (0xc0a8_0000, 16), (0xa9fe_0000, 16), (0x6440_0000, 10),
        ][range];
        let mask = if bits == 32 { 0 } else { u32::MAX >> bits };
        let ip = Ipv4Addr::from(base | (host & mask));
        prop_assert!(IpPolicy::default().check(IpAddr::V4(ip)).is_err(), "{ip}");
    }

    #[test]
    fn fuzz_ip_policy_never_panics_on_any_ipv6(v6 in any::<u128>()) {
        let _ = IpPolicy::default().check(IpAddr::V6(Ipv6Addr::from(v6)));
    }

    #[test]
    fn fuzz_target_urls_accepted_are_well_formed(s in ".{0,300}", https in any::<bool>()) {
        if let Ok(u) = TargetUrl::parse(&s, https, &IpPolicy::default()) {
            let url = u.as_url();
            prop_assert!(url.scheme() == "https" || (!https && url.scheme() == "http"));
            prop_assert!(url.username().is_empty() && url.password().is_none());
            prop_assert!(s.len() <= crate::target_url::MAX_URL_LEN);
            if let Some(ip) = u.ip_literal() {
                prop_assert!(IpPolicy::default().check(ip).is_ok());
            }
        }
    }

    #[test]
    fn fuzz_url_shaped_inputs_never_slip_a_private_literal_through(
        a in any::<u32>(), port in any::<u16>(), path in "[a-z/]{0,20}"
    ) {
        let ip = Ipv4Addr::from(a);
        for u in [format!("http://{ip}:{port}/{path}"), format!("http://{a}/{path}"), format!("http://0x{a:x}/{path}")] {
            if let Ok(t) = TargetUrl::parse(&u, false, &IpPolicy::default()) {
                prop_assert!(IpPolicy::default().check(t.ip_literal().expect("a literal")).is_ok(), "{u}");
            }
        }
    }

    #[test]
    fn fuzz_retry_after_never_panics_and_is_capped(s in ".{0,64}") {
        if let Some(d) = parse_retry_after(&s, now()) {
            prop_assert!(d <= MAX_RETRY_AFTER);
        }
    }

    #[test]
    fn fuzz_retry_after_seconds_are_read_exactly(n in any::<u64>()) {
        let d = parse_retry_after(&n.to_string(), now()).unwrap();
        prop_assert_eq!(d, std::time::Duration::from_secs(n).min(MAX_RETRY_AFTER));
    }

    #[test]
    fn fuzz_signatures_verify_and_any_changed_byte_fails(
        body in proptest::collection::vec(any::<u8>(), 0..512), secret in "[a-zA-Z0-9+/]{8,64}", flip in any::<usize>()
    ) {
        let s = SigningSecret::from_stored(format!("whsec_{secret}"));
        let h = SecretSet::single(s.clone()).sign("evt_x", &body, now());
        prop_assert!(verify_e2a(&h.e2a_signature, &body, &s));
        prop_assert!(verify_standard(&h.webhook_signature, "evt_x", &h.timestamp.to_string(), &body, &s));
        if !body.is_empty() {
            let mut changed = body.clone();
            let i = flip % changed.len();
            changed[i] ^= 0x01;
            prop_assert!(!verify_e2a(&h.e2a_signature, &changed, &s));
            prop_assert!(!verify_standard(&h.webhook_signature, "evt_x", &h.timestamp.to_string(), &changed, &s));
        }
    }

    #[test]
    fn fuzz_signature_verifiers_never_panic_on_garbage_headers(header in ".{0,200}", body in ".{0,50}") {
        let s = SigningSecret::from_stored("whsec_x".into());
        let _ = verify_e2a(&header, body.as_bytes(), &s);
        let _ = verify_standard(&header, "id", "1", body.as_bytes(), &s);
    }
}
