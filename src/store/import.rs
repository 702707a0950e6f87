//! Importing checked lines of an export (`factlog import`): the only writer
//! of `events` besides the appender, and held to the same rules. A batch is
//! one transaction that takes the `event_head` row lock (so positions stay
//! gapless and commit-ordered whoever else appends), checks that the log is
//! where the batch begins, inserts the events with their original
//! positions, ids, record times, hashes and stored (sealed) data (a binary
//! `COPY` into `events` itself, whose constraints and triggers see every
//! row as for an INSERT), moves the
//! head and `NOTIFY`s like an append, so projections and every process's
//! head watch wake.
//!
//! Lines the log already holds are compared, not written: an identical
//! event (the same chain hash at the same position) is skipped, so an
//! import run twice, resumed after a crash, or given a file that overlaps
//! the log, appends each event once; a different one means the two logs
//! diverged, and nothing of the batch is written.

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};

use super::chain::HASH_LEN;
use super::error::StoreError;
use super::exchange::{ImportRow, LineError};
use super::export::{COPY_HEADER, JSONB_VERSION, PG_EPOCH_MICROS};
use super::verify::to_hash;

/// Why an import stopped. All but `Read` and `Store` are refusals: the file, or the
/// log it was imported into, is not what an import can take.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Line(#[from] LineError),
    #[error(
        "the log ends at position {head}, but the file begins at position {first} (line {line}): \
         import the events between them first (factlog export --after {head})"
    )]
    Gap { head: i64, first: i64, line: u64 },
    #[error(
        "the logs diverged at position {position}: the event there is not the file's \
         (line {line}); nothing was written"
    )]
    Diverged { position: i64, line: u64 },
    #[error("reading the file: {0}")]
    Read(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ImportError {
    /// Whether the import was refused (bad file, diverged log) rather than
    /// failed (database away): a refusal fails the same way when run again.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, ImportError::Store(_) | ImportError::Read(_))
    }
}

