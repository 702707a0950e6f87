//! `factlog rebuild`: builds a projection afresh from the whole log into
//! shadow tables, then swaps them in atomically.
//!
//! The shadow tables live in a schema of their own with the same table names,
//! and the projection code names its tables unqualified, so pointing
//! `search_path` at the shadow schema is all it takes to build there. Reads
//! keep using the live tables until the swap. The swap transaction takes the
//! projection's ownership lock (waiting for a live worker's current batch),
//! catches up to the head under it, and replaces the tables and the
//! checkpoint in one commit. That commit also bumps the projection's
//! generation, which tells every API process to drop its cached documents.

use std::time::Instant;

use sqlx::{Connection, PgConnection, PgPool};

use super::runner::lock_key;
use super::{Mode, Projection, ProjectionError};
use crate::store::{StoreError, read_all_in};

/// Events per rebuild transaction.
const BATCH: i64 = 5_000;

#[derive(Debug, Clone, PartialEq)]
pub struct RebuildReport {
    pub projection: &'static str,
    pub events: u64,
    pub position: i64,
    pub seconds: f64,
}

fn shadow_schema(p: Projection) -> String {
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
    p: Projection,
    schema: &str,
    mut from: i64,
    progress: &mut impl FnMut(u64),
) -> Result<(i64, u64), ProjectionError> {
    let mut done = 0u64;
    let mut batches = 0u64;
    loop {
        // Fresh tables have no statistics, and plans made without them scan
        // whole tables; refresh them as the shadows grow (1, 2, 4, 8 … batches).
        batches += 1;
        if batches.is_power_of_two() {
            for t in p.tables() {
                exec(conn, format!("ANALYZE {schema}.{t}")).await?;
            }
        }
        let mut tx = conn.begin().await.map_err(StoreError::from)?;
        exec(&mut tx, format!("SET LOCAL search_path = {schema}, public")).await?;
        let events = read_all_in(&mut tx, from, BATCH).await?;
        let Some(last) = events.last().map(|e| e.position) else {
            tx.commit().await.map_err(StoreError::from)?;
            return Ok((from, done));
        };
        p.apply(&mut tx, &events, Mode::Rebuild).await?;
        tx.commit().await.map_err(StoreError::from)?;
        done += events.len() as u64;
        from = last;
        progress(done);
    }
}

pub async fn rebuild(
    pool: &PgPool,
    p: Projection,
    mut progress: impl FnMut(u64),
) -> Result<RebuildReport, ProjectionError> {
    let started = Instant::now();
    let schema = shadow_schema(p);
    let mut conn = pool.acquire().await.map_err(StoreError::from)?;
    // A rebuild that died half-way left its shadow behind: start clean.
    exec(&mut conn, format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await?;
    exec(&mut conn, format!("CREATE SCHEMA {schema}")).await?;
    for t in p.tables() {
        exec(
            &mut conn,
            format!("CREATE TABLE {schema}.{t} (LIKE public.{t} INCLUDING ALL)"),
        )
        .await?;
    }

    // The bulk of the work, beside the live projection.
    let (position, mut events) = catch_up(&mut conn, p, &schema, 0, &mut progress).await?;

    // The swap: under the ownership lock, finish the tail and replace.
    let mut tx = conn.begin().await.map_err(StoreError::from)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key(p))
        .execute(&mut *tx)
        .await?;
    let (position, tail) = catch_up(&mut tx, p, &schema, position, &mut progress).await?;
    events += tail;
    {
        let mut fin = tx.begin().await.map_err(StoreError::from)?;
        exec(
            &mut fin,
            format!("SET LOCAL search_path = {schema}, public"),
        )
        .await?;
        p.finish_rebuild(&mut fin).await?;
        fin.commit().await.map_err(StoreError::from)?;
    }
    for t in p.tables() {
        exec(&mut tx, format!("DROP TABLE public.{t}")).await?;
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
    Ok(RebuildReport {
        projection: p.name(),
        events,
        position,
        seconds: started.elapsed().as_secs_f64(),
    })
}
