//! The claims projection: one row per claim with its folded state and its
//! API rendering.

use std::collections::HashMap;

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::copy::CopyRows;
use super::{ProjectionError, claim_id_of, decode_state, encode, fold_claims};
use crate::domain::claim::Claim;
use crate::service::view;
use crate::store::RecordedEvent;

/// The table's columns, in the order [`ClaimRow::copy`] writes them.
pub(super) const COLUMNS: &str =
    "claim_id, story_id, fact_id, status, asserted_by, state, view, position";

/// A `claims_view` row: a claim as its events left it. Built here for the
/// live batches and the rebuild alike.
pub(super) struct ClaimRow<'a> {
    claim_id: Uuid,
    story_id: Uuid,
    fact_id: Uuid,
    status: &'static str,
    asserted_by: &'a str,
    state: &'a str,
    view: String,
    /// The position of the claim's last event.
    position: i64,
}

impl<'a> ClaimRow<'a> {
    /// `state` is `encode(c)` (the facts projection stores the same text).
    pub(super) fn new(
        claim_id: Uuid,
        c: &'a Claim,
        state: &'a str,
        position: i64,
    ) -> Result<ClaimRow<'a>, ProjectionError> {
        Ok(ClaimRow {
            claim_id,
            story_id: c.asserted.story_id,
            fact_id: c.asserted.fact_id,
            status: c.status.as_str(),
            asserted_by: &c.asserted_by,
            state,
            view: encode(&view::claim(c))?,
            position,
        })
    }

    pub(super) fn copy(&self, out: &mut CopyRows) {
        out.row(8)
            .uuid(self.claim_id)
            .uuid(self.story_id)
            .uuid(self.fact_id)
            .text(self.status)
            .text(self.asserted_by)
            .jsonb(self.state)
            .jsonb(&self.view)
            .int8(self.position);
    }
}

pub(super) async fn apply(
    conn: &mut PgConnection,
    events: &[RecordedEvent],
) -> Result<(), ProjectionError> {
    let mut ids: Vec<Uuid> = events.iter().filter_map(claim_id_of).collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    let rows: Vec<(Uuid, Value)> =
        sqlx::query_as("SELECT claim_id, state FROM claims_view WHERE claim_id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
    let mut states: HashMap<Uuid, Claim> = HashMap::with_capacity(ids.len());
    for (id, state) in rows {
        states.insert(id, decode_state(id, state)?);
    }
    let mut last_position: HashMap<Uuid, i64> = HashMap::new();
    let touched = fold_claims(events, &mut states, |e, id, _| {
        last_position.insert(id, e.position);
    })?;

    let mut encoded = Vec::with_capacity(touched.len());
    for id in touched {
        let Some(c) = states.get(&id) else { continue };
        encoded.push((id, c, encode(c)?));
    }
    let mut rows = Vec::with_capacity(encoded.len());
    for (id, c, state) in &encoded {
        let position = last_position.get(id).copied().unwrap_or(0);
        rows.push(ClaimRow::new(*id, c, state, position)?);
    }
    sqlx::query(
        "INSERT INTO claims_view (claim_id, story_id, fact_id, status, asserted_by, state, view, position) \
         SELECT c, s, f, st, a, sj::jsonb, vj::jsonb, p \
         FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[]) \
              AS u(c, s, f, st, a, sj, vj, p) \
         ON CONFLICT (claim_id) DO UPDATE SET status = EXCLUDED.status, state = EXCLUDED.state, \
             view = EXCLUDED.view, position = EXCLUDED.position",
    )
    .bind(rows.iter().map(|r| r.claim_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.story_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.fact_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.status).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.asserted_by).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.state).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.view.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.position).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
