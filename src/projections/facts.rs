//! The facts projection: each fact's current document (its claims laid out
//! along valid time), a system-time version of each claim's state per
//! transaction that changed it (for `as_of`), and the index of which events
//! belong to which fact (history).
//!
//! Versions are kept per claim, not per fact: a fact with many claims would
//! otherwise store its whole document again for every change to any of them.
//! A fact as of a record time is computed from its claims' versions then.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Mode, ProjectionError, claim_id_of, decode_state, encode, evolve_logged};
use crate::domain::claim::Claim;
use crate::domain::fact;
use crate::domain::text::normalize_key;
use crate::store::RecordedEvent;

/// A claim's state as one transaction left it.
struct Version {
    claim_id: Uuid,
    fact_id: Uuid,
    /// The position of the claim's last event in that transaction (so a
    /// version does not depend on where batch boundaries fall).
    position: i64,
    recorded_at: DateTime<Utc>,
    state: Claim,
}

pub(super) async fn apply(
    conn: &mut PgConnection,
    events: &[RecordedEvent],
    mode: Mode,
) -> Result<(), ProjectionError> {
    let mut ids: Vec<Uuid> = events.iter().filter_map(claim_id_of).collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }

    // Every claim of every fact the batch touches: a fact's document depends
    // on all of its claims, not only the ones that changed.
    let mut fact_ids: HashSet<Uuid> = sqlx::query_scalar::<_, Uuid>(
        "SELECT DISTINCT fact_id FROM fact_claims WHERE claim_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    for e in events {
        if e.event_type == "ClaimAsserted"
            && let Some(f) = e
                .data
                .get("fact_id")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
        {
            fact_ids.insert(f);
        }
    }
    let fact_list: Vec<Uuid> = fact_ids.into_iter().collect();
    let rows: Vec<(Uuid, Uuid, Value)> =
        sqlx::query_as("SELECT claim_id, fact_id, state FROM fact_claims WHERE fact_id = ANY($1)")
            .bind(&fact_list)
            .fetch_all(&mut *conn)
            .await?;
    let mut states: HashMap<Uuid, Claim> = HashMap::with_capacity(rows.len());
    let mut members: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for (claim_id, fact_id, state) in rows {
        states.insert(claim_id, decode_state(claim_id, state)?);
        members.entry(fact_id).or_default().push(claim_id);
    }

    let mut versions: Vec<Version> = Vec::new();
    let mut last_version: HashMap<Uuid, usize> = HashMap::new();
    let mut history: Vec<(Uuid, i64, Uuid)> = Vec::new();
    let mut touched_facts: Vec<(Uuid, i64)> = Vec::new();
    let mut fact_index: HashMap<Uuid, usize> = HashMap::new();
    for e in events {
        let Some(id) = claim_id_of(e) else { continue };
        let next = evolve_logged(states.remove(&id), e)?;
        let fact_id = next.asserted.fact_id;
        let list = members.entry(fact_id).or_default();
        if !list.contains(&id) {
            list.push(id);
        }
        // One version per claim per transaction (its events share a record
        // time): a reader as of any instant sees whole writes only.
        match last_version.get(&id).map(|i| &mut versions[*i]) {
            Some(v) if v.recorded_at == e.recorded_at => {
                v.position = e.position;
                v.state = next.clone();
            }
            _ => {
                last_version.insert(id, versions.len());
                versions.push(Version {
                    claim_id: id,
                    fact_id,
                    position: e.position,
                    recorded_at: e.recorded_at,
                    state: next.clone(),
                });
            }
        }
        states.insert(id, next);
        match fact_index.get(&fact_id) {
            Some(i) => touched_facts[*i].1 = e.position,
            None => {
                fact_index.insert(fact_id, touched_facts.len());
                touched_facts.push((fact_id, e.position));
            }
        }
        history.push((fact_id, e.position, id));
    }

    write_claims(conn, &versions, &states).await?;
    write_versions(conn, &versions).await?;
    // A rebuild lays every fact out once at its end instead of per batch.
    if mode == Mode::Live {
        write_facts(conn, &touched_facts, &members, &states).await?;
    }
    write_history(conn, &history).await?;
    Ok(())
}

