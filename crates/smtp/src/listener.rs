//! The accept loop: one task per connection, a cap on concurrent sessions, and graceful
//! shutdown.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::reply;
use crate::session::{self, Shared};
use crate::{Inbound, SmtpConfig, conn};

/// How long to wait before accepting again after `accept` failed (e.g. out of file
/// descriptors), so that the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves SMTP on `listener` until `shutdown` is cancelled.
///
/// Each connection runs in its own task. Connections beyond
/// [`SmtpConfig::max_connections`] get `421 4.3.2` and are closed. When `shutdown` is
/// cancelled the listener is closed at once; each open session answers
/// `421 4.3.2 shutting down` and closes the next time it waits for a command (a message
/// being received or handed to [`Inbound::accept_message`] is finished first).
/// Returns once every session has ended.
pub async fn serve(listener: TcpListener, config: SmtpConfig, inbound: Arc<dyn Inbound>, shutdown: CancellationToken) {
    let sessions = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let per_address: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let shared = Arc::new(Shared { acceptor: conn::acceptor(&config.tls), config, inbound });
    tracing::info!(address = ?listener.local_addr().ok(), "smtp listening");
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "smtp accept failed");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        let Some(from_ip) = PerAddress::enter(&per_address, peer.ip(), shared.config.max_connections_per_ip) else {
            tracing::debug!(%peer, "smtp connection refused: too many from this address");
            session_counted("refused_per_address");
            sessions.spawn(refuse(stream, shared.config.idle_timeout, reply::TOO_MANY_FROM_ADDRESS));
            continue;
        };
        match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => {
                session_counted("served");
                let shared = Arc::clone(&shared);
                let shutdown = shutdown.clone();
                sessions.spawn(async move {
                    session::run(stream, peer, shared, shutdown).await;
                    drop((permit, from_ip));
                });
            }
            Err(_) => {
                tracing::debug!(%peer, "smtp connection refused: too many connections");
                session_counted("refused_busy");
                drop(from_ip);
                sessions.spawn(refuse(stream, shared.config.idle_timeout, reply::TOO_MANY_CONNECTIONS));
            }
        }
    }
    drop(listener);
    sessions.close();
    sessions.wait().await;
    tracing::info!("smtp stopped");
}

/// One session counted against its client address; uncounted when dropped.
struct PerAddress {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl PerAddress {
    /// Counts a session from `ip`, unless `max` are already open.
    fn enter(counts: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr, max: usize) -> Option<Self> {
        let ip = ip.to_canonical();
        let mut map = counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Self { counts: Arc::clone(counts), ip })
    }
}

impl Drop for PerAddress {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Tells a client over a connection cap to come back later.
async fn refuse(mut stream: TcpStream, timeout: Duration, why: reply::Reply) {
    let mut out = Vec::new();
    why.write_to(&mut out);
    let _ = tokio::time::timeout(timeout, async {
        stream.write_all(&out).await?;
        stream.shutdown().await
    })
    .await;
}

/// `herald_smtp_sessions_total{result}`: `served`, or refused at once (`refused_busy`: every
/// connection slot taken; `refused_per_address`: too many from that client address).
fn session_counted(result: &'static str) {
    metrics::counter!("herald_smtp_sessions_total", "result" => result).increment(1);
}
