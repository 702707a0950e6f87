//! `factlog export` and `factlog import`: the log as NDJSON, one event per
//! line (`store::exchange`), to move or back up a log with proof that
//! nothing changed on the way. Both stream: a chunk of rows, or a batch of
//! lines, at a time, whatever the log's size.
//!
//! Each runs two things side by side: export receives the rows of one
//! binary COPY while a thread turns those before into lines and writes
//! them; import checks and encodes the next batch of lines on a thread
//! while the last one is copied in and commits.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use bytes::Bytes;
use futures::StreamExt as _;
use serde::Serialize;
use sqlx::PgPool;
use thiserror::Error;
use tokio::sync::mpsc;

use super::open_database;
use crate::config::Settings;
use crate::progress::Progress;
use crate::store::chain::HASH_LEN;
use crate::store::exchange::{LineChecker, LineError};
use crate::store::export::{self, CopyReader};
use crate::store::import::{CopyBatch, ImportError, import_batch};
use crate::store::{self, StoreError};

/// COPY rows (one message each) handed to the writing thread at a time.
const EXPORT_CHUNK: usize = 1_024;

/// Lines per import transaction unless told otherwise. Each commit waits
/// for its WAL flush, so fewer, larger batches import faster; three are
/// held at once (being checked, queued, copied in), about 20 MB each.
pub const IMPORT_BATCH: usize = 20_000;

/// The longest line an import reads (an event is at most
/// `FACTLOG_MAX_EVENT_BYTES`, 1 MiB by default; its line adds the values
/// and their salts to it).
const MAX_LINE: u64 = 64 << 20;

#[derive(Debug, Error)]
pub enum ExportError {
    #[error("--after {after} is past the log's head ({head})")]
    AfterBeyondHead { after: i64, head: i64 },
    #[error("the log has no event at position {0} (a gap: run factlog verify)")]
    Gap(i64),
    #[error("reading the log stopped: {0}")]
    Read(String),
    #[error("writing the export: {0}")]
    Write(#[source] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `factlog export [--after P]`: the log after `after`, as it stands when
/// the export starts, to stdout. Returns how many events were written.
pub async fn export(settings: &Settings, after: u64) -> anyhow::Result<u64> {
    let database = open_database(settings).await?;
    let result = export_to(&database.pool, after, std::io::stdout()).await;
    database.close().await;
    Ok(result?)
}

/// Writes the events after `after` up to the current head to `out`, one
/// line each.
pub async fn export_to<W: Write + Send + 'static>(
    pool: &PgPool,
    after: u64,
    out: W,
) -> Result<u64, ExportError> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let head = store::read_head(pool).await?.position;
    if after > head {
        return Err(ExportError::AfterBeyondHead { after, head });
    }
    let mut conn = pool.acquire().await.map_err(StoreError::from)?;
    let prev = store::import::hash_at(&mut conn, after)
        .await?
        .ok_or(ExportError::Gap(after))?;

    // One COPY streams the rows; a thread turns them into lines and writes
    // them while the next arrive. At most a few chunks are queued, so
    // memory stays at a few thousand events whatever the log's size.
    let (tx, rx) = mpsc::channel::<Vec<Bytes>>(2);
    let writer = std::thread::spawn(move || write_lines(rx, out, after, head, prev));
    let mut failed = None;
    if after < head {
        let statement = export::copy_statement(after, head);
        match conn.copy_out_raw(&statement).await {
            Err(e) => failed = Some(ExportError::Store(e.into())),
            Ok(mut rows) => {
                let mut chunk = Vec::with_capacity(EXPORT_CHUNK);
                while let Some(row) = rows.next().await {
                    match row {
                        Ok(row) => chunk.push(row),
                        Err(e) => {
                            failed = Some(ExportError::Store(e.into()));
                            break;
                        }
                    }
                    if chunk.len() == EXPORT_CHUNK {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(EXPORT_CHUNK));
                        if tx.send(full).await.is_err() {
                            // The writer stopped; its error is below.
                            break;
                        }
                    }
                }
                if failed.is_none() && !chunk.is_empty() {
                    let _ = tx.send(chunk).await;
                }
            }
        }
    }
    drop(tx);
    // A COPY left unread would have to be drained before the connection
    // could be used again.
    conn.close_on_drop();
    drop(conn);
    let written = writer
        .join()
        .unwrap_or_else(|_| Err(ExportError::Read("the writer panicked".into())));
    if let Some(e) = failed {
        return Err(e);
    }
    written
}