async fn write_claims(
    conn: &mut PgConnection,
    versions: &[Version],
    states: &HashMap<Uuid, Claim>,
) -> Result<(), ProjectionError> {
    let mut seen = HashSet::new();
    let mut claim_id = Vec::new();
    let mut fact_id = Vec::new();
    let mut state = Vec::new();
    for v in versions {
        if !seen.insert(v.claim_id) {
            continue;
        }
        let Some(c) = states.get(&v.claim_id) else {
            continue;
        };
        claim_id.push(v.claim_id);
        fact_id.push(v.fact_id);
        state.push(encode(c)?);
    }
    sqlx::query(
        "INSERT INTO fact_claims (claim_id, fact_id, state) \
         SELECT c, f, s::jsonb FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS u(c, f, s) \
         ON CONFLICT (claim_id) DO UPDATE SET state = EXCLUDED.state",
    )
    .bind(&claim_id)
    .bind(&fact_id)
    .bind(&state)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn write_versions(
    conn: &mut PgConnection,
    versions: &[Version],
) -> Result<(), ProjectionError> {
    if versions.is_empty() {
        return Ok(());
    }
    // Close each claim's open version at its first new one. An open version
    // with the same record time is the same transaction seen through an
    // earlier batch: the new one replaces it rather than follow it, and the
    // version that replaced one now ends where the new one begins.
    let mut first: HashMap<Uuid, &Version> = HashMap::new();
    for v in versions {
        first.entry(v.claim_id).or_insert(v);
    }
    let c: Vec<Uuid> = first.keys().copied().collect();
    let p: Vec<i64> = c.iter().map(|id| first[id].position).collect();
    let r: Vec<DateTime<Utc>> = c.iter().map(|id| first[id].recorded_at).collect();
    // `claim_id = ANY` gives the planner an index condition even before the
    // table has statistics (a fresh or rebuilt table has none).
    sqlx::query(
        "DELETE FROM claim_versions v USING unnest($1::uuid[], $2::timestamptz[]) AS u(c, r) \
         WHERE v.claim_id = ANY($1) AND v.claim_id = u.c AND v.to_position IS NULL \
           AND v.recorded_from = u.r",
    )
    .bind(&c)
    .bind(&r)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE claim_versions v SET to_position = u.p, recorded_to = u.r \
         FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[]) AS u(c, p, r) \
         WHERE v.claim_id = ANY($1) AND v.claim_id = u.c \
           AND (v.to_position IS NULL OR v.recorded_to = u.r)",
    )
    .bind(&c)
    .bind(&p)
    .bind(&r)
    .execute(&mut *conn)
    .await?;

    let n = versions.len();
    let mut claim_id = Vec::with_capacity(n);
    let mut fact_id = Vec::with_capacity(n);
    let mut from_position = Vec::with_capacity(n);
    let mut to_position: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut recorded_from = Vec::with_capacity(n);
    let mut recorded_to: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    let mut state = Vec::with_capacity(n);
    for (i, v) in versions.iter().enumerate() {
        let next = versions[i + 1..].iter().find(|w| w.claim_id == v.claim_id);
        claim_id.push(v.claim_id);
        fact_id.push(v.fact_id);
        from_position.push(v.position);
        to_position.push(next.map(|w| w.position));
        recorded_from.push(v.recorded_at);
        recorded_to.push(next.map(|w| w.recorded_at));
        state.push(encode(&v.state)?);
    }
    sqlx::query(
        "INSERT INTO claim_versions (claim_id, fact_id, from_position, to_position, recorded_from, recorded_to, state) \
         SELECT c, f, fp, tp, rf, rt, s::jsonb \
         FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::bigint[], $5::timestamptz[], $6::timestamptz[], $7::text[]) \
              AS u(c, f, fp, tp, rf, rt, s)",
    )
    .bind(&claim_id)
    .bind(&fact_id)
    .bind(&from_position)
    .bind(&to_position)
    .bind(&recorded_from)
    .bind(&recorded_to)
    .bind(&state)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The current document of every fact the batch touched, computed once.
