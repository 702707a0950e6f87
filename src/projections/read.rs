//! Queries over the projection tables (the API's reads go through `service`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::domain::claim::stream_prefix;
use crate::store::StoreError;
use crate::store::explain::{array_literal, explain_prepared};

/// Filters of `GET /v1/claims`.
#[derive(Debug, Clone, Default)]
pub struct ClaimFilter {
    pub status: Option<String>,
    pub story_id: Option<Uuid>,
    pub asserted_by: Option<String>,
}

/// One optional filter of a listing.
enum Filter<'a> {
    None,
    Text(&'a str),
    Uuid(Uuid),
}

impl<'a> From<Option<&'a str>> for Filter<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Filter::None, Filter::Text)
    }
}

/// A listing query with only the filters actually given: a catch-all
/// `($1 IS NULL OR col = $1)` cannot use an index once PostgreSQL caches a
/// generic plan for the prepared statement.
///
/// `indexed` lists, in order of preference, the column sets that have an
/// index on `(columns…, key)`. The first set whose columns are all filtered
/// leads the `ORDER BY` (the same order, since those columns are fixed by
/// the filter), so only that index can return the page without a sort.
/// Ordered by `key` alone, PostgreSQL preferred the primary key with the
/// filter applied row by row, expecting matches to be spread evenly; but
/// the claims editors list most (`status=pending`) are the newest, at the
/// far end of the key order, and that plan read the whole table per page.
/// Those leading columns are matched as `col >= $v AND col <= $v`: with
/// `col = $v` the planner knows `col` is fixed, drops it from the order and
/// is back to choosing the primary key.
fn listing<'a>(
    select: &str,
    always: Option<&'static str>,
    key: &str,
    filters: &'a [(&'static str, Filter<'a>)],
    indexed: &[&[&'static str]],
    (after, order): (Option<Uuid>, Order),
    limit: i64,
) -> QueryBuilder<Postgres> {
    let filtered = |c: &&str| {
        filters
            .iter()
            .any(|(column, v)| column == c && !matches!(v, Filter::None))
    };
    let leading: &[&str] = indexed
        .iter()
        .find(|set| set.iter().all(filtered))
        .copied()
        .unwrap_or_default();
    let mut q = QueryBuilder::new(select);
    let mut glue = " WHERE ";
    if let Some(condition) = always {
        q.push(glue).push(condition);
        glue = " AND ";
    }
    for (column, value) in filters {
        let bind = |q: &mut QueryBuilder<Postgres>| match value {
            Filter::None => {}
            Filter::Text(v) => {
                q.push_bind(v.to_string());
            }
            Filter::Uuid(v) => {
                q.push_bind(*v);
            }
        };
        if matches!(value, Filter::None) {
            continue;
        }
        q.push(glue).push(*column);
        if leading.contains(column) {
            q.push(" >= ");
            bind(&mut q);
            q.push(" AND ").push(*column).push(" <= ");
            bind(&mut q);
        } else {
            q.push(" = ");
            bind(&mut q);
        }
        glue = " AND ";
    }
    let (past, direction) = match order {
        Order::Ascending => (" > ", ""),
        Order::Descending => (" < ", " DESC"),
    };
    if let Some(a) = after {
        q.push(glue).push(key).push(past).push_bind(a);
    }
    q.push(" ORDER BY ");
    for column in leading {
        q.push(*column).push(direction).push(", ");
    }
    q.push(key).push(direction).push(" LIMIT ").push_bind(limit);
    q
}

/// Which way a listing runs along its key (`after` is a cursor that way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ascending,
    /// Newest first: the same indexes, read backwards.
    Descending,
}

/// A claim's current state is its open version.
const CLAIMS_SELECT: &str = "SELECT claim_id, state::text FROM claim_versions";
/// Written out in every claims query: it is what lets PostgreSQL use the
/// partial indexes over the open versions, which name them by `recorded_to`
/// (migrations/0015 says why not by `to_position`). A macro so that static
/// statements can `concat!` it.
macro_rules! open_versions {
    () => {
        "recorded_to IS NULL"
    };
}

