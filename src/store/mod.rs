//! The event log: append (group commit), read, subscribe, the hash chain and
//! idempotency. Everything that writes to the `events` table lives here.

mod append;
pub mod chain;
mod error;
mod event;
pub mod idempotency;
pub mod lookup;
mod read;
mod subscribe;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, watch};

pub use append::{AppendOutcome, AppendRequest, PreparedAppend, append_batch};
pub use error::{StoreError, is_connection_error};
pub use event::{AppendReceipt, ExpectedVersion, Metadata, NewEvent, RecordedEvent, StreamAppend};
pub use idempotency::{
    IdempotencyClaim, RequestFingerprint, ResponseBuilder, StoredResponse, with_receipt,
};
pub use read::{AuditFilter, Head, MAX_PAGE, audit, head as read_head, read_all_in};
pub use subscribe::{CHECKPOINT_CHANNEL, Subscription};
pub use verify::{VerifyReport, verify as verify_chain};

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
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_event_bytes: 1024 * 1024,
            max_batch_commands: 512,
            max_batch_events: 8192,
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
        tokio::spawn(run_appender(
            pool.clone(),
            config.clone(),
            rx,
            head_tx.clone(),
        ));
        tokio::spawn(subscribe::watch_head(
            pool.clone(),
            head_tx,
            Arc::new(cp_tx),
        ));
        Ok(EventStore {
            inner: Arc::new(Inner {
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

/// The group-commit loop: take whatever is queued (up to the batch limits),
/// write it in one transaction, answer everyone, repeat. While a transaction
/// is in flight new requests queue up, so batches grow with load by themselves.
async fn run_appender(
    pool: PgPool,
    config: StoreConfig,
    mut rx: mpsc::Receiver<Pending>,
    head: Arc<watch::Sender<i64>>,
) {
    let mut carry: Option<Pending> = None;
    loop {
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let mut events = first.prepared.event_count;
        let mut batch = vec![first];
        while batch.len() < config.max_batch_commands {
            match rx.try_recv() {
                Ok(p) => {
                    if events + p.prepared.event_count > config.max_batch_events {
                        carry = Some(p);
                        break;
                    }
                    events += p.prepared.event_count;
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        metrics::histogram!("factlog_group_commit_batch_commands").record(batch.len() as f64);
        let results = commit(&pool, &batch).await;
        let mut newest = None;
        let mut appended = 0u64;
        for (pending, result) in batch.into_iter().zip(results) {
            if let Ok(AppendOutcome::Appended(r)) = &result {
                newest = Some(r.last_position);
                appended += r.events.len() as u64;
            }
            // The caller may have gone away (request cancelled); its write
            // stands regardless, which is what idempotency keys are for.
            let _ = pending.reply.send(result);
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
    }
}

async fn commit(pool: &PgPool, batch: &[Pending]) -> Vec<Result<AppendOutcome, StoreError>> {
    let prepared: Vec<PreparedAppend> = batch.iter().map(|p| p.prepared.clone()).collect();
    match commit_prepared(pool, &prepared).await {
        Ok(results) => results,
        // A batch failing for a reason other than the database being away
        // must not sink its neighbours: retry each command on its own.
        Err(e) if !e.is_unavailable() && prepared.len() > 1 => {
            tracing::warn!(error = %e, size = prepared.len(), "group commit failed; retrying one by one");
            let mut out = Vec::with_capacity(prepared.len());
            for p in prepared {
                let single = std::slice::from_ref(&p);
                out.push(match commit_prepared(pool, single).await {
                    Ok(mut r) => r.pop().unwrap_or(Err(StoreError::Closed)),
                    Err(e) => Err(e),
                });
            }
            out
        }
        Err(e) => batch.iter().map(|_| Err(clone_error(&e))).collect(),
    }
}

async fn commit_prepared(
    pool: &PgPool,
    batch: &[PreparedAppend],
) -> Result<Vec<Result<AppendOutcome, StoreError>>, StoreError> {
    let mut tx = pool.begin().await?;
    let results = append_batch(&mut tx, batch).await?;
    tx.commit().await?;
    Ok(results)
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
