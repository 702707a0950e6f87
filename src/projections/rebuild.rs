//! `factlog rebuild`: builds projections afresh from the whole log into
//! shadow tables, then swaps them in atomically.
//!
//! The shadow tables live in a schema of their own per projection, with the
//! same table names. The bulk of the log goes through each projection's own
//! bulk pass ([`Projection::rebuild_bulk`](super::Projection::rebuild_bulk);
//! the facts projection's is [`super::bulk`]), up to the same head for all;
//! a pass that leaves a table empty though the log holds events its
//! projection applies fails the rebuild. The projection code names its tables
//! unqualified, so pointing `search_path` at the shadow schema is all it takes
//! to apply what was appended meanwhile through the live path. Reads keep
//! using the live tables until the swap. The swap transaction takes the
//! projection's ownership lock (waiting for a live worker's current batch),
//! catches up to the head under it, and replaces the tables and the
//! checkpoint in one commit. That commit also bumps the projection's
//! generation, which tells every API process to drop its cached documents.

use std::time::Instant;

use sqlx::{Connection, PgConnection, PgPool};

use super::{AnyProjection, BulkReport, ProjectionError, Shadow};
use crate::store::{StoreError, read_head};

pub use super::bulk::BulkTimings;

/// Events per catch-up transaction (after the bulk pass).
const BATCH: i64 = 5_000;

#[derive(Debug, Clone, PartialEq)]
pub struct RebuildReport {
    pub projection: &'static str,
    /// Events applied: the bulk pass's and the catch-up's.
    pub events: u64,
    pub position: i64,
    /// From the start of the rebuild to this projection's swap.
    pub seconds: f64,
    /// The projection's bulk pass.
    pub bulk: BulkTimings,
    /// Applying what was appended during the bulk pass, then the swap.
    pub catch_up_seconds: f64,
}

/// How a rebuild runs; the defaults are what `factlog rebuild` does.
#[derive(Debug, Clone, Default)]
pub struct RebuildOptions {
    /// Stop the bulk pass at this position and apply the rest through the
    /// live path, as if it had been appended during the pass (tests use it
    /// to put the hand-over anywhere, even inside a transaction).
    pub bulk_until: Option<i64>,
}

