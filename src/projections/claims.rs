//! The claims projection: one row per claim with its folded state (the API
//! view is rendered from it when read).

use std::collections::HashMap;
use std::ops::Range;

use sqlx::PgConnection;
use uuid::Uuid;

use super::copy::CopyRows;
use super::{LogEvent, ProjectionError, decode_state, encode, fold_claims};
use crate::domain::claim::Claim;

/// The table's columns, in the order [`ClaimRow::copy`] writes them.
pub(super) const COLUMNS: &str =
    "claim_id, story_id, fact_id, status, asserted_by, state, position";

/// A `claims_view` row: a claim as its events left it. The live batches
/// and the rebuild both take every column from here.
pub(super) struct ClaimRow<'a> {
    claim_id: Uuid,
    claim: &'a Claim,
    /// The position of the claim's last event.
    position: i64,
}

impl<'a> ClaimRow<'a> {
    pub(super) fn new(claim_id: Uuid, claim: &'a Claim, position: i64) -> Self {
        ClaimRow {
            claim_id,
            claim,
            position,
        }
    }

    fn story_id(&self) -> Uuid {
        self.claim.asserted.story_id
    }

    fn fact_id(&self) -> Uuid {
        self.claim.asserted.fact_id
    }

    fn status(&self) -> &'static str {
        self.claim.status.as_str()
    }

    fn asserted_by(&self) -> &'a str {
        &self.claim.asserted_by
    }

    /// Writes the row for `COPY`; returns where the state's JSON text lies
    /// in `out` (the facts projection stores the very same text).
    pub(super) fn copy(&self, out: &mut CopyRows) -> Result<Range<usize>, ProjectionError> {
        out.row(7)
            .uuid(self.claim_id)
            .uuid(self.story_id())
            .uuid(self.fact_id())
            .text(self.status())
            .text(self.asserted_by());
        let state = out.json_of(self.claim)?;
        out.int8(self.position);
        Ok(state)
    }
}

pub(super) async fn apply(
    conn: &mut PgConnection,
    events: &[LogEvent],
) -> Result<(), ProjectionError> {
    let mut ids: Vec<Uuid> = events.iter().map(|e| e.claim_id).collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT claim_id, state::text FROM claims_view WHERE claim_id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
    let mut states: HashMap<Uuid, Claim> = HashMap::with_capacity(ids.len());
    for (id, state) in rows {
        states.insert(id, decode_state(id, &state)?);
    }
    let mut last_position: HashMap<Uuid, i64> = HashMap::new();
    let touched = fold_claims(events, &mut states, |e, _| {
        last_position.insert(e.claim_id, e.position);
    })?;

    let mut rows = Vec::with_capacity(touched.len());
    for id in touched {
        let Some(c) = states.get(&id) else { continue };
        let position = last_position.get(&id).copied().unwrap_or(0);
        rows.push(ClaimRow::new(id, c, position));
    }
    let mut state = Vec::with_capacity(rows.len());
    for r in &rows {
        state.push(encode(r.claim)?);
    }
    sqlx::query(
        "INSERT INTO claims_view (claim_id, story_id, fact_id, status, asserted_by, state, position) \
         SELECT c, s, f, st, a, sj::json, p \
         FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::bigint[]) \
              AS u(c, s, f, st, a, sj, p) \
         ON CONFLICT (claim_id) DO UPDATE SET status = EXCLUDED.status, state = EXCLUDED.state, \
             position = EXCLUDED.position",
    )
    .bind(rows.iter().map(|r| r.claim_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.story_id()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.fact_id()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.status()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.asserted_by()).collect::<Vec<_>>())
    .bind(&state)
    .bind(rows.iter().map(|r| r.position).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