async fn write_facts(
    conn: &mut PgConnection,
    touched: &[(Uuid, i64)],
    members: &HashMap<Uuid, Vec<Uuid>>,
    states: &HashMap<Uuid, Claim>,
) -> Result<(), ProjectionError> {
    let mut f = Vec::with_capacity(touched.len());
    let mut sk = Vec::with_capacity(touched.len());
    let mut pk = Vec::with_capacity(touched.len());
    let mut st = Vec::with_capacity(touched.len());
    let mut d = Vec::with_capacity(touched.len());
    let mut p = Vec::with_capacity(touched.len());
    for (fact_id, position) in touched {
        let claims: Vec<Claim> = members
            .get(fact_id)
            .into_iter()
            .flatten()
            .filter_map(|c| states.get(c).cloned())
            .collect();
        let Some(doc) = fact::compute(*fact_id, &claims) else {
            continue;
        };
        f.push(*fact_id);
        sk.push(normalize_key(&doc.subject));
        pk.push(normalize_key(&doc.property));
        st.push(doc.status.as_str());
        d.push(encode(&doc)?);
        p.push(*position);
    }
    sqlx::query(
        "INSERT INTO facts_view (fact_id, subject_key, property_key, status, doc, position) \
         SELECT f, sk, pk, st, d::jsonb, p \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[]) \
              AS u(f, sk, pk, st, d, p) \
         ON CONFLICT (fact_id) DO UPDATE SET status = EXCLUDED.status, doc = EXCLUDED.doc, \
             position = EXCLUDED.position",
    )
    .bind(&f)
    .bind(&sk)
    .bind(&pk)
    .bind(&st)
    .bind(&d)
    .bind(&p)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Lays out every fact from the current claim states (the end of a
/// rebuild), a slice of facts at a time.
pub(super) async fn write_all_facts(conn: &mut PgConnection) -> Result<(), ProjectionError> {
    const SLICE: i64 = 2_000;
    let mut after = Uuid::nil();
    loop {
        let facts: Vec<Uuid> = sqlx::query_scalar(
            "SELECT DISTINCT fact_id FROM fact_claims WHERE fact_id > $1 ORDER BY fact_id LIMIT $2",
        )
        .bind(after)
        .bind(SLICE)
        .fetch_all(&mut *conn)
        .await?;
        let Some(last) = facts.last().copied() else {
            return Ok(());
        };
        let rows: Vec<(Uuid, Uuid, Value, i64)> = sqlx::query_as(
            "SELECT c.claim_id, c.fact_id, c.state, \
                    (SELECT max(h.position) FROM fact_events h WHERE h.fact_id = c.fact_id) \
             FROM fact_claims c WHERE c.fact_id = ANY($1)",
        )
        .bind(&facts)
        .fetch_all(&mut *conn)
        .await?;
        let mut states: HashMap<Uuid, Claim> = HashMap::with_capacity(rows.len());
        let mut members: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        let mut positions: HashMap<Uuid, i64> = HashMap::new();
        for (claim_id, fact_id, state, position) in rows {
            states.insert(claim_id, decode_state(claim_id, state)?);
            members.entry(fact_id).or_default().push(claim_id);
            positions.insert(fact_id, position);
        }
        let touched: Vec<(Uuid, i64)> = facts
            .iter()
            .map(|f| (*f, positions.get(f).copied().unwrap_or(0)))
            .collect();
        write_facts(conn, &touched, &members, &states).await?;
        after = last;
    }
}

async fn write_history(
    conn: &mut PgConnection,
    history: &[(Uuid, i64, Uuid)],
) -> Result<(), ProjectionError> {
    let f: Vec<Uuid> = history.iter().map(|h| h.0).collect();
    let p: Vec<i64> = history.iter().map(|h| h.1).collect();
    let c: Vec<Uuid> = history.iter().map(|h| h.2).collect();
    sqlx::query(
        "INSERT INTO fact_events (fact_id, position, claim_id) \
         SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::uuid[])",
    )
    .bind(&f)
    .bind(&p)
    .bind(&c)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
