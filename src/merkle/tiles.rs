//! How the tree is stored: tiles, as in C2SP tlog-tiles, of height 8.
//!
//! A tile at tile level `L` holds up to 256 consecutive hashes of tree level
//! `8L` (level 0: the leaf hashes; level 1: the roots of full level-0 tiles,
//! and so on). Every other node is recomputed from at most 128 of them. A
//! tile's hashes never change once written, they only grow until the tile is
//! full, so a stored tile read at any later size still answers for an earlier
//! one: the prefix it needs is the same.

use std::collections::{BTreeMap, HashMap};

use thiserror::Error;

use super::hash::{Hash, empty_root, node_hash};
use super::shape::{self, Perfect, Span};

/// Tree levels per tile.
pub const TILE_HEIGHT: u32 = 8;
/// Hashes in a full tile (`2^TILE_HEIGHT`).
pub const TILE_WIDTH: usize = 1 << TILE_HEIGHT;

/// A tile: `index` counts tiles from the left at tile level `level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TileId {
    pub level: u8,
    pub index: u64,
}

impl std::fmt::Display for TileId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "level {} index {}", self.level, self.index)
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TileError {
    #[error(
        "a tree of {size} leaves has {expected} hashes in its partial tile at level {level}, \
         but {actual} were given"
    )]
    WidthMismatch {
        size: u64,
        level: u8,
        expected: usize,
        actual: usize,
    },
    #[error("a tile the proof needs is missing: {0}")]
    Missing(TileId),
    #[error("a tile the proof needs is too short: {id} has {actual} hashes, {needed} are needed")]
    Short {
        id: TileId,
        actual: usize,
        needed: usize,
    },
}

/// Where stored tiles are read from.
pub trait TileSource {
    /// The stored hashes of a tile: a full tile, or the partial one as stored
    /// at some size. It may be longer than a caller needs (stored at a later
    /// size); callers use only the prefix they need.
    fn tile(&self, id: TileId) -> Option<&[Hash]>;

    /// The root of the perfect subtree whose bottom row is `tile[start..end]`,
    /// when the source keeps it ready ([`HashedTile`]); `None` has the
    /// caller hash it from the row.
    fn subtree_root(&self, id: TileId, start: usize, end: usize) -> Option<Hash> {
        let _ = (id, start, end);
        None
    }
}

/// The lowest tile-relative height whose nodes a [`HashedTile`] keeps:
/// below it a subtree is at most 8 hashes wide (7 hashes to recompute).
const KEPT_FROM: u32 = 4;

/// A tile with the nodes of its upper heights hashed once, for a server
/// that answers many proofs from the same tiles: without them a proof
/// rehashes up to 127 nodes per tile it reads (some 500 per proof at 1M
/// leaves); with them, at most 7 per tile. They cost 30 hashes (960 bytes)
/// per full tile. The nodes of a partial tile cover its complete stretches
/// only, and stay right as it grows (its hashes never change).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HashedTile {
    hashes: Vec<Hash>,
    /// Entry `k`: the nodes of height `KEPT_FROM + k` within the tile, left
    /// to right.
    upper: Vec<Vec<Hash>>,
}

impl HashedTile {
    pub fn new(hashes: Vec<Hash>) -> Self {
        let mut upper: Vec<Vec<Hash>> = Vec::new();
        for height in KEPT_FROM..TILE_HEIGHT {
            let row = match upper.last() {
                Some(below) => below
                    .chunks_exact(2)
                    .map(|pair| node_hash(&pair[0], &pair[1]))
                    .collect(),
                None => hashes
                    .chunks_exact(1 << height)
                    .map(|row| {
                        let mut nodes = row.to_vec();
                        while nodes.len() > 1 {
                            nodes = nodes
                                .chunks_exact(2)
                                .map(|pair| node_hash(&pair[0], &pair[1]))
                                .collect();
                        }
                        nodes[0]
                    })
                    .collect(),
            };
            upper.push(row);
        }
        HashedTile { hashes, upper }
    }

    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// The root over `hashes[start..end]` if kept: a perfect, aligned
    /// stretch of a kept height.
    pub fn subtree_root(&self, start: usize, end: usize) -> Option<Hash> {
        let width = end.checked_sub(start)?;
        if !width.is_power_of_two() || !start.is_multiple_of(width) {
            return None;
        }
        let height = width.trailing_zeros();
        let row = self.upper.get(height.checked_sub(KEPT_FROM)? as usize)?;
        row.get(start >> height).copied()
    }
}

