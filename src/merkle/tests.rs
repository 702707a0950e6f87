//! The tree against published vectors and against independent
//! implementations: the `ct-merkle` crate and a plain recursive RFC 9162 MTH.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use sha2::Sha256;

use super::*;

type CtTree = MemoryBackedTree<Sha256, Vec<u8>>;

fn hex32(text: &str) -> Hash {
    let bytes = hex::decode(text).expect("hex");
    Hash::try_from(bytes).expect("32 bytes")
}

/// RFC 9162's MTH, written as the RFC writes it.
fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// Every tile of a tree, computed from its leaves alone.
fn tiles_from_scratch(leaves: &[Hash]) -> MemoryTiles {
    let mut tiles = MemoryTiles::new();
    let mut row = leaves.to_vec();
    let mut level = 0;
    while !row.is_empty() {
        for (index, chunk) in row.chunks(TILE_WIDTH).enumerate() {
            let id = TileId {
                level,
                index: index as u64,
            };
            tiles.insert(id, chunk.to_vec());
        }
        row = row.chunks_exact(TILE_WIDTH).map(mth).collect();
        level += 1;
    }
    tiles
}

/// A tree grown leaf by leaf, keeping what a database would keep.
struct Grown {
    state: TreeState,
    tiles: MemoryTiles,
    leaves: Vec<Hash>,
}

impl Grown {
    fn new() -> Self {
        Grown {
            state: TreeState::new(),
            tiles: MemoryTiles::new(),
            leaves: Vec::new(),
        }
    }

    fn append(&mut self, leaf: Hash) {
        self.leaves.push(leaf);
        self.tiles.extend(self.state.append(leaf));
        self.tiles.extend(self.state.partial_tiles());
    }
}

fn leaf_data(i: u64) -> Vec<u8> {
    format!("event {i}")
        .into_bytes()
        .repeat(1 + (i % 3) as usize)
}

/// A small deterministic generator (splitmix64), so that a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn flat(hashes: &[Hash]) -> Vec<u8> {
    hashes.concat()
}

fn ct_root(tree: &CtTree) -> Hash {
    Hash::from(tree.root().as_bytes().0)
}

// The RFC 6962 test tree used by certificate-transparency-go and its
// successor transparency-dev/merkle (proof/verify_test.go and
// testonly/constants.go): eight leaves, the roots of their first 1..8, and
// the inclusion and consistency proofs listed there (leaf numbers 1-based).
const RFC_LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];
const RFC_ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];
/// (leaf, tree size, path)
const RFC_INCLUSION: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        3,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        2,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];
/// (old size, new size, proof)
const RFC_CONSISTENCY: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn rfc_tree() -> Grown {
    let mut tree = Grown::new();
    for leaf in RFC_LEAVES {
        tree.append(leaf_hash(&hex::decode(leaf).expect("hex")));
    }
    tree
}

fn hashes(list: &[&str]) -> Vec<Hash> {
    list.iter().map(|h| hex32(h)).collect()
}

#[test]
fn the_rfc6962_roots() {
    let mut state = TreeState::new();
    for (n, leaf) in RFC_LEAVES.iter().enumerate() {
        state.append(leaf_hash(&hex::decode(leaf).expect("hex")));
        assert_eq!(state.root(), hex32(RFC_ROOTS[n]), "root of {}", n + 1);
    }
    let tree = rfc_tree();
    for size in 1..=8u64 {
        let root = root_at(size, &tree.tiles).expect("root");
        assert_eq!(root, hex32(RFC_ROOTS[size as usize - 1]), "root_at({size})");
    }
    assert_eq!(root_at(0, &tree.tiles), Ok(empty_root()));
    assert_eq!(TreeState::new().root(), empty_root());
}

#[test]
fn the_rfc6962_inclusion_proofs() {
    let tree = rfc_tree();
    for (leaf, size, path) in RFC_INCLUSION {
        let index = leaf - 1;
        let want = hashes(path);
        assert_eq!(
            inclusion_proof(index, size, &tree.tiles).expect("proof"),
            want,
            "leaf {index} of {size}"
        );
        let root = hex32(RFC_ROOTS[size as usize - 1]);
        verify_inclusion(&tree.leaves[index as usize], index, size, &want, &root)
            .expect("verifies");
        assert_inclusion_tampering_fails(&tree.leaves[index as usize], index, size, &want, &root);
    }
}

