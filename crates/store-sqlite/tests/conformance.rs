//! The shared store conformance suite against a real SQLite file per test.

use herald_store::conformance as suite;
use herald_store_sqlite::{Durability, SqliteStore};

async fn fresh() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    (SqliteStore::open(&url, Durability::Process).await.unwrap(), dir)
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let (store, _dir) = fresh().await;
            suite::$name(&store).await;
        }
    )*};
}

conformance!(
    claim_hides_rows_until_the_lease_expires,
    outcomes_are_compare_and_set_on_the_lease,
    claims_respect_the_per_webhook_cap,
    disabled_webhooks_are_skipped_until_enabled,
    expired_rows_are_ignored_and_deleted_in_batches,
    resources_are_scoped_by_account,
    released_leases_are_due_again_without_an_attempt,
    rotation_keeps_previous_secrets_until_their_own_expiry,
    failing_webhooks_are_auto_disabled,
    recovery_redelivers_matching_events_in_the_window,
    events_log_lists_and_shows_events,
    event_types_and_idempotency_are_per_account,
    publish_fans_out_by_type_and_filters,
);
