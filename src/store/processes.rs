//! The API processes sharing the database, for limits that must hold
//! across all of them (the per-token rate limit).

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use super::StoreError;

/// A process not seen for this long is gone (it stopped, or lost the
/// database): the others take back its share.
pub const GONE_AFTER: Duration = Duration::from_secs(3);

/// Marks process `id` as alive now and returns how many processes are
/// alive, itself included. Processes gone long ago are swept on the way.
pub async fn heartbeat(pool: &PgPool, id: Uuid) -> Result<i64, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO api_processes (id, seen_at) VALUES ($1, now()) \
         ON CONFLICT (id) DO UPDATE SET seen_at = now()",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM api_processes WHERE seen_at < now() - interval '1 hour'")
        .execute(&mut *tx)
        .await?;
    let alive: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_processes WHERE seen_at > now() - make_interval(secs => $1)",
    )
    .bind(GONE_AFTER.as_secs_f64())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(alive.max(1))
}

/// Forgets process `id` (a clean shutdown): the others need not wait
/// [`GONE_AFTER`] to take back its share.
pub async fn leave(pool: &PgPool, id: Uuid) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM api_processes WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}
