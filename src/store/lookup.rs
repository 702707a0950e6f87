//! Indexed look-ups into the log that writes need before projections exist
//! for them (each backed by a partial index in migrations/0002).

use sqlx::PgPool;
use uuid::Uuid;

use super::error::StoreError;

/// The story registered with this url, if any.
pub async fn story_by_url(pool: &PgPool, url: &str) -> Result<Option<Uuid>, StoreError> {
    let id: Option<String> = sqlx::query_scalar(
        "SELECT data ->> 'story_id' FROM events \
         WHERE type = 'StoryRegistered' AND data ->> 'url' = $1",
    )
    .bind(url)
    .fetch_optional(pool)
    .await?;
    Ok(id.and_then(|s| s.parse().ok()))
}

/// The ids of the claims asserted from a story, oldest first.
pub async fn claims_of_story(pool: &PgPool, story_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT data ->> 'claim_id' FROM events \
         WHERE type = 'ClaimAsserted' AND data ->> 'story_id' = $1 ORDER BY position",
    )
    .bind(story_id.to_string())
    .fetch_all(pool)
    .await?;
    Ok(ids.into_iter().filter_map(|s| s.parse().ok()).collect())
}
