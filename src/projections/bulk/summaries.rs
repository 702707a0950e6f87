//! The rebuild's second pass: each fact's row, from its claims' open
//! versions as the first pass loaded them, read back sorted by fact.
//!
//! The server sorts, so this side holds one fact at a time, and of a fact
//! with very many claims only a bounded number of states besides its summary.

use futures::TryStreamExt;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::Stage;
use crate::domain::claim::Claim;
use crate::domain::fact::Summary;
use crate::projections::copy::CopyWriter;
use crate::projections::facts::FactRow;
use crate::projections::{ProjectionError, decode_state};

/// Claim states decoded before they are folded into their fact's summary.
const STATES: usize = 1_024;

/// One fact's claims as they arrive.
struct Fact {
    id: Uuid,
    summary: Option<Summary>,
    states: Vec<Claim>,
}

impl Fact {
    /// Folds the states gathered so far into the summary. `Summary::of`
    /// takes claims in any order, and `with_changes` of more of them gives
    /// the summary of all (as the live path relies on too).
    fn gather(&mut self) {
        self.summary = match self.summary.take() {
            None => Summary::of(&self.states),
            Some(s) => Some(s.with_changes(&self.states)),
        };
        self.states.clear();
    }

    fn finish(mut self, out: &mut CopyWriter) -> Result<(), ProjectionError> {
        self.gather();
        match self.summary {
            Some(summary) => FactRow::of(self.id, summary).copy(out.rows()),
            None => Ok(()),
        }
    }
}

/// Lays out the row of every fact with a claim in `{schema}.claim_versions`
/// into `out` (`facts_view`); returns how many facts.
pub(super) async fn lay_out(
    mut conn: PgConnection,
    schema: &str,
    out: &mut CopyWriter,
    stage: &mut Stage,
) -> Result<u64, ProjectionError> {
    let mut facts = 0u64;
    {
        // The schema comes from the projection registry, never from input.
        // Within a fact the claims come in a fixed order (which decides
        // nothing in its summary, but makes a run repeat the one before).
        let mut rows = sqlx::query_as::<_, (Uuid, Uuid, String)>(sqlx::AssertSqlSafe(format!(
            "SELECT fact_id, claim_id, state::text FROM {schema}.claim_versions \
             WHERE to_position IS NULL ORDER BY fact_id, claim_id"
        )))
        .fetch(&mut conn);
        let mut current: Option<Fact> = None;
        while let Some((fact_id, claim_id, state)) = rows.try_next().await? {
            let claim = decode_state(claim_id, &state)?;
            let fact = match &mut current {
                Some(f) if f.id == fact_id => f,
                _ => {
                    if let Some(f) = current.take() {
                        f.finish(out)?;
                        stage.flush(out).await?;
                    }
                    facts += 1;
                    current.insert(Fact {
                        id: fact_id,
                        summary: None,
                        states: Vec::new(),
                    })
                }
            };
            fact.states.push(claim);
            if fact.states.len() == STATES {
                fact.gather();
            }
        }
        if let Some(f) = current.take() {
            f.finish(out)?;
        }
    }
    let _ = conn.close().await;
    Ok(facts)
}
