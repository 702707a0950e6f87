//! What is known of the hash chain, kept so that `GET /v1/integrity`
//! costs what the log's newest events cost, not what the whole log costs.
//!
//! A background verifier ([`spawn_verifier`], in every process that runs
//! projection workers) keeps a *verified prefix* in `chain_verification`
//! (migrations/0017): the last position whose link it recomputed, and the
//! hash it found there. It extends the prefix within a second of each
//! commit, and re-hashes the whole log from the genesis on a schedule
//! (`FACTLOG_VERIFY_EVERY_MINUTES`, default hourly) or when an auditor asks
//! (`POST /v1/integrity/checks`, at most one pass per `min_gap`).
//!
//! A request ([`report`]) then does three bounded things: compares the
//! log's stored hash at the prefix's end with the verified one (one
//! primary-key read: a log rewritten anywhere before it, hashes recomputed,
//! shows here, because that hash commits to everything before it); re-hashes
//! what lies beyond the prefix, at most [`REQUEST_TAIL_LIMIT`] events (a
//! verifier within a second of the head leaves a handful); and reports any
//! break a pass has found. An edit that leaves the hashes alone inside the
//! prefix shows at the next full pass.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::EventStore;
use super::chain::{GENESIS, HASH_LEN};
use super::chain_status::ChainStatus;
use super::error::StoreError;
use super::verify::{Segment, check_against_head, recorded_head, rehash, to_hash};

/// Most events a request re-hashes past the verified prefix (about 50 ms
/// of one core); what lies beyond is reported as not yet verified.
pub const REQUEST_TAIL_LIMIT: i64 = 10_000;

/// Most events one extension step re-hashes in its transaction.
const EXTEND_BATCH: i64 = 20_000;

/// The advisory lock that makes one process at a time run a full pass.
const FULL_PASS_LOCK: i64 = (0x0FAC_7106 << 16) | 0x100;

/// How the verifier runs.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Time between the end of one full pass and the start of the next.
    pub full_every: Duration,
    /// Least time between the end of a full pass and the start of one an
    /// auditor asked for.
    pub full_min_gap: Duration,
    /// How often the verifier looks for new events without a wake-up.
    pub tick: Duration,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        VerifierConfig {
            full_every: Duration::from_secs(3600),
            full_min_gap: Duration::from_secs(300),
            tick: Duration::from_secs(1),
        }
    }
}

/// The row of `chain_verification`.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrityState {
    /// The verified prefix: every link up to here recomputed.
    pub position: i64,
    pub hash: [u8; HASH_LEN],
    pub extended_at: Option<DateTime<Utc>>,
    /// The first break any pass found, until a full pass finds none.
    pub first_bad_position: Option<i64>,
    pub found_bad_at: Option<DateTime<Utc>>,
    pub full_started_at: Option<DateTime<Utc>>,
    pub full_finished_at: Option<DateTime<Utc>>,
    pub full_checked: Option<i64>,
    pub full_ok: Option<bool>,
    pub full_requested_at: Option<DateTime<Utc>>,
    pub full_requested_by: Option<String>,
}

impl IntegrityState {
    /// Whether a requested full pass has not started yet.
    pub fn full_pending(&self) -> bool {
        match (self.full_requested_at, self.full_started_at) {
            (Some(asked), Some(started)) => asked > started,
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// Whether a full pass is due now.
    fn full_due(&self, config: &VerifierConfig, now: DateTime<Utc>) -> bool {
        let Some(finished) = self.full_finished_at else {
            return true;
        };
        let since = (now - finished).to_std().unwrap_or_default();
        since >= config.full_every || (self.full_pending() && since >= config.full_min_gap)
    }

    /// When the next full pass starts at the earliest.
    pub fn next_full_at(&self, config: &VerifierConfig) -> Option<DateTime<Utc>> {
        let finished = self.full_finished_at?;
        let wait = if self.full_pending() {
            config.full_min_gap
        } else {
            config.full_every
        };
        Some(finished + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX))
    }
}

type StateRow = (
    i64,
    Vec<u8>,
    Option<DateTime<Utc>>,
    Option<i64>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<i64>,
    Option<bool>,
    Option<DateTime<Utc>>,
    Option<String>,
);

const STATE_COLUMNS: &str = "position, hash, extended_at, first_bad_position, found_bad_at, \
     full_started_at, full_finished_at, full_checked, full_ok, full_requested_at, \
     full_requested_by";

fn to_state(r: StateRow) -> Result<IntegrityState, StoreError> {
    Ok(IntegrityState {
        position: r.0,
        hash: to_hash(&r.1)?,
        extended_at: r.2,
        first_bad_position: r.3,
        found_bad_at: r.4,
        full_started_at: r.5,
        full_finished_at: r.6,
        full_checked: r.7,
        full_ok: r.8,
        full_requested_at: r.9,
        full_requested_by: r.10,
    })
}

pub async fn load_state(conn: &mut PgConnection) -> Result<IntegrityState, StoreError> {
    let row: StateRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {STATE_COLUMNS} FROM chain_verification"
    )))
    .fetch_one(&mut *conn)
    .await?;
    to_state(row)
}

