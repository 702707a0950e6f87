//! Recomputing the Merkle tree from the log (`factlog verify`): every leaf
//! from the events as stored, every stored tile compared with the tile the
//! leaves make, and the latest signed checkpoint's root with the recomputed
//! root at its size.
//!
//! Memory does not grow with the log: events are read a page at a time, the
//! tiles a page completes are read back and compared before the next page,
//! and the recomputation keeps only the tree's right edge (`TreeState`).
//!
//! Only what the tree projection has built is compared: events it has not
//! reached yet are counted, not failed. Stored tiles are compared as
//! prefixes, since tiles only grow: a partial tile the projection widened
//! while this ran still holds the same first hashes.

use sqlx::{PgConnection, PgPool};
use thiserror::Error;

use super::error::StoreError;
use super::leaf::leaf_of_row;
use super::tree::{StoredCheckpoint, latest_checkpoint, read_leaf_rows, tree_size};
use super::verify::recorded_head;
use crate::merkle::{Checkpoint, Hash, TILE_HEIGHT, TILE_WIDTH, TileId, TreeState, empty_root};

/// Events per page: 64 full leaf tiles, about 2 MB of rows.
const PAGE: i64 = 16_384;

/// What recomputing the tree found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeReport {
    /// Leaves the stored tree holds (the `tree` projection's position):
    /// recomputed from the log and compared, tile by tile.
    pub tree_size: u64,
    /// Events past the tree (the projection lags the head): not compared.
    pub not_in_tree: u64,
    /// The latest signed checkpoint's size, if any was signed.
    pub checkpoint_size: Option<u64>,
    /// The root the log's leaves give for `tree_size` (when the log has
    /// them all).
    pub root: Option<Hash>,
    /// What is wrong, first bad position first; empty when intact.
    pub problems: Vec<TreeProblem>,
}

impl TreeReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// The first position where the stored tree or the log is wrong, when
    /// a problem names one.
    pub fn first_bad_position(&self) -> Option<i64> {
        self.problems.iter().find_map(TreeProblem::position)
    }
}

/// A way the stored tree, or a checkpoint, disagrees with the log.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TreeProblem {
    /// A stored hash is not the one the log gives; `position` is the first
    /// event under the first differing hash (for a leaf tile, that leaf's).
    #[error("the stored tree differs from the log at position {position} (tile {tile})")]
    TileDiffers { position: i64, tile: TileId },
    /// No stored copy of a tile the tree of its size has.
    #[error("the stored tree differs from the log at position {position} (tile {tile} is missing)")]
    TileMissing { position: i64, tile: TileId },
    /// The widest stored copy of a tile stops short; `position` is the
    /// first event under the first hash it lacks.
    #[error(
        "the stored tree differs from the log at position {position} \
         (tile {tile} holds {stored} of its {expected} hashes)"
    )]
    TileShort {
        position: i64,
        tile: TileId,
        stored: usize,
        expected: usize,
    },
    /// The tree (or a checkpoint) covers an event the log lacks.
    #[error("the tree holds {tree_size} leaves but the log has no event at position {position}")]
    EventMissing { position: i64, tree_size: u64 },
    /// An event whose stored data does not read as JSON has no leaf.
    #[error("the event at position {position} has no leaf: its stored data is not JSON")]
    NoLeaf { position: i64 },
    /// The latest checkpoint's root is not the log's root at its size, or
    /// its signed note names another tree than its row.
    #[error("the latest checkpoint (size {size}) does not match the log's tree: {why}")]
    Checkpoint { size: u64, why: String },
}

impl TreeProblem {
    pub fn position(&self) -> Option<i64> {
        match self {
            TreeProblem::TileDiffers { position, .. }
            | TreeProblem::TileMissing { position, .. }
            | TreeProblem::TileShort { position, .. }
            | TreeProblem::EventMissing { position, .. }
            | TreeProblem::NoLeaf { position } => Some(*position),
            TreeProblem::Checkpoint { .. } => None,
        }
    }
}

/// The position of the first event under hash `offset` of a tile: that
/// hash is the root of `256^level` leaves.
fn first_position(tile: TileId, offset: usize) -> i64 {
    let node = tile.index.saturating_mul(TILE_WIDTH as u64) + offset as u64;
    let shift = u32::from(tile.level) * TILE_HEIGHT;
    let leaf = if node == 0 {
        0
    } else if shift > node.leading_zeros() {
        u64::MAX
    } else {
        node << shift
    };
    i64::try_from(leaf.saturating_add(1)).unwrap_or(i64::MAX)
}

/// Compares recomputed tiles with every stored copy of them; the problem
/// with the first position, if any.
async fn compare(
    conn: &mut PgConnection,
    tiles: &[(TileId, Vec<Hash>)],
) -> Result<Option<TreeProblem>, StoreError> {
    if tiles.is_empty() {
        return Ok(None);
    }
    let levels: Vec<i16> = tiles.iter().map(|(t, _)| i16::from(t.level)).collect();
    let idxs: Vec<i64> = tiles.iter().map(|(t, _)| t.index as i64).collect();
    let rows: Vec<(i16, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT t.level, t.idx, t.hashes \
         FROM unnest($1::smallint[], $2::bigint[]) AS w(level, idx) \
         JOIN tree_tiles t ON t.level = w.level AND t.idx = w.idx \
         ORDER BY t.level, t.idx, t.width",
    )
    .bind(&levels)
    .bind(&idxs)
    .fetch_all(conn)
    .await?;
    let mut worst: Option<TreeProblem> = None;
    let mut note = |p: TreeProblem| {
        if worst.as_ref().is_none_or(|w| p.position() < w.position()) {
            worst = Some(p);
        }
    };
    for (tile, hashes) in tiles {
        let copies = rows
            .iter()
            .filter(|(l, i, _)| i16::from(tile.level) == *l && tile.index as i64 == *i)
            .map(|(_, _, bytes)| bytes);
        let mut widest = None::<usize>;
        for bytes in copies {
            let stored = bytes.len() / 32;
            widest = widest.max(Some(stored));
            let differs = bytes
                .chunks(32)
                .zip(hashes)
                .position(|(s, h)| s != h.as_slice());
            if let Some(offset) = differs {
                note(TreeProblem::TileDiffers {
                    position: first_position(*tile, offset),
                    tile: *tile,
                });
            }
        }
        match widest {
            None => note(TreeProblem::TileMissing {
                position: first_position(*tile, 0),
                tile: *tile,
            }),
            Some(stored) if stored < hashes.len() => note(TreeProblem::TileShort {
                position: first_position(*tile, stored),
                tile: *tile,
                stored,
                expected: hashes.len(),
            }),
            Some(_) => {}
        }
    }
    Ok(worst)
}

