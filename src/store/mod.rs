//! The event log: append (group commit), read, subscribe, the hash chain and
//! idempotency. Everything that writes to the `events` table lives here: the
//! appender and the importer (`import.rs`).

mod append;
pub mod chain;
pub mod chain_status;
pub mod erasure;
mod error;
mod event;
pub mod exchange;
pub(crate) mod explain;
pub mod export;
pub mod idempotency;
pub mod import;
pub mod integrity;
pub mod leaf;
pub mod lookup;
pub mod processes;
mod read;
pub mod seal;
mod subscribe;
#[cfg(test)]
mod test_log;
pub mod tree;
pub mod tree_check;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{mpsc, oneshot, watch};

pub use append::{AppendOutcome, AppendRequest, PreparedAppend, append_batch};
pub use chain_status::ChainStatus;
pub use error::{StoreError, is_connection_error};
pub use event::{
    AppendReceipt, ExpectedVersion, Metadata, NewEvent, RecordedEvent, SortedKeys, StreamAppend,
};
pub use idempotency::{
    IdempotencyClaim, RequestFingerprint, ResponseBuilder, StoredResponse, with_receipt,
};
pub use read::{
    AuditFilter, Head, LogRow, MAX_PAGE, audit, explain_audit, explain_read_stream_openings,
    head as read_head, read_all, read_rows_in, read_stream, read_stream_openings,
    read_stream_rows_in, stories_newest_first,
};
pub(crate) use read::{log_row_columns, open_events};
pub use subscribe::{CHECKPOINT_CHANNEL, Subscription};
pub use tree_check::{TreeProblem, TreeReport, check_tree};
pub use verify::{Segment, VerifyReport, rehash, verify as verify_chain};

/// The channel appends notify on commit; its payload is the new head position.
pub const NOTIFY_CHANNEL: &str = "factlog_events";

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Largest encoded event (data + metadata + names) accepted, in bytes.
    pub max_event_bytes: usize,
    /// Most commands one group-commit transaction takes.
    pub max_batch_commands: usize,
    /// Most events one group-commit transaction takes (a single larger
    /// append still goes through, alone).
    pub max_batch_events: usize,
    /// Appender lanes: connections taking turns at the log-head lock.
    pub lanes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_event_bytes: 1024 * 1024,
            max_batch_commands: 512,
            max_batch_events: 8192,
            // Measured: a second lane halves the batches while the lock is
            // held about as long, so one lane appends more
            // (bench/history/2026-11-benchmarks.md).
            lanes: 1,
        }
    }
}