/// The state as it is now.
pub async fn state(pool: &PgPool) -> Result<IntegrityState, StoreError> {
    load_state(&mut *pool.acquire().await?).await
}

/// Whether the log still holds, at the prefix's end, the hash verified
/// there; `Some(first bad position)` when it does not (the position itself
/// when its hash changed, one past the log's end when the event is gone).
async fn prefix_holds(
    conn: &mut PgConnection,
    position: i64,
    hash: &[u8; HASH_LEN],
) -> Result<Option<i64>, StoreError> {
    if position == 0 {
        return Ok(None);
    }
    let stored: Option<Vec<u8>> = sqlx::query_scalar("SELECT hash FROM events WHERE position = $1")
        .bind(position)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match stored {
        Some(h) if h.as_slice() == hash.as_slice() => None,
        Some(_) => Some(position),
        None => {
            let last: Option<i64> = sqlx::query_scalar("SELECT max(position) FROM events")
                .fetch_one(&mut *conn)
                .await?;
            Some(last.unwrap_or(0) + 1)
        }
    })
}

/// Where a bounded segment leaves the chain: its own break, or (when it was
/// not cut short by `limit`) whatever [`check_against_head`] finds.
fn segment_break(seg: &Segment, head: (i64, [u8; HASH_LEN]), limit: i64) -> Option<i64> {
    let cut_short =
        seg.first_bad.is_none() && seg.last_position < head.0 && seg.checked as i64 >= limit;
    if cut_short {
        None
    } else {
        check_against_head(seg, head)
    }
}

/// Records a break at `position`; the state after.
async fn mark_broken(conn: &mut PgConnection, position: i64) -> Result<IntegrityState, StoreError> {
    tracing::error!(
        first_bad_position = position,
        "the hash chain is broken: the log was altered (factlog verify names the first bad event)"
    );
    let row: StateRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE chain_verification SET \
             found_bad_at = CASE WHEN first_bad_position IS NULL THEN now() ELSE found_bad_at END, \
             first_bad_position = least(first_bad_position, $1) \
         RETURNING {STATE_COLUMNS}"
    )))
    .bind(position)
    .fetch_one(&mut *conn)
    .await?;
    to_state(row)
}

/// What one extension step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extended {
    /// Another process holds the state row: it is extending.
    Busy,
    /// The chain is known to be broken there; nothing past it is verified.
    Broken(i64),
    /// The prefix grew by this many events (0: it is at the head).
    Advanced(u64),
}

/// Re-hashes up to `batch` events past the verified prefix and moves the
/// prefix to the last that held, in one transaction on the state row.
pub async fn extend(pool: &PgPool, batch: i64) -> Result<Extended, StoreError> {
    Ok(extend_step(pool, batch).await?.0)
}