/// The claims listing; `explain` asks for its plan instead of its rows.
fn claims_listing<'a>(
    explain: bool,
    filters: &'a [(&'static str, Filter<'a>)],
    after: Option<Uuid>,
    order: Order,
    limit: i64,
) -> QueryBuilder<Postgres> {
    let select = if explain {
        format!("EXPLAIN {CLAIMS_SELECT}")
    } else {
        CLAIMS_SELECT.to_owned()
    };
    listing(
        &select,
        Some(open_versions!()),
        "claim_id",
        filters,
        // claim_versions_open_story, _open_asserted_by, _open_status.
        &[&["story_id"], &["asserted_by"], &["status"]],
        (after, order),
        limit,
    )
}

fn claim_filters(f: &ClaimFilter) -> [(&'static str, Filter<'_>); 3] {
    [
        ("status", f.status.as_deref().into()),
        ("story_id", f.story_id.map_or(Filter::None, Filter::Uuid)),
        ("asserted_by", f.asserted_by.as_deref().into()),
    ]
}

/// Claims in id order (UUID v7: assertion order) after `cursor`, each as
/// its stored state's JSON text.
pub async fn claims(
    pool: &PgPool,
    f: &ClaimFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<(Uuid, String)>, StoreError> {
    claims_in_order(pool, f, after, Order::Ascending, limit).await
}

/// [`claims`] in either order: newest first, `after` is the id the
/// previous page ended at, and the page holds older claims.
pub async fn claims_in_order(
    pool: &PgPool,
    f: &ClaimFilter,
    after: Option<Uuid>,
    order: Order,
    limit: i64,
) -> Result<Vec<(Uuid, String)>, StoreError> {
    let filters = claim_filters(f);
    let mut q = claims_listing(false, &filters, after, order, limit);
    Ok(q.build_query_as().fetch_all(pool).await?)
}

/// The plan PostgreSQL chooses on `conn` for [`claims`]' query (for the
/// tests that keep listings on their indexes).
#[doc(hidden)]
pub async fn explain_claims(
    conn: &mut sqlx::PgConnection,
    f: &ClaimFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let filters = claim_filters(f);
    let mut q = claims_listing(true, &filters, after, Order::Ascending, limit);
    Ok(q.build_query_scalar().fetch_all(conn).await?)
}

/// Filters of `GET /v1/facts` (subject and property already normalized).
#[derive(Debug, Clone, Default)]
pub struct FactFilter {
    pub subject_key: Option<String>,
    pub property_key: Option<String>,
    pub status: Option<String>,
}

/// A page of fact ids in id order after `cursor`.
pub async fn facts(
    pool: &PgPool,
    f: &FactFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Uuid>, StoreError> {
    let filters = [
        ("subject_key", f.subject_key.as_deref().into()),
        ("property_key", f.property_key.as_deref().into()),
        ("status", f.status.as_deref().into()),
    ];
    let mut q = listing(
        "SELECT fact_id FROM facts_view",
        None,
        "fact_id",
        &filters,
        // facts_view_keys, facts_view_property, facts_view_status.
        &[
            &["subject_key", "property_key"],
            &["property_key"],
            &["status"],
        ],
        (after, Order::Ascending),
        limit,
    );
    Ok(q.build_query_scalar().fetch_all(pool).await?)
}

/// [`fact_claims`]' statement: `$1` the facts. The open versions named by
/// `recorded_to`, as `claim_versions_open_fact` is.
const FACT_CLAIMS: &str = "SELECT f.fact_id, ARRAY(SELECT v.state::text FROM claim_versions v \
     WHERE v.fact_id = f.fact_id AND v.recorded_to IS NULL ORDER BY v.claim_id) \
     FROM facts_view f WHERE f.fact_id = ANY($1)";

/// The plan of [`fact_claims`] (the plan tests read it).
pub async fn explain_fact_claims(
    conn: &mut sqlx::PgConnection,
    ids: &[Uuid],
) -> Result<Vec<String>, StoreError> {
    explain_prepared(
        conn,
        "factlog_fact_claims (uuid[])",
        FACT_CLAIMS,
        &array_literal(ids),
    )
    .await
}

/// The current states (JSON text) of the claims of each of `ids` that the
/// projection has: their open versions, read with the fact's row in one
/// statement and hence one snapshot.
pub async fn fact_claims(
    pool: &PgPool,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, Vec<String>)>, StoreError> {
    Ok(sqlx::query_as(FACT_CLAIMS)
        .bind(ids)
        .fetch_all(pool)
        .await?)
}

/// Which fact documents changed since a checkpoint, read in one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct FactChanges {
    /// The facts checkpoint in that snapshot.
    pub position: i64,
    /// The facts projection's generation (bumped by each rebuild swap).
    pub generation: i64,
    /// The facts whose documents changed after the checkpoint asked about;
    /// `None` when the generation is not the one asked about (everything may
    /// have changed), or when more than `limit` events changed facts.
    pub changed: Option<Vec<Uuid>>,
}

/// [`fact_changes`]' statement: `$1` the checkpoint last seen, `$2` the
/// generation last seen, `$3` how many claim events to read at most.
const FACT_CHANGES: &str = concat!(
    "SELECT c.position, c.generation, \
        CASE WHEN c.generation = $2 THEN \
            ARRAY(SELECT f FROM ( \
                SELECT (SELECT v.fact_id FROM claim_versions v \
                        WHERE v.claim_id = substr(e.stream, length('",
    stream_prefix!(),
    "') + 1)::uuid \
                          AND v.to_position IS NULL LIMIT 1) AS f \
                FROM events e \
                WHERE e.position > $1 AND e.position <= c.position \
                  AND left(e.stream, length('",
    stream_prefix!(),
    "')) = '",
    stream_prefix!(),
    "' LIMIT $3) AS changed \
            WHERE f IS NOT NULL) \
        END \
    FROM projection_checkpoints c WHERE c.name = 'facts'"
);

/// The plan PostgreSQL chooses on `conn` for [`fact_changes`]' statement
/// as a prepared statement, given the arguments (for the test that keeps it
/// on the keys; with `plan_cache_mode = force_generic_plan`, the plan a
/// connection caches once it has run the statement a few times).
#[doc(hidden)]
pub async fn explain_fact_changes(
    conn: &mut sqlx::PgConnection,
    after: i64,
    generation: i64,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    explain_prepared(
        conn,
        "factlog_fact_changes (bigint, bigint, bigint)",
        FACT_CHANGES,
        &format!("{after}, {generation}, {limit}"),
    )
    .await
}

/// The facts checkpoint and generation, and (when `generation` is still
/// current) the facts written after checkpoint `after`, in one statement and
/// hence one snapshot. A batch writes the new version of every claim whose
/// events it applies, in the same transaction as it moves the checkpoint
/// past them; a fact's document is laid out from its claims' open versions,
/// and a claim's fact never changes: so the facts of the claims of the
/// events in `(after, checkpoint]` are exactly the documents changed since.
/// (The range is read from the log's primary key, and each event's claim is
/// one look-up of its open version by the key of `claim_versions`. Written
/// as a join, the statement took 3.9 ms per pass in the write benchmark,
/// with whole scans of `claim_versions` among its plans: so the look-up is a
/// subquery per event, which has no plan but the key, and the claim streams
/// are picked out with `left()`, which no index of `events` serves: with
/// `LIKE 'claim-%'`, a prefix the log's `(stream, version)` index can
/// range over, every claim event ever logged could be read.) `limit`
/// bounds the claim events read, not the facts: a pass that far behind drops
/// everything rather than reading an unbounded range.
pub async fn fact_changes(
    pool: &PgPool,
    after: i64,
    generation: Option<i64>,
    limit: i64,
) -> Result<FactChanges, StoreError> {
    let (position, current, changed): (i64, i64, Option<Vec<Uuid>>) = sqlx::query_as(FACT_CHANGES)
        .bind(after)
        .bind(generation)
        .bind(limit + 1)
        .fetch_one(pool)
        .await?;
    let changed = changed
        .filter(|ids| ids.len() as i64 <= limit)
        .map(|mut ids| {
            ids.sort_unstable();
            ids.dedup();
            ids
        });
    Ok(FactChanges {
        position,
        generation: current,
        changed,
    })
}

/// The facts checkpoint and generation alone, as a [`FactChanges`] that
/// does not say what changed (so whoever applies it assumes everything may
/// have): for a cache that holds nothing, which no change can make stale.
pub async fn facts_checkpoint(pool: &PgPool) -> Result<FactChanges, StoreError> {
    let (position, generation) = super::checkpoint::read(pool, "facts").await?;
    Ok(FactChanges {
        position,
        generation,
        changed: None,
    })
}

/// The states (JSON text) of a fact's claims as the system knew them at
/// `as_of`.
pub async fn claim_states_at(
    pool: &PgPool,
    fact_id: Uuid,
    as_of: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT state::text FROM claim_versions WHERE fact_id = $1 AND recorded_from <= $2 \
         AND (recorded_to IS NULL OR recorded_to > $2) ORDER BY claim_id",
    )
    .bind(fact_id)
    .bind(as_of)
    .fetch_all(pool)
    .await?)
}

