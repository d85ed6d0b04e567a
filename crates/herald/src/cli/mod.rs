//! Commands that talk to a running Herald over its API, and `herald listen`.

pub mod agents;
mod client;
pub mod deliveries;
pub mod events;
pub mod listen;
pub mod signing_keys;
pub mod webhooks;

pub use client::ClientArgs;
