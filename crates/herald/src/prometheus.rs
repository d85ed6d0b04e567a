//! `/metrics`: the process-wide Prometheus recorder, every series Herald records (named and
//! described here, in one list — the README's table follows it), histogram buckets, and
//! the upkeep that folds recorded samples so memory stays flat between scrapes.

use herald_domain::AttemptKind;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// Histogram buckets of every `_seconds` series: 0.5 ms to 30 s.
const SECONDS_BUCKETS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0];

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process-wide recorder (installed once; later apps in the same process share it).
pub fn handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .expect("the buckets are not empty")
                .install_recorder()
                .ok()?;
            describe();
            start_at_zero();
            Some(handle)
        })
        .clone()
}

/// Folds recorded histogram samples into buckets every few seconds, until the process ends.
/// Without it every sample is held until the next scrape: memory would grow with the
/// traffic of a server nobody scrapes.
pub fn spawn_upkeep(handle: PrometheusHandle) {
    static STARTED: OnceLock<()> = OnceLock::new();
    if STARTED.set(()).is_ok() {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(UPKEEP_EVERY);
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        });
    }
}

/// Every series, its unit and what it counts (`# HELP`).
fn describe() {
    describe_counter!(
        "herald_events_published_total",
        "Events stored, by source (api, mail); an idempotent replay is not counted."
    );
    describe_counter!(
        "herald_deliveries_created_total",
        "Deliveries created by the fan-out of stored events (agents' own deliveries included)."
    );
    describe_counter!(
        "herald_attempts_total",
        "Delivery attempts finished, by outcome class (2xx, 3xx, 4xx, 5xx, 1xx, timeout, connect_error, protocol_error, refused_by_policy, not_sent); with HERALD_METRICS_PER_WEBHOOK also by webhook_id."
    );
    describe_histogram!(
        "herald_attempt_duration_seconds",
        Unit::Seconds,
        "Duration of delivery attempts (request sent to answer read, or failure)."
    );
    describe_histogram!(
        "herald_http_request_duration_seconds",
        Unit::Seconds,
        "API and portal requests by method, route template and status; publish latency is route=\"/api/v1/events\"."
    );
    describe_gauge!("herald_attempts_in_flight", "Delivery attempts in flight in this process.");
    describe_gauge!(
        "herald_delivery_slots_free",
        "Global delivery slots free in this process (HERALD_MAX_IN_FLIGHT minus in flight)."
    );
    describe_gauge!(
        "herald_deliveries_pending",
        "Pending deliveries in the store (due, leased or scheduled), counted every few seconds; the same on every replica."
    );
    describe_gauge!(
        "herald_oldest_due_delivery_age_seconds",
        Unit::Seconds,
        "How long the oldest due delivery of an enabled webhook has waited to be taken (0 when none waits), counted every few seconds."
    );
    describe_gauge!(
        "herald_webhooks_disabled",
        "Disabled webhooks by reason (manual, failing, gone; an agent without an endpoint URL is not one), counted every few seconds."
    );
    describe_counter!(
        "herald_webhooks_auto_disabled_total",
        "Webhooks this process disabled automatically for failing."
    );
    describe_counter!(
        "herald_store_errors_total",
        "Store errors by kind: unavailable (database failed or unreachable), invalid (refused a value), corrupt (a stored value did not read back)."
    );
    describe_counter!(
        "herald_janitor_deleted_rows_total",
        "Expired rows (deliveries, events, messages, portal sessions) deleted by the janitor."
    );
    describe_counter!(
        "herald_smtp_sessions_total",
        "SMTP connections by result: served, refused_busy (every slot taken), refused_per_address."
    );
    describe_counter!(
        "herald_smtp_messages_total",
        "SMTP messages by answer: accepted, temporary_failure, rejected, rejected_too_big, rejected_bare_lf."
    );
}

/// Counters an alert takes a rate of exist from the start, at 0 (a series that appears with
/// its first increment hides that increment from `rate()`).
fn start_at_zero() {
    for source in ["api", "mail", "test", "herald"] {
        metrics::counter!("herald_events_published_total", "source" => source).increment(0);
    }
    for outcome in ["2xx", "3xx", "4xx", "5xx", "1xx"].into_iter().chain(AttemptKind::FAILURES.map(AttemptKind::as_str))
    {
        metrics::counter!("herald_attempts_total", "outcome" => outcome).increment(0);
    }
    for answer in ["accepted", "temporary_failure", "rejected", "rejected_too_big", "rejected_bare_lf"] {
        metrics::counter!("herald_smtp_messages_total", "answer" => answer).increment(0);
    }
    for result in ["served", "refused_busy", "refused_per_address"] {
        metrics::counter!("herald_smtp_sessions_total", "result" => result).increment(0);
    }
    metrics::counter!("herald_deliveries_created_total").increment(0);
    for kind in ["unavailable", "invalid", "corrupt"] {
        metrics::counter!("herald_store_errors_total", "kind" => kind).increment(0);
    }
    metrics::counter!("herald_janitor_deleted_rows_total").increment(0);
    metrics::counter!("herald_notices_dropped_total").increment(0);
    metrics::counter!("herald_webhooks_auto_disabled_total").increment(0);
}
