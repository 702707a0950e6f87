//! The bulk pass of a rebuild: the log read once, in position order, claim
//! states folded in memory with the live projections' own code, and the
//! resulting rows streamed into the shadow tables with `COPY`.
//!
//! Three stages overlap: a reader task streams the claim events and decodes
//! them; the fold (the caller's task) evolves the claims and writes the rows
//! that are final as soon as they are (each version once the claim's next
//! one begins); a writer task per table loads its rows over a
//! connection of its own. The rows that depend on the end state (claims,
//! their state copies, their open versions, the fact documents) are written
//! once, after the last event. Then every table gets its indexes, each built
//! in one go over the loaded rows (rather than row by row) on a connection of
//! its own, and its statistics.
//!
//! Memory is the claims' current states (one per claim ever asserted, with
//! their positions) plus, for the facts, each fact's list of claims; events
//! and rows only pass through bounded channels.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::copy::CopyWriter;
use super::facts::{self, FactRow, PendingEnd, VersionRow, same_version};
use super::{LogEvent, ProjectionError, evolve_logged};
use crate::domain::claim::{Claim, stream_prefix};
use crate::domain::fact::Summary;
use crate::store::{LogRow, StoreError, log_row_columns};

/// Events per message from the reader to the fold.
const READ_CHUNK: usize = 1_024;
/// Messages in flight from the reader to the fold.
const READ_AHEAD: usize = 8;

/// Which projections' tables the pass fills, by shadow schema.
pub(super) struct Targets {
    pub facts: Option<String>,
}

/// Where the time went, in seconds of each stage (stages overlap).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BulkTimings {
    /// The whole pass, from the first read to the last index.
    pub total: f64,
    /// The reader: waiting for the server's rows and decoding events.
    pub reading: f64,
    /// The fold waiting for the reader (the reader was the slower side).
    pub fold_waiting_for_reader: f64,
    /// The fold evolving claims and encoding the rows along the log.
    pub folding: f64,
    /// After the last event: encoding the claims and facts (end states).
    pub laying_out: f64,
    /// The fold waiting for the table writers (the server was the slower side).
    pub fold_waiting_for_writers: f64,
    /// From the end of the fold until every `COPY` had finished.
    pub loading_tail: f64,
    /// After that, until every index and statistic was built.
    pub indexing: f64,
}

/// What the pass did.
pub(super) struct Bulk {
    /// The last position folded.
    pub position: i64,
    pub claims: u64,
    pub timings: BulkTimings,
}

struct Writers {
    facts_view: Option<CopyWriter>,
    versions: Option<CopyWriter>,
    /// Time spent handing full chunks to the connections (backpressure).
    waiting: f64,
}

impl Writers {
    async fn start(options: &PgConnectOptions, t: &Targets) -> Result<Writers, ProjectionError> {
        let start = |schema: &Option<String>, table: &str, columns: &'static str| {
            let target = schema.as_ref().map(|s| format!("{s}.{table}"));
            async move {
                match target {
                    Some(t) => Ok::<_, ProjectionError>(Some(
                        CopyWriter::start(options, t, columns).await?,
                    )),
                    None => Ok(None),
                }
            }
        };
        Ok(Writers {
            facts_view: start(&t.facts, "facts_view", facts::FACTS_COLUMNS).await?,
            versions: start(&t.facts, "claim_versions", facts::VERSIONS_COLUMNS).await?,
            waiting: 0.0,
        })
    }
}

/// Hands a writer's full chunk to its connection, timing the wait.
async fn flush(w: &mut CopyWriter, waiting: &mut f64) -> Result<(), ProjectionError> {
    let t = Instant::now();
    w.flush_if_full().await?;
    *waiting += t.elapsed().as_secs_f64();
    Ok(())
}

/// A claim as the fold holds it.
struct Folded {
    id: Uuid,
    fact_id: Uuid,
    /// Always present between events (taken while the claim evolves).
    state: Option<Claim>,
    /// Where the claim's current (open) version begins, and its record time.
    open_position: i64,
    open_at: DateTime<Utc>,
}

