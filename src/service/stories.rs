use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Effect, ServiceError, Services, WriteContext, WriteOutcome, view};
use crate::domain::erasable::ErasedMark;
use crate::domain::error::FieldError;
use crate::domain::story::{self, STORY_REGISTERED, Story, StoryRegistered};
use crate::store::{
    AppendOutcome, AppendReceipt, AppendRequest, ExpectedVersion, RecordedEvent, ResponseBuilder,
    StoreError, StreamAppend, lookup,
};

/// A validated `POST /v1/stories` body.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStory {
    pub title: String,
    pub publisher: String,
    pub published_at: DateTime<Utc>,
    pub url: Option<String>,
    pub body: Option<String>,
}

/// Registered stories by id, bounded by the bytes of their text (bodies can
/// be large); when full it simply starts over, a miss costing one query.
#[derive(Default)]
pub(crate) struct StoryCache {
    map: std::collections::HashMap<Uuid, Story>,
    bytes: usize,
    /// Evictions so far (see `load_story`).
    evictions: u64,
}

const STORY_CACHE_BYTES: usize = 64 * 1024 * 1024;

impl StoryCache {
    /// Forgets a story whose body was erased.
    pub(crate) fn evict(&mut self, id: Uuid) {
        self.evictions += 1;
        if let Some(story) = self.map.remove(&id) {
            self.bytes = self.bytes.saturating_sub(Self::size(&story));
        }
    }

    fn size(story: &Story) -> usize {
        let r = &story.registered;
        256 + r.title.len()
            + r.publisher.len()
            + r.url.as_deref().map_or(0, str::len)
            + r.body.as_deref().map_or(0, str::len)
    }

    fn insert(&mut self, id: Uuid, story: Story) {
        let size = Self::size(&story);
        if self.bytes + size > STORY_CACHE_BYTES {
            self.map.clear();
            self.bytes = 0;
        }
        if size <= STORY_CACHE_BYTES && self.map.insert(id, story).is_none() {
            self.bytes += size;
        }
    }
}

/// A story from its stream's first event and the stream's version.
fn story_of(first: &RecordedEvent, version: i64) -> Result<Story, ServiceError> {
    if first.event_type != STORY_REGISTERED {
        return Err(ServiceError::Corrupt(format!(
            "story stream starts with {}",
            first.event_type
        )));
    }
    let registered: StoryRegistered = serde_json::from_value(first.data.clone())
        .map_err(|e| ServiceError::Corrupt(e.to_string()))?;
    Ok(Story {
        registered,
        registered_by: first.actor.clone(),
        registered_at: first.recorded_at,
        version: version.max(1) as u64,
        erased: ErasedMark::of_data(&first.data),
    })
}

/// The unique index that keeps story urls unique (migrations/0002).
const URL_CONSTRAINT: &str = "events_story_url";

impl Services {
    pub async fn load_story(&self, id: Uuid) -> Result<Option<Story>, ServiceError> {
        Ok(self.load_stories(&[id]).await?.remove(&id))
    }

    /// Stories by id, those found: cached ones from the cache, the rest in
    /// two queries whatever their number (a fact's review names a story per
    /// claim).
    pub async fn load_stories(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Story>, ServiceError> {
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        if let Ok(cache) = self.stories.lock() {
            for id in ids {
                match cache.map.get(id) {
                    Some(s) => {
                        found.insert(*id, s.clone());
                    }
                    None => missing.push(story::stream_name(*id)),
                }
            }
        } else {
            missing.extend(ids.iter().map(|id| story::stream_name(*id)));
        }
        missing.sort();
        missing.dedup();
        if missing.is_empty() {
            return Ok(found);
        }
        // A story read before an erasure must not be cached after the
        // eviction that erasure made: the fill is dropped if any eviction
        // came between (the epoch), and a standby's copy, which may predate
        // an erasure the primary has, is never cached.
        self.follow_erasures();
        let epoch = self.stories.lock().map(|c| c.evictions).unwrap_or(u64::MAX);
        let read = crate::store::read_stream_openings(self.read_pool(), &missing).await?;
        let mut fresh = Vec::with_capacity(read.len());
        for (first, version) in &read {
            let story = story_of(first, *version)?;
            fresh.push((story.registered.story_id, story));
        }
        if let (Ok(mut cache), None) = (self.stories.lock(), &self.reader)
            && cache.evictions == epoch
        {
            for (id, story) in &fresh {
                cache.insert(*id, story.clone());
            }
        }
        found.extend(fresh);
        Ok(found)
    }

    /// `POST /v1/stories`.
    pub async fn register_story(
        &self,
        input: Result<NewStory, FieldError>,
        w: &WriteContext,
    ) -> Result<WriteOutcome, ServiceError> {
        let input = input?;
        if let Some(stored) = w.replay(&self.store).await? {
            return WriteOutcome::replay(stored);
        }
        if let Some(url) = &input.url
            && let Some(existing) = lookup::story_by_url(self.store.pool(), url).await?
        {
            return Err(ServiceError::DuplicateStory { existing });
        }
        let id = Uuid::now_v7();
        let registered = StoryRegistered::new(
            id,
            input.title,
            input.publisher,
            input.published_at,
            input.url.clone(),
            input.body,
        );
        let data =
            serde_json::to_value(&registered).map_err(|e| ServiceError::Corrupt(e.to_string()))?;
        let response: ResponseBuilder = Arc::new(move |receipt: &AppendReceipt| {
            let story = Story {
                registered: registered.clone(),
                registered_by: receipt.actor.clone(),
                registered_at: receipt.recorded_at,
                version: 1,
                erased: None,
            };
            view::story(&story, &[])
        });
        let request = AppendRequest {
            streams: vec![StreamAppend {
                stream: story::stream_name(id),
                expected: ExpectedVersion::NoStream,
                events: vec![super::log_event(STORY_REGISTERED, data)],
            }],
            metadata: w.metadata(),
            idempotency: w.claim(Effect::Created, &response),
        };
        match self.store.append_request(request).await {
            Ok(AppendOutcome::Appended(receipt)) => Ok(WriteOutcome::appended(
                Effect::Created,
                id,
                response(&receipt),
                &receipt,
            )),
            Ok(AppendOutcome::Replayed(stored)) => WriteOutcome::replay(stored),
            Err(StoreError::UniqueViolation { constraint }) if constraint == URL_CONSTRAINT => {
                let url = input.url.unwrap_or_default();
                match lookup::story_by_url(self.store.pool(), &url).await? {
                    Some(existing) => Err(ServiceError::DuplicateStory { existing }),
                    None => Err(ServiceError::Contended),
                }
            }
            Err(StoreError::IdempotencyKeyReused { .. }) => Err(ServiceError::IdempotencyKeyReused),
            Err(e) => Err(e.into()),
        }
    }
}