#[test]
fn the_rfc6962_consistency_proofs() {
    let tree = rfc_tree();
    for (old, new, proof) in RFC_CONSISTENCY {
        let want = hashes(proof);
        assert_eq!(
            consistency_proof(old, new, &tree.tiles).expect("proof"),
            want,
            "{old} to {new}"
        );
        let old_root = hex32(RFC_ROOTS[old as usize - 1]);
        let new_root = hex32(RFC_ROOTS[new as usize - 1]);
        verify_consistency(old, new, &old_root, &new_root, &want).expect("verifies");
        assert_consistency_tampering_fails(old, new, &old_root, &new_root, &want);
    }
}

/// The corruptions transparency-dev/merkle's verify_test.go tries, each of
/// which must fail.
fn assert_inclusion_tampering_fails(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) {
    let fails = |leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash, what: &str| {
        assert!(
            verify_inclusion(leaf, index, size, proof, root).is_err(),
            "leaf {index} of {size}: {what} verified"
        );
    };
    for (wrong, what) in [
        (index.wrapping_sub(1), "index - 1"),
        (index + 1, "index + 1"),
        (index ^ 2, "index ^ 2"),
    ] {
        if wrong != index {
            fails(leaf, wrong, size, proof, root, what);
        }
    }
    fails(leaf, index, size * 2, proof, root, "size * 2");
    fails(leaf, index, size / 2, proof, root, "size / 2");
    fails(
        &leaf_hash(b"wrong leaf"),
        index,
        size,
        proof,
        root,
        "wrong leaf",
    );
    fails(leaf, index, size, proof, &empty_root(), "empty root");
    let mut longer = proof.to_vec();
    longer.push(*root);
    fails(leaf, index, size, &longer, root, "trailing root");
    let mut longer = vec![*root];
    longer.extend_from_slice(proof);
    fails(leaf, index, size, &longer, root, "preceding root");
    if !proof.is_empty() {
        fails(
            leaf,
            index,
            size,
            &proof[..proof.len() - 1],
            root,
            "removed hash",
        );
    }
    for i in 0..proof.len() {
        for bit in [0, 3, 7] {
            for byte in [0, 31] {
                let mut flipped = proof.to_vec();
                flipped[i][byte] ^= 1 << bit;
                fails(leaf, index, size, &flipped, root, "flipped bit");
            }
        }
    }
}

fn assert_consistency_tampering_fails(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) {
    let fails =
        |old: u64, new: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash], what: &str| {
            assert!(
                verify_consistency(old, new, old_root, new_root, proof).is_err(),
                "{old} to {new}: {what} verified"
            );
        };
    let wrong_root = leaf_hash(b"wrong root");
    fails(old, new, &wrong_root, new_root, proof, "wrong old root");
    fails(old, new, old_root, &wrong_root, proof, "wrong new root");
    if proof.is_empty() {
        return;
    }
    fails(old, new, new_root, old_root, proof, "swapped roots");
    fails(old - 1, new, old_root, new_root, proof, "old - 1");
    fails(old + 1, new, old_root, new_root, proof, "old + 1");
    fails(old ^ 2, new, old_root, new_root, proof, "old ^ 2");
    fails(old, new * 2, old_root, new_root, proof, "new * 2");
    fails(old, new / 2, old_root, new_root, proof, "new / 2");
    fails(old, new, old_root, new_root, &[], "empty proof");
    fails(
        old,
        new,
        old_root,
        new_root,
        &proof[..proof.len() - 1],
        "truncated",
    );
    for extra in [*old_root, *new_root, proof[0]] {
        let mut longer = proof.to_vec();
        longer.push(extra);
        fails(old, new, old_root, new_root, &longer, "trailing hash");
        longer.rotate_right(1);
        fails(old, new, old_root, new_root, &longer, "preceding hash");
    }
    for i in 0..proof.len() {
        for bit in [0, 4, 7] {
            for byte in [0, 31] {
                let mut flipped = proof.to_vec();
                flipped[i][byte] ^= 1 << bit;
                fails(old, new, old_root, new_root, &flipped, "flipped bit");
            }
        }
    }
}

