//! Reading the log: one stream by version, or everything by position.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::error::StoreError;
use super::event::RecordedEvent;

/// Pages are bounded by count whatever the caller asks for.
pub const MAX_PAGE: i64 = 10_000;

pub(crate) type Row = (
    i64,
    Uuid,
    String,
    i64,
    String,
    Value,
    Value,
    String,
    DateTime<Utc>,
    Vec<u8>,
);

/// The event columns in [`Row`] order, as a literal for `concat!`.
macro_rules! event_columns {
    () => {
        "position, event_id, stream, version, type, data, metadata, actor, recorded_at, hash"
    };
}
pub(crate) use event_columns;

/// The log with each event's sealed values beside it (migrations/0018),
/// for every reader but the chain's verifier.
macro_rules! open_events {
    () => {
        "events LEFT JOIN event_secrets USING (position)"
    };
}

/// The same for a page of the log: each event's secrets looked up by key.
/// A plain join is planned as a merge join that walks `event_secrets` from
/// its first row to the page, costing what the log before the page costs
/// (the `LIMIT 1` keeps the planner from turning it back into one).
macro_rules! paged_open_events {
    () => {
        "events LEFT JOIN LATERAL (SELECT s.secrets FROM event_secrets s \
         WHERE s.position = events.position LIMIT 1) sec ON true"
    };
}

/// A [`Row`] and the event's secrets, if it has any.
type OpenRow = (
    i64,
    Uuid,
    String,
    i64,
    String,
    Value,
    Value,
    String,
    DateTime<Utc>,
    Vec<u8>,
    Option<Value>,
);

/// An event as readers see it: its leaf computed from the stored (sealed)
/// data, then its values put back.
fn to_event(r: OpenRow) -> RecordedEvent {
    let stored = super::chain::canonical_json(&r.5);
    let leaf = super::leaf::leaf_hash(&super::leaf::LeafFields {
        position: r.0,
        stream: &r.2,
        version: r.3,
        event_type: &r.4,
        recorded_at: r.8,
        actor: &r.7,
        data: &stored,
    });
    let mut data = r.5;
    if let Some(secrets) = &r.10 {
        super::seal::open(&mut data, secrets);
    }
    RecordedEvent {
        position: r.0,
        event_id: r.1,
        stream: r.2,
        version: r.3,
        event_type: r.4,
        data,
        metadata: r.6,
        actor: r.7,
        recorded_at: r.8,
        hash: hex::encode(r.9),
        leaf_hash: hex::encode(leaf),
        salts: super::seal::salts(r.10.as_ref()),
    }
}

fn clamp(limit: i64) -> i64 {
    limit.clamp(1, MAX_PAGE)
}

/// Events of one stream with `version > after_version`, in version order.
pub async fn read_stream(
    pool: &PgPool,
    stream: &str,
    after_version: i64,
    limit: i64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows: Vec<OpenRow> = sqlx::query_as(concat!(
        "SELECT ",
        event_columns!(),
        ", secrets FROM ",
        paged_open_events!(),
        " WHERE stream = $1 AND version > $2 ORDER BY version LIMIT $3"
    ))
    .bind(stream)
    .bind(after_version)
    .bind(clamp(limit))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(to_event).collect())
}

/// [`read_stream_openings`]' statements: `$1` the streams.
const STREAM_OPENINGS: &str = concat!(
    "SELECT ",
    event_columns!(),
    ", secrets FROM ",
    paged_open_events!(),
    " WHERE stream = ANY($1) AND version = 1"
);
const STREAM_VERSIONS: &str =
    "SELECT stream, max(version) FROM events WHERE stream = ANY($1) GROUP BY stream";

/// The plans of [`read_stream_openings`]' two statements (the plan tests
/// read them).
pub async fn explain_read_stream_openings(
    conn: &mut sqlx::PgConnection,
    streams: &[String],
) -> Result<Vec<Vec<String>>, StoreError> {
    let streams = super::explain::array_literal(streams);
    let mut plans = Vec::new();
    for (signature, statement) in [
        ("factlog_stream_openings (text[])", STREAM_OPENINGS),
        ("factlog_stream_versions (text[])", STREAM_VERSIONS),
    ] {
        plans.push(super::explain::explain_prepared(conn, signature, statement, &streams).await?);
    }
    Ok(plans)
}