/// Reads claim events after `from` up to `upto` in position order on a
/// connection of its own, decoded, in chunks; emptied chunks come back
/// through `spare`.
async fn read_log(
    mut conn: PgConnection,
    from: i64,
    upto: i64,
    tx: mpsc::Sender<Vec<LogEvent>>,
    mut spare: mpsc::Receiver<Vec<LogEvent>>,
) -> Result<f64, ProjectionError> {
    let started = Instant::now();
    let mut waiting_for_fold = 0.0;
    {
        // Only claim streams feed the projections; the data comes as JSON
        // text and is decoded straight into the event.
        let mut rows = sqlx::query_as::<_, LogRow>(concat!(
            "SELECT ",
            log_row_columns!(),
            " FROM events WHERE position > $1 AND position <= $2 AND stream LIKE '",
            stream_prefix!(),
            "%' ORDER BY position"
        ))
        .bind(from)
        .bind(upto)
        .fetch(&mut conn);
        let mut chunk = Vec::with_capacity(READ_CHUNK);
        while let Some(row) = rows.try_next().await? {
            let Some(event) = LogEvent::of(row) else {
                continue;
            };
            chunk.push(event?);
            if chunk.len() == READ_CHUNK {
                let next = spare
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(READ_CHUNK));
                let full = std::mem::replace(&mut chunk, next);
                let t = Instant::now();
                if tx.send(full).await.is_err() {
                    // The fold stopped; its error is the one to report.
                    return Ok(0.0);
                }
                waiting_for_fold += t.elapsed().as_secs_f64();
            }
        }
        if !chunk.is_empty() {
            let _ = tx.send(chunk).await;
        }
    }
    let _ = conn.close().await;
    Ok(started.elapsed().as_secs_f64() - waiting_for_fold)
}

fn stage_failed(what: &str, e: tokio::task::JoinError) -> ProjectionError {
    ProjectionError::Stage(format!("{what} failed: {e}"))
}

