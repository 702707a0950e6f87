//! The Merkle tree's storage (migrations/0019): its tiles, which the `tree`
//! projection writes, and the signed checkpoints, which are append-only like
//! the log. The arithmetic is `crate::merkle`'s; this is only rows.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use super::error::StoreError;
use super::read::LogRow;
use crate::merkle::{Hash, MemoryTiles, TileId};

/// [`read_tiles`]'s statement: `$1` the levels, `$2` the indexes.
const READ_TILES: &str = "SELECT w.level, w.idx, t.hashes \
    FROM unnest($1::smallint[], $2::bigint[]) AS w(level, idx) \
    CROSS JOIN LATERAL (SELECT hashes FROM tree_tiles t \
        WHERE t.level = w.level AND t.idx = w.idx ORDER BY t.width DESC LIMIT 1) t";

/// The plan of [`read_tiles`] for `wanted` (the plan tests read it).
pub async fn explain_read_tiles(
    conn: &mut PgConnection,
    wanted: &[TileId],
) -> Result<Vec<String>, StoreError> {
    use super::explain::{array_literal, explain_prepared};
    let levels: Vec<u8> = wanted.iter().map(|t| t.level).collect();
    let idxs: Vec<u64> = wanted.iter().map(|t| t.index).collect();
    explain_prepared(
        conn,
        "factlog_read_tiles (smallint[], bigint[])",
        READ_TILES,
        &format!("{}, {}", array_literal(&levels), array_literal(&idxs)),
    )
    .await
}

/// Reads the widest stored copy of each tile in `wanted`. A tile that is
/// missing or narrower than asked is left for the caller's arithmetic to
/// report (it names the tile). One index probe per tile, whatever the tree's
/// size: as a plain join the planner may hash the whole table instead.
pub async fn read_tiles(
    conn: &mut PgConnection,
    wanted: &[(TileId, usize)],
) -> Result<MemoryTiles, StoreError> {
    let mut tiles = MemoryTiles::new();
    if wanted.is_empty() {
        return Ok(tiles);
    }
    let levels: Vec<i16> = wanted.iter().map(|(t, _)| i16::from(t.level)).collect();
    let idxs: Vec<i64> = wanted.iter().map(|(t, _)| t.index as i64).collect();
    let rows: Vec<(i16, i64, Vec<u8>)> = sqlx::query_as(READ_TILES)
        .bind(&levels)
        .bind(&idxs)
        .fetch_all(conn)
        .await?;
    for (level, idx, bytes) in rows {
        let hashes = bytes
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect();
        tiles.insert(
            TileId {
                level: level as u8,
                index: idx as u64,
            },
            hashes,
        );
    }
    Ok(tiles)
}

/// Stores tiles (full or partial) and drops the narrower copies they
/// supersede, inside the caller's transaction.
pub async fn write_tiles(
    conn: &mut PgConnection,
    tiles: &[(TileId, Vec<Hash>)],
) -> Result<(), StoreError> {
    if tiles.is_empty() {
        return Ok(());
    }
    let levels: Vec<i16> = tiles.iter().map(|(t, _)| i16::from(t.level)).collect();
    let idxs: Vec<i64> = tiles.iter().map(|(t, _)| t.index as i64).collect();
    let widths: Vec<i16> = tiles.iter().map(|(_, h)| h.len() as i16).collect();
    let bytes: Vec<Vec<u8>> = tiles.iter().map(|(_, h)| h.concat()).collect();
    sqlx::query(
        "INSERT INTO tree_tiles (level, idx, width, hashes) \
         SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::smallint[], $4::bytea[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&levels)
    .bind(&idxs)
    .bind(&widths)
    .bind(&bytes)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM tree_tiles t USING unnest($1::smallint[], $2::bigint[], $3::smallint[]) \
             AS w(level, idx, width) \
         WHERE t.level = w.level AND t.idx = w.idx AND t.width < w.width",
    )
    .bind(&levels)
    .bind(&idxs)
    .bind(&widths)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The events after `after` up to `upto`, at most `limit`, in position
/// order, as their leaves take them: the data as stored, sealed values as
/// their commitments (so no secrets are read).
pub async fn read_leaf_rows(
    conn: &mut PgConnection,
    after: i64,
    upto: i64,
    limit: i64,
) -> Result<Vec<LogRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT position, stream, version, type, data::text AS data, actor, recorded_at, \
         NULL::text AS secrets FROM events WHERE position > $1 AND position <= $2 \
         ORDER BY position LIMIT $3",
    )
    .bind(after)
    .bind(upto)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// The number of leaves the tree holds: the `tree` projection's checkpoint.
