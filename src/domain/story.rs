//! Stories: the published pieces claims come from. A story is registered
//! once; its registration is its whole state.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::claim::SCHEMA;

pub fn stream_name(id: Uuid) -> String {
    format!("story-{id}")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoryRegistered {
    pub schema: u32,
    pub story_id: Uuid,
    pub title: String,
    pub publisher: String,
    pub published_at: DateTime<Utc>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
}

pub const STORY_REGISTERED: &str = "StoryRegistered";

#[derive(Debug, Clone, PartialEq)]
pub struct Story {
    pub registered: StoryRegistered,
    pub registered_by: String,
    pub registered_at: DateTime<Utc>,
    pub version: u64,
    /// What an erasure removed (its body), if one did.
    pub erased: Option<super::erasable::ErasedMark>,
}

impl StoryRegistered {
    pub fn new(
        story_id: Uuid,
        title: String,
        publisher: String,
        published_at: DateTime<Utc>,
        url: Option<String>,
        body: Option<String>,
    ) -> Self {
        StoryRegistered {
            schema: SCHEMA,
            story_id,
            title,
            publisher,
            published_at,
            url,
            body,
        }
    }
}
