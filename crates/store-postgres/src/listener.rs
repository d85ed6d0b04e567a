//! LISTEN for work signals from every replica; reconnect by itself when the connection drops.

use herald_store::WorkSignal;
use sqlx::postgres::{PgListener, PgPool};
use std::time::Duration;

/// Runs for the life of the process: every notification on [`crate::CHANNEL`] wakes the
/// local engine. After a (re)connection the engine is woken once too, since notifications
/// sent while disconnected are lost.
pub(crate) async fn listen(pool: PgPool, signal: WorkSignal, stop: tokio_util::sync::CancellationToken) {
    tokio::select! {
        _ = run(pool, signal) => {}
        _ = stop.cancelled() => {}
    }
}

async fn run(pool: PgPool, signal: WorkSignal) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut l) => {
                if let Err(e) = l.listen(crate::CHANNEL).await {
                    tracing::warn!(error = %e, "LISTEN failed; retrying");
                } else {
                    backoff = Duration::from_millis(100);
                    signal.raise();
                    loop {
                        match l.try_recv().await {
                            Ok(Some(_)) => signal.raise(),
                            Ok(None) => {
                                // The connection was lost and re-established by sqlx.
                                tracing::info!("notification connection re-established");
                                signal.raise();
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "notification connection failed; reconnecting");
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect for LISTEN; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Sends one `NOTIFY` per request, folding requests that arrive while one is pending.
pub(crate) async fn notify_loop(pool: PgPool, mut wanted: tokio::sync::mpsc::Receiver<()>) {
    while wanted.recv().await.is_some() {
        if let Err(e) = sqlx::query("SELECT pg_notify($1, '')").bind(crate::CHANNEL).execute(&pool).await {
            tracing::debug!(error = %e, "NOTIFY failed; other replicas will find the work by polling");
        }
    }
}