/// Folds the log after `from` up to `upto` into the target tables (created
/// empty, without indexes), then builds their indexes and statistics.
pub(super) async fn load(
    options: &PgConnectOptions,
    targets: &Targets,
    from: i64,
    upto: i64,
    progress: &mut impl FnMut(u64),
) -> Result<Bulk, ProjectionError> {
    let started = Instant::now();
    let mut timings = BulkTimings::default();
    let reader_conn = PgConnection::connect_with(options)
        .await
        .map_err(StoreError::from)?;
    let mut w = Writers::start(options, targets).await?;
    let (tx, mut rx) = mpsc::channel::<Vec<LogEvent>>(READ_AHEAD);
    let (spare_tx, spare_rx) = mpsc::channel::<Vec<LogEvent>>(READ_AHEAD);
    let reader = tokio::spawn(read_log(reader_conn, from, upto, tx, spare_rx));

    let facts = targets.facts.is_some();
    let mut claims: Vec<Folded> = Vec::new();
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    // Facts in order of first appearance, and each one's claims.
    let mut fact_order: Vec<Uuid> = Vec::new();
    let mut members: HashMap<Uuid, Vec<usize>> = HashMap::new();
    // Versions closed during the current record time, written with their
    // ends left open: the claim's next version may still grow (by more
    // events of the same transaction) until the record time changes.
    let mut closing: Vec<(usize, PendingEnd)> = Vec::new();
    let mut run_at: Option<DateTime<Utc>> = None;
    let mut position = from;
    loop {
        let t = Instant::now();
        let Some(mut chunk) = rx.recv().await else {
            break;
        };
        timings.fold_waiting_for_reader += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let waited = w.waiting;
        for e in chunk.drain(..) {
            if facts && run_at != Some(e.recorded_at) {
                if run_at.is_some_and(|r| e.recorded_at < r) {
                    return Err(ProjectionError::Unappliable {
                        position: e.position,
                        reason: "its record time is earlier than the event's before it".into(),
                    });
                }
                // Every event of the previous record time has been folded:
                // the versions it closed now know where their successors begin.
                if let Some(v) = &mut w.versions {
                    for (i, end) in closing.drain(..) {
                        end.fill(v.rows(), claims[i].open_position, claims[i].open_at);
                    }
                    flush(v, &mut w.waiting).await?;
                }
                run_at = Some(e.recorded_at);
            }
            match index.get(&e.claim_id) {
                None => {
                    let state = evolve_logged(None, &e)?;
                    let i = claims.len();
                    let fact_id = state.asserted.fact_id;
                    if facts {
                        let list = members.entry(fact_id).or_default();
                        if list.is_empty() {
                            fact_order.push(fact_id);
                        }
                        list.push(i);
                    }
                    index.insert(e.claim_id, i);
                    claims.push(Folded {
                        id: e.claim_id,
                        fact_id,
                        state: Some(state),
                        open_position: e.position,
                        open_at: e.recorded_at,
                    });
                }
                Some(&i) => {
                    let f = &mut claims[i];
                    let prior = f.state.take();
                    if let (Some(v), Some(p)) = (&mut w.versions, &prior)
                        && !same_version(f.open_at, e.recorded_at)
                    {
                        // This event's transaction begins the claim's next
                        // version; the open one ends with the state so far.
                        let row = VersionRow {
                            claim_id: f.id,
                            fact_id: f.fact_id,
                            from_position: f.open_position,
                            recorded_from: f.open_at,
                            end: None,
                            state: p,
                        };
                        closing.push((i, row.copy_ending_later(v.rows())?));
                        f.open_at = e.recorded_at;
                    }
                    f.open_position = e.position;
                    f.state = Some(evolve_logged(prior, &e)?);
                }
            }
            position = e.position;
        }
        let _ = spare_tx.try_send(chunk);
        timings.folding += t.elapsed().as_secs_f64() - (w.waiting - waited);
        progress(position.max(0) as u64);
    }
    // The channel also closes when the reader fails: only a reader that
    // read everything lets the end states be written.
    timings.reading = reader
        .await
        .map_err(|e| stage_failed("the log reader", e))??;
    let position = upto.max(position);
    if let Some(v) = &mut w.versions {
        for (i, end) in closing.drain(..) {
            end.fill(v.rows(), claims[i].open_position, claims[i].open_at);
        }
    }
    // The end states: every claim once, and every fact laid out once.
    let t = Instant::now();
    let waited = w.waiting;
    for f in &claims {
        let Some(state) = &f.state else { continue };
        if let Some(v) = &mut w.versions {
            let open = VersionRow {
                claim_id: f.id,
                fact_id: f.fact_id,
                from_position: f.open_position,
                recorded_from: f.open_at,
                end: None,
                state,
            };
            open.copy(v.rows())?;
            flush(v, &mut w.waiting).await?;
        }
    }
    if let Some(fv) = &mut w.facts_view {
        for fact_id in &fact_order {
            let list = members.get(fact_id).map(Vec::as_slice).unwrap_or_default();
            let states = list.iter().filter_map(|i| claims[*i].state.as_ref());
            if let Some(summary) = Summary::of(states) {
                FactRow::of(*fact_id, summary).copy(fv.rows())?;
                flush(fv, &mut w.waiting).await?;
            }
        }
    }
    timings.laying_out = t.elapsed().as_secs_f64() - (w.waiting - waited);
    timings.fold_waiting_for_writers = w.waiting;
    let claim_count = claims.len() as u64;
    drop((claims, index, members, fact_order));

    // Finish every load and index every table, the tables side by side.
    let t = Instant::now();
    let mut jobs = Vec::new();
    for (writer, schema, table) in [
        (w.facts_view, &targets.facts, "facts_view"),
        (w.versions, &targets.facts, "claim_versions"),
    ] {
        if let (Some(writer), Some(schema)) = (writer, schema) {
            let (options, schema) = (options.clone(), schema.clone());
            jobs.push(tokio::spawn(async move {
                finish_table(&options, writer, &schema, table, t).await
            }));
        }
    }
    let mut loaded = 0.0f64;
    for job in jobs {
        loaded = loaded.max(job.await.map_err(|e| stage_failed("a table load", e))??);
    }
    timings.loading_tail = loaded;
    timings.indexing = t.elapsed().as_secs_f64() - loaded;
    timings.total = started.elapsed().as_secs_f64();
    Ok(Bulk {
        position,
        claims: claim_count,
        timings,
    })
}

/// Ends a table's load and indexes it; returns when (seconds after
/// `started`) its rows were all in.
async fn finish_table(
    options: &PgConnectOptions,
    writer: CopyWriter,
    schema: &str,
    table: &str,
    started: Instant,
) -> Result<f64, ProjectionError> {
    let (conn, _stats) = writer.finish().await?;
    let loaded = started.elapsed().as_secs_f64();
    index_like_live(options, conn, schema, table).await?;
    Ok(loaded)
}

