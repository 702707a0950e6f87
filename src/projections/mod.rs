//! Projections: the read models built from the log. The runner feeds each
//! projection batches of events in position order; each projection applies a
//! batch inside the transaction that also moves its checkpoint.

mod bulk;
mod checkpoint;
mod copy;
mod facts;
pub mod read;
mod rebuild;
mod runner;
mod tree;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnectOptions;
use sqlx::{PgConnection, PgPool};
use thiserror::Error;
use tokio::sync::watch;
use uuid::Uuid;

use crate::domain::claim::{self, Claim, ClaimEvent, Recorded};
use crate::domain::erasable::ErasedMark;
use crate::store::seal::ERASED_KEY;
use crate::store::{EventStore, StoreError, read_rows_in};

pub use crate::store::LogRow;
pub use checkpoint::{Checkpoint, checkpoints, lowest as lowest_checkpoint};
pub use rebuild::{
    BulkTimings, RebuildOptions, RebuildReport, rebuild, rebuild_many, rebuild_with,
};
pub use runner::{
    DEFAULT_LINGER, Runner, batch_options, explain_open_states, spawn_all, spawn_these,
};

/// A projection: a read model the runner keeps up with the log, batch by
/// batch, and `factlog rebuild` builds afresh and swaps in. A new projection
/// is one file implementing this, a migration creating its tables and its
/// checkpoint row (`projection_checkpoints`), and an entry in [`ALL`].
///
/// Its code names its tables unqualified: a rebuild points `search_path` at
/// their shadow copies and catches up through the same [`Projection::apply`].
pub trait Projection: Sync + 'static {
    /// Its name: its checkpoint row, `factlog rebuild NAME`, metrics labels.
    const NAME: &'static str;
    /// The tables it owns, rebuilt and swapped together. Each holds at least
    /// one row once the projection has applied an event (a rebuild refuses
    /// to swap in a table its bulk pass left empty otherwise).
    const TABLES: &'static [&'static str];
    /// Its advisory lock, unique among projections: whoever holds it owns
    /// the projection for one batch or one swap (see [`runner`]).
    const LOCK_ID: i64;
    /// Events per live batch: bounds a batch's memory and the size of its
    /// transaction when a worker is far behind.
    const BATCH_SIZE: i64;
    /// The least linger (see [`runner::DEFAULT_LINGER`]) it runs with,
    /// whatever is configured: for a projection whose readers can wait.
    const LEAST_LINGER: std::time::Duration = std::time::Duration::ZERO;

    /// An event of the log as this projection applies it, decoded once, when
    /// read.
    type Event: Send + Sync;
    /// What a worker keeps between its batches (`()` for nothing).
    type Memory: Memory;

    /// The event a log row is to this projection: `None` for a row it does
    /// not apply (its checkpoint moves past it all the same), an error for
    /// one it cannot read (the projection stops there).
    fn decode(row: LogRow) -> Option<Result<Self::Event, ProjectionError>>;

    /// Applies a batch inside the transaction that moves the checkpoint
    /// past it. `memory` is what the worker knows from its committed batches;
    /// what is returned is added to it once this batch commits.
    fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[Self::Event],
        memory: &Self::Memory,
    ) -> impl Future<Output = Result<Learned<Self>, ProjectionError>> + Send;

    /// Fills the shadow copies of [`Projection::TABLES`] (created empty, without
    /// indexes) from the log up to `upto`, as the live path would have, and
    /// gives them the live tables' indexes; reports the position it reached.
    /// There is deliberately no default: a projection without a bulk pass
    /// would swap in empty tables. `progress` is told how far it got.
    fn rebuild_bulk(
        &self,
        shadow: &Shadow<'_>,
        upto: i64,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> impl Future<Output = Result<BulkReport, ProjectionError>> + Send;
}

/// What a batch of `P` adds to its worker's memory.
pub type Learned<P> = <<P as Projection>::Memory as Memory>::Learned;

/// What a worker remembers between its batches to spare itself look-ups:
/// only what committed batches left, and forgotten when the projection's
/// generation changes (a rebuild's swap, or a migration starting it over).
pub trait Memory: Default + Send + Sync {
    /// What one batch adds.
    type Learned: Default + Send;
    /// Forgets everything when `generation` is not the one known so far;
    /// called before every batch.
    fn at_generation(&mut self, generation: i64);
    /// Adds what a batch learned, once it has committed.
    fn learn(&mut self, learned: Self::Learned);
}

impl Memory for () {
    type Learned = ();
    fn at_generation(&mut self, _: i64) {}
    fn learn(&mut self, _: ()) {}
}

