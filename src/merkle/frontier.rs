//! A tree's right edge as an auditor holds it: the roots of the perfect
//! subtrees that make up a tree of `size` leaves, largest first. With it an
//! auditor who trusts one root can hash the leaves added since and compare
//! with a newer signed root, without the service's tiles.

use super::hash::{Hash, empty_root, node_hash};
use super::proof::{ProofError, verify_inclusion};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// One root per set bit of `size`, from the highest bit down.
    peaks: Vec<Hash>,
}

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The edge of the tree of `size` leaves whose root is `root`, from the
    /// audit path of its last leaf. The path of the last leaf climbs through
    /// left siblings only: first those inside the smallest perfect subtree,
    /// then the roots of the larger ones, smallest first. The path is checked
    /// against `root` first, so a wrong hash cannot enter.
    pub fn from_last_leaf(
        size: u64,
        root: &Hash,
        leaf: &Hash,
        path: &[Hash],
    ) -> Result<Self, ProofError> {
        if size == 0 {
            return Err(ProofError::IndexOutOfRange { index: 0, size });
        }
        verify_inclusion(leaf, size - 1, size, path, root)?;
        let inside = size.trailing_zeros() as usize;
        let (within, larger) = path.split_at(inside.min(path.len()));
        let smallest = within.iter().fold(*leaf, |acc, left| node_hash(left, &acc));
        let mut peaks: Vec<Hash> = larger.iter().rev().copied().collect();
        peaks.push(smallest);
        Ok(Frontier { size, peaks })
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut node = leaf;
        // Each trailing one bit of the old size is a peak of the same height
        // as the new node: merge them, as a binary counter carries.
        let mut carries = self.size.trailing_ones();
        while carries > 0 {
            if let Some(left) = self.peaks.pop() {
                node = node_hash(&left, &node);
            }
            carries -= 1;
        }
        self.peaks.push(node);
        self.size += 1;
    }

    /// RFC 9162's MTH of the leaves so far: the peaks folded right to left.
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        match peaks.next() {
            None => empty_root(),
            Some(last) => peaks.fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::hash::leaf_hash;
    use crate::merkle::{MemoryTiles, TreeState, inclusion_proof};

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// A stored tree of `n` leaves, as the service keeps it.
    fn tiles(n: u64) -> (MemoryTiles, Hash) {
        let mut state = TreeState::new();
        let mut tiles = MemoryTiles::new();
        for leaf in leaves(n) {
            for (id, hashes) in state.append(leaf) {
                tiles.insert(id, hashes);
            }
        }
        for (id, hashes) in state.partial_tiles() {
            tiles.insert(id, hashes);
        }
        (tiles, state.root())
    }

    #[test]
    fn pushing_leaves_gives_the_roots_of_the_stored_tree() {
        let mut frontier = Frontier::new();
        assert_eq!(frontier.root(), empty_root());
        for (i, leaf) in leaves(700).into_iter().enumerate() {
            frontier.push(leaf);
            let size = i as u64 + 1;
            if size.is_multiple_of(37) || size < 20 || size.is_power_of_two() {
                assert_eq!(frontier.root(), tiles(size).1, "size {size}");
            }
        }
    }

    #[test]
    fn the_last_leafs_path_gives_the_edge_to_extend() {
        for size in (1..=300).chain([511, 512, 513, 1000]) {
            let (stored, root) = tiles(size);
            let path = inclusion_proof(size - 1, size, &stored).expect("proof");
            let leaf = leaves(size)[size as usize - 1];
            let mut frontier = Frontier::from_last_leaf(size, &root, &leaf, &path).expect("edge");
            assert_eq!(frontier.root(), root, "size {size}");
            for extra in leaves(size + 5).into_iter().skip(size as usize) {
                frontier.push(extra);
            }
            assert_eq!(frontier.root(), tiles(size + 5).1, "size {size} + 5");
        }
    }

    #[test]
    fn a_wrong_leaf_or_path_does_not_become_an_edge() {
        let (stored, root) = tiles(10);
        let mut path = inclusion_proof(9, 10, &stored).expect("proof");
        let leaf = leaves(10)[9];
        assert!(Frontier::from_last_leaf(10, &root, &leaves(10)[8], &path).is_err());
        path[0][0] ^= 1;
        assert!(Frontier::from_last_leaf(10, &root, &leaf, &path).is_err());
        assert!(Frontier::from_last_leaf(0, &root, &leaf, &[]).is_err());
    }
}