/// [`extend`], and the state it left (none when another process held it).
async fn extend_step(
    pool: &PgPool,
    batch: i64,
) -> Result<(Extended, Option<IntegrityState>), StoreError> {
    let mut tx = pool.begin().await?;
    let row: Option<StateRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {STATE_COLUMNS} FROM chain_verification FOR UPDATE SKIP LOCKED"
    )))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok((Extended::Busy, None));
    };
    let state = to_state(row)?;
    if let Some(bad) = state.first_bad_position {
        return Ok((Extended::Broken(bad), Some(state)));
    }
    if let Some(bad) = prefix_holds(&mut tx, state.position, &state.hash).await? {
        let state = mark_broken(&mut tx, bad).await?;
        tx.commit().await?;
        return Ok((Extended::Broken(bad), Some(state)));
    }
    // The head first: every event up to it is committed (the head moves in
    // the same transaction as the events it covers).
    let head = recorded_head(&mut tx).await?;
    let prefix = (state.position, state.hash);
    let seg = rehash(&mut tx, prefix, head.0, Some(batch), 0, |_| {}).await?;
    let (outcome, state) = match segment_break(&seg, head, batch) {
        Some(bad) => (Extended::Broken(bad), mark_broken(&mut tx, bad).await?),
        None if seg.checked > 0 => {
            let row: StateRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE chain_verification SET position = $1, hash = $2, extended_at = now() \
                 RETURNING {STATE_COLUMNS}"
            )))
            .bind(seg.last_position)
            .bind(seg.last_hash.as_slice())
            .fetch_one(&mut *tx)
            .await?;
            (Extended::Advanced(seg.checked), to_state(row)?)
        }
        None => (Extended::Advanced(0), state),
    };
    tx.commit().await?;
    Ok((outcome, Some(state)))
}

/// What a full pass found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullPass {
    pub checked: u64,
    pub first_bad_position: Option<i64>,
}

/// Re-hashes the whole log from the genesis up to the recorded head, unless
/// another process is doing so (`None`). Records its start, its end and
/// what it found; a clean pass clears a break it covered (the log was put
/// back), a break is kept until then.
pub async fn full_pass(
    pool: &PgPool,
    every: u64,
    progress: impl FnMut(u64),
) -> Result<Option<FullPass>, StoreError> {
    // Its own connection: the session lock dies with it if the pass is
    // dropped halfway, where a pooled connection would go back to the pool
    // still holding it.
    let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
    let took: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(FULL_PASS_LOCK)
        .fetch_one(&mut conn)
        .await?;
    if !took {
        return Ok(None);
    }
    sqlx::query("UPDATE chain_verification SET full_started_at = now()")
        .execute(&mut conn)
        .await?;
    let head = recorded_head(&mut conn).await?;
    let seg = rehash(&mut conn, (0, GENESIS), head.0, None, every, progress).await?;
    let mut bad = check_against_head(&seg, head);
    if bad.is_none() {
        // Every stored link holds; the prefix's end must still be the
        // event that was verified there (a log replaced whole, its hashes
        // recomputed from the genesis, holds link by link).
        let state = load_state(&mut conn).await?;
        if state.position <= seg.last_position {
            bad = prefix_holds(&mut conn, state.position, &state.hash).await?;
        }
    }
    if let Some(position) = bad {
        mark_broken(&mut conn, position).await?;
    }
    sqlx::query(
        "UPDATE chain_verification SET full_finished_at = now(), full_checked = $1, \
             full_ok = $2, \
             first_bad_position = CASE WHEN $2 AND first_bad_position <= $3 THEN NULL \
                                       ELSE first_bad_position END, \
             found_bad_at = CASE WHEN $2 AND first_bad_position <= $3 THEN NULL \
                                 ELSE found_bad_at END",
    )
    .bind(seg.checked as i64)
    .bind(bad.is_none())
    .bind(seg.last_position)
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(Some(FullPass {
        checked: seg.checked,
        first_bad_position: bad,
    }))
}

/// Asks for a full pass (coalesced: asking again before it starts changes
/// nothing). Returns the state after.
pub async fn request_full_pass(pool: &PgPool, by: &str) -> Result<IntegrityState, StoreError> {
    let mut conn = pool.acquire().await?;
    sqlx::query(
        "UPDATE chain_verification SET full_requested_at = now(), full_requested_by = $1 \
         WHERE full_requested_at IS NULL \
            OR full_requested_at <= coalesce(full_started_at, '-infinity')",
    )
    .bind(by)
    .execute(&mut *conn)
    .await?;
    load_state(&mut conn).await
}