/// Tiles held in memory: for tests, and for callers that fetch the tiles a
/// plan lists from the database in one query before computing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryTiles(pub HashMap<TileId, Vec<Hash>>);

impl MemoryTiles {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a tile. Tiles only grow, so of two versions of one tile the
    /// longer is kept: inserting an older partial version changes nothing.
    pub fn insert(&mut self, id: TileId, hashes: Vec<Hash>) {
        let slot = self.0.entry(id).or_default();
        if hashes.len() >= slot.len() {
            *slot = hashes;
        }
    }
}

impl TileSource for MemoryTiles {
    fn tile(&self, id: TileId) -> Option<&[Hash]> {
        self.0.get(&id).map(Vec::as_slice)
    }
}

impl Extend<(TileId, Vec<Hash>)> for MemoryTiles {
    fn extend<I: IntoIterator<Item = (TileId, Vec<Hash>)>>(&mut self, iter: I) {
        for (id, hashes) in iter {
            self.insert(id, hashes);
        }
    }
}

impl FromIterator<(TileId, Vec<Hash>)> for MemoryTiles {
    fn from_iter<I: IntoIterator<Item = (TileId, Vec<Hash>)>>(iter: I) -> Self {
        let mut tiles = Self::new();
        tiles.extend(iter);
        tiles
    }
}

/// Where a perfect subtree's bottom row lies: `tile[start..end]`.
pub(crate) struct TileSlice {
    pub tile: TileId,
    pub start: usize,
    pub end: usize,
}

pub(crate) fn locate(part: Perfect) -> TileSlice {
    let level = part.height / TILE_HEIGHT;
    let below = part.height % TILE_HEIGHT;
    let first = part.index << below;
    let start = (first % TILE_WIDTH as u64) as usize;
    TileSlice {
        tile: TileId {
            level: level as u8,
            index: first / TILE_WIDTH as u64,
        },
        start,
        end: start + (1 << below),
    }
}

/// The tiles (and how many of each tile's hashes) that the nodes need.
fn plan(nodes: impl IntoIterator<Item = Span>) -> Vec<(TileId, usize)> {
    let mut widths = BTreeMap::new();
    for node in nodes {
        for part in shape::perfect_parts(node) {
            let slice = locate(part);
            let width = widths.entry(slice.tile).or_insert(0);
            *width = slice.end.max(*width);
        }
    }
    widths.into_iter().collect()
}

/// The tiles `root_at(size)` reads, with the width it needs of each: the
/// partial tiles of that size. Empty for size 0.
pub fn tiles_for_root(size: u64) -> Vec<(TileId, usize)> {
    if size == 0 {
        return Vec::new();
    }
    plan([Span {
        start: 0,
        end: size,
    }])
}

/// The tiles `inclusion_proof(index, size)` reads (not the leaf's own hash:
/// see `tiles_for_leaf_range`). Empty when `index >= size`.
pub fn tiles_for_inclusion(index: u64, size: u64) -> Vec<(TileId, usize)> {
    if index >= size {
        return Vec::new();
    }
    plan(shape::inclusion_nodes(index, size))
}

/// The tiles `consistency_proof(m, n)` reads. Empty unless `0 < m < n`.
pub fn tiles_for_consistency(m: u64, n: u64) -> Vec<(TileId, usize)> {
    if m == 0 || m > n {
        return Vec::new();
    }
    plan(shape::consistency_nodes(m, n))
}

/// The level-0 tiles holding the leaf hashes `start..end`.
pub fn tiles_for_leaf_range(start: u64, end: u64) -> Vec<(TileId, usize)> {
    if start >= end {
        return Vec::new();
    }
    let width = TILE_WIDTH as u64;
    (start / width..=(end - 1) / width)
        .map(|index| {
            let needed = (end - index * width).min(width) as usize;
            (TileId { level: 0, index }, needed)
        })
        .collect()
}

/// One tile level of the right edge: the rightmost, incomplete tile's hashes,
/// and their compact range (the roots of the perfect subtrees they form,
/// largest first), which makes appending and the root cheap.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Edge {
    hashes: Vec<Hash>,
    peaks: Vec<Hash>,
}

impl Edge {
    fn push(&mut self, hash: Hash) {
        self.hashes.push(hash);
        self.peaks.push(hash);
        // Each trailing zero of the new width closes one perfect subtree.
        for _ in 0..self.hashes.len().trailing_zeros() {
            let right = self.peaks.pop();
            let left = self.peaks.pop();
            if let (Some(left), Some(right)) = (left, right) {
                self.peaks.push(node_hash(&left, &right));
            }
        }
    }
}

