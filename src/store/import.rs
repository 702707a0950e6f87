//! Importing checked lines of an export (`factlog import`): the only writer
//! of `events` besides the appender, and held to the same rules. A batch is
//! one transaction that takes the `event_head` row lock (so positions stay
//! gapless and commit-ordered whoever else appends), checks that the log is
//! where the batch begins, inserts the events with their original
//! positions, ids, record times, hashes and stored (sealed) data, moves the
//! head and `NOTIFY`s like an append, so projections and every process's
//! head watch wake.
//!
//! Lines the log already holds are compared, not written: an identical
//! event (the same chain hash at the same position) is skipped, so an
//! import run twice, resumed after a crash, or given a file that overlaps
//! the log, appends each event once; a different one means the two logs
//! diverged, and nothing of the batch is written.

use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::chain::HASH_LEN;
use super::error::StoreError;
use super::exchange::{ImportRow, LineError};
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

/// Imports one batch of consecutive checked lines in one transaction:
/// skips those the log holds identically, refuses a gap or a different
/// event, appends the rest. Nothing is written unless all of it holds.
pub async fn import_batch(
    conn: &mut PgConnection,
    rows: &[ImportRow],
) -> Result<Imported, ImportError> {
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
    let Some(last) = new.last() else {
        return Ok(Imported {
            present: present as u64,
            appended: 0,
            head,
            head_hash,
        });
    };
    // The first new line must follow the log's last event. When lines
    // before it were present this holds by their hashes.
    if present == 0 && new[0].prev_hash != head_hash {
        return Err(ImportError::Diverged {
            position: head,
            line: new[0].line,
        });
    }
    insert(&mut tx, new).await?;
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

/// One multi-row INSERT for the events and one for their secrets, as
/// column arrays (the appender's statement, with each event's own record time).
async fn insert(conn: &mut PgConnection, rows: &[ImportRow]) -> Result<(), ImportError> {
    let n = rows.len();
    let mut position = Vec::with_capacity(n);
    let mut event_id: Vec<Uuid> = Vec::with_capacity(n);
    let mut stream = Vec::with_capacity(n);
    let mut version = Vec::with_capacity(n);
    let mut event_type = Vec::with_capacity(n);
    let mut data = Vec::with_capacity(n);
    let mut metadata = Vec::with_capacity(n);
    let mut actor = Vec::with_capacity(n);
    let mut recorded_at = Vec::with_capacity(n);
    let mut hash = Vec::with_capacity(n);
    let mut secret_position = Vec::new();
    let mut secret = Vec::new();
    for r in rows {
        position.push(r.position);
        event_id.push(r.event_id);
        stream.push(r.stream.as_str());
        version.push(r.version);
        event_type.push(r.event_type.as_str());
        data.push(r.data.as_str());
        metadata.push(r.metadata.as_str());
        actor.push(r.actor.as_str());
        recorded_at.push(r.recorded_at);
        hash.push(r.hash.as_slice());
        if let Some(s) = &r.secrets {
            secret_position.push(r.position);
            secret.push(s.as_str());
        }
    }
    sqlx::query(
        "INSERT INTO events (position, event_id, stream, version, type, data, metadata, actor, \
         recorded_at, hash) \
         SELECT p, id, s, v, t, d::jsonb, m::jsonb, a, r, h \
         FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::bigint[], $5::text[], $6::text[], \
                     $7::text[], $8::text[], $9::timestamptz[], $10::bytea[]) \
              AS u(p, id, s, v, t, d, m, a, r, h)",
    )
    .bind(&position)
    .bind(&event_id)
    .bind(&stream)
    .bind(&version)
    .bind(&event_type)
    .bind(&data)
    .bind(&metadata)
    .bind(&actor)
    .bind(&recorded_at)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    if !secret.is_empty() {
        sqlx::query(
            "INSERT INTO event_secrets (position, secrets) \
             SELECT p, x::jsonb FROM unnest($1::bigint[], $2::text[]) AS u(p, x)",
        )
        .bind(&secret_position)
        .bind(&secret)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
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