impl From<sqlx::Error> for ImportError {
    fn from(e: sqlx::Error) -> Self {
        ImportError::Store(e.into())
    }
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Imported {
    /// Lines the log already held, identical.
    pub present: u64,
    /// Lines appended.
    pub appended: u64,
    /// The head after the batch.
    pub head: i64,
    pub head_hash: [u8; HASH_LEN],
}

/// The field count that ends a binary `COPY`.
const COPY_TRAILER: &[u8] = &(-1i16).to_be_bytes();

const EVENTS_COPY: &str = "COPY events (position, event_id, stream, version, type, data, \
     metadata, actor, recorded_at, hash) FROM STDIN (FORMAT binary)";
const SECRETS_COPY: &str = "COPY event_secrets (position, secrets) FROM STDIN (FORMAT binary)";

/// What a batch needs of each line besides its tuple: where it sits in
/// the log and the file, and where its tuples begin, so that the lines the
/// log already holds can be left out of the COPY.
#[derive(Debug, Clone, Copy)]
struct Key {
    line: u64,
    position: i64,
    prev_hash: [u8; HASH_LEN],
    hash: [u8; HASH_LEN],
    recorded_at: DateTime<Utc>,
    events_at: usize,
    secrets_at: usize,
}

/// Consecutive checked lines, already encoded as the tuples of a binary
/// `COPY` into `events` and `event_secrets`: the checking thread encodes
/// them while the batch before commits, so the database's side of an
/// import is two COPYs that parse nothing but the jsonb.
#[derive(Debug, Default)]
pub struct CopyBatch {
    keys: Vec<Key>,
    events: Vec<u8>,
    secrets: Vec<u8>,
}

impl CopyBatch {
    pub fn with_capacity(lines: usize) -> Self {
        CopyBatch {
            keys: Vec::with_capacity(lines),
            // About the size of an event's tuple, so most batches never grow it.
            events: Vec::with_capacity(lines * 512),
            secrets: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Bytes held, for a reader deciding when a batch is full.
    pub fn bytes(&self) -> usize {
        self.events.len() + self.secrets.len()
    }

    /// Adds the next line of the file; lines must come in order.
    pub fn push(&mut self, row: &ImportRow) {
        self.keys.push(Key {
            line: row.line,
            position: row.position,
            prev_hash: row.prev_hash,
            hash: row.hash,
            recorded_at: row.recorded_at,
            events_at: self.events.len(),
            secrets_at: self.secrets.len(),
        });
        let e = &mut self.events;
        e.extend_from_slice(&10i16.to_be_bytes());
        field(e, &row.position.to_be_bytes());
        field(e, row.event_id.as_bytes());
        field(e, row.stream.as_bytes());
        field(e, &row.version.to_be_bytes());
        field(e, row.event_type.as_bytes());
        jsonb(e, &row.data);
        jsonb(e, &row.metadata);
        field(e, row.actor.as_bytes());
        let micros = row.recorded_at.timestamp_micros() - PG_EPOCH_MICROS;
        field(e, &micros.to_be_bytes());
        field(e, &row.hash);
        if let Some(secrets) = &row.secrets {
            let s = &mut self.secrets;
            s.extend_from_slice(&2i16.to_be_bytes());
            field(s, &row.position.to_be_bytes());
            jsonb(s, secrets);
        }
    }
}

/// One field of a binary tuple: its length, then its bytes. A line is at
/// most a few MiB (the reader refuses longer ones), far below i32's range.
fn field(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

fn jsonb(buf: &mut Vec<u8>, text: &str) {
    buf.extend_from_slice(&(text.len() as i32 + 1).to_be_bytes());
    buf.push(JSONB_VERSION);
    buf.extend_from_slice(text.as_bytes());
}

/// Imports one batch of consecutive checked lines in one transaction:
/// skips those the log holds identically, refuses a gap or a different
/// event, appends the rest. Nothing is written unless all of it holds.
pub async fn import_batch(
    conn: &mut PgConnection,
    batch: &CopyBatch,
) -> Result<Imported, ImportError> {
    let rows = &batch.keys;
    let mut tx = conn.begin().await?;
    let (head, head_hash): (i64, Vec<u8>) =
        sqlx::query_as("SELECT position, hash FROM event_head FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
    let head_hash = to_hash(&head_hash)?;
    let Some(first) = rows.first() else {
        return Ok(Imported {
            head,
            head_hash,
            ..Imported::default()
        });
    };
    if first.position - 1 > head {
        return Err(ImportError::Gap {
            head,
            first: first.position,
            line: first.line,
        });
    }
    // Lines at positions the log holds: the same chain hash there, or the
    // logs diverged (a chain hash covers everything before it, too).
    let present = (head - first.position + 1).clamp(0, rows.len() as i64) as usize;
    if present > 0 {
        let held: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT position, hash FROM events WHERE position >= $1 AND position <= $2 \
             ORDER BY position",
        )
        .bind(first.position)
        .bind(first.position + present as i64 - 1)
        .fetch_all(&mut *tx)
        .await?;
        for (i, row) in rows[..present].iter().enumerate() {
            match held.get(i) {
                Some((p, h)) if *p == row.position && h.as_slice() == row.hash.as_slice() => {}
                _ => {
                    return Err(ImportError::Diverged {
                        position: row.position,
                        line: row.line,
                    });
                }
            }
        }
    }
    let new = &rows[present..];
    let (Some(next), Some(last)) = (new.first(), new.last()) else {
        return Ok(Imported {
            present: present as u64,
            appended: 0,
            head,
            head_hash,
        });
    };
    // The first new line must follow the log's last event. When lines
    // before it were present this holds by their hashes.
    if present == 0 && next.prev_hash != head_hash {
        return Err(ImportError::Diverged {
            position: head,
            line: next.line,
        });
    }
    copy_in(&mut tx, EVENTS_COPY, &batch.events[next.events_at..]).await?;
    let secrets = &batch.secrets[next.secrets_at..];
    if !secrets.is_empty() {
        copy_in(&mut tx, SECRETS_COPY, secrets).await?;
    }
    sqlx::query("UPDATE event_head SET position = $1, hash = $2, recorded_at = $3")
        .bind(last.position)
        .bind(last.hash.as_slice())
        .bind(last.recorded_at)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(super::NOTIFY_CHANNEL)
        .bind(last.position.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Imported {
        present: present as u64,
        appended: new.len() as u64,
        head: last.position,
        head_hash: last.hash,
    })
}

/// One binary `COPY … FROM STDIN` of encoded `tuples`. A failure leaves
/// the transaction to be rolled back by its caller.
async fn copy_in(
    conn: &mut PgConnection,
    statement: &str,
    tuples: &[u8],
) -> Result<(), ImportError> {
    let mut copy = conn.copy_in_raw(statement).await?;
    let sent = async {
        copy.send(COPY_HEADER).await?;
        copy.send(tuples).await?;
        copy.send(COPY_TRAILER).await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    match sent {
        Ok(()) => {
            copy.finish().await?;
            Ok(())
        }
        Err(e) => {
            // The connection's error is the one worth reporting.
            let _ = copy.abort("factlog import: sending the batch failed").await;
            Err(e.into())
        }
    }
}

/// The chain hash of the event at `position` (64 zeros "at" position 0),
/// `None` past the log's end: where an export `--after` it begins.
pub async fn hash_at(
    conn: &mut PgConnection,
    position: i64,
) -> Result<Option<[u8; HASH_LEN]>, StoreError> {
    if position == 0 {
        return Ok(Some(super::chain::GENESIS));
    }
    let hash: Option<Vec<u8>> = sqlx::query_scalar("SELECT hash FROM events WHERE position = $1")
        .bind(position)
        .fetch_optional(conn)
        .await?;
    hash.map(|h| to_hash(&h)).transpose()
}
