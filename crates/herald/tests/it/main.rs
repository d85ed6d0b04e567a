//! Herald's integration tests: the real app on port 0, a real SQLite file, real
//! receivers on loopback. Tests await conditions with deadlines; none sleeps to wait.

mod support;

mod api;
mod backup;
mod cli;
mod control_replicas;
mod crash;
mod delivery_control;
mod dns;
mod engine;
mod faults;
mod inbound;
mod inbound_auth;
mod input;
mod keys;
mod library;
mod lifecycle;
mod logs;
mod metrics;
mod openapi_contract;
mod operational;
mod pg_restart;
mod portal;
mod portal_browser;
mod receivers;
mod replicas;
mod signatures;
mod ssrf;
