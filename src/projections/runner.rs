//! The projection runner: applies the log to one projection, batch by batch,
//! wherever it runs (in `serve` or in any number of `factlog worker`s).
//!
//! Ownership is per batch: a batch transaction first takes the projection's
//! advisory transaction lock (`pg_try_advisory_xact_lock`); whoever holds it
//! is the owner for that batch, and it is released when the batch commits or
//! its connection dies. So a dead owner is replaced at the next wake-up, an
//! owner that lost its connection cannot commit anything, and `rebuild` can
//! take the same lock to swap tables in without racing a live worker. The
//! checkpoint is advanced compare-and-set inside the same transaction, so an
//! event's effect lands exactly once.
//!
//! Each runner has a connection of its own, outside the pool: a batch's
//! statements can be megabytes (claim states), and a connection keeps its
//! buffers as large as the largest message it ever carried, so batches going
//! through pooled connections would in time inflate every one of them.

use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

use super::checkpoint;
use super::{Memory, Projection, ProjectionError, read_batch};
use crate::store::{EventStore, StoreError};

/// How long an idle or non-owning worker waits before looking again, when
/// no notification wakes it first.
const IDLE: Duration = Duration::from_secs(2);

/// How long a woken worker waits for more commits before reading a batch.
const COALESCE: Duration = Duration::from_millis(3);

/// The default least time between the starts of two batches of one
/// projection while it keeps up (`FACTLOG_PROJECTION_LINGER_MS`).
///
/// Without it, a worker under a steady trickle of writes starts a batch for
/// every commit or two: at one client writing, about one batch transaction
/// per request between the two projections there were then (measured at one connection: 2.0
/// PostgreSQL write transactions per assert, the append's own commit
/// included, and 389-430 µs of server CPU per request), each paying its own
/// lock, checkpoint, log read and statement overheads. Waiting out the rest
/// of 5 ms after a batch that was not full lets the next one gather what
/// arrived meanwhile (1.2 transactions per assert, so a batch per five
/// requests, and 239-284 µs; 15 ms gave 1.1 and 176-198 µs), at the price of
/// at most that much more append-to-visible latency. A full batch means the worker is behind,
/// and then it never waits.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(5);

/// The advisory lock key of the projection whose [`Projection::LOCK_ID`] is
/// `id` (shared by runner and rebuild).
pub(crate) fn lock_key(id: i64) -> i64 {
    // A fixed, readable namespace in the high bits; the projection in the low.
    let ns: i64 = 0x0FAC_7106 << 16;
    ns | (id & 0xFFFF)
}

enum Step {
    /// Applied a batch; `full` when it was as large as batches may be.
    Applied {
        full: bool,
    },
    Idle,
    NotOwner,
}

pub struct Runner<P: 'static> {
    pool: PgPool,
    store: EventStore,
    projection: &'static P,
    linger: Duration,
}

/// A batch's statements only ever look rows up by key, with arrays whose
/// length varies from one id to thousands, in tables that start empty and
/// grow fast. A cached generic plan made while a table was nearly empty
/// seq-scans it on every batch ever after (measured: 8.5 ms per batch at 90k
/// claims), and until autovacuum first analyzes a new table the planner's
/// guesses favour scanning it whole (hundreds of full scans of
/// `claim_versions` in the first minute of a write benchmark). So a
/// whole-table scan is the last resort here, which also keeps cached generic
/// plans on the indexes: statements are planned once, not per batch (planning
/// every batch with its real arrays, as an earlier version did, cost 0.05-0.15
/// ms per statement, about 0.7 ms per facts batch).
///
/// The same misestimates (a look-up of 100 claims guessed at 130k rows) made
/// the planner start parallel workers for a handful of rows: 7 ms of worker
/// start-up around 0.1 ms of work, on every batch. No batch statement reads
/// enough rows to gain from parallelism, so it is off on these connections.
///
/// A batch commits without waiting for its WAL to reach disk
/// (`synchronous_commit = off`): everything it writes is derived from events
/// already durable, and its checkpoint moves in the same transaction, so a
/// crash can only lose whole batches at the end of the WAL, which the worker
/// then applies again. Nothing acknowledged to a client depends on it (write
/// acknowledgements come from the log's own, synchronous commits); it frees
/// the disk flushes for them.
#[doc(hidden)]
pub fn batch_options(pool: &PgPool) -> sqlx::postgres::PgConnectOptions {
    pool.connect_options().as_ref().clone().options([
        ("enable_seqscan", "off"),
        ("max_parallel_workers_per_gather", "0"),
        ("synchronous_commit", "off"),
    ])
}

/// The plan `conn` chooses for the facts projection's look-up of claim
/// states (with [`batch_options`], the plan a worker gets): a test hook.
#[doc(hidden)]
pub async fn explain_open_states(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<String>, StoreError> {
    Ok(
        // A constant of ours behind EXPLAIN: nothing from outside.
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "EXPLAIN {}",
            super::facts::OPEN_STATES
        )))
        .bind(ids)
        .fetch_all(conn)
        .await?,
    )
}

impl<P: Projection> Runner<P> {
    pub fn new(pool: PgPool, store: EventStore, projection: &'static P) -> Self {
        Runner {
            pool,
            store,
            projection,
            linger: DEFAULT_LINGER,
        }
    }