/// For every size 1..=300: the root, every inclusion proof and the tiles,
/// three ways (tiles, appended state, ct-merkle) plus the plain MTH.
#[test]
fn small_trees_agree_with_ct_merkle_and_the_plain_mth() {
    let mut tree = Grown::new();
    let mut ct = CtTree::new();
    for i in 0..300u64 {
        let data = leaf_data(i);
        tree.append(leaf_hash(&data));
        ct.push(data.clone());
        let size = i + 1;

        let root = mth(&tree.leaves);
        assert_eq!(ct_root(&ct), root, "ct-merkle root of {size}");
        assert_eq!(tree.state.root(), root, "appended root of {size}");
        assert_eq!(root_at(size, &tree.tiles), Ok(root), "root_at({size})");
        assert_eq!(
            tree.tiles,
            tiles_from_scratch(&tree.leaves),
            "tiles of {size}"
        );
        let partial = tree.state.partial_tiles();
        let by_level = (0..partial.last().map_or(0, |(id, _)| id.level + 1))
            .map(|level| {
                partial
                    .iter()
                    .find(|(id, _)| id.level == level)
                    .map(|(_, h)| h.clone())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(
            TreeState::from_partial_tiles(size, by_level).as_ref(),
            Ok(&tree.state)
        );
        assert_eq!(TreeState::load(size, &tree.tiles).as_ref(), Ok(&tree.state));

        let ct_root_hash = ct.root();
        for index in 0..size {
            let proof = inclusion_proof(index, size, &tree.tiles).expect("proof");
            let theirs = ct.prove_inclusion(index as usize);
            assert_eq!(
                flat(&proof),
                theirs.as_bytes(),
                "proof of {index} in {size}"
            );
            let leaf = &tree.leaves[index as usize];
            verify_inclusion(leaf, index, size, &proof, &root).expect("our proof verifies");
            ct_root_hash
                .verify_inclusion(
                    &leaf_data(index),
                    index,
                    &InclusionProof::from_bytes(flat(&proof)),
                )
                .expect("ct-merkle accepts our proof");
        }
    }
}

/// Every consistency proof between sizes 1..=64, read from the tiles of the
/// largest tree (so each proof uses only a prefix of the partial tiles).
#[test]
fn consistency_proofs_of_small_trees_agree_with_ct_merkle() {
    let mut tree = Grown::new();
    for i in 0..64 {
        tree.append(leaf_hash(&leaf_data(i)));
    }
    let roots: Vec<Hash> = (0..=64).map(|n| mth(&tree.leaves[..n])).collect();
    let mut ct = CtTree::new();
    for new in 1..=64u64 {
        ct.push(leaf_data(new - 1));
        let ct_new = RootHash::<Sha256>::new(*ct.root().as_bytes(), new);
        for old in 1..=new {
            let proof = consistency_proof(old, new, &tree.tiles).expect("proof");
            let theirs = ct.prove_consistency((new - old) as usize);
            assert_eq!(flat(&proof), theirs.as_bytes(), "{old} to {new}");
            let (old_root, new_root) = (&roots[old as usize], &roots[new as usize]);
            verify_consistency(old, new, old_root, new_root, &proof).expect("verifies");
            if old < new {
                let ct_old = RootHash::<Sha256>::new((*old_root).into(), old);
                ct_new
                    .verify_consistency(
                        &ct_old,
                        &ConsistencyProof::from_digests(proof.iter().map(|h| h.into())),
                    )
                    .expect("ct-merkle accepts our proof");
            }
        }
    }
    for (old, new) in [(1, 2), (3, 7), (8, 64), (33, 64)] {
        let proof = consistency_proof(old, new, &tree.tiles).expect("proof");
        assert_consistency_tampering_fails(
            old,
            new,
            &roots[old as usize],
            &roots[new as usize],
            &proof,
        );
    }
}

/// Larger trees, crossing tile levels: checked at random sizes as they grow,
/// then proofs of those older sizes from the final tiles.
#[test]
fn large_trees_agree_with_ct_merkle() {
    let mut rng = Rng(0x5eed_f00d);
    let mut sizes: Vec<u64> = (0..6).map(|_| rng.between(1000, 70_000)).collect();
    sizes.extend([256 * 256, 256 * 256 + 1]);
    sizes.sort_unstable();
    sizes.dedup();
    let last = *sizes.last().expect("sizes");

    let mut tree = Grown::new();
    let mut ct = CtTree::new();
    let mut checked = Vec::new();
    for i in 0..last {
        let data = leaf_data(i);
        tree.append(leaf_hash(&data));
        ct.push(data);
        let size = i + 1;
        if !sizes.contains(&size) {
            continue;
        }
        let root = ct_root(&ct);
        assert_eq!(tree.state.root(), root, "appended root of {size}");
        assert_eq!(root_at(size, &tree.tiles), Ok(root), "root_at({size})");
        for _ in 0..40 {
            let index = rng.between(0, size - 1);
            let proof = inclusion_proof(index, size, &tree.tiles).expect("proof");
            assert_eq!(flat(&proof), ct.prove_inclusion(index as usize).as_bytes());
            verify_inclusion(&tree.leaves[index as usize], index, size, &proof, &root)
                .expect("verifies");
        }
        for _ in 0..20 {
            let old = rng.between(1, size);
            let proof = consistency_proof(old, size, &tree.tiles).expect("proof");
            assert_eq!(
                flat(&proof),
                ct.prove_consistency((size - old) as usize).as_bytes()
            );
        }
        checked.push((size, root));
    }
    assert_eq!(mth(&tree.leaves), tree.state.root());
    assert_eq!(tree.tiles, tiles_from_scratch(&tree.leaves));

    for (n, &(size, root)) in checked.iter().enumerate() {
        assert_eq!(root_at(size, &tree.tiles), Ok(root), "old root_at({size})");
        let index = rng.between(0, size - 1);
        let proof = inclusion_proof(index, size, &tree.tiles).expect("proof");
        verify_inclusion(&tree.leaves[index as usize], index, size, &proof, &root)
            .expect("verifies");
        assert_inclusion_tampering_fails(&tree.leaves[index as usize], index, size, &proof, &root);
        for &(old, old_root) in &checked[..n] {
            let proof = consistency_proof(old, size, &tree.tiles).expect("proof");
            verify_consistency(old, size, &old_root, &root, &proof).expect("verifies");
        }
        if n > 0 {
            let (old, old_root) = checked[n / 2];
            let proof = consistency_proof(old, size, &tree.tiles).expect("proof");
            assert_consistency_tampering_fails(old, size, &old_root, &root, &proof);
        }
    }
}

#[test]
fn a_swapped_tile_hash_breaks_the_proofs_that_read_it() {
    let mut tree = Grown::new();
    for i in 0..300 {
        tree.append(leaf_hash(&leaf_data(i)));
    }
    let root = tree.state.root();
    let leaf_tile = TileId { level: 0, index: 0 };
    let mut tampered = tree.tiles.clone();
    tampered.0.get_mut(&leaf_tile).expect("tile").swap(10, 11);
    // The root reads the full tile's own root, stored one level up.
    assert_eq!(root_at(300, &tampered), Ok(root));
    for index in 0..300u64 {
        let proof = inclusion_proof(index, 300, &tampered).expect("proof");
        let verified = verify_inclusion(&tree.leaves[index as usize], index, 300, &proof, &root);
        // Leaves past the first tile reach it through its root, stored one
        // level up, so they do not read the swapped hashes.
        if index < 256 {
            assert_eq!(verified, Err(ProofError::Root), "leaf {index}");
        } else {
            assert_eq!(verified, Ok(()), "leaf {index}");
        }
    }
    let mut tampered = tree.tiles.clone();
    tampered
        .0
        .get_mut(&TileId { level: 1, index: 0 })
        .expect("tile")[0][5] ^= 1;
    assert_ne!(root_at(300, &tampered), Ok(root));
    for index in [0, 255, 256, 299] {
        let proof = inclusion_proof(index, 300, &tampered).expect("proof");
        let verified = verify_inclusion(&tree.leaves[index as usize], index, 300, &proof, &root);
        // The first tile's root is a sibling on the paths of later leaves
        // only; earlier ones are below it.
        let expected = if index < 256 {
            Ok(())
        } else {
            Err(ProofError::Root)
        };
        assert_eq!(verified, expected, "leaf {index}");
    }
}

#[test]
fn proofs_name_what_is_missing_or_wrong() {
    let tree = rfc_tree();
    let empty = MemoryTiles::new();
    assert_eq!(
        root_at(3, &empty).unwrap_err().to_string(),
        "a tile the proof needs is missing: level 0 index 0"
    );
    let mut short = MemoryTiles::new();
    short.insert(TileId { level: 0, index: 0 }, tree.leaves[..4].to_vec());
    assert_eq!(
        inclusion_proof(0, 8, &short).unwrap_err().to_string(),
        "a tile the proof needs is too short: level 0 index 0 has 4 hashes, 8 are needed"
    );
    assert_eq!(
        inclusion_proof(8, 8, &tree.tiles),
        Err(ProofError::IndexOutOfRange { index: 8, size: 8 })
    );
    assert_eq!(
        consistency_proof(0, 8, &tree.tiles),
        Err(ProofError::Sizes { old: 0, new: 8 })
    );
    assert_eq!(
        consistency_proof(5, 4, &tree.tiles),
        Err(ProofError::Sizes { old: 5, new: 4 })
    );
    assert_eq!(consistency_proof(8, 8, &tree.tiles), Ok(vec![]));
    assert_eq!(
        consistency_proof(1, 9, &tree.tiles).unwrap_err(),
        ProofError::Tile(TileError::Short {
            id: TileId { level: 0, index: 0 },
            actual: 8,
            needed: 9
        })
    );

    let root8 = hex32(RFC_ROOTS[7]);
    let root4 = hex32(RFC_ROOTS[3]);
    let leaf = tree.leaves[0];
    assert_eq!(
        verify_inclusion(&leaf, 8, 8, &[], &root8),
        Err(ProofError::IndexOutOfRange { index: 8, size: 8 })
    );
    assert_eq!(
        verify_inclusion(&leaf, 0, 0, &[], &empty_root()),
        Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
    );
    assert_eq!(
        verify_inclusion(&leaf, 0, 8, &[leaf], &root8)
            .unwrap_err()
            .to_string(),
        "the proof has 1 hashes, but this proof needs 3"
    );
    let proof = inclusion_proof(0, 8, &tree.tiles).expect("proof");
    assert_eq!(
        verify_inclusion(&leaf, 0, 8, &proof, &root4)
            .unwrap_err()
            .to_string(),
        "the proof does not lead to the root"
    );
    assert_eq!(verify_inclusion(&leaf, 0, 1, &[], &leaf), Ok(()));

    assert_eq!(
        verify_consistency(0, 8, &empty_root(), &root8, &[]),
        Err(ProofError::Sizes { old: 0, new: 8 })
    );
    assert_eq!(
        verify_consistency(8, 4, &root8, &root4, &[]),
        Err(ProofError::Sizes { old: 8, new: 4 })
    );
    assert_eq!(verify_consistency(8, 8, &root8, &root8, &[]), Ok(()));
    assert_eq!(
        verify_consistency(8, 8, &root8, &root4, &[]),
        Err(ProofError::SameSizeDifferentRoots)
    );
    assert_eq!(
        verify_consistency(8, 8, &root8, &root8, &[root8]),
        Err(ProofError::Length {
            expected: 0,
            actual: 1
        })
    );
    let proof = consistency_proof(4, 8, &tree.tiles).expect("proof");
    assert_eq!(proof.len(), 1);
    assert_eq!(verify_consistency(4, 8, &root4, &root8, &proof), Ok(()));
    // An old size that is a power of two is a node of the new tree, so a
    // wrong old root shows in the new root.
    assert_eq!(
        verify_consistency(4, 8, &root8, &root8, &proof),
        Err(ProofError::NewRoot)
    );
    assert_eq!(
        verify_consistency(4, 8, &root4, &root4, &proof)
            .unwrap_err()
            .to_string(),
        "the proof does not lead from the old root to the new root"
    );
    let root3 = hex32(RFC_ROOTS[2]);
    let proof = consistency_proof(3, 8, &tree.tiles).expect("proof");
    assert_eq!(verify_consistency(3, 8, &root3, &root8, &proof), Ok(()));
    assert_eq!(
        verify_consistency(3, 8, &root4, &root8, &proof)
            .unwrap_err()
            .to_string(),
        "the proof does not lead to the old root"
    );
}

#[test]
fn leaf_hashes_read_back_across_tiles() {
    let mut tree = Grown::new();
    for i in 0..700 {
        tree.append(leaf_hash(&leaf_data(i)));
    }
    for (start, end) in [
        (0, 700),
        (250, 600),
        (256, 512),
        (699, 700),
        (5, 5),
        (300, 301),
    ] {
        assert_eq!(
            leaf_hashes(start, end, &tree.tiles),
            Ok(tree.leaves[start as usize..end as usize].to_vec()),
            "{start}..{end}"
        );
    }
    assert!(leaf_hashes(690, 701, &tree.tiles).is_err());
}

/// Tiles whose upper nodes are kept ready, as the server's proof cache
/// keeps them.
struct Hashed(std::collections::HashMap<TileId, HashedTile>);

impl TileSource for Hashed {
    fn tile(&self, id: TileId) -> Option<&[Hash]> {
        self.0.get(&id).map(HashedTile::hashes)
    }

    fn subtree_root(&self, id: TileId, start: usize, end: usize) -> Option<Hash> {
        self.0.get(&id)?.subtree_root(start, end)
    }
}

/// Kept upper nodes change no proof, whether the tiles are full, partial,
/// or partial ones stored at a later size and read for an earlier one.
#[test]
fn hashed_tiles_give_the_proofs_plain_tiles_give() {
    let mut rng = Rng(0x7113_da7a);
    let mut tree = Grown::new();
    for i in 0..(256 * 256 + 777) {
        tree.append(leaf_hash(&leaf_data(i)));
    }
    let hashed = Hashed(
        tree.tiles
            .0
            .iter()
            .map(|(id, hashes)| (*id, HashedTile::new(hashes.clone())))
            .collect(),
    );
    let last = tree.state.size();
    let mut sizes: Vec<u64> = (0..30).map(|_| rng.between(1, last)).collect();
    sizes.extend([1, 2, 15, 16, 17, 255, 256, 257, 4096, last]);
    for size in sizes {
        assert_eq!(root_at(size, &hashed), root_at(size, &tree.tiles), "{size}");
        for _ in 0..20 {
            let index = rng.between(0, size - 1);
            assert_eq!(
                inclusion_proof(index, size, &hashed),
                inclusion_proof(index, size, &tree.tiles),
                "leaf {index} of {size}"
            );
            let old = rng.between(1, size);
            assert_eq!(
                consistency_proof(old, size, &hashed),
                consistency_proof(old, size, &tree.tiles),
                "{old} to {size}"
            );
        }
    }
    // A tile too short for a proof is refused, not answered from its nodes.
    let short = Hashed(
        [(
            TileId { level: 0, index: 0 },
            HashedTile::new(tree.leaves[..16].to_vec()),
        )]
        .into_iter()
        .collect(),
    );
    assert!(matches!(
        inclusion_proof(0, 32, &short),
        Err(ProofError::Tile(TileError::Short { .. }))
    ));
}

#[test]
fn hashed_tiles_keep_only_aligned_perfect_stretches() {
    let leaves: Vec<Hash> = (0..40u64).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let tile = HashedTile::new(leaves.clone());
    assert_eq!(tile.subtree_root(0, 16), Some(mth(&leaves[..16])));
    assert_eq!(tile.subtree_root(16, 32), Some(mth(&leaves[16..32])));
    assert_eq!(tile.subtree_root(0, 32), Some(mth(&leaves[..32])));
    // Beyond the stored hashes, below the kept heights, or not aligned.
    assert_eq!(tile.subtree_root(32, 48), None);
    assert_eq!(tile.subtree_root(0, 8), None);
    assert_eq!(tile.subtree_root(8, 24), None);
    assert_eq!(tile.subtree_root(0, 24), None);
    assert_eq!(tile.subtree_root(0, 64), None);
}