/// Where a bulk pass writes: a schema holding empty copies of the
/// projection's tables, and how to open connections of its own.
pub struct Shadow<'a> {
    pub schema: &'a str,
    pub connect: &'a PgConnectOptions,
}

/// What a bulk pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BulkReport {
    /// The last position it applied: `upto`.
    pub position: i64,
    /// Where its time went (a projection fills in the stages it has).
    pub timings: BulkTimings,
}

/// The facts projection.
pub const FACTS: &dyn AnyProjection = &facts::Facts;

/// The Merkle tree projection (the verifiable log's tiles).
pub const TREE: &dyn AnyProjection = &tree::Tree;

/// Every projection, once: the runners (`spawn_all`), `factlog rebuild`,
/// `/readyz`, `/metrics` and `wait_for` all take them from here.
pub const ALL: &[&dyn AnyProjection] = &[FACTS, TREE];

/// The one with that name.
pub fn parse(name: &str) -> Option<&'static dyn AnyProjection> {
    ALL.iter().copied().find(|p| p.name() == name)
}

/// A projection name that is not in [`ALL`].
#[derive(Debug, Error)]
#[error("unknown projection {name:?}; there are: {known}")]
pub struct UnknownProjection {
    pub name: String,
    /// Every projection's name, comma-separated.
    pub known: String,
}

/// The projections named (blank names ignored), in [`ALL`]'s order and
/// each once; all of them when none is named.
pub fn select(names: &[String]) -> Result<Vec<&'static dyn AnyProjection>, UnknownProjection> {
    let names: Vec<&str> = names
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .collect();
    if let Some(name) = names.iter().find(|n| parse(n).is_none()) {
        return Err(UnknownProjection {
            name: (*name).to_owned(),
            known: ALL.iter().map(|p| p.name()).collect::<Vec<_>>().join(", "),
        });
    }
    Ok(ALL
        .iter()
        .copied()
        .filter(|p| names.is_empty() || names.contains(&p.name()))
        .collect())
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A [`Projection`] whatever its types, as [`ALL`] holds it; implemented
/// for every projection.
pub trait AnyProjection: Sync {
    fn name(&self) -> &'static str;
    fn tables(&self) -> &'static [&'static str];
    /// The advisory lock key (shared by runner and rebuild).
    fn lock_key(&self) -> i64;
    /// Starts a runner for it, waiting at least `linger` between batches
    /// while it keeps up.
    fn spawn(
        &'static self,
        pool: &PgPool,
        store: &EventStore,
        stop: watch::Receiver<bool>,
        linger: Duration,
    ) -> tokio::task::JoinHandle<()>;
    #[doc(hidden)]
    fn rebuild_bulk<'a>(
        &'a self,
        shadow: &'a Shadow<'a>,
        upto: i64,
        progress: &'a mut (dyn FnMut(u64) + Send),
    ) -> BoxFuture<'a, Result<BulkReport, ProjectionError>>;
    /// Reads the batch after `after` and applies it as a worker that knows
    /// nothing would; the position of its last event and the events read, or
    /// `None` at the head.
    #[doc(hidden)]
    fn apply_next<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        after: i64,
        limit: i64,
    ) -> BoxFuture<'a, Result<Option<(i64, usize)>, ProjectionError>>;
    /// The position of the first event after `after`, up to `upto`, that
    /// it applies (or cannot read).
    #[doc(hidden)]
    fn first_applied<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        after: i64,
        upto: i64,
    ) -> BoxFuture<'a, Result<Option<i64>, ProjectionError>>;
}

impl std::fmt::Debug for dyn AnyProjection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl<P: Projection> AnyProjection for P {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn tables(&self) -> &'static [&'static str] {
        P::TABLES
    }

    fn lock_key(&self) -> i64 {
        runner::lock_key(P::LOCK_ID)
    }

    fn spawn(
        &'static self,
        pool: &PgPool,
        store: &EventStore,
        stop: watch::Receiver<bool>,
        linger: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let runner = Runner::new(pool.clone(), store.clone(), self).with_linger(linger);
        tokio::spawn(runner.run(stop))
    }

    fn rebuild_bulk<'a>(
        &'a self,
        shadow: &'a Shadow<'a>,
        upto: i64,
        progress: &'a mut (dyn FnMut(u64) + Send),
    ) -> BoxFuture<'a, Result<BulkReport, ProjectionError>> {
        Box::pin(Projection::rebuild_bulk(self, shadow, upto, progress))
    }

    fn apply_next<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        after: i64,
        limit: i64,
    ) -> BoxFuture<'a, Result<Option<(i64, usize)>, ProjectionError>> {
        Box::pin(async move {
            let batch = read_batch::<P>(conn, after, limit).await?;
            let Some(last) = batch.last else {
                return Ok(None);
            };
            self.apply(conn, &batch.events, &P::Memory::default())
                .await?;
            Ok(Some((last, batch.read)))
        })
    }

    fn first_applied<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        mut after: i64,
        upto: i64,
    ) -> BoxFuture<'a, Result<Option<i64>, ProjectionError>> {
        Box::pin(async move {
            while after < upto {
                let rows = read_rows_in(conn, after, (upto - after).min(1_000)).await?;
                let Some(last) = rows.last().map(|r| r.position) else {
                    return Ok(None);
                };
                for r in rows {
                    let position = r.position;
                    if position > upto {
                        return Ok(None);
                    }
                    if P::decode(r).is_some() {
                        return Ok(Some(position));
                    }
                }
                after = last;
            }
            Ok(None)
        })
    }
}

