//! Indexed look-ups into the log that writes need (each backed by a partial
//! index in migrations/0002).

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
