//! Herald's delivery engine.
//!
//! * [`resolver`]: DNS with the SSRF guard — every address is checked by the one
//!   [`IpPolicy`](herald_domain::IpPolicy) and the connection goes to the checked address.
//! * [`sender`]: one signed HTTP attempt, classified into an
//!   [`AttemptOutcome`](herald_domain::AttemptOutcome).
//! * [`engine`]: the dispatcher (global and per-webhook caps) and the outcome recorder. Lease, deliver, record: no transaction is open across an HTTP call.
//! * `maintenance`: the engine's periodic passes (expiry, auto-disable, secret pruning,
//!   the queue's gauges); `notices`: the operational events it publishes; `telemetry`:
//!   the engine's metrics.
#![forbid(unsafe_code)]

mod attempt;
pub mod engine;
mod maintenance;
mod notices;
pub mod resolver;
pub mod sender;
mod telemetry;

pub use engine::{Engine, EngineConfig, EngineHandle};
pub use resolver::{GuardedResolver, HickoryLookup, Lookup, StaticLookup};
pub use sender::{Sender, SenderConfig};
