//! The engine's periodic passes: expiry (the janitor), webhook maintenance (auto-disable,
//! secret pruning) and the queue's gauges for `/metrics`.

use crate::engine::Engine;
use herald_domain::operational::Notice;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

impl Engine {
    pub(crate) async fn janitor_loop(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.janitor_interval) => {}
                _ = cancel.cancelled() => return,
            }
            match self.store.delete_expired(self.clock.now(), self.cfg.janitor_batch).await {
                Ok(0) => {}
                Ok(n) => {
                    metrics::counter!("herald_janitor_deleted_rows_total").increment(n);
                    tracing::info!(deleted = n, "janitor removed expired rows")
                }
                Err(e) => tracing::warn!(error = %herald_store::error_chain(&e), "janitor failed; will try again"),
            }
        }
    }

    /// One pass of webhook maintenance: auto-disable chronically failing webhooks and drop
    /// previous signing secrets whose grace has ended. Exposed for tests and for callers that drive time themselves.
    pub async fn maintenance_tick(&self) {
        let now = self.clock.now();
        match self.store.auto_disable(now - self.cfg.auto_disable_window, self.cfg.auto_disable_threshold, now).await {
            Ok(ids) if !ids.is_empty() => {
                for (_, id) in &ids {
                    tracing::warn!(webhook_id = %id, "webhook disabled automatically: failing deliveries, none delivered");
                }
                metrics::counter!("herald_webhooks_auto_disabled_total").increment(ids.len() as u64);
                let failing = herald_domain::DisabledReason::Failing;
                let notices = ids.into_iter().map(|(account, id)| (account, Notice::webhook_disabled(&id, failing)));
                self.notify(notices.collect()).await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %herald_store::error_chain(&e), "auto-disable pass failed; will try again")
            }
        }
        if let Err(e) = self.store.prune_secrets(now).await {
            tracing::warn!(error = %herald_store::error_chain(&e), "pruning expired secrets failed; will try again");
        }
    }

    pub(crate) async fn maintenance_loop(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.auto_disable_interval) => {}
                _ = cancel.cancelled() => return,
            }
            self.maintenance_tick().await;
        }
    }

    /// Refreshes the queue's gauges now and then every `gauges_interval` (the store's three
    /// gauge queries each time, whatever the scrape rate).
    pub(crate) async fn gauges_loop(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            let now = self.clock.now();
            match self.store.queue_gauges(now).await {
                Ok(g) => crate::telemetry::queue(&g, now),
                Err(e) => {
                    tracing::warn!(error = %herald_store::error_chain(&e), "counting the queue failed; will try again")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.gauges_interval) => {}
                _ = cancel.cancelled() => return,
            }
        }
    }
}
