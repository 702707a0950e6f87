//! Roots and proofs computed from stored tiles, and their verification
//! (RFC 9162 sections 2.1.3 and 2.1.4). The verifiers trust nothing but their
//! arguments: they are what an auditor runs against a log it does not trust.

use thiserror::Error;

use super::hash::{Hash, empty_root, node_hash};
use super::shape::{self, Perfect, Span};
use super::tiles::{TileError, TileSource, locate, tiles_for_leaf_range};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProofError {
    #[error(transparent)]
    Tile(#[from] TileError),
    #[error("leaf index {index} is not in a tree of {size} leaves")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("a consistency proof needs 0 < old size <= new size, not {old} and {new}")]
    Sizes { old: u64, new: u64 },
    #[error("the proof has {actual} hashes, but this proof needs {expected}")]
    Length { expected: usize, actual: usize },
    #[error("the proof does not lead to the root")]
    Root,
    #[error("the proof does not lead to the old root")]
    OldRoot,
    #[error("the proof does not lead from the old root to the new root")]
    NewRoot,
    #[error("the trees have the same size but different roots")]
    SameSizeDifferentRoots,
}

/// The hash of a perfect subtree, from the tile holding its bottom row.
fn perfect_hash(part: Perfect, source: &(impl TileSource + ?Sized)) -> Result<Hash, TileError> {
    let slice = locate(part);
    if let Some(root) = source.subtree_root(slice.tile, slice.start, slice.end) {
        return Ok(root);
    }
    let tile = source
        .tile(slice.tile)
        .ok_or(TileError::Missing(slice.tile))?;
    let row = tile.get(slice.start..slice.end).ok_or(TileError::Short {
        id: slice.tile,
        actual: tile.len(),
        needed: slice.end,
    })?;
    Ok(subtree_root(row))
}

/// The root of a perfect subtree from its bottom row (a power of two long).
fn subtree_root(row: &[Hash]) -> Hash {
    match row {
        [single] => *single,
        _ => {
            let (left, right) = row.split_at(row.len() / 2);
            node_hash(&subtree_root(left), &subtree_root(right))
        }
    }
}

/// The hash of a node: MTH of its leaves, from its perfect parts.
fn node_at(span: Span, source: &(impl TileSource + ?Sized)) -> Result<Hash, TileError> {
    let parts = shape::perfect_parts(span)
        .map(|part| perfect_hash(part, source))
        .collect::<Result<Vec<_>, _>>()?;
    let mut parts = parts.into_iter().rev();
    let last = parts.next().unwrap_or_else(empty_root);
    Ok(parts.fold(last, |acc, left| node_hash(&left, &acc)))
}

/// The root of the tree's first `size` leaves (`empty_root()` for 0).
pub fn root_at(size: u64, source: &(impl TileSource + ?Sized)) -> Result<Hash, ProofError> {
    Ok(node_at(
        Span {
            start: 0,
            end: size,
        },
        source,
    )?)
}

/// The audit path of leaf `index` in the tree of `size` leaves.
pub fn inclusion_proof(
    index: u64,
    size: u64,
    source: &(impl TileSource + ?Sized),
) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let nodes = shape::inclusion_nodes(index, size);
    Ok(nodes
        .into_iter()
        .map(|node| node_at(node, source))
        .collect::<Result<_, _>>()?)
}

/// The proof that the tree of `new` leaves extends the tree of `old` leaves
/// (`0 < old <= new`; empty when they are equal).
pub fn consistency_proof(
    old: u64,
    new: u64,
    source: &(impl TileSource + ?Sized),
) -> Result<Vec<Hash>, ProofError> {
    if old == 0 || old > new {
        return Err(ProofError::Sizes { old, new });
    }
    let nodes = shape::consistency_nodes(old, new);
    Ok(nodes
        .into_iter()
        .map(|node| node_at(node, source))
        .collect::<Result<_, _>>()?)
}

/// The leaf hashes `start..end`, read back from the level-0 tiles.
pub fn leaf_hashes(
    start: u64,
    end: u64,
    source: &(impl TileSource + ?Sized),
) -> Result<Vec<Hash>, ProofError> {
    let mut out = Vec::new();
    for (id, needed) in tiles_for_leaf_range(start, end) {
        let tile = source.tile(id).ok_or(TileError::Missing(id))?;
        if tile.len() < needed {
            return Err(TileError::Short {
                id,
                actual: tile.len(),
                needed,
            }
            .into());
        }
        let first = id.index * tile_width();
        let from = start.saturating_sub(first) as usize;
        out.extend_from_slice(&tile[from..needed]);
    }
    Ok(out)
}

