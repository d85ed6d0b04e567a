//! Write rounds: the engine's and the publishers' writes share ONE transaction per round.
//!
//! Every publish, claim and outcome batch waiting when the writer is free goes into one
//! transaction, in the order outcomes (slots freed), publishes (new work), claims (which then
//! see both); each caller is answered only after that transaction commits. One commit per
//! round instead of one per kind: the pages the three touch (the deliveries indexes) reach
//! the WAL once. If the round fails, each job is tried again in a transaction of its own, so
//! one bad job fails only its own caller.

use crate::unavailable;
use crate::{claim, outcomes, publish};
use herald_store::codec::SecretCipher;
use herald_store::*;
use sqlx::{SqliteConnection, SqlitePool};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

/// Most jobs gathered into one round.
const MAX_ROUND: usize = 256;

/// A write waiting for the next round.
pub(crate) enum WriteJob {
    Publish {
        new: Box<NewEvent>,
        rules: FanoutRules,
        reply: oneshot::Sender<StoreResult<Published>>,
    },
    Claim {
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
        /// The caller's leases whose requests have ended (see `Queue::claim_due_with_finished`).
        finished: Vec<(herald_domain::DeliveryId, String)>,
        /// Opens the claimed webhooks' signing secrets.
        cipher: Option<Arc<SecretCipher>>,
        reply: oneshot::Sender<StoreResult<Vec<Claimed>>>,
    },
    Outcomes {
        outcomes: Vec<Outcome>,
        now: OffsetDateTime,
        reply: oneshot::Sender<StoreResult<Recorded>>,
    },
}

/// What a job's work produced, held until the round commits.
enum Done {
    Published(Published),
    Claimed(Vec<Claimed>),
    Recorded(Recorded),
}

/// The handle the store sends its writes through.
#[derive(Clone)]
pub(crate) struct Rounds(mpsc::UnboundedSender<WriteJob>);

impl Rounds {
    pub(crate) fn start(write: SqlitePool, signal: WorkSignal) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(supervise(write, signal, rx));
        Self(tx)
    }

    /// Queues `job` for the next round and waits for its answer.
    pub(crate) async fn run<T>(&self, job: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> WriteJob) -> StoreResult<T> {
        let (reply, answer) = oneshot::channel();
        if self.0.send(job(reply)).is_err() {
            return Err(closed());
        }
        answer.await.map_err(|_| closed())?
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the store is closed".into()).counted()
}

/// Runs the round loop and starts it again should it ever panic: the jobs of that round see
/// their reply dropped ("the store is closed", retried by their callers); later jobs are served.
async fn supervise(write: SqlitePool, signal: WorkSignal, rx: mpsc::UnboundedReceiver<WriteJob>) {
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    loop {
        let run = tokio::spawn(round_loop(write.clone(), signal.clone(), rx.clone()));
        match run.await {
            Err(e) if e.is_panic() => tracing::error!("the SQLite write round panicked; starting it again"),
            _ => return,
        }
    }
}

async fn round_loop(
    write: SqlitePool,
    signal: WorkSignal,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<WriteJob>>>,
) {
    let mut rx = rx.lock().await;
    let mut jobs = Vec::new();
    while rx.recv_many(&mut jobs, MAX_ROUND).await > 0 {
        // Outcomes first, then publishes, then claims (stable within each kind).
        jobs.sort_by_key(|j| match j {
            WriteJob::Outcomes { .. } => 0,
            WriteJob::Publish { .. } => 1,
            WriteJob::Claim { .. } => 2,
        });
        match round(&write, &jobs).await {
            Ok(done) => {
                for (job, d) in jobs.drain(..).zip(done) {
                    answer(job, Ok(d), &signal);
                }
            }
            Err(e) if jobs.len() == 1 => answer(jobs.pop().expect("one job"), Err(e), &signal),
            Err(_) => {
                // One bad job must not fail the others: commit each on its own.
                for job in jobs.drain(..) {
                    let r = round(&write, std::slice::from_ref(&job)).await.map(|mut d| d.remove(0));
                    answer(job, r, &signal);
                }
            }
        }
    }
}

/// Runs `jobs` in one transaction; one `Done` per job, in order.
async fn round(write: &SqlitePool, jobs: &[WriteJob]) -> StoreResult<Vec<Done>> {
    let mut tx = write.begin_with(crate::BEGIN_WRITE).await.map_err(unavailable)?;
    let mut done = Vec::with_capacity(jobs.len());
    // The publishes (contiguous after the sort) share one statement per table.
    let mut i = 0;
    while i < jobs.len() {
        match &jobs[i] {
            WriteJob::Publish { .. } => {
                let run: Vec<_> = jobs[i..]
                    .iter()
                    .map_while(|j| match j {
                        WriteJob::Publish { new, rules, .. } => Some((&**new, rules)),
                        _ => None,
                    })
                    .collect();
                let n = run.len();
                let published = publish::publish_in(&mut tx, run.into_iter()).await?;
                done.extend(published.into_iter().map(Done::Published));
                i += n;
            }
            WriteJob::Claim { now, lease, limit, finished, cipher, .. } => {
                let claimed = claim::claim_in(&mut tx, cipher.as_deref(), *now, *lease, *limit, finished).await?;
                done.push(Done::Claimed(claimed));
                i += 1;
            }
            WriteJob::Outcomes { outcomes, now, .. } => {
                done.push(Done::Recorded(record(&mut tx, outcomes, *now).await?));
                i += 1;
            }
        }
    }
    tx.commit().await.map_err(unavailable)?;
    Ok(done)
}

/// Records `outcomes`; two outcomes of one delivery (its lease was taken over) are recorded
/// one at a time, so each is compared with the lease current at its turn.
async fn record(conn: &mut SqliteConnection, outcomes: &[Outcome], now: OffsetDateTime) -> StoreResult<Recorded> {
    let mut seen = std::collections::HashSet::new();
    if outcomes.iter().all(|o| seen.insert(o.delivery_id.as_str())) {
        return outcomes::record_in(conn, outcomes, now).await;
    }
    let mut all = Recorded::default();
    for o in outcomes {
        let one = outcomes::record_in(conn, std::slice::from_ref(o), now).await?;
        all.applied.extend(one.applied);
        all.disabled_gone.extend(one.disabled_gone);
    }
    Ok(all)
}

/// Answers one job after its round; raises the work signal when the round made work claimable
/// (new deliveries, or slots freed by recorded outcomes).
fn answer(job: WriteJob, result: StoreResult<Done>, signal: &WorkSignal) {
    match (job, result) {
        (WriteJob::Publish { reply, .. }, Ok(Done::Published(p))) => {
            if p.deliveries > 0 && !p.replayed {
                signal.raise();
            }
            let _ = reply.send(Ok(p));
        }
        (WriteJob::Claim { reply, .. }, Ok(Done::Claimed(c))) => {
            let _ = reply.send(Ok(c));
        }
        (WriteJob::Outcomes { reply, .. }, Ok(Done::Recorded(r))) => {
            signal.raise();
            let _ = reply.send(Ok(r));
        }
        (WriteJob::Publish { reply, .. }, Err(e)) => {
            let _ = reply.send(Err(e));
        }
        (WriteJob::Claim { reply, .. }, Err(e)) => {
            let _ = reply.send(Err(e));
        }
        (WriteJob::Outcomes { reply, .. }, Err(e)) => {
            let _ = reply.send(Err(e));
        }
        // `round` answers each job with its own kind; were it not so, the dropped reply tells
        // the caller the store is unavailable.
        (_, Ok(_)) => tracing::error!("a SQLite write round answered a job with another kind (a bug)"),
    }
}