pub async fn tree_size(conn: &mut PgConnection) -> Result<u64, StoreError> {
    let p: Option<i64> =
        sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = 'tree'")
            .fetch_optional(conn)
            .await?;
    Ok(p.unwrap_or(0).max(0) as u64)
}

/// How far signing has followed the tree, for `/readyz` and `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct SigningProgress {
    /// The latest checkpoint's size (0 before the first).
    pub size: u64,
    pub signed_at: Option<DateTime<Utc>>,
    /// Leaves the tree holds past it.
    pub unsigned_leaves: u64,
    /// When the first of them was recorded.
    pub oldest_unsigned_at: Option<DateTime<Utc>>,
}

/// One round trip: the latest checkpoint, the tree's size and the record
/// time of the first leaf past the checkpoint (a primary-key look-up).
pub async fn signing_progress(pool: &PgPool) -> Result<SigningProgress, StoreError> {
    type Row = (
        Option<i64>,
        Option<DateTime<Utc>>,
        Option<i64>,
        Option<DateTime<Utc>>,
    );
    let (size, signed_at, tree, oldest): Row = sqlx::query_as(
        "WITH c AS (SELECT size, signed_at FROM checkpoints ORDER BY size DESC LIMIT 1), \
              t AS (SELECT position FROM projection_checkpoints WHERE name = 'tree') \
         SELECT (SELECT size FROM c), (SELECT signed_at FROM c), (SELECT position FROM t), \
                (SELECT recorded_at FROM events \
                  WHERE position = COALESCE((SELECT size FROM c), 0) + 1 \
                    AND position <= COALESCE((SELECT position FROM t), 0))",
    )
    .fetch_one(pool)
    .await?;
    let size = size.unwrap_or(0).max(0) as u64;
    Ok(SigningProgress {
        size,
        signed_at,
        unsigned_leaves: (tree.unwrap_or(0).max(0) as u64).saturating_sub(size),
        oldest_unsigned_at: oldest,
    })
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: u64,
    pub root: Hash,
    /// The C2SP signed note, exactly as published.
    pub note: String,
    pub signed_at: DateTime<Utc>,
}

type CheckpointRow = (i64, Vec<u8>, String, DateTime<Utc>);

fn to_checkpoint(r: CheckpointRow) -> Result<StoredCheckpoint, StoreError> {
    let root: Hash =
        r.1.as_slice().try_into().map_err(|_| {
            StoreError::InvalidAppend(format!("checkpoint {} has a corrupt root", r.0))
        })?;
    Ok(StoredCheckpoint {
        size: r.0 as u64,
        root,
        note: r.2,
        signed_at: r.3,
    })
}

/// The largest checkpoint signed so far.
pub async fn latest_checkpoint(
    conn: &mut PgConnection,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    let row: Option<CheckpointRow> = sqlx::query_as(
        "SELECT size, root, note, signed_at FROM checkpoints ORDER BY size DESC LIMIT 1",
    )
    .fetch_optional(conn)
    .await?;
    row.map(to_checkpoint).transpose()
}

/// The smallest checkpoint whose tree holds at least `size` leaves.
pub async fn checkpoint_at_least(
    pool: &PgPool,
    size: u64,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    let row: Option<CheckpointRow> = sqlx::query_as(
        "SELECT size, root, note, signed_at FROM checkpoints WHERE size >= $1 \
         ORDER BY size LIMIT 1",
    )
    .bind(size.min(i64::MAX as u64) as i64)
    .fetch_optional(pool)
    .await?;
    row.map(to_checkpoint).transpose()
}

/// Keeps a checkpoint; `false` when one of that size exists already (it is
/// never replaced).
pub async fn insert_checkpoint(
    conn: &mut PgConnection,
    size: u64,
    root: &Hash,
    note: &str,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO checkpoints (size, root, note) VALUES ($1, $2, $3) \
         ON CONFLICT (size) DO NOTHING",
    )
    .bind(size as i64)
    .bind(root.as_slice())
    .bind(note)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
