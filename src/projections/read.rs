//! Queries over the projection tables (the API's reads go through `service`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::store::StoreError;

/// Filters of `GET /v1/claims`.
#[derive(Debug, Clone, Default)]
pub struct ClaimFilter {
    pub status: Option<String>,
    pub story_id: Option<Uuid>,
    pub asserted_by: Option<String>,
}

/// Claims in id order (UUID v7: assertion order) after `cursor`.
pub async fn claims(
    pool: &PgPool,
    f: &ClaimFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<(Uuid, Value)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT claim_id, view FROM claims_view \
         WHERE ($1::text IS NULL OR status = $1) \
           AND ($2::uuid IS NULL OR story_id = $2) \
           AND ($3::text IS NULL OR asserted_by = $3) \
           AND ($4::uuid IS NULL OR claim_id > $4) \
         ORDER BY claim_id LIMIT $5",
    )
    .bind(&f.status)
    .bind(f.story_id)
    .bind(&f.asserted_by)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Filters of `GET /v1/facts` (subject and property already normalized).
#[derive(Debug, Clone, Default)]
pub struct FactFilter {
    pub subject_key: Option<String>,
    pub property_key: Option<String>,
    pub status: Option<String>,
}

pub async fn facts(
    pool: &PgPool,
    f: &FactFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<(Uuid, Value)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT fact_id, doc FROM facts_view \
         WHERE ($1::text IS NULL OR subject_key = $1) \
           AND ($2::text IS NULL OR property_key = $2) \
           AND ($3::text IS NULL OR status = $3) \
           AND ($4::uuid IS NULL OR fact_id > $4) \
         ORDER BY fact_id LIMIT $5",
    )
    .bind(&f.subject_key)
    .bind(&f.property_key)
    .bind(&f.status)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The fact's current document.
pub async fn fact(pool: &PgPool, id: Uuid) -> Result<Option<Value>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT doc FROM facts_view WHERE fact_id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await?,
    )
}

/// The states of a fact's claims as the system knew them at `as_of`.
pub async fn claim_states_at(
    pool: &PgPool,
    fact_id: Uuid,
    as_of: DateTime<Utc>,
) -> Result<Vec<Value>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT state FROM claim_versions WHERE fact_id = $1 AND recorded_from <= $2 \
         AND (recorded_to IS NULL OR recorded_to > $2) ORDER BY claim_id",
    )
    .bind(fact_id)
    .bind(as_of)
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

pub async fn fact_history(
    pool: &PgPool,
    id: Uuid,
    after: i64,
    limit: i64,
) -> Result<Vec<HistoryRow>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT e.position, e.recorded_at, e.actor, e.type, h.claim_id, e.data \
         FROM fact_events h JOIN events e ON e.position = h.position \
         WHERE h.fact_id = $1 AND h.position > $2 ORDER BY h.position LIMIT $3",
    )
    .bind(id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The views of a story's claims, in assertion order.
pub async fn claims_of_story(pool: &PgPool, story_id: Uuid) -> Result<Vec<Value>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT view FROM claims_view WHERE story_id = $1 ORDER BY claim_id")
            .bind(story_id)
            .fetch_all(pool)
            .await?,
    )
}