#[derive(Debug, Error)]
pub enum ProjectionError {
    /// The event cannot be applied; the projection stops here rather than skip it.
    #[error("event at position {position} cannot be applied: {reason}")]
    Unappliable { position: i64, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stage of a rebuild stopped (its task failed or ended early).
    #[error("rebuild stage failed: {0}")]
    Stage(String),
    /// The stored tree does not add up (a missing or short tile).
    #[error("the stored Merkle tree is inconsistent: {0}")]
    Tree(String),
    /// A bulk pass left a table empty, or stopped short, though the log holds
    /// events the projection applies: nothing is swapped in.
    #[error(
        "the bulk pass of {projection} {what}, though the log up to {upto} holds events it \
         applies (the first at position {first}); nothing was swapped in"
    )]
    HollowBulk {
        projection: &'static str,
        what: String,
        upto: i64,
        first: i64,
    },
}

impl From<sqlx::Error> for ProjectionError {
    fn from(e: sqlx::Error) -> Self {
        ProjectionError::Store(e.into())
    }
}

/// Facts a worker knows to have their row in `facts_view`, so that a batch
/// need not ask. A fact's row, once committed, is never removed: a rebuild's
/// swap brings a table with every fact of the log up to a position at least
/// the old checkpoint. Only a change of the projection's generation (a swap,
/// or a migration that starts the projection over) makes the worker forget,
/// as it cannot tell which of the two it was. Bounded: when full it starts
/// over empty, which costs only the look-ups it saved.
#[derive(Debug, Default)]
pub(crate) struct KnownFacts {
    generation: Option<i64>,
    ids: std::collections::HashSet<Uuid>,
}

impl KnownFacts {
    /// About 3 MB of ids at most.
    const CAPACITY: usize = 100_000;

    pub(crate) fn contains(&self, id: &Uuid) -> bool {
        self.ids.contains(id)
    }
}

impl Memory for KnownFacts {
    /// Facts whose rows the batch leaves in place.
    type Learned = Vec<Uuid>;

    fn at_generation(&mut self, generation: i64) {
        if self.generation != Some(generation) {
            self.ids.clear();
            self.generation = Some(generation);
        }
    }

    fn learn(&mut self, ids: Vec<Uuid>) {
        for id in ids {
            if self.ids.len() >= Self::CAPACITY {
                self.ids.clear();
            }
            self.ids.insert(id);
        }
    }
}

/// A claim event as the projections fold it: decoded once, when read.
pub(crate) struct LogEvent {
    pub position: i64,
    pub claim_id: Uuid,
    /// The event's version in its claim's stream (1: the claim's first).
    pub version: i64,
    pub event: ClaimEvent,
    pub actor: String,
    pub recorded_at: DateTime<Utc>,
    /// What an erasure removed from the event's data, if one did.
    pub erased: Option<ErasedMark>,
}

impl LogEvent {
    /// The claim event a log row holds, its data decoded straight from the
    /// JSON text; `None` for an event of another stream.
    pub(crate) fn of(r: LogRow) -> Option<Result<LogEvent, ProjectionError>> {
        let claim_id = claim_id_of_stream(&r.stream)?;
        Some(
            r.open_data()
                .and_then(|data| {
                    let event = ClaimEvent::from_log_text(&r.event_type, &data)?;
                    // Erased events are rare: only they are parsed twice.
                    let erased = match r.secrets.as_deref() {
                        Some(s) if s.contains(ERASED_KEY) => serde_json::from_str(&data)
                            .ok()
                            .and_then(|d| ErasedMark::of_data(&d)),
                        _ => None,
                    };
                    Ok((event, erased))
                })
                .map(|(event, erased)| LogEvent {
                    position: r.position,
                    claim_id,
                    version: r.version,
                    event,
                    actor: r.actor,
                    recorded_at: r.recorded_at,
                    erased,
                })
                .map_err(|reason| ProjectionError::Unappliable {
                    position: r.position,
                    reason,
                }),
        )
    }
}