/// The writing thread of an export: rows from the COPY stream to lines,
/// each chained to the one before; `Ok` with the lines written once the
/// stream ended at `head`.
fn write_lines<W: Write>(
    mut rx: mpsc::Receiver<Vec<Bytes>>,
    out: W,
    after: i64,
    head: i64,
    mut prev: [u8; HASH_LEN],
) -> Result<u64, ExportError> {
    let mut progress = Progress::new("export", Some((head - after) as u64));
    let mut w = BufWriter::with_capacity(1 << 20, out);
    let mut reader = CopyReader::new();
    let mut line = Vec::with_capacity(4096);
    let mut position = after;
    while let Some(chunk) = rx.blocking_recv() {
        for bytes in chunk {
            reader.feed(&bytes);
            while let Some(row) = reader.next_row().map_err(ExportError::Read)? {
                if row.position != position + 1 {
                    return Err(ExportError::Gap(position + 1));
                }
                line.clear();
                export::write_line(&mut line, &row, &prev).map_err(ExportError::Read)?;
                w.write_all(&line).map_err(ExportError::Write)?;
                position = row.position;
                prev = row.hash;
            }
        }
        progress.update((position - after) as u64);
    }
    if position < head {
        return Err(if after < head && !reader.ended() {
            ExportError::Read("the COPY stream was cut short".into())
        } else {
            ExportError::Gap(position + 1)
        });
    }
    w.flush().map_err(ExportError::Write)?;
    let done = (position - after) as u64;
    progress.finish(done);
    Ok(done)
}

/// What an import did, printed as JSON on stdout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Lines read and checked.
    pub lines: u64,
    /// Lines the log already held, identical (skipped).
    pub present: u64,
    /// Lines appended.
    pub appended: u64,
    /// The log's head afterwards, and its chain hash.
    pub head: i64,
    pub head_hash: String,
}

/// Checked lines on their way to the database.
struct Batch {
    rows: CopyBatch,
    /// Bytes of the file read so far (for the progress estimate).
    bytes: u64,
}

/// `factlog import FILE`: migrates the database if needed, then appends the
/// file's events, `batch` lines per transaction. An [`ImportError`] that
/// [`ImportError::is_refusal`] says so is the file's or the log's fault.
pub async fn import(
    settings: &Settings,
    file: &Path,
    batch: usize,
) -> anyhow::Result<ImportSummary> {
    let database = open_database(settings).await?;
    let result = import_from(&database.pool, file, batch).await;
    database.close().await;
    Ok(result?)
}

/// Imports `file` into the log of `pool` (see [`import`]).
pub async fn import_from(
    pool: &PgPool,
    file: &Path,
    batch: usize,
) -> Result<ImportSummary, ImportError> {
    let batch = batch.max(1);
    let f = std::fs::File::open(file)?;
    let size = f.metadata()?.len();
    let (tx, mut rx) = mpsc::channel::<Result<Batch, ImportError>>(1);
    let reader = std::thread::spawn(move || read_batches(f, batch, &tx));

    let mut conn = pool.acquire().await?;
    let mut summary = ImportSummary::default();
    let mut progress = Progress::new("import", None);
    let mut outcome = Ok(());
    while let Some(next) = rx.recv().await {
        let b = match next {
            Ok(b) => b,
            Err(e) => {
                outcome = Err(e);
                break;
            }
        };
        match import_batch(&mut conn, &b.rows).await {
            Ok(done) => {
                summary.lines += b.rows.len() as u64;
                summary.present += done.present;
                summary.appended += done.appended;
            }
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
        // Lines are about the same size: the bytes read tell how many remain.
        if b.bytes > 0 {
            progress.set_total((summary.lines as f64 * size as f64 / b.bytes as f64) as u64);
        }
        progress.update(summary.lines);
    }
    drop(rx);
    let _ = reader.join();
    outcome?;
    progress.finish(summary.lines);
    let head = store::read_head(pool).await?;
    summary.head = head.position;
    summary.head_hash = head.hash;
    Ok(summary)
}

/// Reads and checks the file's lines on a thread of its own and sends them
/// in batches; the first bad line is sent instead of its batch, and ends it.
fn read_batches(file: std::fs::File, batch: usize, tx: &mpsc::Sender<Result<Batch, ImportError>>) {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut checker = LineChecker::new();
    let mut rows = CopyBatch::with_capacity(batch);
    let mut buf = Vec::new();
    let mut bytes = 0u64;
    loop {
        buf.clear();
        let n = match (&mut reader).take(MAX_LINE + 1).read_until(b'\n', &mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.blocking_send(Err(e.into()));
                return;
            }
        };
        if n == 0 {
            break;
        }
        bytes += n as u64;
        if buf.len() as u64 > MAX_LINE {
            let _ = tx.blocking_send(Err(LineError {
                line: checker.lines() + 1,
                reason: format!("longer than {MAX_LINE} bytes"),
            }
            .into()));
            return;
        }
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        match checker.check(text) {
            Ok(row) => rows.push(&row),
            Err(e) => {
                let _ = tx.blocking_send(Err(e.into()));
                return;
            }
        }
        if rows.len() >= batch {
            let full = std::mem::replace(&mut rows, CopyBatch::with_capacity(batch));
            if tx.blocking_send(Ok(Batch { rows: full, bytes })).is_err() {
                return;
            }
        }
    }
    if !rows.is_empty() {
        let _ = tx.blocking_send(Ok(Batch { rows, bytes }));
    }
}