/// A verified claim version of the facts in `facts` that was current at
/// some point from `from` to `to`: (fact, from_position, to_position, state
/// JSON text).
pub type VersionSpan = (Uuid, i64, Option<i64>, String);

/// [`verified_versions_spanning`]' statement: `$1` the facts, `$2` and `$3`
/// the span (`claim_versions_fact_verified` serves it).
const VERIFIED_SPANNING: &str = "SELECT fact_id, from_position, to_position, state::text FROM claim_versions \
     WHERE fact_id = ANY($1) AND status = 'verified' AND from_position <= $3 \
     AND (to_position IS NULL OR to_position > $2) ORDER BY fact_id, claim_id";

/// The verified claim versions of `facts` current at any position in
/// `from..=to`, in one query (the change feed lays out each fact before and
/// after each of its changes from them: a fact's status, value and valid
/// time come from its verified claims alone).
pub async fn verified_versions_spanning(
    pool: &PgPool,
    facts: &[Uuid],
    from: i64,
    to: i64,
) -> Result<Vec<VersionSpan>, StoreError> {
    Ok(sqlx::query_as(VERIFIED_SPANNING)
        .bind(facts)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await?)
}

/// [`first_positions`]' statement: `$1` the facts.
const FIRST_POSITIONS: &str = "SELECT f.fact_id, (SELECT min(v.from_position) \
     FROM claim_versions v WHERE v.fact_id = f.fact_id AND v.recorded_from = \
         (SELECT min(w.recorded_from) FROM claim_versions w WHERE w.fact_id = f.fact_id)) \
     FROM unnest($1::uuid[]) AS f(fact_id)";