/// What `GET /v1/integrity` says.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrityReport {
    /// No link checked failed and no pass has found a break.
    pub ok: bool,
    /// Links known to hold: the verified prefix and what this request
    /// re-hashed past it.
    pub checked: u64,
    pub first_bad_position: Option<i64>,
    /// The recorded head of the log.
    pub head_position: i64,
    pub head_hash: String,
    /// Events past the last link this answer covers (when the verifier is
    /// more than [`REQUEST_TAIL_LIMIT`] behind, or the chain is broken).
    pub unverified: i64,
    pub state: IntegrityState,
}

/// The chain's integrity now, from the verified state and at most
/// `tail_limit` events re-hashed: see the module's comment.
pub async fn report(pool: &PgPool, tail_limit: i64) -> Result<IntegrityReport, StoreError> {
    let mut tx = pool.begin().await?;
    // One snapshot: the state, the head and the events agree.
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let state = load_state(&mut tx).await?;
    let head = recorded_head(&mut tx).await?;
    let (checked, first_bad, last) = match state.first_bad_position {
        Some(bad) => {
            let held = state.position.min(bad - 1).max(0);
            (held as u64, Some(bad), held)
        }
        None => match prefix_holds(&mut tx, state.position, &state.hash).await? {
            Some(bad) => (0, Some(bad), 0),
            None => {
                let seg = rehash(
                    &mut tx,
                    (state.position, state.hash),
                    head.0,
                    Some(tail_limit),
                    0,
                    |_| {},
                )
                .await?;
                let bad = segment_break(&seg, head, tail_limit);
                (state.position as u64 + seg.checked, bad, seg.last_position)
            }
        },
    };
    tx.commit().await?;
    Ok(IntegrityReport {
        ok: first_bad.is_none(),
        checked,
        first_bad_position: first_bad,
        head_position: head.0,
        head_hash: hex::encode(head.1),
        unverified: (head.0 - last).max(0),
        state,
    })
}

/// The verifier: extends the prefix as the log grows (woken by the store's
/// head, and every `tick`), and runs full passes when due, until `stop`.
/// Publishes every state it reads or leaves to the store's [`ChainStatus`].
pub fn spawn_verifier(
    store: &EventStore,
    config: VerifierConfig,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let pool = store.pool().clone();
    let mut head = store.head_watch();
    let status = store.chain_status().clone();
    let full = {
        let pool = pool.clone();
        let config = config.clone();
        let status = status.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = run_full_if_due(&pool, &config, &status).await {
                    tracing::warn!(error = %e, "full verification of the hash chain failed");
                }
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(config.tick.max(Duration::from_millis(100)) * 5) => {}
                }
            }
        })
    };
    tokio::spawn(async move {
        loop {
            loop {
                let step = extend_step(&pool, EXTEND_BATCH).await;
                if let Ok((_, Some(state))) = &step {
                    status.publish(state, Instant::now());
                }
                match step {
                    Ok((Extended::Advanced(n), _)) if n > 0 => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "extending the verified hash chain failed");
                        break;
                    }
                }
            }
            head.borrow_and_update();
            tokio::select! {
                _ = stop.changed() => break,
                changed = head.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(config.tick).await;
                    }
                }
                _ = tokio::time::sleep(config.tick) => {}
            }
        }
        full.abort();
        let _ = full.await;
    })
}

async fn run_full_if_due(
    pool: &PgPool,
    config: &VerifierConfig,
    status: &ChainStatus,
) -> Result<(), StoreError> {
    let read = Instant::now();
    let known = state(pool).await?;
    status.publish(&known, read);
    if !known.full_due(config, Utc::now()) {
        return Ok(());
    }
    let started = Instant::now();
    if let Some(pass) = full_pass(pool, 0, |_| {}).await? {
        tracing::info!(
            checked = pass.checked,
            first_bad_position = pass.first_bad_position,
            seconds = started.elapsed().as_secs_f64(),
            "full verification of the hash chain done"
        );
        // What it found shows at once, not at the next extension step.
        let read = Instant::now();
        status.publish(&state(pool).await?, read);
    }
    Ok(())
}