/// A live batch: the events a projection applies among the next `limit`
/// events of the log, and the position of the last event read (applied or
/// not), which is where the batch's checkpoint moves to.
pub(crate) struct Batch<E> {
    pub events: Vec<E>,
    pub last: Option<i64>,
    /// Events read, claim events or not.
    pub read: usize,
}

/// Reads the events after `after`, each decoded by `P` (the facts projection
/// decodes a claim event's data straight from its JSON text). An event that
/// cannot be read ends the batch just before it, so that what precedes it is
/// applied; a batch that would start with it is an error at its position,
/// where the projection then stops.
pub(crate) async fn read_batch<P: Projection>(
    conn: &mut PgConnection,
    after: i64,
    limit: i64,
) -> Result<Batch<P::Event>, ProjectionError> {
    let rows = read_rows_in(conn, after, limit).await?;
    let mut batch = Batch {
        events: Vec::with_capacity(rows.len()),
        last: None,
        read: 0,
    };
    for r in rows {
        let position = r.position;
        match P::decode(r) {
            None => {}
            Some(Ok(e)) => batch.events.push(e),
            Some(Err(e)) if batch.last.is_none() => return Err(e),
            Some(Err(_)) => break,
        }
        batch.last = Some(position);
        batch.read += 1;
    }
    Ok(batch)
}

/// The claim a stream holds the events of, if it is a claim stream.
pub(crate) fn claim_id_of_stream(stream: &str) -> Option<Uuid> {
    stream
        .strip_prefix(crate::domain::claim::stream_prefix!())?
        .parse()
        .ok()
}

/// Folds one claim event, as read from the log, into the claim's state; an
/// event that cannot be applied stops the projection at its position.
pub(crate) fn evolve_logged(prior: Option<Claim>, e: &LogEvent) -> Result<Claim, ProjectionError> {
    let rec = Recorded {
        actor: e.actor.clone(),
        at: e.recorded_at,
    };
    let mut claim =
        claim::evolve(prior, &e.event, &rec).ok_or_else(|| ProjectionError::Unappliable {
            position: e.position,
            reason: format!("{} before the claim was asserted", e.event.type_name()),
        })?;
    claim::note_erased(&mut claim, e.erased.as_ref());
    Ok(claim)
}

/// A stored claim state, from its JSON text: decoded straight into the
/// struct, since a batch can read thousands of them.
pub(crate) fn decode_state(id: Uuid, state: &str) -> Result<Claim, ProjectionError> {
    serde_json::from_str(state).map_err(|e| ProjectionError::Unappliable {
        position: 0,
        reason: format!("stored state of claim {id} is unreadable: {e}"),
    })
}

pub(crate) fn encode(v: &impl serde::Serialize) -> Result<String, ProjectionError> {
    serde_json::to_string(v).map_err(|e| ProjectionError::Unappliable {
        position: 0,
        reason: format!("cannot encode projection row: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::ALL;

    #[test]
    fn the_registry_holds_each_name_lock_and_table_once() {
        let mut names: Vec<_> = ALL.iter().map(|p| p.name()).collect();
        let mut locks: Vec<_> = ALL.iter().map(|p| p.lock_key()).collect();
        let mut tables: Vec<_> = ALL.iter().flat_map(|p| p.tables()).collect();
        for (what, n) in [
            ("names", {
                names.sort();
                names.dedup();
                names.len()
            }),
            ("locks", {
                locks.sort();
                locks.dedup();
                locks.len()
            }),
        ] {
            assert_eq!(n, ALL.len(), "{what} repeat");
        }
        let count = tables.len();
        tables.sort();
        tables.dedup();
        assert_eq!(tables.len(), count, "a table owned twice");
        assert_eq!(super::parse("facts").map(|p| p.name()), Some("facts"));
    }
}

#[cfg(test)]
mod select_tests {
    use super::select;

    fn names(list: &[&str]) -> Vec<&'static str> {
        let owned: Vec<String> = list.iter().map(|n| (*n).to_owned()).collect();
        select(&owned)
            .expect("known names")
            .iter()
            .map(|p| p.name())
            .collect()
    }

    #[test]
    fn none_named_is_all_and_named_ones_keep_their_order() {
        assert_eq!(names(&[]), ["facts", "tree"]);
        assert_eq!(names(&[""]), ["facts", "tree"]);
        assert_eq!(names(&["tree"]), ["tree"]);
        assert_eq!(names(&[" tree", "facts ", "tree"]), ["facts", "tree"]);
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        let e = select(&["facts".into(), "tres".into()]).expect_err("an unknown name");
        assert_eq!(
            e.to_string(),
            "unknown projection \"tres\"; there are: facts, tree"
        );
    }
}
