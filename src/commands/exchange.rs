//! `factlog export` and `factlog import`: the log as NDJSON, one event per
//! line (`store::exchange`), to move or back up a log with proof that
//! nothing changed on the way. Both stream: a page of events, or a batch of
//! lines, at a time, whatever the log's size.
//!
//! Each runs two things side by side: export reads the next page while a
//! thread serializes and writes the last; import checks the next batch of
//! lines on a thread while the last one commits.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use serde::Serialize;
use sqlx::PgPool;
use thiserror::Error;
use tokio::sync::mpsc;

use super::open_database;
use crate::config::Settings;
use crate::progress::Progress;
use crate::store::exchange::{ImportRow, LineChecker, LineError, LogLine};
use crate::store::import::{ImportError, import_batch};
use crate::store::{self, StoreError};

/// Events per page read for an export.
const EXPORT_PAGE: i64 = 2_000;

/// Lines per import transaction unless told otherwise.
pub const IMPORT_BATCH: usize = 5_000;

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
    let mut prev = {
        let mut conn = pool.acquire().await.map_err(StoreError::from)?;
        let hash = store::import::hash_at(&mut conn, after)
            .await?
            .ok_or(ExportError::Gap(after))?;
        hex::encode(hash)
    };
    let mut progress = Progress::new("export", Some((head - after) as u64));

    // Pages go to a thread that serializes and writes them. At most four
    // pages are held at once (being read, converted, queued, written), so
    // memory stays at a few thousand events whatever the log's size.
    let (tx, mut rx) = mpsc::channel::<Vec<LogLine>>(1);
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut w = BufWriter::with_capacity(1 << 20, out);
        while let Some(page) = rx.blocking_recv() {
            for line in &page {
                serde_json::to_writer(&mut w, line)?;
                w.write_all(b"\n")?;
            }
        }
        w.flush()
    });

    let read = |from: i64| {
        let pool = pool.clone();
        let limit = EXPORT_PAGE.min(head - from).max(1);
        tokio::spawn(async move { store::read_all(&pool, from, limit).await })
    };
    let mut done = 0u64;
    let mut position = after;
    let mut next = (after < head).then(|| read(after));
    let mut failed = None;
    while let Some(page) = next.take() {
        let page = page.await.map_err(|e| ExportError::Read(e.to_string()))??;
        let page: Vec<_> = page.into_iter().filter(|e| e.position <= head).collect();
        let Some(last) = page.last().map(|e| e.position) else {
            failed = Some(ExportError::Gap(position + 1));
            break;
        };
        if last < head {
            next = Some(read(last));
        }
        let mut lines = Vec::with_capacity(page.len());
        for e in page {
            if e.position != position + 1 {
                failed = Some(ExportError::Gap(position + 1));
                break;
            }
            position = e.position;
            let hash = e.hash.clone();
            lines.push(LogLine::new(e, std::mem::replace(&mut prev, hash)));
        }
        done += lines.len() as u64;
        if failed.is_some() || tx.send(lines).await.is_err() {
            // The writer stopped (its error is below) or the log has a gap.
            break;
        }
        progress.update(done);
    }
    drop(tx);
    let written = writer
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the writer panicked")));
    if let Some(e) = failed {
        return Err(e);
    }
    written.map_err(ExportError::Write)?;
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
    rows: Vec<ImportRow>,
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
    let mut rows = Vec::with_capacity(batch);
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
            Ok(row) => rows.push(row),
            Err(e) => {
                let _ = tx.blocking_send(Err(e.into()));
                return;
            }
        }
        if rows.len() >= batch {
            let full = std::mem::replace(&mut rows, Vec::with_capacity(batch));
            if tx.blocking_send(Ok(Batch { rows: full, bytes })).is_err() {
                return;
            }
        }
    }
    if !rows.is_empty() {
        let _ = tx.blocking_send(Ok(Batch { rows, bytes }));
    }
}
