//! Tiles and the latest checkpoint kept in memory for the proof endpoints.
//!
//! The tiles are bounded by a budget (`FACTLOG_PROOF_CACHE_MB`): within it
//! a proof at any position is answered from memory; a tree larger than it
//! costs one indexed read of a leaf tile for a proof whose tile is not held.
//!
//! A proof reads a handful of tiles; a full tile never changes, and a
//! partial one only grows, so any copy at least as long as a proof needs
//! serves it (`merkle::TileSource` takes prefixes). Only a rebuild of the
//! tree, which bumps its generation, can replace a tile: the cache is
//! dropped whole when it sees a new one. The latest checkpoint is re-read at
//! most every [`LATEST_TTL`]: a proof at a checkpoint a few milliseconds
//! old is as valid as one at the newest, and a size beyond it is checked
//! against the database before it is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::ServiceError;
use crate::merkle::{Hash, HashedTile, TileId, TileSource};
use crate::store::StoreError;
use crate::store::tree::{StoredCheckpoint, latest_checkpoint, read_tiles};

/// How long the latest checkpoint is taken from memory.
pub const LATEST_TTL: Duration = Duration::from_millis(100);
/// What a full tile costs in memory: its 256 hashes, the upper nodes kept
/// with them, and the map's share.
pub const TILE_BYTES: usize = 256 * 32 + 31 * 32 + 128;
/// The default budget, in MiB: every tile of a tree of some 14M events
/// (a proof at any position then reads no tile from the database).
pub const DEFAULT_MB: usize = 512;

struct Inner {
    generation: i64,
    latest: Option<(Instant, Option<StoredCheckpoint>)>,
    tiles: HashMap<TileId, Arc<HashedTile>>,
    max_tiles: usize,
}

#[derive(Clone)]
pub struct ProofCache(Arc<Mutex<Inner>>);

impl Default for ProofCache {
    fn default() -> Self {
        Self::with_budget(DEFAULT_MB * 1024 * 1024)
    }
}

/// The tiles one proof reads, shared with the cache.
pub struct CachedTiles(HashMap<TileId, Arc<HashedTile>>);

impl TileSource for CachedTiles {
    fn tile(&self, id: TileId) -> Option<&[Hash]> {
        self.0.get(&id).map(|t| t.hashes())
    }

    fn subtree_root(&self, id: TileId, start: usize, end: usize) -> Option<Hash> {
        self.0.get(&id)?.subtree_root(start, end)
    }
}

impl ProofCache {
    /// A cache holding at most `bytes` of tiles (0: none; each proof then
    /// reads its tiles from the database).
    pub fn with_budget(bytes: usize) -> Self {
        ProofCache(Arc::new(Mutex::new(Inner {
            generation: 0,
            latest: None,
            tiles: HashMap::new(),
            max_tiles: bytes / TILE_BYTES,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding it leaves plain data behind: keep serving.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The latest checkpoint, at most [`LATEST_TTL`] old unless `fresh`.
    pub async fn latest(
        &self,
        pool: &PgPool,
        fresh: bool,
    ) -> Result<Option<StoredCheckpoint>, ServiceError> {
        if !fresh
            && let Some((at, latest)) = &self.lock().latest
            && at.elapsed() < LATEST_TTL
        {
            return Ok(latest.clone());
        }
        let mut conn = pool.acquire().await.map_err(StoreError::from)?;
        let latest = latest_checkpoint(&mut conn).await?;
        let generation: Option<i64> =
            sqlx::query_scalar("SELECT generation FROM projection_checkpoints WHERE name = 'tree'")
                .fetch_optional(&mut *conn)
                .await
                .map_err(StoreError::from)?;
        let mut inner = self.lock();
        let generation = generation.unwrap_or(0);
        if generation != inner.generation {
            inner.generation = generation;
            inner.tiles.clear();
        }
        inner.latest = Some((Instant::now(), latest.clone()));
        Ok(latest)
    }

    /// The tiles `wanted` lists, each at least as long as needed: from
    /// memory where it holds them, the rest in one query.
    pub async fn tiles(
        &self,
        pool: &PgPool,
        wanted: &[(TileId, usize)],
    ) -> Result<CachedTiles, ServiceError> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        {
            let inner = self.lock();
            for &(id, needed) in wanted {
                match inner.tiles.get(&id) {
                    Some(t) if t.hashes().len() >= needed => {
                        found.insert(id, t.clone());
                    }
                    _ => missing.push((id, needed)),
                }
            }
        }
        if missing.is_empty() {
            return Ok(CachedTiles(found));
        }
        let mut conn = pool.acquire().await.map_err(StoreError::from)?;
        let read = read_tiles(&mut conn, &missing).await?;
        // Hashed outside the lock: a tile is read once and serves many proofs.
        let read: Vec<_> = read
            .0
            .into_iter()
            .map(|(id, hashes)| (id, Arc::new(HashedTile::new(hashes))))
            .collect();
        let mut inner = self.lock();
        for (id, hashes) in read {
            if inner.max_tiles == 0 {
                found.insert(id, hashes);
                continue;
            }
            if inner.tiles.len() >= inner.max_tiles && !inner.tiles.contains_key(&id) {
                // Any victim will do: upper tiles are few and come back in
                // one read; leaf tiles are read at random anyway.
                if let Some(victim) = inner.tiles.keys().next().copied() {
                    inner.tiles.remove(&victim);
                }
            }
            let longer = inner
                .tiles
                .get(&id)
                .is_none_or(|old| old.hashes().len() <= hashes.hashes().len());
            if longer {
                inner.tiles.insert(id, hashes.clone());
            }
            found.insert(id, hashes);
        }
        Ok(CachedTiles(found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default holds every tile of a 10M-event tree: its 39,063 leaf
    /// tiles and the 154 above them.
    #[test]
    fn the_default_budget_holds_a_ten_million_event_tree() {
        let tiles = ProofCache::default().lock().max_tiles;
        let leaf_tiles = 10_000_000_usize.div_ceil(256);
        let upper = leaf_tiles.div_ceil(256) + 1;
        assert!(tiles >= leaf_tiles + upper, "{tiles} tiles");
    }

    #[test]
    fn a_budget_smaller_than_a_tile_holds_none() {
        assert_eq!(ProofCache::with_budget(0).lock().max_tiles, 0);
        assert_eq!(ProofCache::with_budget(TILE_BYTES - 1).lock().max_tiles, 0);
        assert_eq!(ProofCache::with_budget(TILE_BYTES).lock().max_tiles, 1);
    }
}