/// The first event of each of `streams` (those that have one), with the
/// stream's current version: indexed look-ups, two queries whatever the
/// number of streams, for a reader that needs many streams' openings (a
/// fact's stories).
pub async fn read_stream_openings(
    pool: &PgPool,
    streams: &[String],
) -> Result<Vec<(RecordedEvent, i64)>, StoreError> {
    if streams.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<OpenRow> = sqlx::query_as(STREAM_OPENINGS)
        .bind(streams)
        .fetch_all(pool)
        .await?;
    let versions: Vec<(String, i64)> = sqlx::query_as(STREAM_VERSIONS)
        .bind(streams)
        .fetch_all(pool)
        .await?;
    let versions: std::collections::HashMap<String, i64> = versions.into_iter().collect();
    Ok(rows
        .into_iter()
        .map(to_event)
        .map(|e| {
            let version = versions.get(&e.stream).copied().unwrap_or(e.version);
            (e, version)
        })
        .collect())
}

/// A log row as the projections read it: the data as JSON text, for the
/// reader to decode straight into its event type, and neither metadata nor
/// hash, which no projection uses.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LogRow {
    pub position: i64,
    pub stream: String,
    pub version: i64,
    #[sqlx(rename = "type")]
    pub event_type: String,
    pub data: String,
    pub actor: String,
    pub recorded_at: DateTime<Utc>,
    /// The event's sealed values (JSON text), if it has any.
    pub secrets: Option<String>,
}

impl LogRow {
    /// The data with its sealed values put back, as JSON text.
    pub fn open_data(&self) -> Result<std::borrow::Cow<'_, str>, String> {
        match &self.secrets {
            None => Ok(std::borrow::Cow::Borrowed(&self.data)),
            Some(secrets) => {
                super::seal::open_text(&self.data, Some(secrets)).map(std::borrow::Cow::Owned)
            }
        }
    }
}

/// The columns of a [`LogRow`], for queries that read the log that way
/// (from [`open_events`]).
macro_rules! log_row_columns {
    () => {
        "position, stream, version, type, data::text AS data, actor, recorded_at, \
         secrets::text AS secrets"
    };
}
pub(crate) use log_row_columns;
pub(crate) use open_events;

/// [`read_all`] as [`LogRow`]s, inside the caller's transaction (a projection
/// batch reads and applies under one snapshot-consistent owner lock).
pub async fn read_rows_in(
    conn: &mut sqlx::PgConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<LogRow>, StoreError> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        log_row_columns!(),
        " FROM ",
        paged_open_events!(),
        " WHERE position > $1 ORDER BY position LIMIT $2"
    ))
    .bind(after)
    .bind(clamp(limit))
    .fetch_all(conn)
    .await?)
}

/// One stream's events before `before` as [`LogRow`]s, in version order,
/// inside the caller's transaction (the facts projection folds an erased
/// claim again from them).
pub async fn read_stream_rows_in(
    conn: &mut sqlx::PgConnection,
    stream: &str,
    before: i64,
) -> Result<Vec<LogRow>, StoreError> {
    Ok(sqlx::query_as(concat!(
        "SELECT ",
        log_row_columns!(),
        " FROM ",
        paged_open_events!(),
        " WHERE stream = $1 AND position < $2 ORDER BY version"
    ))
    .bind(stream)
    .bind(before)
    .fetch_all(conn)
    .await?)
}

/// Events with `position > after`, in position order. Positions are gapless
/// and become visible in order, so paging by the last position seen never
/// skips an event.
pub async fn read_all(
    pool: &PgPool,
    after: i64,
    limit: i64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows: Vec<OpenRow> = sqlx::query_as(concat!(
        "SELECT ",
        event_columns!(),
        ", secrets FROM ",
        paged_open_events!(),
        " WHERE position > $1 ORDER BY position LIMIT $2"
    ))
    .bind(after)
    .bind(clamp(limit))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(to_event).collect())
}

/// Story registrations, newest first: those with `position < before` (all
/// when `None`), read backwards along `events_stories_by_position`.
pub async fn stories_newest_first(
    pool: &PgPool,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows: Vec<OpenRow> = sqlx::query_as(concat!(
        "SELECT ",
        event_columns!(),
        ", secrets FROM ",
        paged_open_events!(),
        " WHERE type = 'StoryRegistered' AND position < $1 ORDER BY position DESC LIMIT $2"
    ))
    .bind(before.unwrap_or(i64::MAX))
    .bind(clamp(limit))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(to_event).collect())
}

/// The stream's current version (0 when it has no events).
pub async fn stream_version(pool: &PgPool, stream: &str) -> Result<i64, StoreError> {
    let v: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM events WHERE stream = $1")
        .bind(stream)
        .fetch_one(pool)
        .await?;
    Ok(v.unwrap_or(0))
}

