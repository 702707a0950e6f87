//! Checkpoints: how far each projection has applied the log.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub name: String,
    pub position: i64,
    pub updated_at: DateTime<Utc>,
    /// Set while the projection is stuck on an event it cannot apply.
    pub failed_position: Option<i64>,
    pub last_error: Option<String>,
    /// Record time of the oldest event not yet applied (for lag in seconds).
    pub oldest_pending_at: Option<DateTime<Utc>>,
}

type Row = (
    String,
    i64,
    DateTime<Utc>,
    Option<i64>,
    Option<String>,
    Option<DateTime<Utc>>,
);

/// The checkpoints of the projections there are ([`super::ALL`]), by name.
pub async fn checkpoints(pool: &PgPool) -> Result<Vec<Checkpoint>, StoreError> {
    let names: Vec<&str> = super::ALL.iter().map(|p| p.name()).collect();
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT c.name, c.position, c.updated_at, c.failed_position, c.last_error, \
                (SELECT e.recorded_at FROM events e WHERE e.position = c.position + 1) \
         FROM projection_checkpoints c WHERE c.name = ANY($1) ORDER BY c.name",
    )
    .bind(names)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(name, position, updated_at, failed_position, last_error, oldest_pending_at)| {
                Checkpoint {
                    name,
                    position,
                    updated_at,
                    failed_position,
                    last_error,
                    oldest_pending_at,
                }
            },
        )
        .collect())
}

/// The lowest checkpoint among `names` (what a read over them has seen).
pub async fn lowest(pool: &PgPool, names: &[&str]) -> Result<i64, StoreError> {
    let p: Option<i64> =
        sqlx::query_scalar("SELECT min(position) FROM projection_checkpoints WHERE name = ANY($1)")
            .bind(names)
            .fetch_one(pool)
            .await?;
    Ok(p.unwrap_or(0))
}

/// The checkpoint's position and its generation (bumped by every rebuild
/// swap).
pub(crate) async fn read(
    db: impl sqlx::PgExecutor<'_>,
    name: &str,
) -> Result<(i64, i64), StoreError> {
    Ok(
        sqlx::query_as("SELECT position, generation FROM projection_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_one(db)
            .await?,
    )
}

/// Moves the checkpoint from `from` to `to`; false (and nothing changed) when
/// someone else moved it meanwhile, which makes a double apply impossible
/// even if two owners ever ran at once.
pub(crate) async fn advance(
    conn: &mut PgConnection,
    name: &str,
    from: i64,
    to: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE projection_checkpoints \
         SET position = $3, updated_at = now(), failed_position = NULL, last_error = NULL, failed_at = NULL \
         WHERE name = $1 AND position = $2",
    )
    .bind(name)
    .bind(from)
    .bind(to)
    .execute(&mut *conn)
    .await?;
    sqlx::query("SELECT pg_notify('factlog_checkpoints', $1)")
        .bind(format!("{name}:{to}"))
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn record_failure(
    pool: &PgPool,
    name: &str,
    position: i64,
    error: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE projection_checkpoints SET failed_position = $2, last_error = $3, failed_at = now() \
         WHERE name = $1",
    )
    .bind(name)
    .bind(position)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}