/// The projections to rebuild, each once, in the order given.
pub type Projections<'a> = &'a [&'static dyn AnyProjection];

fn shadow_schema(p: &dyn AnyProjection) -> String {
    format!("factlog_rebuild_{}", p.name())
}

async fn exec(conn: &mut PgConnection, sql: String) -> Result<(), ProjectionError> {
    // Identifiers here come from the fixed projection registry, never from input.
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Applies every event after `from` into the shadow tables; returns the last
/// position and the count. Each batch is its own transaction, or a savepoint
/// when `conn` is already inside the swap transaction.
async fn catch_up(
    conn: &mut PgConnection,
    p: &dyn AnyProjection,
    schema: &str,
    mut from: i64,
) -> Result<(i64, u64), ProjectionError> {
    let mut done = 0u64;
    loop {
        let mut tx = conn.begin().await.map_err(StoreError::from)?;
        exec(&mut tx, format!("SET LOCAL search_path = {schema}, public")).await?;
        // Shadow tables are new to every worker: nothing is known there.
        let Some((last, read)) = p.apply_next(&mut tx, from, BATCH).await? else {
            tx.commit().await.map_err(StoreError::from)?;
            return Ok((from, done));
        };
        tx.commit().await.map_err(StoreError::from)?;
        done += read as u64;
        from = last;
    }
}

/// Rebuilds one projection.
pub async fn rebuild(
    pool: &PgPool,
    p: &'static dyn AnyProjection,
    progress: impl FnMut(u64) + Send,
) -> Result<RebuildReport, ProjectionError> {
    let reports = rebuild_with(pool, &[p], RebuildOptions::default(), progress).await?;
    reports
        .into_iter()
        .next()
        .ok_or_else(|| ProjectionError::Stage("no projection was rebuilt".into()))
}

/// Rebuilds several projections up to the same head.
pub async fn rebuild_many(
    pool: &PgPool,
    projections: Projections<'_>,
    progress: impl FnMut(u64) + Send,
) -> Result<Vec<RebuildReport>, ProjectionError> {
    rebuild_with(pool, projections, RebuildOptions::default(), progress).await
}

/// [`rebuild_many`] with options; `progress` is told the position reached.
pub async fn rebuild_with(
    pool: &PgPool,
    projections: Projections<'_>,
    options: RebuildOptions,
    mut progress: impl FnMut(u64) + Send,
) -> Result<Vec<RebuildReport>, ProjectionError> {
    let started = Instant::now();
    let mut list: Vec<&'static dyn AnyProjection> = Vec::new();
    for &p in projections {
        if !list.iter().any(|q| q.name() == p.name()) {
            list.push(p);
        }
    }
    let mut conn = pool.acquire().await.map_err(StoreError::from)?;
    for &p in &list {
        let schema = shadow_schema(p);
        // A rebuild that died half-way left its shadow behind: start clean.
        exec(&mut conn, format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await?;
        exec(&mut conn, format!("CREATE SCHEMA {schema}")).await?;
        for t in p.tables() {
            // LIKE copies columns, storage and compression but not the
            // table's own options (e.g. `toast_tuple_target`): those are
            // carried over by hand.
            let options: Vec<String> = sqlx::query_scalar(
                "SELECT unnest(reloptions) FROM pg_class \
                 WHERE oid = format('public.%I', $1::text)::regclass",
            )
            .bind(t)
            .fetch_all(&mut *conn)
            .await?;
            let mut with: Vec<String> = options
                .into_iter()
                .filter(|o| !o.starts_with("autovacuum_enabled="))
                .collect();
            // Indexes come after the load (see `bulk`); autovacuum stays
            // away until the swap (the load leaves it nothing to do, and
            // the rebuild analyzes the tables itself).
            with.extend([
                "autovacuum_enabled = false".to_owned(),
                "toast.autovacuum_enabled = false".to_owned(),
            ]);
            exec(
                &mut conn,
                format!(
                    "CREATE TABLE {schema}.{t} (LIKE public.{t} INCLUDING ALL EXCLUDING INDEXES) \
                     WITH ({})",
                    with.join(", ")
                ),
            )
            .await?;
        }
    }

    // The bulk of the work, beside the live projections: the log up to its
    // head now, each projection in one pass of its own.
    let head = read_head(pool).await?.position;
    let upto = options.bulk_until.map_or(head, |u| u.clamp(0, head));
    let mut bulks = Vec::with_capacity(list.len());
    for &p in &list {
        let schema = shadow_schema(p);
        let shadow = Shadow {
            schema: &schema,
            connect: &pool.connect_options(),
        };
        let bulk = p.rebuild_bulk(&shadow, upto, &mut progress).await?;
        check_bulk(&mut conn, p, &schema, upto, &bulk).await?;
        bulks.push(bulk);
    }

    let mut reports = Vec::with_capacity(list.len());
    for (p, loaded) in list.into_iter().zip(bulks) {
        let t = Instant::now();
        let schema = shadow_schema(p);
        // What was appended during the pass, outside the lock.
        let (position, mut events) = catch_up(&mut conn, p, &schema, loaded.position).await?;
        progress(position.max(0) as u64);
        let (position, tail) = swap(&mut conn, p, &schema, position).await?;
        events += tail + loaded.position.max(0) as u64;
        progress(position.max(0) as u64);
        reports.push(RebuildReport {
            projection: p.name(),
            events,
            position,
            seconds: started.elapsed().as_secs_f64(),
            bulk: loaded.timings.clone(),
            catch_up_seconds: t.elapsed().as_secs_f64(),
        });
    }
    Ok(reports)
}

/// Refuses a bulk pass that stopped short of `upto`, or left one of its
/// projection's tables empty, while the log up to `upto` holds events the
/// projection applies: swapped in, such tables would silently lose the
/// history (the live path only catches up from where the pass stopped).
async fn check_bulk(
    conn: &mut PgConnection,
    p: &dyn AnyProjection,
    schema: &str,
    upto: i64,
    bulk: &BulkReport,
) -> Result<(), ProjectionError> {
    let mut hollow = Vec::new();
    if bulk.position != upto {
        hollow.push(format!("stopped at {} rather than {upto}", bulk.position));
    }
    for t in p.tables() {
        // Identifiers from the fixed projection registry, never from input.
        let filled: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM {schema}.{t})"
        )))
        .fetch_one(&mut *conn)
        .await?;
        if !filled {
            hollow.push(format!("left {t} empty"));
        }
    }
    if hollow.is_empty() {
        return Ok(());
    }
    match p.first_applied(conn, 0, upto).await? {
        // Nothing to apply: empty tables are the right ones.
        None => Ok(()),
        Some(first) => Err(ProjectionError::HollowBulk {
            projection: p.name(),
            what: hollow.join(" and "),
            upto,
            first,
        }),
    }
}

/// Under the ownership lock: finish the tail, replace the live tables with
/// the shadows, set the checkpoint, all in one commit. Returns the position
/// and the events applied.
async fn swap(
    conn: &mut PgConnection,
    p: &dyn AnyProjection,
    schema: &str,
    from: i64,
) -> Result<(i64, u64), ProjectionError> {
    let mut tx = conn.begin().await.map_err(StoreError::from)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(p.lock_key())
        .execute(&mut *tx)
        .await?;
    let (position, tail) = catch_up(&mut tx, p, schema, from).await?;
    for t in p.tables() {
        exec(&mut tx, format!("DROP TABLE public.{t}")).await?;
        exec(
            &mut tx,
            format!(
                "ALTER TABLE {schema}.{t} RESET (autovacuum_enabled, toast.autovacuum_enabled)"
            ),
        )
        .await?;
        exec(
            &mut tx,
            format!("ALTER TABLE {schema}.{t} SET SCHEMA public"),
        )
        .await?;
    }
    exec(&mut tx, format!("DROP SCHEMA {schema}")).await?;
    let app_role: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'factlog_app')")
            .fetch_one(&mut *tx)
            .await?;
    if app_role {
        exec(
            &mut tx,
            format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO factlog_app",
                p.tables().join(", ")
            ),
        )
        .await?;
    }
    sqlx::query(
        "UPDATE projection_checkpoints SET position = $2, updated_at = now(), \
         failed_position = NULL, last_error = NULL, failed_at = NULL, \
         generation = generation + 1 WHERE name = $1",
    )
    .bind(p.name())
    .bind(position)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT pg_notify('factlog_checkpoints', $1)")
        .bind(format!("{}:{position}", p.name()))
        .execute(&mut *tx)
        .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok((position, tail))
}