struct Pending {
    prepared: PreparedAppend,
    reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

struct Inner {
    pool: PgPool,
    config: StoreConfig,
    appender: mpsc::Sender<Pending>,
    head: watch::Receiver<i64>,
    checkpoints: watch::Receiver<u64>,
    chain: ChainStatus,
}

/// A handle on the log; cheap to clone, one per process is plenty.
#[derive(Clone)]
pub struct EventStore {
    inner: Arc<Inner>,
}

impl EventStore {
    /// Starts the group-commit appender and the head watcher on `pool`.
    pub async fn open(pool: PgPool, config: StoreConfig) -> Result<Self, StoreError> {
        let start = read::head(&pool).await?.position;
        let (head_tx, head_rx) = watch::channel(start);
        let head_tx = Arc::new(head_tx);
        let (cp_tx, cp_rx) = watch::channel(0u64);
        let (tx, rx) = mpsc::channel(4096);
        let queue: Arc<Queue> = Arc::new(tokio::sync::Mutex::new((rx, None)));
        let tail = Arc::new(std::sync::Mutex::new(None));
        for _ in 0..config.lanes.max(1) {
            tokio::spawn(run_appender(
                pool.clone(),
                config.clone(),
                queue.clone(),
                tail.clone(),
                head_tx.clone(),
            ));
        }
        tokio::spawn(subscribe::watch_head(
            pool.clone(),
            head_tx,
            Arc::new(cp_tx),
        ));
        Ok(EventStore {
            inner: Arc::new(Inner {
                chain: ChainStatus::new(pool.clone()),
                pool,
                config,
                appender: tx,
                head: head_rx,
                checkpoints: cp_rx,
            }),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// Appends `events` to `stream` atomically if its version is `expected`.
    pub async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        metadata: Metadata,
    ) -> Result<AppendReceipt, StoreError> {
        let outcome = self
            .append_request(AppendRequest {
                streams: vec![StreamAppend {
                    stream: stream.to_owned(),
                    expected,
                    events,
                }],
                metadata,
                idempotency: None,
            })
            .await?;
        match outcome {
            AppendOutcome::Appended(receipt) => Ok(receipt),
            // Unreachable without a key; say so rather than panic.
            AppendOutcome::Replayed(_) => Err(StoreError::InvalidAppend(
                "replayed without an idempotency key".into(),
            )),
        }
    }

    /// The general form: several streams in one atomic write, with an
    /// optional idempotency claim. Queued to the group-commit appender.
    pub async fn append_request(
        &self,
        request: AppendRequest,
    ) -> Result<AppendOutcome, StoreError> {
        let prepared = PreparedAppend::new(request, self.inner.config.max_event_bytes)?;
        let (reply, rx) = oneshot::channel();
        self.inner
            .appender
            .send(Pending { prepared, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub async fn read_stream(
        &self,
        stream: &str,
        after_version: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        read::read_stream(&self.inner.pool, stream, after_version, limit).await
    }

    pub async fn read_all(&self, after: i64, limit: i64) -> Result<Vec<RecordedEvent>, StoreError> {
        read::read_all(&self.inner.pool, after, limit).await
    }

    pub async fn stream_version(&self, stream: &str) -> Result<i64, StoreError> {
        read::stream_version(&self.inner.pool, stream).await
    }

    pub async fn head(&self) -> Result<Head, StoreError> {
        read::head(&self.inner.pool).await
    }

    /// The newest head position this process knows of (no query).
    pub fn known_head(&self) -> i64 {
        *self.inner.head.borrow()
    }

    /// The chain's verification state as this process knows it (see
    /// [`chain_status`]).
    pub fn chain_status(&self) -> &ChainStatus {
        &self.inner.chain
    }

    /// A head-position watch, woken by commits in this process and by
    /// NOTIFY from every other one.
    pub fn head_watch(&self) -> watch::Receiver<i64> {
        self.inner.head.clone()
    }

    /// Bumped whenever any process reports a projection checkpoint moving.
    pub fn checkpoint_watch(&self) -> watch::Receiver<u64> {
        self.inner.checkpoints.clone()
    }

    /// Every event after `after`, then new ones as they are committed.
    pub fn subscribe(&self, after: i64) -> Subscription {
        Subscription::new(self.clone(), after)
    }

    pub async fn verify(
        &self,
        every: u64,
        progress: impl FnMut(u64),
    ) -> Result<VerifyReport, StoreError> {
        verify::verify(&self.inner.pool, every, progress).await
    }
}

/// The group-commit loop of one lane: take whatever is queued (up to the
/// batch limits), write it in one transaction on the lane's own connection,
/// send the next batch, answer everyone in the first, repeat. While a
/// transaction is in flight new requests queue up, so batches grow with load
/// by themselves. With two lanes, one lane's next batch is already on its
/// way while the other commits: it is laid out after the head the first will
/// leave (see [`Tail`]).
async fn run_appender(
    pool: PgPool,
    config: StoreConfig,
    queue: Arc<Queue>,
    tail: Arc<Tail>,
    head: Arc<watch::Sender<i64>>,
) {
    let mut conn: Option<PgConnection> = None;
    let mut attempt = 0u32;
    // The outcome of the batch before, not yet told to its callers: they are
    // answered once the next batch has left, so the log's one serial path
    // (this connection's backend) does not idle while they are woken.
    let mut answered_later: Option<Finished> = None;
    loop {
        let next = match queue.try_lock() {
            Ok(mut q) => take_batch(&mut q, &config, false).await,
            Err(_) => None,
        };
        let (prepared, replies) = match next {
            Some(batch) => batch,
            None => {
                if let Some(done) = answered_later.take() {
                    done.answer(&head);
                }
                match take_batch(&mut *queue.lock().await, &config, true).await {
                    Some(batch) => batch,
                    None => return,
                }
            }
        };
        metrics::histogram!("factlog_group_commit_batch_commands").record(prepared.len() as f64);
        if conn.is_none() {
            match connect(&pool).await {
                Ok(c) => {
                    conn = Some(c);
                    attempt = 0;
                }
                Err(e) => {
                    if let Some(done) = answered_later.take() {
                        done.answer(&head);
                    }
                    for reply in replies {
                        let _ = reply.send(Err(clone_error(&e)));
                    }
                    attempt = attempt.saturating_add(1);
                    tokio::time::sleep(backoff_delay(attempt).min(Duration::from_secs(1))).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else {
            continue;
        };
        // The log's one serial path: under load, the time of this transaction
        // sets the write rate (BENCHMARKS.md), so operators see it.
        let started = std::time::Instant::now();
        // A connection that stops answering (a network partition sends no
        // reset) must not stall the log: give up on it and reconnect.
        let outcome = {
            let in_flight = tokio::time::timeout(COMMIT_DEADLINE, commit(c, &prepared, &tail));
            tokio::pin!(in_flight);
            // The first poll lays the batch out and sends it; only then are
            // the previous batch's callers answered.
            let first = futures::poll!(in_flight.as_mut());
            if let Some(done) = answered_later.take() {
                done.answer(&head);
            }
            match first {
                std::task::Poll::Ready(outcome) => outcome,
                std::task::Poll::Pending => in_flight.await,
            }
        };
        let results = match outcome {
            Ok(results) => results,
            Err(_) => {
                forget(&tail);
                let e = StoreError::Unavailable(sqlx::Error::Protocol(
                    "the database did not answer the append in time".into(),
                ));
                prepared.iter().map(|_| Err(clone_error(&e))).collect()
            }
        };
        metrics::histogram!("factlog_group_commit_seconds").record(started.elapsed().as_secs_f64());
        if results
            .iter()
            .any(|r| matches!(r, Err(e) if e.is_unavailable()))
        {
            // The connection may be broken; the next batch gets a fresh one.
            conn = None;
        }
        answered_later = Some(Finished {
            prepared,
            replies,
            results,
        });
    }
}

/// The appenders' shared queue, and a command taken from it that did not fit
/// the batch it was taken for (it starts the next one).
type Queued = (mpsc::Receiver<Pending>, Option<Pending>);
type Queue = tokio::sync::Mutex<Queued>;

type Reply = oneshot::Sender<Result<AppendOutcome, StoreError>>;

/// Takes whatever is queued, up to the batch limits. Waits for the first
/// command when `wait`; otherwise `None` when nothing is queued, as when the
/// queue is closed.
async fn take_batch(
    queue: &mut Queued,
    config: &StoreConfig,
    wait: bool,
) -> Option<(Vec<PreparedAppend>, Vec<Reply>)> {
    let (rx, carry) = queue;
    let first = match carry.take() {
        Some(p) => p,
        None if wait => rx.recv().await?,
        None => rx.try_recv().ok()?,
    };
    let mut events = first.prepared.event_count;
    let mut prepared = vec![first.prepared];
    let mut replies = vec![first.reply];
    while prepared.len() < config.max_batch_commands {
        match rx.try_recv() {
            Ok(p) if events + p.prepared.event_count > config.max_batch_events => {
                *carry = Some(p);
                break;
            }
            Ok(p) => {
                events += p.prepared.event_count;
                prepared.push(p.prepared);
                replies.push(p.reply);
            }
            Err(_) => break,
        }
    }
    Some((prepared, replies))
}

/// A batch whose outcome is known but not yet told.
struct Finished {
    prepared: Vec<PreparedAppend>,
    replies: Vec<Reply>,
    results: Vec<Result<AppendOutcome, StoreError>>,
}

impl Finished {
    fn answer(self, head: &watch::Sender<i64>) {
        let Finished {
            prepared,
            replies,
            results,
        } = self;
        let mut newest = None;
        let mut appended = 0u64;
        for (reply, result) in replies.into_iter().zip(results) {
            if let Ok(AppendOutcome::Appended(r)) = &result {
                newest = Some(r.last_position);
                appended += r.events.len() as u64;
            }
            // The caller may have gone away (request cancelled); its write
            // stands regardless, which is what idempotency keys are for.
            let _ = reply.send(result);
        }
        metrics::counter!("factlog_events_appended_total").increment(appended);
        if let Some(p) = newest {
            head.send_if_modified(|h| {
                let newer = p > *h;
                if newer {
                    *h = p;
                }
                newer
            });
        }
        // A big batch is freed off the path of the next one.
        if prepared.iter().map(|p| p.event_count).sum::<usize>() > 256 {
            tokio::task::spawn_blocking(move || drop(prepared));
        }
    }
}

/// How often a lane takes the two-step path anyway, to read the database
/// clock afresh (the one-round-trip path stamps events with it through an
/// offset, and clocks drift).
const CLOCK_REREAD: Duration = Duration::from_secs(5);

/// How long one append transaction may take before its connection is
/// given up as lost (its outcome is then unknown to the caller, who retries
/// with the same idempotency key).
const COMMIT_DEADLINE: Duration = Duration::from_secs(30);

/// A connection of the lane's own, outside the pool: no ping before each
/// batch, and no waiting behind readers for a pooled connection.
async fn connect(pool: &PgPool) -> Result<PgConnection, StoreError> {
    let options = pool.connect_options();
    Ok(PgConnection::connect_with(&options).await?)
}

/// The head as this process's appenders will have left it once every batch
/// in flight commits, so the next batch is laid out without asking first (a
/// head moved by another process, or a batch in flight that fails, is caught
/// under the lock and only costs a fallback). `None` after any failure,
/// until a two-step batch reads the head again.
type Tail = std::sync::Mutex<Option<append::KnownHead>>;

fn forget(tail: &Tail) {
    *tail.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Remembers `after`, unless a batch that commits later was remembered first.
fn advance(tail: &Tail, after: append::KnownHead) {
    let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
    if t.as_ref().is_none_or(|h| h.position < after.position) {
        *t = Some(after);
    }
}

async fn commit(
    conn: &mut PgConnection,
    batch: &[PreparedAppend],
    tail: &Tail,
) -> Vec<Result<AppendOutcome, StoreError>> {
    let fast = {
        let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
        let fast = t
            .as_ref()
            .filter(|h| h.clock_read.elapsed() < CLOCK_REREAD)
            .and_then(|h| append::lay_out(batch, h));
        if let Some(f) = &fast {
            *t = Some(f.after().clone());
        }
        fast
    };
    if let Some(fast) = fast {
        match append::append_at(conn, fast).await {
            Ok((results, _)) => return results,
            Err(e) if e.is_unavailable() => {
                forget(tail);
                // Whether it committed is unknown; the callers retry with
                // their idempotency keys, as after any lost connection.
                return batch.iter().map(|_| Err(clone_error(&e))).collect();
            }
            Err(e) => {
                // Something moved (another process appended, a stream is
                // not where its command expected, a key is reused, a batch
                // this one was laid out after failed): nothing was written;
                // the two-step path sorts each command out.
                forget(tail);
                metrics::counter!("factlog_append_fallbacks_total").increment(1);
                tracing::debug!(error = %e, "one-round-trip append fell back");
            }
        }
    }
    match commit_prepared(conn, batch).await {
        Ok((results, after)) => {
            advance(tail, after);
            results
        }
        // Alone in its batch, a command gets its own error, typed.
        Err(e) if batch.len() == 1 => vec![Err(e)],
        // A batch failing for a reason other than the database being away
        // must not sink its neighbours: retry each command on its own.
        Err(e) if !e.is_unavailable() && batch.len() > 1 => {
            tracing::warn!(error = %e, size = batch.len(), "group commit failed; retrying one by one");
            let mut out = Vec::with_capacity(batch.len());
            for p in batch {
                out.push(match commit_prepared(conn, std::slice::from_ref(p)).await {
                    Ok((mut r, _)) => r.pop().unwrap_or(Err(StoreError::Closed)),
                    Err(e) => Err(e),
                });
            }
            out
        }
        Err(e) => batch.iter().map(|_| Err(clone_error(&e))).collect(),
    }
}

async fn commit_prepared(
    conn: &mut PgConnection,
    batch: &[PreparedAppend],
) -> Result<(Vec<Result<AppendOutcome, StoreError>>, append::KnownHead), StoreError> {
    let mut tx = conn.begin().await?;
    let (results, after) = append::append_locked(&mut tx, batch).await?;
    tx.commit().await?;
    Ok((results, after))
}

/// sqlx errors are not Clone; a batch-wide failure is reported to every
/// caller with the same meaning (unavailable or failed) and its message.
fn clone_error(e: &StoreError) -> StoreError {
    let msg = e.to_string();
    if e.is_unavailable() {
        StoreError::Unavailable(sqlx::Error::Protocol(msg))
    } else {
        StoreError::Database(sqlx::Error::Protocol(msg))
    }
}

/// How long to wait between attempts to reach a database that is away.
pub fn backoff_delay(attempt: u32) -> Duration {
    let ms = 100u64.saturating_mul(1 << attempt.min(6));
    Duration::from_millis(ms.min(5_000))
}
