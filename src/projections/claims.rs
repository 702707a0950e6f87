//! The claims projection: one row per claim with its folded state and its
//! API rendering.

use std::collections::HashMap;

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{ProjectionError, claim_id_of, decode_state, encode, fold_claims};
use crate::domain::claim::Claim;
use crate::service::view;
use crate::store::RecordedEvent;

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

    let mut claim_id = Vec::with_capacity(touched.len());
    let mut story_id = Vec::with_capacity(touched.len());
    let mut fact_id = Vec::with_capacity(touched.len());
    let mut status = Vec::with_capacity(touched.len());
    let mut asserted_by = Vec::with_capacity(touched.len());
    let mut state = Vec::with_capacity(touched.len());
    let mut rendered = Vec::with_capacity(touched.len());
    let mut position = Vec::with_capacity(touched.len());
    for id in touched {
        let Some(c) = states.get(&id) else { continue };
        claim_id.push(id);
        story_id.push(c.asserted.story_id);
        fact_id.push(c.asserted.fact_id);
        status.push(c.status.as_str());
        asserted_by.push(c.asserted_by.clone());
        state.push(encode(c)?);
        rendered.push(encode(&view::claim(c))?);
        position.push(last_position.get(&id).copied().unwrap_or(0));
    }
    sqlx::query(
        "INSERT INTO claims_view (claim_id, story_id, fact_id, status, asserted_by, state, view, position) \
         SELECT c, s, f, st, a, sj::jsonb, vj::jsonb, p \
         FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[]) \
              AS u(c, s, f, st, a, sj, vj, p) \
         ON CONFLICT (claim_id) DO UPDATE SET status = EXCLUDED.status, state = EXCLUDED.state, \
             view = EXCLUDED.view, position = EXCLUDED.position",
    )
    .bind(&claim_id)
    .bind(&story_id)
    .bind(&fact_id)
    .bind(&status)
    .bind(&asserted_by)
    .bind(&state)
    .bind(&rendered)
    .bind(&position)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
