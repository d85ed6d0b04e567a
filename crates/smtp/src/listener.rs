//! The accept loop: one task per connection, a cap on concurrent sessions, and graceful
//! shutdown.

use std::sync::Arc;
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
        match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => {
                let shared = Arc::clone(&shared);
                let shutdown = shutdown.clone();
                sessions.spawn(async move {
                    session::run(stream, peer, shared, shutdown).await;
                    drop(permit);
                });
            }
            Err(_) => {
                tracing::debug!(%peer, "smtp connection refused: too many connections");
                let timeout = shared.config.idle_timeout;
                sessions.spawn(refuse(stream, timeout));
            }
        }
    }
    drop(listener);
    sessions.close();
    sessions.wait().await;
    tracing::info!("smtp stopped");
}

/// Tells a client over the connection cap to come back later.
async fn refuse(mut stream: TcpStream, timeout: Duration) {
    let mut out = Vec::new();
    reply::TOO_MANY_CONNECTIONS.write_to(&mut out);
    let _ = tokio::time::timeout(timeout, async {
        stream.write_all(&out).await?;
        stream.shutdown().await
    })
    .await;
}
