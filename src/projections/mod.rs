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

use chrono::{DateTime, Utc};
use thiserror::Error;
use uuid::Uuid;

use crate::domain::claim::{self, Claim, ClaimEvent, Recorded};
use crate::store::{LogRow, StoreError, read_rows_in};

pub use checkpoint::{Checkpoint, checkpoints, lowest as lowest_checkpoint};
pub use rebuild::{
    BulkTimings, RebuildOptions, RebuildReport, rebuild, rebuild_many, rebuild_with,
};
pub use runner::{DEFAULT_LINGER, Runner, batch_options, explain_open_states, spawn_all};

/// The projections there are, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Projection {
    /// Claims and facts: each claim's state per transaction that changed it
    /// (its open version is its current state, which the claims listings
    /// read), each fact's row and summary, and the facts' histories.
    Facts,
}

pub const ALL: [Projection; 1] = [Projection::Facts];

impl Projection {
    pub fn name(self) -> &'static str {
        match self {
            Projection::Facts => "facts",
        }
    }

    pub fn parse(name: &str) -> Option<Projection> {
        ALL.into_iter().find(|p| p.name() == name)
    }

    /// The tables the projection owns (rebuilt and swapped together).
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            Projection::Facts => &["facts_view", "claim_versions"],
        }
    }

    /// Applies a batch; tables are named unqualified so a rebuild can point
    /// `search_path` at its shadow copies. `known` is what the caller knows
    /// to be in those tables already; the batch adds to `learned` what will
    /// be there once it commits (for the caller to add to `known` then).
    pub(crate) async fn apply(
        self,
        conn: &mut sqlx::PgConnection,
        events: &[LogEvent],
        known: &KnownFacts,
        learned: &mut Vec<Uuid>,
    ) -> Result<(), ProjectionError> {
        match self {
            Projection::Facts => facts::apply(conn, events, known, learned).await,
        }
    }

    /// Events per live batch: bounds a batch's memory and the size of its
    /// transaction when a worker is far behind. A facts batch writes each
    /// changed claim's state again (its new version) and reads and writes its
    /// facts' summaries; at 500 events the server's peak RSS in the `writes`
    /// benchmark rose from 22 to 49 MB with no gain in throughput, so it
    /// stays at 100.
    pub(crate) fn batch_size(self) -> i64 {
        match self {
            Projection::Facts => 100,
        }
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

    /// Forgets everything when `generation` is not the one known so far.
    pub(crate) fn at_generation(&mut self, generation: i64) {
        if self.generation != Some(generation) {
            self.ids.clear();
            self.generation = Some(generation);
        }
    }

    /// Adds facts whose rows a committed batch left in place.
    pub(crate) fn learn(&mut self, ids: impl IntoIterator<Item = Uuid>) {
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
}

impl LogEvent {
    /// The claim event a log row holds, its data decoded straight from the
    /// JSON text; `None` for an event of another stream.
    pub(crate) fn of(r: LogRow) -> Option<Result<LogEvent, ProjectionError>> {
        let claim_id = claim_id_of_stream(&r.stream)?;
        Some(
            ClaimEvent::from_log_text(&r.event_type, &r.data)
                .map(|event| LogEvent {
                    position: r.position,
                    claim_id,
                    version: r.version,
                    event,
                    actor: r.actor,
                    recorded_at: r.recorded_at,
                })
                .map_err(|reason| ProjectionError::Unappliable {
                    position: r.position,
                    reason,
                }),
        )
    }
}

/// A live batch: the claim events among the next `limit` events of the log,
/// and the position of the last event read (a claim's or not), which is where
/// the batch's checkpoint moves to.
pub(crate) struct Batch {
    pub events: Vec<LogEvent>,
    pub last: Option<i64>,
    /// Events read, claim events or not.
    pub read: usize,
}

/// Reads the events after `after`, decoding each claim event's data straight
/// from its JSON text. An event that cannot be read ends the batch just before
/// it, so that what precedes it is applied; a batch that would start with it
/// is an error at its position, where the projection then stops.
pub(crate) async fn read_batch(
    conn: &mut sqlx::PgConnection,
    after: i64,
    limit: i64,
) -> Result<Batch, ProjectionError> {
    let rows = read_rows_in(conn, after, limit).await?;
    let mut batch = Batch {
        events: Vec::with_capacity(rows.len()),
        last: None,
        read: 0,
    };
    for r in rows {
        let position = r.position;
        match LogEvent::of(r) {
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
    claim::evolve(prior, &e.event, &rec).ok_or_else(|| ProjectionError::Unappliable {
        position: e.position,
        reason: format!("{} before the claim was asserted", e.event.type_name()),
    })
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