/// The checkpoint's own consistency: the size and root its signed note
/// names must be its row's (the signature is the auditor's to check, with
/// the log's key).
fn note_agrees(c: &StoredCheckpoint) -> Result<(), String> {
    let text = c
        .note
        .rfind("\n\n")
        .map(|split| &c.note[..split + 1])
        .ok_or("its note has no signatures")?;
    let body = Checkpoint::parse_body(text).map_err(|e| format!("its note: {e}"))?;
    if body.size != c.size || body.root != c.root {
        return Err("its signed note names another tree than its row".into());
    }
    Ok(())
}

/// Recomputes the tree from the log and compares it with the stored tiles
/// and the latest checkpoint. `progress` is told the leaves recomputed after
/// each page.
pub async fn check_tree(
    pool: &PgPool,
    mut progress: impl FnMut(u64),
) -> Result<TreeReport, StoreError> {
    let mut conn = pool.acquire().await?;
    // The checkpoint first: the signer signs only what the tree holds, so a
    // checkpoint read before the tree's size is never ahead of it.
    let checkpoint = latest_checkpoint(&mut conn).await?;
    let size = tree_size(&mut conn).await?;
    let head = recorded_head(&mut conn).await?.0.max(0) as u64;
    let checkpoint_size = checkpoint.as_ref().map(|c| c.size);
    let mut report = TreeReport {
        tree_size: size,
        not_in_tree: head.saturating_sub(size),
        checkpoint_size,
        root: (size == 0).then(empty_root),
        problems: Vec::new(),
    };
    let upto = size.max(checkpoint_size.unwrap_or(0));

    let mut state = TreeState::new();
    let mut tile_problem = None;
    let mut checkpoint_root = (checkpoint_size == Some(0)).then(empty_root);
    let mut partial = (size == 0).then(Vec::new);
    let mut stopped = None;
    while stopped.is_none() && state.size() < upto {
        let after = state.size() as i64;
        let rows = read_leaf_rows(&mut conn, after, upto as i64, PAGE).await?;
        if rows.is_empty() {
            stopped = Some(TreeProblem::EventMissing {
                position: after + 1,
                tree_size: size,
            });
        }
        let mut full = Vec::new();
        for row in &rows {
            let expected = state.size() as i64 + 1;
            if row.position != expected {
                stopped = Some(TreeProblem::EventMissing {
                    position: expected,
                    tree_size: size,
                });
                break;
            }
            let Some(leaf) = leaf_of_row(row) else {
                stopped = Some(TreeProblem::NoLeaf {
                    position: row.position,
                });
                break;
            };
            let filled = state.append(leaf);
            // Tiles past the stored tree need not be stored yet.
            if state.size() <= size {
                full.extend(filled);
            }
            if state.size() == size {
                partial = Some(state.partial_tiles());
                report.root = Some(state.root());
            }
            if Some(state.size()) == checkpoint_size {
                checkpoint_root = Some(state.root());
            }
        }
        // Once a tile is bad, the rest is recomputed for the checkpoint only.
        if tile_problem.is_none() {
            tile_problem = compare(&mut conn, &full).await?;
        }
        progress(state.size());
    }
    if tile_problem.is_none()
        && let Some(partial) = &partial
    {
        tile_problem = compare(&mut conn, partial).await?;
    }
    // Tile problems lie before where the log stopped; a missing event or
    // leaf past the stored tree concerns the checkpoint only.
    report.problems.extend(tile_problem);
    report
        .problems
        .extend(stopped.filter(|p| p.position().is_some_and(|at| at as u64 <= size)));
    if let Some(c) = &checkpoint {
        let why = match checkpoint_root {
            None => Some(format!(
                "the log's leaves stop at {} (the tree cannot be recomputed to its size)",
                state.size()
            )),
            Some(root) if root != c.root => Some(format!(
                "its root is not the root of the log's first {} events",
                c.size
            )),
            Some(_) => note_agrees(c).err(),
        };
        if let Some(why) = why {
            report
                .problems
                .push(TreeProblem::Checkpoint { size: c.size, why });
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tile_hash_names_the_first_event_beneath_it() {
        let t = |level, index| TileId { level, index };
        assert_eq!(first_position(t(0, 0), 0), 1);
        assert_eq!(first_position(t(0, 0), 7), 8);
        assert_eq!(first_position(t(0, 2), 3), 2 * 256 + 3 + 1);
        assert_eq!(first_position(t(1, 0), 0), 1);
        assert_eq!(first_position(t(1, 0), 1), 257);
        assert_eq!(first_position(t(1, 1), 2), (256 + 2) * 256 + 1);
        assert_eq!(first_position(t(2, 0), 1), 65_537);
        assert_eq!(first_position(t(7, 1), 0), i64::MAX);
    }
}