/// Index builds sort in memory, each in one process: the indexes of all
/// tables already build side by side, and parallel workers would only add
/// coordination on top.
const SORT_SETTINGS: &str =
    "SET maintenance_work_mem = '128MB'; SET max_parallel_maintenance_workers = 0";

/// An index of a live table: its definition and name, and the constraint
/// it backs if any (name, kind, definition).
type IndexDef = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Gives a shadow table the indexes and constraints its live table has,
/// under the same names, then its statistics. Each index is built once over
/// the loaded rows (a sort), far cheaper than keeping it up row by row, and
/// on a connection of its own so that a table's indexes build side by side;
/// keys become constraints over their finished indexes.
async fn index_like_live(
    options: &PgConnectOptions,
    mut conn: PgConnection,
    schema: &str,
    table: &str,
) -> Result<(), ProjectionError> {
    let defs: Vec<IndexDef> = sqlx::query_as(
        "SELECT pg_get_indexdef(i.indexrelid), quote_ident(x.relname), \
                    quote_ident(c.conname), c.contype::text, pg_get_constraintdef(c.oid) \
             FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid \
             LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.conrelid = i.indrelid \
                  AND c.contype IN ('p', 'u', 'x') \
             WHERE i.indrelid = ('public.' || quote_ident($1))::regclass \
             ORDER BY i.indisprimary DESC, i.indexrelid",
    )
    .bind(table)
    .fetch_all(&mut conn)
    .await?;
    let live = format!(" ON public.{table} ");
    let shadow = format!(" ON {schema}.{table} ");
    let mut builds = Vec::new();
    let mut after = Vec::new();
    for (indexdef, index, constraint, kind, definition) in defs {
        let build = || {
            if indexdef.matches(&live).count() != 1 {
                return Err(ProjectionError::Stage(format!(
                    "cannot read the index definition {indexdef:?}"
                )));
            }
            Ok(indexdef.replacen(&live, &shadow, 1))
        };
        match (constraint, kind.as_deref(), definition) {
            (None, ..) => builds.push(build()?),
            (Some(name), Some(kind @ ("p" | "u")), Some(def))
                if name == index && !def.contains("DEFERRABLE") =>
            {
                builds.push(build()?);
                let key = if kind == "p" { "PRIMARY KEY" } else { "UNIQUE" };
                after.push(format!(
                    "ALTER TABLE {schema}.{table} ADD CONSTRAINT {name} {key} USING INDEX {name}"
                ));
            }
            (Some(name), _, Some(def)) => {
                after.push(format!(
                    "ALTER TABLE {schema}.{table} ADD CONSTRAINT {name} {def}"
                ));
            }
            (Some(_), _, None) => builds.push(build()?),
        }
    }
    let mut others = Vec::new();
    let mut mine = Vec::new();
    for (n, sql) in builds.into_iter().enumerate() {
        if n == 0 {
            mine.push(sql);
        } else {
            others.push(async move {
                let mut c = PgConnection::connect_with(options)
                    .await
                    .map_err(StoreError::from)?;
                sqlx::raw_sql(SORT_SETTINGS).execute(&mut c).await?;
                run(&mut c, sql).await?;
                let _ = c.close().await;
                Ok::<_, ProjectionError>(())
            });
        }
    }
    let own = async {
        sqlx::raw_sql(SORT_SETTINGS).execute(&mut conn).await?;
        for sql in mine {
            run(&mut conn, sql).await?;
        }
        Ok::<_, ProjectionError>(())
    };
    let (own, others) = tokio::join!(own, futures::future::try_join_all(others));
    own?;
    others?;
    for sql in after {
        run(&mut conn, sql).await?;
    }
    // Statistics once, over the whole table: a full ANALYZE also tells
    // autovacuum that the table needs none after the swap.
    run(&mut conn, format!("ANALYZE {schema}.{table}")).await?;
    let _ = conn.close().await;
    Ok(())
}

async fn run(conn: &mut PgConnection, sql: String) -> Result<(), ProjectionError> {
    // Identifiers here come from the fixed projection registry and the
    // catalog, never from input.
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await?;
    Ok(())
}