/// The right edge of a tree: all that appending and its root need, whatever
/// its size (at most 255 hashes per tile level, and 8 tile levels).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeState {
    size: u64,
    levels: Vec<Edge>,
}

/// How many hashes of tree level `8 * level` a tree of `size` leaves has.
fn level_count(size: u64, level: usize) -> u64 {
    let shift = level as u32 * TILE_HEIGHT;
    if shift >= u64::BITS { 0 } else { size >> shift }
}

impl TreeState {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state of a tree of `size` leaves from its partial tiles, by tile
    /// level (entry `L` is the partial tile at level `L`, empty where that
    /// level's tiles are all full). Missing trailing levels count as empty.
    pub fn from_partial_tiles(size: u64, tiles: Vec<Vec<Hash>>) -> Result<Self, TileError> {
        let mut state = TreeState {
            size,
            levels: Vec::new(),
        };
        let levels = tiles.len().max(Self::level_span(size));
        let mut tiles = tiles.into_iter();
        for level in 0..levels {
            let hashes = tiles.next().unwrap_or_default();
            let expected = (level_count(size, level) % TILE_WIDTH as u64) as usize;
            if hashes.len() != expected {
                return Err(TileError::WidthMismatch {
                    size,
                    level: level as u8,
                    expected,
                    actual: hashes.len(),
                });
            }
            if level < Self::level_span(size) {
                let mut edge = Edge::default();
                for hash in hashes {
                    edge.push(hash);
                }
                state.levels.push(edge);
            }
        }
        Ok(state)
    }

    /// The state of a tree of `size` leaves, read from stored tiles (those
    /// `tiles_for_root(size)` lists).
    pub fn load(size: u64, source: &(impl TileSource + ?Sized)) -> Result<Self, TileError> {
        let mut partial = vec![Vec::new(); Self::level_span(size)];
        for (id, width) in tiles_for_root(size) {
            let tile = source.tile(id).ok_or(TileError::Missing(id))?;
            let prefix = tile.get(..width).ok_or(TileError::Short {
                id,
                actual: tile.len(),
                needed: width,
            })?;
            partial[id.level as usize] = prefix.to_vec();
        }
        Self::from_partial_tiles(size, partial)
    }

