//! The log as a Merkle tree, so that no one, not even whoever runs the
//! database, can rewrite or drop an event unnoticed.
//!
//! The hash chain alone proves nothing against the operator: they can rewrite
//! an event and recompute every later link. A Merkle tree (RFC 9162 section
//! 2.1, the RFC 6962 tree of Certificate Transparency) lets the service sign
//! small checkpoints of the whole log, and anyone who kept an old checkpoint
//! can check, with a logarithmic proof and no trust in the service, that the
//! log only grew (consistency proof) and that an event is in it (inclusion
//! proof). The tree is stored as C2SP tlog-tiles (height 8) so that appending
//! costs about one hash per leaf and a proof reads a few rows; checkpoints are
//! C2SP tlog-checkpoint bodies in C2SP signed notes with Ed25519, the formats
//! of Go's sumdb and of the transparency-log ecosystem, so that existing tools
//! can verify them.
//!
//! Everything here is pure: the caller fetches the tiles a plan
//! (`tiles_for_*`) lists, then computes.

mod frontier;
mod hash;
mod note;
mod proof;
mod shape;
mod tiles;

#[cfg(test)]
mod tests;

pub use frontier::Frontier;
pub use hash::{Hash, empty_root, leaf_hash, node_hash};
pub use note::{Checkpoint, NoteError, NoteSigner, NoteVerifier, open};
pub use proof::{
    ProofError, consistency_proof, inclusion_proof, leaf_hashes, root_at, verify_consistency,
    verify_inclusion,
};
pub use tiles::{
    HashedTile, MemoryTiles, TILE_HEIGHT, TILE_WIDTH, TileError, TileId, TileSource, TreeState,
    tiles_for_consistency, tiles_for_inclusion, tiles_for_leaf_range, tiles_for_root,
};
