//! Test support shared by Herald's crates (a dev-dependency only).
//!
//! - [`LoopbackDns`]: a DNS server on 127.0.0.1 whose records the test sets, so that
//!   resolvers under test never reach public DNS.

pub mod dns;

pub use dns::{LoopbackDns, unused_loopback_addr};
