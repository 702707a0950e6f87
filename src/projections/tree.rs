//! The tree projection: the log's RFC 9162 Merkle tree as tiles
//! (`tree_tiles`), one leaf per event, kept by the same runner as the facts
//! and checkpointed in the same transaction as the tiles it writes. The
//! signer (`service::checkpoints`) signs what this projection has built.

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use super::{BulkReport, LogRow, Memory, Projection, ProjectionError, Shadow};
use crate::merkle::{Hash, TreeState, tiles_for_root};
use crate::store::leaf::leaf_of_row;
use crate::store::tree::{read_leaf_rows, read_tiles, write_tiles};

pub(crate) struct Tree;

/// An event as the tree takes it: its leaf hash.
pub(crate) struct Leaf {
    position: i64,
    hash: Hash,
}

impl Leaf {
    /// The leaf of a log row, from the data as stored (sealed values as
    /// their commitments: AUDITING.md, "The leaf").
    fn of(row: &LogRow) -> Result<Leaf, ProjectionError> {
        let hash = leaf_of_row(row).ok_or_else(|| ProjectionError::Unappliable {
            position: row.position,
            reason: "its data is not JSON".into(),
        })?;
        Ok(Leaf {
            position: row.position,
            hash,
        })
    }
}

/// The tree's right edge as the last committed batch left it, so that a
/// batch need not read its partial tiles back.
#[derive(Default)]
pub(crate) struct Edge {
    generation: Option<i64>,
    state: Option<TreeState>,
}

impl Memory for Edge {
    type Learned = Option<TreeState>;

    fn at_generation(&mut self, generation: i64) {
        if self.generation != Some(generation) {
            self.generation = Some(generation);
            self.state = None;
        }
    }

    fn learn(&mut self, learned: Option<TreeState>) {
        if learned.is_some() {
            self.state = learned;
        }
    }
}

/// The right edge of the stored tree of `size` leaves.
async fn load(conn: &mut PgConnection, size: u64) -> Result<TreeState, ProjectionError> {
    let tiles = read_tiles(conn, &tiles_for_root(size)).await?;
    TreeState::load(size, &tiles).map_err(|e| ProjectionError::Tree(e.to_string()))
}

/// Appends `leaves` to `state`: the tiles to store (those that became full,
/// then the partial ones as they now stand).
fn extend(
    state: &mut TreeState,
    leaves: impl IntoIterator<Item = (i64, Hash)>,
) -> Result<Vec<(crate::merkle::TileId, Vec<Hash>)>, ProjectionError> {
    let mut tiles = Vec::new();
    for (position, hash) in leaves {
        // Positions are gapless: a leaf out of place means a bug or a
        // tampered log, and the tree must not paper over either.
        if position as u64 != state.size() + 1 {
            return Err(ProjectionError::Unappliable {
                position,
                reason: format!(
                    "the tree holds {} leaves; this is not the next",
                    state.size()
                ),
            });
        }
        tiles.extend(state.append(hash));
    }
    Ok(tiles)
}

impl Projection for Tree {
    const NAME: &'static str = "tree";
    const TABLES: &'static [&'static str] = &["tree_tiles"];
    const LOCK_ID: i64 = 3;
    /// A leaf is 32 bytes of tile: a large batch costs little memory, and
    /// rewrites each partial tile once per batch rather than per event.
    const BATCH_SIZE: i64 = 2000;
    /// Only the signer reads the tree, every `FACTLOG_CHECKPOINT_INTERVAL_MS`
    /// (500 by default): batches much closer together than that make no
    /// checkpoint sooner, yet each rewrites the partial tiles (up to 8 KiB
    /// apiece) and pays a transaction, which cost writes at 32 connections
    /// 14% with the default 5 ms linger.
    const LEAST_LINGER: std::time::Duration = std::time::Duration::from_millis(100);

    type Event = Leaf;
    type Memory = Edge;

    fn decode(row: LogRow) -> Option<Result<Leaf, ProjectionError>> {
        Some(Leaf::of(&row))
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[Leaf],
        memory: &Edge,
    ) -> Result<Option<TreeState>, ProjectionError> {
        let Some(first) = events.first() else {
            return Ok(None);
        };
        let size = (first.position - 1).max(0) as u64;
        let mut state = match &memory.state {
            Some(s) if s.size() == size => s.clone(),
            // Another process applied batches meanwhile, or this one starts.
            _ => load(conn, size).await?,
        };
        let mut tiles = extend(&mut state, events.iter().map(|l| (l.position, l.hash)))?;
        tiles.extend(state.partial_tiles());
        write_tiles(conn, &tiles).await?;
        Ok(Some(state))
    }

    /// Reads the log in position order, hashing as it goes; full tiles are
    /// written as they complete, the partial ones at the end.
    async fn rebuild_bulk(
        &self,
        shadow: &Shadow<'_>,
        upto: i64,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<BulkReport, ProjectionError> {
        let started = std::time::Instant::now();
        let mut reader = connect(shadow.connect).await?;
        let mut writer = connect(shadow.connect).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SET search_path = {}, public",
            shadow.schema
        )))
        .execute(&mut writer)
        .await?;
        // A task reads the next pages while this one hashes: the two
        // halves of the pass then share the machine's cores.
        const PAGE: i64 = 20_000;
        let (pages, mut received) = tokio::sync::mpsc::channel(2);
        let read = tokio::spawn(async move {
            let mut after = 0i64;
            while after < upto {
                let rows = read_leaf_rows(&mut reader, after, upto, PAGE).await;
                let last = rows
                    .as_ref()
                    .ok()
                    .and_then(|r| r.last().map(|l| l.position));
                let failed = rows.is_err();
                if pages.send(rows).await.is_err() || failed {
                    break;
                }
                match last {
                    Some(last) => after = last,
                    None => break,
                }
            }
            let _ = reader.close().await;
        });
        let mut state = TreeState::new();
        let mut pending = Vec::new();
        let mut after = 0i64;
        while let Some(rows) = received.recv().await {
            let rows = rows?;
            let Some(last) = rows.last() else {
                break;
            };
            after = last.position;
            let leaves = rows
                .iter()
                .map(|r| Leaf::of(r).map(|l| (l.position, l.hash)))
                .collect::<Result<Vec<_>, _>>()?;
            pending.extend(extend(&mut state, leaves)?);
            if pending.len() >= 64 {
                write_tiles(&mut writer, &pending).await?;
                pending.clear();
            }
            progress(state.size());
        }
        drop(received);
        let _ = read.await;
        pending.extend(state.partial_tiles());
        write_tiles(&mut writer, &pending).await?;
        super::bulk::index_like_live(shadow.connect, writer, shadow.schema, "tree_tiles").await?;
        Ok(BulkReport {
            position: after.max(0),
            timings: super::BulkTimings {
                total: started.elapsed().as_secs_f64(),
                ..Default::default()
            },
        })
    }
}

async fn connect(options: &PgConnectOptions) -> Result<PgConnection, ProjectionError> {
    Ok(PgConnection::connect_with(options)
        .await
        .map_err(crate::store::StoreError::from)?)
}
