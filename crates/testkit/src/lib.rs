//! Test support shared by Herald's crates, also used by `herald bench --workload smtp` (the
//! sender's DNS records on loopback).
//!
//! - [`LoopbackDns`]: a DNS server on 127.0.0.1 whose records the test sets, so that
//!   resolvers under test never reach public DNS.
//! - [`browser::Browser`]: a headless Chromium driven over WebDriver (Debian's `chromium` and
//!   `chromium-driver`), for tests of the web pages (feature `browser`).

#[cfg(feature = "browser")]
pub mod browser;
pub mod dns;

pub use dns::{LoopbackDns, unused_loopback_addr};
