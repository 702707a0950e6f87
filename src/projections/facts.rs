//! The facts projection: each fact's row (keys, status and [`Summary`]) and
//! a system-time version of each claim's state per transaction that changed
//! it. (A fact's history needs nothing more: a claim's fact never changes,
//! so the fact's events are its claims' streams in the log.)
//!
//! Nothing here stores a fact's whole document. Versions are kept per claim,
//! not per fact: a fact with many claims would otherwise be stored again for
//! every change to any of them. A fact now is laid out from its claims' open
//! versions when it is read, and as of a record time from their versions
//! then; so the work of applying an event does not grow with the number of
//! claims its fact has.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::copy::{CopyRows, Hole};
use super::{
    BulkReport, KnownFacts, LogEvent, LogRow, Projection, ProjectionError, Shadow, decode_state,
    encode, evolve_logged,
};
use crate::domain::claim::{Claim, Status};
use crate::domain::erasable::ErasedMark;
use crate::domain::erasure::{ERASED, Erased, Target};
use crate::domain::fact::{self, FactClaim};
use crate::domain::text::normalize_key;
use crate::store;

/// Claims and facts: each claim's state per transaction that changed it
/// (its open version is its current state, which the claims listings read)
/// and each fact's row and summary.
pub(crate) struct Facts;

impl Projection for Facts {
    const NAME: &'static str = "facts";
    const TABLES: &'static [&'static str] = &["facts_view", "claim_versions"];
    // 1 was the `claims` projection's, until migrations/0015.
    const LOCK_ID: i64 = 2;
    /// A facts batch writes each changed claim's state again (its new
    /// version) and reads and writes its facts' summaries; at 500 events the
    /// server's peak RSS in the `writes` benchmark rose from 22 to 49 MB with
    /// no gain in throughput, so it stays at 100.
    const BATCH_SIZE: i64 = 100;

    type Event = FactsEvent;
    type Memory = KnownFacts;

    fn decode(row: LogRow) -> Option<Result<FactsEvent, ProjectionError>> {
        if row.event_type == ERASED {
            return Some(
                serde_json::from_str(&row.data)
                    .map(|event| FactsEvent::Erased {
                        position: row.position,
                        event,
                    })
                    .map_err(|e| ProjectionError::Unappliable {
                        position: row.position,
                        reason: format!("unreadable Erased event: {e}"),
                    }),
            );
        }
        LogEvent::of(row).map(|r| r.map(FactsEvent::Claim))
    }

    /// Claim events in runs; at an erasure, the run before it is written
    /// first, so that the erased claim is folded again from everything
    /// before the erasure (`erase`).
    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[FactsEvent],
        known: &KnownFacts,
    ) -> Result<Vec<Uuid>, ProjectionError> {
        let mut learned = Vec::new();
        let mut run: Vec<&LogEvent> = Vec::with_capacity(events.len());
        for e in events {
            match e {
                FactsEvent::Claim(c) => run.push(c),
                FactsEvent::Erased { position, event } => {
                    apply(conn, &run, known, &mut learned).await?;
                    run.clear();
                    erase(conn, *position, event).await?;
                }
            }
        }
        apply(conn, &run, known, &mut learned).await?;
        Ok(learned)
    }

    /// Two passes over rows the server sorts: the claims' versions, claim by
    /// claim, then the facts' rows, fact by fact (`bulk/`).
    async fn rebuild_bulk(
        &self,
        shadow: &Shadow<'_>,
        upto: i64,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<BulkReport, ProjectionError> {
        super::bulk::load(shadow.connect, shadow.schema, 0, upto, progress).await
    }
}

/// What the facts projection reads of the log: claim events, and erasures
/// (which change what a claim's versions may hold, not its state).
pub(crate) enum FactsEvent {
    Claim(LogEvent),
    Erased { position: i64, event: Erased },
}