    /// The least time between the starts of two batches that are not full
    /// (never below the projection's own [`Projection::LEAST_LINGER`]).
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    async fn step(
        &self,
        slot: &mut Option<PgConnection>,
        memory: &mut P::Memory,
    ) -> Result<Step, ProjectionError> {
        let name = P::NAME;
        let conn = match slot {
            Some(c) => c,
            None => slot.insert(
                PgConnection::connect_with(&batch_options(&self.pool))
                    .await
                    .map_err(StoreError::from)?,
            ),
        };
        let mut tx = conn.begin().await.map_err(StoreError::from)?;
        let owner: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(lock_key(P::LOCK_ID))
            .fetch_one(&mut *tx)
            .await?;
        if !owner {
            return Ok(Step::NotOwner);
        }
        let (from, generation) = checkpoint::read(&mut *tx, name).await?;
        memory.at_generation(generation);
        let batch = read_batch::<P>(&mut tx, from, P::BATCH_SIZE).await?;
        let Some(last) = batch.last else {
            return Ok(Step::Idle);
        };
        let learned = self
            .projection
            .apply(&mut tx, &batch.events, memory)
            .await?;
        if !checkpoint::advance(&mut tx, name, from, last).await? {
            // Someone else moved the checkpoint: drop this batch entirely.
            return Ok(Step::NotOwner);
        }
        tx.commit().await.map_err(StoreError::from)?;
        // Only what committed is known.
        memory.learn(learned);
        metrics::counter!("factlog_projection_events_applied_total", "projection" => name)
            .increment(batch.read as u64);
        Ok(Step::Applied {
            full: batch.read as i64 >= P::BATCH_SIZE,
        })
    }

    /// Runs until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let name = P::NAME;
        let mut head = self.store.head_watch();
        let mut attempt = 0u32;
        let mut conn: Option<PgConnection> = None;
        let mut memory = P::Memory::default();
        tracing::info!(projection = name, "projection worker started");
        loop {
            if *stop.borrow() {
                break;
            }
            metrics::gauge!("factlog_projection_heartbeat_seconds", "projection" => name)
                .set(chrono::Utc::now().timestamp() as f64);
            head.borrow_and_update();
            let started = tokio::time::Instant::now();
            let outcome = self.step(&mut conn, &mut memory).await;
            if outcome.is_err() {
                // Whatever went wrong, the next attempt starts on a fresh connection.
                conn = None;
            }
            let wait = match outcome {
                Ok(Step::Applied { full }) => {
                    attempt = 0;
                    if !full {
                        tokio::select! {
                            _ = tokio::time::sleep_until(started + self.linger.max(P::LEAST_LINGER)) => {},
                            _ = stop.changed() => {},
                        }
                    }
                    continue;
                }
                Ok(Step::Idle) | Ok(Step::NotOwner) => {
                    attempt = 0;
                    IDLE
                }
                Err(ProjectionError::Store(e)) if e.is_unavailable() => {
                    tracing::warn!(projection = name, error = %e, "database unavailable; retrying");
                    attempt = attempt.saturating_add(1);
                    crate::store::backoff_delay(attempt)
                }
                Err(e) => {
                    // Stop here, loudly; never skip the event.
                    let position = match &e {
                        ProjectionError::Unappliable { position, .. } => *position,
                        _ => 0,
                    };
                    tracing::error!(projection = name, position, error = %e, "projection stopped");
                    metrics::counter!("factlog_projection_failures_total", "projection" => name)
                        .increment(1);
                    if let Err(e2) =
                        checkpoint::record_failure(&self.pool, name, position, &e.to_string()).await
                    {
                        tracing::warn!(error = %e2, "could not record the projection failure");
                    }
                    attempt = attempt.saturating_add(1);
                    crate::store::backoff_delay(attempt + 4).max(Duration::from_secs(5))
                }
            };
            tokio::select! {
                _ = head.changed() => {},
                _ = tokio::time::sleep(wait) => {},
                _ = stop.changed() => {},
            }
            // Let the commits of the next few milliseconds join this batch:
            // under load one batch then serves many events (and a lost race
            // for the lock cannot turn into a spin).
            tokio::time::sleep(COALESCE).await;
        }
        tracing::info!(projection = name, "projection worker stopped");
    }
}

/// Starts a runner for every projection, each waiting at least `linger`
/// between batches while it keeps up; returns their handles.
pub fn spawn_all(
    pool: &PgPool,
    store: &EventStore,
    stop: &watch::Receiver<bool>,
    linger: Duration,
) -> Vec<tokio::task::JoinHandle<()>> {
    spawn_these(super::ALL, pool, store, stop, linger)
}

/// Starts a runner for each of `list` (`FACTLOG_PROJECTIONS`), as
/// [`spawn_all`] does for all of them.
pub fn spawn_these(
    list: &[&'static dyn super::AnyProjection],
    pool: &PgPool,
    store: &EventStore,
    stop: &watch::Receiver<bool>,
    linger: Duration,
) -> Vec<tokio::task::JoinHandle<()>> {
    list.iter()
        .map(|p| p.spawn(pool, store, stop.clone(), linger))
        .collect()
}
