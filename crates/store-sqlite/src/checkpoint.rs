//! WAL checkpoints off the write path. SQLite's automatic checkpoint runs inside the commit
//! that crosses the threshold, so one unlucky writer copies thousands of pages while every
//! other write waits (a 100 ms+ stall at load). Instead Herald's writer never checkpoints (in
//! library mode the caller's own connections still may, with SQLite's defaults), and
//! this task, on a connection of its own, runs PASSIVE checkpoints (they never block the
//! writer or readers) every few milliseconds; the WAL then restarts from its beginning at
//! the next write once it has been copied back whole.

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::{ConnectOptions, Connection};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often a passive checkpoint runs.
pub(crate) const INTERVAL: Duration = Duration::from_millis(100);

/// SQLite's own threshold, given back to the writer when this task cannot run.
const AUTOMATIC_PAGES: &str = "PRAGMA wal_autocheckpoint = 1000";

/// Checkpoints until `stop` is cancelled (when the last handle of the store is dropped).
/// Without a connection of its own it hands checkpoints back to `writer`, so the WAL can
/// never grow without bound.
pub(crate) async fn run(opts: SqliteConnectOptions, writer: SqlitePool, stop: CancellationToken) {
    let Ok(mut conn) = opts.connect().await else {
        tracing::warn!("cannot open the checkpoint connection; the writer checkpoints the WAL itself");
        let _ = sqlx::query(AUTOMATIC_PAGES).execute(&writer).await;
        return;
    };
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut conn).await {
            tracing::debug!(%error, "passive WAL checkpoint failed; retried at the next tick");
        }
    }
    let _ = conn.close().await;
}