/// Applies the erasure at `position` (idempotently: the request that
/// appended it normally did so already; this makes it survive a crash in
/// between), then, for a claim, replaces its versions with those folded
/// again from its events as they now read (the erased values null): the
/// versions a rebuild makes, since a rebuild folds the same events.
async fn erase(
    conn: &mut PgConnection,
    position: i64,
    event: &Erased,
) -> Result<(), ProjectionError> {
    let (Some(target), Some(stream)) = (event.target(), event.erased_stream()) else {
        return Err(ProjectionError::Unappliable {
            position,
            reason: "an Erased event names no claim or story".into(),
        });
    };
    let mark = ErasedMark {
        fields: event.fields.clone(),
        position,
    };
    store::erasure::apply(conn, &stream, target.id(), &event.positions, &mark).await?;
    let Target::Claim(claim_id) = target else {
        return Ok(());
    };
    let rows = store::read_stream_rows_in(conn, &stream, position).await?;
    let mut versions: Vec<Version> = Vec::new();
    let mut state: Option<Claim> = None;
    for row in rows {
        let Some(e) = LogEvent::of(row) else {
            continue;
        };
        let e = e?;
        let next = evolve_logged(state.take(), &e)?;
        match versions.last_mut() {
            Some(v) if same_version(v.recorded_at, e.recorded_at) => {
                v.position = e.position;
                v.state = next.clone();
            }
            _ => versions.push(Version {
                claim_id,
                fact_id: next.asserted.fact_id,
                position: e.position,
                recorded_at: e.recorded_at,
                state: next.clone(),
            }),
        }
        state = Some(next);
    }
    sqlx::query("DELETE FROM claim_versions WHERE claim_id = $1")
        .bind(claim_id)
        .execute(&mut *conn)
        .await?;
    insert_versions(conn, &versions).await
}

/// One system-time version per claim per transaction: a claim's events that
/// share a record time are one version, which begins at the position of the
/// last of them (so a version does not depend on where batches end). A
/// transaction's events are contiguous in the log and record times never go
/// back along it (the head lock stamps `greatest(clock, head)`), so a claim's
/// events of one record time are always adjacent among the claim's events.
pub(super) fn same_version(open: DateTime<Utc>, recorded_at: DateTime<Utc>) -> bool {
    open == recorded_at
}

/// Columns of `claim_versions`, in the order [`VersionRow`] writes them.
pub(super) const VERSIONS_COLUMNS: &str = "claim_id, fact_id, from_position, to_position, \
     recorded_from, recorded_to, state, story_id, status, asserted_by";

/// A `claim_versions` row: a claim's state from one version to the next
/// (`end`: where the next one begins, and its record time; none while open),
/// with the parts of it the claims listings filter on.
pub(super) struct VersionRow<'a> {
    pub claim_id: Uuid,
    pub fact_id: Uuid,
    pub from_position: i64,
    pub recorded_from: DateTime<Utc>,
    pub end: Option<(i64, DateTime<Utc>)>,
    pub state: &'a Claim,
}

/// Where a version's end goes once it is known (see [`VersionRow::copy_ending_later`]).
pub(super) struct PendingEnd(Hole, Hole);

impl PendingEnd {
    pub(super) fn fill(self, out: &mut CopyRows, to_position: i64, recorded_to: DateTime<Utc>) {
        out.fill_int8(self.0, to_position);
        out.fill_timestamptz(self.1, recorded_to);
    }
}

impl VersionRow<'_> {
    fn start(&self, out: &mut CopyRows) {
        out.row(10)
            .uuid(self.claim_id)
            .uuid(self.fact_id)
            .int8(self.from_position);
    }

    fn finish(&self, out: &mut CopyRows) -> Result<(), ProjectionError> {
        out.json_of(self.state)?
            .uuid(self.state.asserted.story_id)
            .text(self.state.status.as_str())
            .text(&self.state.asserted_by);
        Ok(())
    }

    pub(super) fn copy(&self, out: &mut CopyRows) -> Result<(), ProjectionError> {
        self.start(out);
        out.opt_int8(self.end.map(|e| e.0))
            .timestamptz(self.recorded_from)
            .opt_timestamptz(self.end.map(|e| e.1));
        self.finish(out)
    }

    /// A closed version whose successor may still grow: its end is filled in
    /// once known, before `out` is flushed.
    pub(super) fn copy_ending_later(
        &self,
        out: &mut CopyRows,
    ) -> Result<PendingEnd, ProjectionError> {
        self.start(out);
        let to = out.hole8();
        out.timestamptz(self.recorded_from);
        let recorded_to = out.hole8();
        self.finish(out)?;
        Ok(PendingEnd(to, recorded_to))
    }
}