/// The position of each fact's first event (its first claim's assertion),
/// for those that have one: the earliest record time from one probe of
/// `claim_versions_fact`, then the least position among the versions
/// recorded then (record time never decreases as position grows, but
/// events appended together share it).
pub async fn first_positions(
    pool: &PgPool,
    facts: &[Uuid],
) -> Result<Vec<(Uuid, Option<i64>)>, StoreError> {
    Ok(sqlx::query_as(FIRST_POSITIONS)
        .bind(facts)
        .fetch_all(pool)
        .await?)
}

/// The plans of the change feed's two look-ups of a page's facts (the plan
/// tests read them).
pub async fn explain_fact_feed_lookups(
    conn: &mut sqlx::PgConnection,
    facts: &[Uuid],
) -> Result<Vec<Vec<String>>, StoreError> {
    let facts = array_literal(facts);
    let spanning = explain_prepared(
        conn,
        "factlog_verified_spanning (uuid[], bigint, bigint)",
        VERIFIED_SPANNING,
        &format!("{facts}, 0, {}", i64::MAX),
    )
    .await?;
    let first = explain_prepared(
        conn,
        "factlog_first_positions (uuid[])",
        FIRST_POSITIONS,
        &facts,
    )
    .await?;
    Ok(vec![spanning, first])
}

/// The positions after `after` (up to `upto`) at which a claim took a new
/// version, each with the claim's fact, in position order
/// (`claim_versions_from_position` serves it).
pub async fn claim_versions_after(
    pool: &PgPool,
    after: i64,
    upto: i64,
    limit: i64,
) -> Result<Vec<(i64, Uuid)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT from_position, fact_id FROM claim_versions \
         WHERE from_position > $1 AND from_position <= $2 ORDER BY from_position, fact_id LIMIT $3",
    )
    .bind(after)
    .bind(upto)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn fact_exists(pool: &PgPool, id: Uuid) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM facts_view WHERE fact_id = $1)")
            .bind(id)
            .fetch_one(pool)
            .await?,
    )
}

/// One event of a fact's history.
pub type HistoryRow = (i64, DateTime<Utc>, String, String, Uuid, Value);