/// The last committed position and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub position: i64,
    pub hash: String,
}

pub async fn head(pool: &PgPool) -> Result<Head, StoreError> {
    let (position, hash): (i64, Vec<u8>) = sqlx::query_as("SELECT position, hash FROM event_head")
        .fetch_one(pool)
        .await?;
    Ok(Head {
        position,
        hash: hex::encode(hash),
    })
}

/// Filters of the audit trail.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// The audit trail's statement for the filters given (only those: a
/// catch-all `($1 IS NULL OR …)` loses its index in the generic plan a
/// pooled connection caches). `explain` asks for the plan instead.
///
/// The log's `recorded_at` never decreases as positions grow, so ordering
/// by `(recorded_at, position)` is ordering by position: with a time or an
/// actor filter, the page is read in order from `events_actor_recorded_at`
/// or `events_recorded_at`, starting at the later of `since` and the
/// cursor's own record time (one primary-key look-up), so a deep page
/// does not re-read the pages before it. Ordered by position alone,
/// PostgreSQL walked the primary key and filtered every event by time or
/// actor (66 ms a page at 1M events, growing with the log).
fn audit_query(explain: bool, f: &AuditFilter, after: i64, limit: i64) -> QueryBuilder<Postgres> {
    let mut q = QueryBuilder::new(if explain {
        "EXPLAIN SELECT "
    } else {
        "SELECT "
    });
    q.push(concat!(
        event_columns!(),
        ", secrets FROM ",
        paged_open_events!()
    ))
    .push(" WHERE position > ");
    q.push_bind(after);
    // The page starts just past the later of `since` and the cursor, as a
    // (record time, position) pair: no event after the cursor was recorded
    // before it, so `position > after` is `(recorded_at, position) >
    // (the cursor's time, after)`. Compared as a row, the index seeks
    // straight there; compared by time alone, it walked every event that
    // shares the cursor's time (a whole group commit's) to skip them.
    let lower = |q: &mut QueryBuilder<Postgres>| {
        q.push("(SELECT greatest(coalesce(max(recorded_at), '-infinity'), ")
            .push_bind(f.since)
            .push("::timestamptz) FROM events WHERE position = ")
            .push_bind(after)
            .push("), (SELECT CASE WHEN ")
            .push_bind(f.since)
            .push("::timestamptz > coalesce(max(recorded_at), '-infinity') THEN 0 ELSE ")
            .push_bind(after)
            .push(" END FROM events WHERE position = ")
            .push_bind(after)
            .push(")");
    };
    let order = if let Some(actor) = &f.actor {
        // Row comparisons, which only `events_actor_recorded_at` can range
        // over: with `actor = $v AND recorded_at >= …`, ordering by record
        // time is served by `events_recorded_at` as well, and the planner
        // chose it, reading every event of the window to find a rare
        // actor's few.
        q.push(" AND (actor, recorded_at, position) > (")
            .push_bind(actor.clone());
        q.push(", ");
        lower(&mut q);
        q.push(") AND (actor, recorded_at) < (")
            .push_bind(actor.clone())
            .push(", coalesce(")
            .push_bind(f.until)
            .push("::timestamptz, 'infinity'))");
        " ORDER BY actor, recorded_at, position LIMIT "
    } else if f.since.is_some() || f.until.is_some() {
        q.push(" AND (recorded_at, position) > (");
        lower(&mut q);
        q.push(")");
        if let Some(until) = f.until {
            q.push(" AND recorded_at < ").push_bind(until);
        }
        " ORDER BY recorded_at, position LIMIT "
    } else {
        " ORDER BY position LIMIT "
    };
    q.push(order).push_bind(clamp(limit));
    q
}

/// Events by actor and record time, oldest first, after a position. Served
/// from the log itself through its (actor, recorded_at) and recorded_at
/// indexes: always exact, never behind.
pub async fn audit(
    pool: &PgPool,
    f: &AuditFilter,
    after: i64,
    limit: i64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows: Vec<OpenRow> = audit_query(false, f, after, limit)
        .build_query_as()
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(to_event).collect())
}

/// The plan PostgreSQL chooses on `conn` for [`audit`]'s statement (for
/// the tests that keep the audit trail on its indexes).
#[doc(hidden)]
pub async fn explain_audit(
    conn: &mut sqlx::PgConnection,
    f: &AuditFilter,
    after: i64,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    Ok(audit_query(true, f, after, limit)
        .build_query_scalar()
        .fetch_all(conn)
        .await?)
}