/// Columns of `facts_view`, in the order [`FactRow::copy`] writes them.
pub(super) const FACTS_COLUMNS: &str = "fact_id, subject_key, property_key, status, summary";

/// A `facts_view` row: a fact's keys, status and summary.
pub(super) struct FactRow {
    fact_id: Uuid,
    subject_key: String,
    property_key: String,
    status: &'static str,
    summary: fact::Summary,
}

impl FactRow {
    pub(super) fn of(fact_id: Uuid, summary: fact::Summary) -> FactRow {
        FactRow {
            fact_id,
            subject_key: normalize_key(&summary.subject),
            property_key: normalize_key(&summary.property),
            status: summary.headline(fact_id).status.as_str(),
            summary,
        }
    }

    pub(super) fn copy(&self, out: &mut CopyRows) -> Result<(), ProjectionError> {
        out.row(5)
            .uuid(self.fact_id)
            .text(&self.subject_key)
            .text(&self.property_key)
            .text(self.status);
        out.json_of(&self.summary)?;
        Ok(())
    }
}

/// A claim's state as one transaction left it.
struct Version {
    claim_id: Uuid,
    fact_id: Uuid,
    /// The position of the claim's last event in that transaction.
    position: i64,
    recorded_at: DateTime<Utc>,
    state: Claim,
}

/// The current states of the claims `$1`: their open versions.
pub(super) const OPEN_STATES: &str = "SELECT claim_id, state::text, recorded_from FROM claim_versions \
     WHERE claim_id = ANY($1) AND to_position IS NULL";