/// [`fact_history`]'s statement: `$1` the fact, `$2` the position after
/// which the page starts, `$3` the page size.
///
/// Each of the fact's claims (`claim_versions_fact`) reads at most a page
/// of its own stream's events through the log's `(stream, version)` index,
/// and the merged candidates are cut to one page by position: a page costs
/// the fact's claims and the page, never the log. (A claim's versions grow
/// with its positions, so its first events by version after `$2` are its
/// first by position.) Written as a join of the claims with the log ordered
/// by position, PostgreSQL walked the log's primary key from `$2` and
/// filtered every event against the fact's claims: 8.8 s at 1M events.
/// The positions are compared as `position + 0` so that the log's primary
/// key cannot serve them: on a log without statistics yet (a fresh import,
/// before autovacuum's first ANALYZE), the generic plan otherwise ANDed a
/// bitmap of every position after `$2` with each claim's stream (2.8 s at
/// 1M events instead of 1 ms).
const FACT_HISTORY: &str = concat!(
    "SELECT h.*, s.secrets FROM (SELECT e.position, e.recorded_at, e.actor, e.type, v.claim_id, e.data \
     FROM claim_versions v \
     CROSS JOIN LATERAL ( \
         SELECT e.position, e.recorded_at, e.actor, e.type, e.data FROM events e \
         WHERE e.stream = '",
    stream_prefix!(),
    "' || v.claim_id::text AND e.position + 0 > $2 \
           AND e.position + 0 <= (SELECT position FROM projection_checkpoints WHERE name = 'facts') \
         ORDER BY e.version LIMIT $3) e \
     WHERE v.fact_id = $1 AND v.recorded_to IS NULL \
     ORDER BY e.position LIMIT $3) h \
     LEFT JOIN LATERAL (SELECT secrets FROM event_secrets \
         WHERE event_secrets.position = h.position LIMIT 1) s ON true ORDER BY h.position"
);

/// The events of fact `id` after position `after`, oldest first: the events
/// of its claims' streams (a claim never changes fact), as far as the facts
/// projection has applied the log, so that history and documents agree.
pub async fn fact_history(
    pool: &PgPool,
    id: Uuid,
    after: i64,
    limit: i64,
) -> Result<Vec<HistoryRow>, StoreError> {
    type Sealed = (
        i64,
        DateTime<Utc>,
        String,
        String,
        Uuid,
        Value,
        Option<Value>,
    );
    let rows: Vec<Sealed> = sqlx::query_as(FACT_HISTORY)
        .bind(id)
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(position, at, actor, kind, claim, mut data, secrets)| {
            if let Some(secrets) = &secrets {
                crate::store::seal::open(&mut data, secrets);
            }
            (position, at, actor, kind, claim, data)
        })
        .collect())
}

/// The generic plan (the one a pooled connection caches) of
/// [`fact_history`]'s statement, for the test that keeps it off the log's
/// primary key.
#[doc(hidden)]
pub async fn explain_fact_history(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
    after: i64,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    explain_prepared(
        conn,
        "factlog_fact_history (uuid, bigint, bigint)",
        FACT_HISTORY,
        &format!("'{id}', {after}, {limit}"),
    )
    .await
}

macro_rules! claims_changed {
    ($prefix:literal) => {
        concat!(
            $prefix,
            "SELECT claim_id, recorded_from, state::text FROM claim_versions WHERE ",
            open_versions!(),
            " AND (recorded_from, claim_id) > ($1, $2) ORDER BY recorded_from, claim_id LIMIT $3"
        )
    };
}

/// Claims whose current state was recorded after `(at, claim)`, in that
/// order, each with the time its state was recorded and the state's JSON
/// text (the ClaimReview feed; `claim_versions_open_recorded` serves it).
pub async fn claims_changed_after(
    pool: &PgPool,
    at: DateTime<Utc>,
    claim: Uuid,
    limit: i64,
) -> Result<Vec<(Uuid, DateTime<Utc>, String)>, StoreError> {
    Ok(sqlx::query_as(claims_changed!(""))
        .bind(at)
        .bind(claim)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

/// The plan of [`claims_changed_after`]' statement on `conn`.
#[doc(hidden)]
pub async fn explain_claims_changed_after(
    conn: &mut sqlx::PgConnection,
    at: DateTime<Utc>,
    claim: Uuid,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(claims_changed!("EXPLAIN "))
        .bind(at)
        .bind(claim)
        .bind(limit)
        .fetch_all(conn)
        .await?)
}

/// The stored states (JSON text) of a story's claims, in assertion order.
pub async fn claims_of_story(pool: &PgPool, story_id: Uuid) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(concat!(
        "SELECT state::text FROM claim_versions WHERE story_id = $1 AND ",
        open_versions!(),
        " ORDER BY claim_id"
    ))
    .bind(story_id)
    .fetch_all(pool)
    .await?)
}