    /// The number of tile levels with at least one hash.
    fn level_span(size: u64) -> usize {
        (0..).take_while(|&l| level_count(size, l) > 0).count()
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash; returns the tiles this filled (each with its 256
    /// hashes), lowest level first. A full tile's root goes up one tile level,
    /// so each level costs about one hash per hash it receives.
    pub fn append(&mut self, leaf: Hash) -> Vec<(TileId, Vec<Hash>)> {
        self.size += 1;
        let mut filled = Vec::new();
        let mut carry = leaf;
        for level in 0.. {
            if self.levels.len() == level {
                self.levels.push(Edge::default());
            }
            let edge = &mut self.levels[level];
            edge.push(carry);
            if edge.hashes.len() < TILE_WIDTH {
                break;
            }
            carry = edge.peaks[0];
            edge.peaks.clear();
            let id = TileId {
                level: level as u8,
                index: level_count(self.size, level) / TILE_WIDTH as u64 - 1,
            };
            filled.push((id, std::mem::take(&mut edge.hashes)));
        }
        filled
    }

    /// The non-empty partial tiles, lowest level first: with the full tiles
    /// `append` returned, everything a `TileSource` needs for this size and
    /// every earlier one.
    pub fn partial_tiles(&self) -> Vec<(TileId, Vec<Hash>)> {
        self.levels
            .iter()
            .enumerate()
            .filter(|(_, edge)| !edge.hashes.is_empty())
            .map(|(level, edge)| {
                let id = TileId {
                    level: level as u8,
                    index: level_count(self.size, level) / TILE_WIDTH as u64,
                };
                (id, edge.hashes.clone())
            })
            .collect()
    }

    /// The tree's root (RFC 9162 MTH): the perfect subtrees of the right edge,
    /// leftmost (highest level) first, folded from the right.
    pub fn root(&self) -> Hash {
        let mut peaks = self
            .levels
            .iter()
            .rev()
            .flat_map(|edge| edge.peaks.iter())
            .rev();
        let Some(last) = peaks.next() else {
            return empty_root();
        };
        peaks.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::hash::leaf_hash;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn a_full_tile_moves_its_root_one_level_up() {
        let mut state = TreeState::new();
        let mut filled = Vec::new();
        for leaf in leaves(256 * 256 + 3) {
            filled.extend(state.append(leaf));
        }
        // 256 full level-0 tiles, then the level-1 tile of their roots.
        assert_eq!(filled.len(), 257);
        assert_eq!(
            filled[255].0,
            TileId {
                level: 0,
                index: 255
            }
        );
        assert_eq!(filled[256].0, TileId { level: 1, index: 0 });
        assert!(filled.iter().all(|(_, hashes)| hashes.len() == TILE_WIDTH));
        let partial = state.partial_tiles();
        assert_eq!(partial.len(), 2);
        assert_eq!(
            partial[0].0,
            TileId {
                level: 0,
                index: 256
            }
        );
        assert_eq!(partial[0].1.len(), 3);
        assert_eq!(partial[1].0, TileId { level: 2, index: 0 });
        // The level-2 hash is the root of the first 65536 leaves.
        let mut first = TreeState::new();
        for leaf in leaves(256 * 256) {
            first.append(leaf);
        }
        assert_eq!(partial[1].1, vec![first.root()]);
    }

    #[test]
    fn from_partial_tiles_rejects_widths_that_disagree_with_the_size() {
        let mut state = TreeState::new();
        for leaf in leaves(300) {
            state.append(leaf);
        }
        let partial: Vec<Vec<Hash>> = state.partial_tiles().into_iter().map(|(_, h)| h).collect();
        assert_eq!(
            partial.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![44, 1]
        );
        let rebuilt = TreeState::from_partial_tiles(300, partial.clone()).unwrap();
        assert_eq!(rebuilt, state);

        let err = TreeState::from_partial_tiles(301, partial.clone()).unwrap_err();
        assert_eq!(
            err,
            TileError::WidthMismatch {
                size: 301,
                level: 0,
                expected: 45,
                actual: 44
            }
        );
        let err = TreeState::from_partial_tiles(300, vec![partial[0].clone()]).unwrap_err();
        assert_eq!(
            err,
            TileError::WidthMismatch {
                size: 300,
                level: 1,
                expected: 1,
                actual: 0
            }
        );
        let mut extra = partial.clone();
        extra.push(vec![[0; 32]]);
        assert!(TreeState::from_partial_tiles(300, extra).is_err());
        let mut trailing_empty = partial;
        trailing_empty.push(Vec::new());
        assert_eq!(
            TreeState::from_partial_tiles(300, trailing_empty).unwrap(),
            state
        );
        assert_eq!(
            TreeState::from_partial_tiles(0, vec![]).unwrap().root(),
            empty_root()
        );
    }

    #[test]
    fn plans_name_the_tiles_and_widths() {
        assert!(tiles_for_root(0).is_empty());
        assert_eq!(tiles_for_root(3), vec![(TileId { level: 0, index: 0 }, 3)]);
        assert_eq!(
            tiles_for_root(256),
            vec![(TileId { level: 1, index: 0 }, 1)]
        );
        assert_eq!(
            tiles_for_root(256 * 3 + 5),
            vec![
                (TileId { level: 0, index: 3 }, 5),
                (TileId { level: 1, index: 0 }, 3)
            ]
        );
        assert_eq!(
            tiles_for_leaf_range(250, 600),
            vec![
                (TileId { level: 0, index: 0 }, 256),
                (TileId { level: 0, index: 1 }, 256),
                (TileId { level: 0, index: 2 }, 88),
            ]
        );
        assert!(tiles_for_leaf_range(5, 5).is_empty());
        assert!(tiles_for_inclusion(7, 7).is_empty());
        assert!(tiles_for_consistency(0, 7).is_empty());
        assert!(tiles_for_consistency(8, 7).is_empty());
        // Leaf 0 of 7: its siblings b, h (both in the leaf tile) and l.
        assert_eq!(
            tiles_for_inclusion(0, 7),
            vec![(TileId { level: 0, index: 0 }, 7)]
        );
    }

    #[test]
    fn memory_tiles_keep_the_longer_version() {
        let id = TileId { level: 0, index: 0 };
        let mut tiles = MemoryTiles::new();
        tiles.insert(id, leaves(5));
        tiles.insert(id, leaves(3));
        assert_eq!(tiles.tile(id).map(<[Hash]>::len), Some(5));
        tiles.insert(id, leaves(9));
        assert_eq!(tiles.tile(id).map(<[Hash]>::len), Some(9));
        assert!(tiles.tile(TileId { level: 0, index: 1 }).is_none());
    }
}