pub(super) async fn apply(
    conn: &mut PgConnection,
    events: &[&LogEvent],
    known: &KnownFacts,
    learned: &mut Vec<Uuid>,
) -> Result<(), ProjectionError> {
    if events.is_empty() {
        return Ok(());
    }
    // Only the claims the batch changes are read in full, from their open
    // versions (a claim's current state): what the rest of a touched fact
    // contributes to its row is in its summary, which is updated in place.
    // A claim whose stream begins in this batch has no version yet, so it is
    // not looked up: a batch of new claims alone reads nothing.
    let ids = projected_before(events);
    let rows = if ids.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as::<_, (Uuid, String, DateTime<Utc>)>(OPEN_STATES)
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?
    };
    let mut states: HashMap<Uuid, Claim> = HashMap::with_capacity(ids.len());
    // For each claim the projection already has (claims new to it are in
    // neither map): when its open version began, and its verified part (what
    // a summary keeps of a claim) before the batch.
    let mut open_from: HashMap<Uuid, DateTime<Utc>> = HashMap::with_capacity(ids.len());
    let mut verified_before: HashMap<Uuid, Option<FactClaim>> = HashMap::with_capacity(ids.len());
    for (claim_id, state, recorded_from) in rows {
        let claim = decode_state(claim_id, &state)?;
        verified_before.insert(claim_id, verified_part(&claim));
        states.insert(claim_id, claim);
        open_from.insert(claim_id, recorded_from);
    }
    let mut changed: HashMap<Uuid, Vec<Uuid>> = HashMap::new();

    let mut versions: Vec<Version> = Vec::new();
    let mut last_version: HashMap<Uuid, usize> = HashMap::new();
    for e in events {
        let id = e.claim_id;
        let prior = states.remove(&id);
        let next = evolve_logged(prior, e)?;
        let fact_id = next.asserted.fact_id;
        let list = changed.entry(fact_id).or_default();
        if !list.contains(&id) {
            list.push(id);
        }
        match last_version.get(&id).map(|i| &mut versions[*i]) {
            Some(v) if same_version(v.recorded_at, e.recorded_at) => {
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
    }

    // The claims that may change their fact's summary: those whose verified
    // part the batch changes, and new ones (a new claim may be its fact's
    // first, so its fact's row is looked at even when it is not verified).
    //
    // Except: a new claim that is not verified and was asserted after the
    // batch's first record time cannot change a summary that already exists.
    // Every claim projected before this batch was recorded at or before that
    // time (record times never go back along the log), so it is not the
    // fact's first, and a summary keeps only verified claims besides. Facts
    // whose changed claims are all such are written only if absent, without
    // reading their summaries: so recording a claim costs the same however
    // many verified claims its fact already has. (A claim recorded exactly at
    // that time may share a transaction with claims of earlier batches and
    // precede them in claim order; it takes the reading path.) Facts the
    // worker knows to have a row need not even be written.
    let batch_start = events.first().map(|e| e.recorded_at);
    let cannot_change_existing = |id: &Uuid| {
        !open_from.contains_key(id)
            && states
                .get(id)
                .is_some_and(|c| verified_part(c).is_none() && Some(c.asserted_at) > batch_start)
    };
    let mut summary_changes: Vec<(Uuid, Vec<&Claim>)> = Vec::new();
    let mut if_absent: Vec<FactRow> = Vec::new();
    for (fact_id, ids) in &changed {
        if ids.iter().all(cannot_change_existing) {
            if known.contains(fact_id) {
                continue;
            }
            if let Some(summary) = fact::Summary::of(ids.iter().filter_map(|id| states.get(id))) {
                if_absent.push(FactRow::of(*fact_id, summary));
            }
            continue;
        }
        let claims: Vec<&Claim> = ids
            .iter()
            .filter(|id| match verified_before.get(*id) {
                Some(before) => *before != states.get(*id).and_then(verified_part),
                None => true,
            })
            .filter_map(|id| states.get(id))
            .collect();
        if !claims.is_empty() {
            summary_changes.push((*fact_id, claims));
        }
    }

    write_versions(conn, &versions, &open_from).await?;
    write_facts(conn, &summary_changes, learned).await?;
    write_fact_rows(conn, &if_absent, INSERT_ABSENT_FACTS).await?;
    learned.extend(if_absent.iter().map(|r| r.fact_id));
    Ok(())
}

/// The claims of `events` that earlier batches may have projected: those
/// whose first event here is not their stream's first. (Each stream's events
/// come in version order, so a claim's first event in a batch is the one
/// that says whether the claim began before it.)
fn projected_before(events: &[&LogEvent]) -> Vec<Uuid> {
    let mut firsts: HashMap<Uuid, i64> = HashMap::with_capacity(events.len());
    for e in events {
        firsts.entry(e.claim_id).or_insert(e.version);
    }
    let mut ids: Vec<Uuid> = firsts
        .into_iter()
        .filter(|(_, version)| *version > 1)
        .map(|(id, _)| id)
        .collect();
    ids.sort_unstable();
    ids
}

/// `open_from`: when the open version of each claim that has one began.
async fn write_versions(
    conn: &mut PgConnection,
    versions: &[Version],
    open_from: &HashMap<Uuid, DateTime<Utc>>,
) -> Result<(), ProjectionError> {
    if versions.is_empty() {
        return Ok(());
    }
    // Close each claim's open version at its first new one. An open version
    // with the same record time is the same transaction seen through an
    // earlier batch: the new one replaces it rather than follow it, and the
    // version that replaced one now ends where the new one begins. A claim
    // new to the projection has no versions at all (every claim that has one
    // has an open one), so there is nothing to close: a batch of new claims
    // alone skips both statements. Which open versions are replaced is known
    // from when they began, so the delete runs only when there are some
    // (a transaction that an earlier batch cut in two).
    let mut first: HashMap<Uuid, &Version> = HashMap::new();
    for v in versions {
        if open_from.contains_key(&v.claim_id) {
            first.entry(v.claim_id).or_insert(v);
        }
    }
    let c: Vec<Uuid> = first.keys().copied().collect();
    let p: Vec<i64> = c.iter().map(|id| first[id].position).collect();
    let r: Vec<DateTime<Utc>> = c.iter().map(|id| first[id].recorded_at).collect();
    let (replaced, replaced_at): (Vec<Uuid>, Vec<DateTime<Utc>>) = c
        .iter()
        .zip(&r)
        .filter(|(id, at)| {
            open_from
                .get(*id)
                .is_some_and(|from| same_version(*from, **at))
        })
        .map(|(id, at)| (*id, *at))
        .unzip();
    if !replaced.is_empty() {
        delete_replaced_versions(conn, &replaced, &replaced_at).await?;
    }
    if !c.is_empty() {
        close_open_versions(conn, &c, &p, &r).await?;
    }
    insert_versions(conn, versions).await
}

async fn delete_replaced_versions(
    conn: &mut PgConnection,
    c: &[Uuid],
    r: &[DateTime<Utc>],
) -> Result<(), ProjectionError> {
    // `claim_id = ANY` gives the planner an index condition even before the
    // table has statistics (a fresh or rebuilt table has none).
    sqlx::query(
        "DELETE FROM claim_versions v USING unnest($1::uuid[], $2::timestamptz[]) AS u(c, r) \
         WHERE v.claim_id = ANY($1) AND v.claim_id = u.c AND v.to_position IS NULL \
           AND v.recorded_from = u.r",
    )
    .bind(c)
    .bind(r)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn close_open_versions(
    conn: &mut PgConnection,
    c: &[Uuid],
    p: &[i64],
    r: &[DateTime<Utc>],
) -> Result<(), ProjectionError> {
    // `claim_id = ANY`: an index condition, as in the delete.
    sqlx::query(
        "UPDATE claim_versions v SET to_position = u.p, recorded_to = u.r \
         FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[]) AS u(c, p, r) \
         WHERE v.claim_id = ANY($1) AND v.claim_id = u.c \
           AND (v.to_position IS NULL OR v.recorded_to = u.r)",
    )
    .bind(c)
    .bind(p)
    .bind(r)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_versions(
    conn: &mut PgConnection,
    versions: &[Version],
) -> Result<(), ProjectionError> {
    // Each version ends where the claim's next one in the batch begins.
    let mut next_of: HashMap<Uuid, (i64, DateTime<Utc>)> = HashMap::new();
    let mut ends = vec![None; versions.len()];
    for (i, v) in versions.iter().enumerate().rev() {
        ends[i] = next_of.insert(v.claim_id, (v.position, v.recorded_at));
    }
    let mut states = Vec::with_capacity(versions.len());
    for v in versions {
        states.push(encode(&v.state)?);
    }
    sqlx::query(
        "INSERT INTO claim_versions (claim_id, fact_id, from_position, to_position, recorded_from, \
             recorded_to, state, story_id, status, asserted_by) \
         SELECT c, f, fp, tp, rf, rt, s::json, si, st, a \
         FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::bigint[], $5::timestamptz[], \
             $6::timestamptz[], $7::text[], $8::uuid[], $9::text[], $10::text[]) \
              AS u(c, f, fp, tp, rf, rt, s, si, st, a)",
    )
    .bind(versions.iter().map(|v| v.claim_id).collect::<Vec<_>>())
    .bind(versions.iter().map(|v| v.fact_id).collect::<Vec<_>>())
    .bind(versions.iter().map(|v| v.position).collect::<Vec<_>>())
    .bind(ends.iter().map(|e| e.map(|e| e.0)).collect::<Vec<_>>())
    .bind(versions.iter().map(|v| v.recorded_at).collect::<Vec<_>>())
    .bind(ends.iter().map(|e| e.map(|e| e.1)).collect::<Vec<_>>())
    .bind(&states)
    .bind(
        versions
            .iter()
            .map(|v| v.state.asserted.story_id)
            .collect::<Vec<_>>(),
    )
    .bind(
        versions
            .iter()
            .map(|v| v.state.status.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        versions
            .iter()
            .map(|v| v.state.asserted_by.as_str())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What a summary keeps of a claim: its shown form while it is verified.
fn verified_part(c: &Claim) -> Option<FactClaim> {
    (c.status == Status::Verified).then(|| FactClaim::of(c))
}

/// The new summary of every fact whose summary the batch may change: its
/// current one with `claims` (their new states) taken into account, or, for
/// a fact new to the projection, the summary of those claims alone. Rows
/// whose summary comes out the same are not written. Adds to `learned` the
/// facts that have a row once this commits.
async fn write_facts(
    conn: &mut PgConnection,
    changes: &[(Uuid, Vec<&Claim>)],
    learned: &mut Vec<Uuid>,
) -> Result<(), ProjectionError> {
    if changes.is_empty() {
        return Ok(());
    }
    let fact_ids: Vec<Uuid> = changes.iter().map(|c| c.0).collect();
    let mut current: HashMap<Uuid, fact::Summary> = HashMap::with_capacity(changes.len());
    for (fact_id, summary) in sqlx::query_as::<_, (Uuid, String)>(
        "SELECT fact_id, summary::text FROM facts_view WHERE fact_id = ANY($1)",
    )
    .bind(&fact_ids)
    .fetch_all(&mut *conn)
    .await?
    {
        let summary = serde_json::from_str(&summary).map_err(|e| ProjectionError::Unappliable {
            position: 0,
            reason: format!("stored summary of fact {fact_id} is unreadable: {e}"),
        })?;
        current.insert(fact_id, summary);
        learned.push(fact_id);
    }
    let mut rows = Vec::with_capacity(changes.len());
    for (fact_id, claims) in changes {
        let summary = match current.remove(fact_id) {
            Some(before) => {
                let after = before.clone().with_changes(claims.iter().copied());
                if after == before {
                    continue;
                }
                after
            }
            None => match fact::Summary::of(claims.iter().copied()) {
                Some(s) => {
                    learned.push(*fact_id);
                    s
                }
                None => continue,
            },
        };
        rows.push(FactRow::of(*fact_id, summary));
    }
    write_fact_rows(conn, &rows, UPSERT_FACTS).await
}

/// The insert of fact rows, given what to do with a row that exists.
macro_rules! insert_facts {
    ($on_conflict:literal) => {
        concat!(
            "INSERT INTO facts_view (fact_id, subject_key, property_key, status, summary) \
             SELECT f, sk, pk, st, s::json \
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[]) \
                  AS u(f, sk, pk, st, s) \
             ON CONFLICT (fact_id) ",
            $on_conflict
        )
    };
}

/// Fact rows, replacing the summaries of those that exist.
const UPSERT_FACTS: &str =
    insert_facts!("DO UPDATE SET status = EXCLUDED.status, summary = EXCLUDED.summary");

/// Fact rows, leaving those that exist as they are.
const INSERT_ABSENT_FACTS: &str = insert_facts!("DO NOTHING");

async fn write_fact_rows(
    conn: &mut PgConnection,
    rows: &[FactRow],
    statement: &'static str,
) -> Result<(), ProjectionError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut summaries = Vec::with_capacity(rows.len());
    for r in rows {
        summaries.push(encode(&r.summary)?);
    }
    sqlx::query(statement)
        .bind(rows.iter().map(|r| r.fact_id).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.subject_key.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.property_key.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.status).collect::<Vec<_>>())
        .bind(&summaries)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::claim::ClaimEvent;

    fn event(claim: u128, version: i64) -> LogEvent {
        LogEvent {
            position: 0,
            claim_id: Uuid::from_u128(claim),
            version,
            // Only the claim and the version matter here.
            event: ClaimEvent::ClaimDisputed {
                schema: 1,
                reason: "r".into(),
            },
            actor: "a".into(),
            recorded_at: Utc::now(),
            erased: None,
        }
    }

    #[test]
    fn only_claims_begun_before_the_batch_are_looked_up() {
        // Claim 1 begins here and goes on; claim 2 began in an earlier
        // batch; claim 3 begins here.
        let events = [
            event(1, 1),
            event(2, 3),
            event(1, 2),
            event(3, 1),
            event(2, 4),
        ];
        let events: Vec<&LogEvent> = events.iter().collect();
        assert_eq!(projected_before(&events), vec![Uuid::from_u128(2)]);
        assert!(projected_before(&[&event(4, 1)]).is_empty());
    }
}