fn tile_width() -> u64 {
    super::tiles::TILE_WIDTH as u64
}

/// Checks an audit path (RFC 9162 section 2.1.3.2, step by step).
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    // 1. If leaf_index is greater than or equal to tree_size, fail.
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // The steps below reject a proof of the wrong length too (too short leaves
    // sn above 0, too long reaches sn = 0 early); saying so is clearer.
    let expected = shape::inclusion_nodes(index, size).len();
    if proof.len() != expected {
        return Err(ProofError::Length {
            expected,
            actual: proof.len(),
        });
    }
    // 2. Set fn to leaf_index and sn to tree_size - 1.
    let (mut fn_, mut sn) = (index, size - 1);
    // 3. Set r to hash.
    let mut r = *leaf_hash;
    // 4. For each value p in the inclusion_path array:
    for p in proof {
        // a. If sn is 0, then stop the iteration and fail.
        if sn == 0 {
            return Err(ProofError::Root);
        }
        // b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn_ & 1 == 1 || fn_ == sn {
            // i. Set r to HASH(0x01 || p || r).
            r = node_hash(p, &r);
            // ii. If LSB(fn) is not set, then right-shift both fn and sn
            // equally until either LSB(fn) is set or fn is 0.
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            // Otherwise: set r to HASH(0x01 || r || p).
            r = node_hash(&r, p);
        }
        // c. Finally, right-shift both fn and sn one time.
        fn_ >>= 1;
        sn >>= 1;
    }
    // 5. Compare sn to 0. Compare r against the root_hash.
    if sn == 0 && r == *root {
        Ok(())
    } else {
        Err(ProofError::Root)
    }
}

/// Checks a consistency proof (RFC 9162 section 2.1.4.2, step by step). For
/// equal sizes, which the RFC leaves out, the proof must be empty and the
/// roots equal.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old == 0 || old > new {
        return Err(ProofError::Sizes { old, new });
    }
    let expected = shape::consistency_nodes(old, new).len();
    if proof.len() != expected {
        return Err(ProofError::Length {
            expected,
            actual: proof.len(),
        });
    }
    if old == new {
        return if old_root == new_root {
            Ok(())
        } else {
            Err(ProofError::SameSizeDifferentRoots)
        };
    }
    // 1. If consistency_path is an empty array, stop and fail. (Caught by the
    // length check: 0 < old < new always needs at least one hash.)
    // 2. If first is an exact power of 2, then prepend first_hash to the
    // consistency_path array.
    let mut path = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    // 3. Set fn to first - 1 and sn to second - 1.
    let (mut fn_, mut sn) = (old - 1, new - 1);
    // 4. If LSB(fn) is set, then right-shift both fn and sn equally until
    // LSB(fn) is not set.
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    // 5. Set both fr and sr to the first value in the consistency_path array.
    let (mut fr, mut sr) = (path[0], path[0]);
    // 6. For each subsequent value c in the consistency_path array:
    for c in &path[1..] {
        // a. If sn is 0, then stop the iteration and fail.
        if sn == 0 {
            return Err(ProofError::NewRoot);
        }
        // b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn_ & 1 == 1 || fn_ == sn {
            // i. Set fr to HASH(0x01 || c || fr).
            fr = node_hash(c, &fr);
            // ii. Set sr to HASH(0x01 || c || sr).
            sr = node_hash(c, &sr);
            // iii. If LSB(fn) is not set, then right-shift both fn and sn
            // equally until either LSB(fn) is set or fn is 0.
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            // Otherwise: set sr to HASH(0x01 || sr || c).
            sr = node_hash(&sr, c);
        }
        // c. Finally, right-shift both fn and sn one time.
        fn_ >>= 1;
        sn >>= 1;
    }
    // 7. Verify that fr equals first_hash, sr equals second_hash, and sn is 0.
    if fr != *old_root {
        return Err(ProofError::OldRoot);
    }
    if sn != 0 || sr != *new_root {
        return Err(ProofError::NewRoot);
    }
    Ok(())
}
