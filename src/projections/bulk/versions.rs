//! The rebuild's first pass: every claim's versions, from the claim events
//! sorted by claim on the server, folded one claim at a time.
//!
//! The server sorts (on disk when it must), so this side holds one claim at a
//! time and its memory does not grow with the log; the log is still read in
//! one sequential scan. A claim's versions depend on its own events alone, so
//! they come out exactly as the live path, which meets the claims in position
//! order, builds them.

use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::{Connection, PgConnection};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::Stage;
use crate::domain::claim::{Claim, stream_prefix};
use crate::projections::copy::CopyWriter;
use crate::projections::facts::{PendingEnd, VersionRow, same_version};
use crate::projections::{LogEvent, ProjectionError, evolve_logged};
use crate::store::{LogRow, log_row_columns, open_events};

/// Events per message from the reader to the fold.
const READ_CHUNK: usize = 1_024;
/// Messages in flight from the reader to the fold.
const READ_AHEAD: usize = 8;

/// The claim being folded.
struct Current {
    id: Uuid,
    fact_id: Uuid,
    state: Claim,
    /// Where the open version begins (the claim's last event so far) and
    /// the record time of its transaction.
    open_position: i64,
    open_at: DateTime<Utc>,
    /// The end of the version before the open one, once the open one's
    /// transaction has ended.
    pending: Option<PendingEnd>,
}

impl Current {
    fn start(e: &LogEvent) -> Result<Current, ProjectionError> {
        let state = evolve_logged(None, e)?;
        Ok(Current {
            id: e.claim_id,
            fact_id: state.asserted.fact_id,
            state,
            open_position: e.position,
            open_at: e.recorded_at,
            pending: None,
        })
    }

    fn version(&self) -> VersionRow<'_> {
        VersionRow {
            claim_id: self.id,
            fact_id: self.fact_id,
            from_position: self.open_position,
            recorded_from: self.open_at,
            end: None,
            state: &self.state,
        }
    }

    /// The version before the open one ends where the open one begins: known
    /// once no more events of the open one's transaction can follow.
    fn settle(&mut self, out: &mut CopyWriter) {
        if let Some(end) = self.pending.take() {
            end.fill(out.rows(), self.open_position, self.open_at);
        }
    }

    /// Folds the claim's next event.
    async fn evolve(
        mut self,
        e: &LogEvent,
        out: &mut CopyWriter,
        stage: &mut Stage,
    ) -> Result<Current, ProjectionError> {
        // Record times never go back along the log (the head lock stamps
        // `greatest(clock, head)`), so a claim's transactions follow one
        // another; where they did not, its versions would overlap. Positions
        // go back only where two stream names hold one claim's events.
        let reason = if e.recorded_at < self.open_at {
            Some("its record time is earlier than its claim's event before it")
        } else if e.position <= self.open_position {
            Some("its claim's events are split over streams of different names")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(ProjectionError::Unappliable {
                position: e.position,
                reason: reason.into(),
            });
        }
        if !same_version(self.open_at, e.recorded_at) {
            // A new transaction: the open version is closed with the state so
            // far, its end written once this transaction is over. No end is
            // left to fill in between, so a claim changed in many
            // transactions need not fit in one buffer.
            self.settle(out);
            stage.flush(out).await?;
            self.pending = Some(self.version().copy_ending_later(out.rows())?);
            self.open_at = e.recorded_at;
        }
        self.open_position = e.position;
        self.state = evolve_logged(Some(self.state), e)?;
        Ok(self)
    }

    /// The claim's last version, open.
    fn finish(mut self, out: &mut CopyWriter) -> Result<(), ProjectionError> {
        self.settle(out);
        self.version().copy(out.rows())
    }
}

/// Streams the claim events after `from` up to `upto`, claim after claim
/// (by stream name, whose bytes order as the claims' ids do), each claim's
/// in position order; decoded, in chunks. Emptied chunks come back through
/// `spare`. Returns the seconds spent busy (not waiting for the fold).
async fn read_claims(
    mut conn: PgConnection,
    from: i64,
    upto: i64,
    tx: mpsc::Sender<Vec<LogEvent>>,
    mut spare: mpsc::Receiver<Vec<LogEvent>>,
) -> Result<f64, ProjectionError> {
    let started = Instant::now();
    let mut waiting_for_fold = 0.0;
    {
        let mut rows = sqlx::query_as::<_, LogRow>(concat!(
            "SELECT ",
            log_row_columns!(),
            " FROM ",
            open_events!(),
            " WHERE position > $1 AND position <= $2 AND stream LIKE '",
            stream_prefix!(),
            "%' ORDER BY stream COLLATE \"C\", position"
        ))
        .bind(from)
        .bind(upto)
        .fetch(&mut conn);
        let mut chunk = Vec::with_capacity(READ_CHUNK);
        while let Some(row) = rows.try_next().await? {
            let Some(event) = LogEvent::of(row) else {
                continue;
            };
            chunk.push(event?);
            if chunk.len() == READ_CHUNK {
                let next = spare
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(READ_CHUNK));
                let full = std::mem::replace(&mut chunk, next);
                let t = Instant::now();
                if tx.send(full).await.is_err() {
                    // The fold stopped; its error is the one to report.
                    return Ok(0.0);
                }
                waiting_for_fold += t.elapsed().as_secs_f64();
            }
        }
        if !chunk.is_empty() {
            let _ = tx.send(chunk).await;
        }
    }
    let _ = conn.close().await;
    Ok(started.elapsed().as_secs_f64() - waiting_for_fold)
}

/// Folds the claim events after `from` up to `upto` into `out`
/// (`claim_versions`), one claim at a time. `progress` is told the events
/// folded so far. Returns how many claims there were.
pub(super) async fn fold(
    reader: PgConnection,
    from: i64,
    upto: i64,
    out: &mut CopyWriter,
    stage: &mut Stage,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<u64, ProjectionError> {
    let (tx, mut rx) = mpsc::channel::<Vec<LogEvent>>(READ_AHEAD);
    let (spare_tx, spare_rx) = mpsc::channel::<Vec<LogEvent>>(READ_AHEAD);
    let reader = tokio::spawn(read_claims(reader, from, upto, tx, spare_rx));
    let (mut events, mut claims) = (0u64, 0u64);
    let mut current: Option<Current> = None;
    loop {
        let t = Instant::now();
        let Some(mut chunk) = rx.recv().await else {
            break;
        };
        stage.waiting_for_reader += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let waited = stage.waiting_for_writers;
        for e in chunk.drain(..) {
            current = match current.take() {
                Some(c) if c.id == e.claim_id => Some(c.evolve(&e, out, stage).await?),
                previous => {
                    if let Some(c) = previous {
                        if e.claim_id < c.id {
                            // Its stream is not spelled as `stream_name`
                            // spells it: its claim could be split in two.
                            return Err(ProjectionError::Unappliable {
                                position: e.position,
                                reason: "its stream does not sort with its claim's id".into(),
                            });
                        }
                        c.finish(out)?;
                        stage.flush(out).await?;
                    }
                    claims += 1;
                    Some(Current::start(&e)?)
                }
            };
            events += 1;
        }
        let _ = spare_tx.try_send(chunk);
        stage.folding += t.elapsed().as_secs_f64() - (stage.waiting_for_writers - waited);
        progress(events);
    }
    // The channel also closes when the reader fails: only a reader that
    // read everything lets the last claim be written.
    stage.reading = reader
        .await
        .map_err(|e| super::stage_failed("the log reader", e))??;
    if let Some(c) = current.take() {
        c.finish(out)?;
    }
    Ok(claims)
}
