//! `POST /v1/erasures`: removes personal values from everywhere factlog
//! keeps them, leaving every hash as it was (API.md, "Erasure").
//!
//! The `Erased` event is appended first, naming the events whose values go;
//! the values then leave `event_secrets` and the stored responses
//! (`store::erasure::apply`). The facts projection applies the same removal
//! when it reaches the event, in the transaction that moves its checkpoint,
//! and rewrites the claim's versions: so a crash between the append and the
//! removal leaves nothing behind, and the request's own removal only makes
//! it take effect before the answer.

use std::sync::Arc;

use serde_json::{Value, json};
use uuid::Uuid;

use super::{Effect, ServiceError, Services, WriteContext, WriteOutcome};
use crate::domain::erasable::ErasedMark;
use crate::domain::erasure::{self, ERASED, Erased, NewErasure, Target};
use crate::domain::error::FieldError;
use crate::store::{
    AppendOutcome, AppendReceipt, AppendRequest, ExpectedVersion, ResponseBuilder, StoreError,
    StreamAppend, erasure as store_erasure,
};

/// The receipt's body: the event's data and who erased when. (`version` is
/// the erasure stream's, always 1: a replay reads it back.)
fn receipt_body(event: &Erased, receipt: &AppendReceipt) -> Value {
    let mut body = json!({
        "id": event.erasure_id,
        "fields": event.fields,
        "positions": event.positions,
        "reason": event.reason,
        "erased_by": receipt.actor,
        "erased_at": receipt.recorded_at,
        "version": 1,
    });
    if let (Some(target), Some(object)) = (event.target(), body.as_object_mut()) {
        object.insert(target.field().into(), json!(target.id()));
    }
    body
}

impl Services {
    /// Erases `fields` of a claim or story (admin only: the API checks).
    pub async fn erase(
        &self,
        input: Result<NewErasure, FieldError>,
        w: &WriteContext,
    ) -> Result<WriteOutcome, ServiceError> {
        let input = input?;
        if let Some(stored) = w.replay(&self.store).await? {
            return WriteOutcome::replay(stored);
        }
        let stream = input.target.stream();
        if self.store.stream_version(&stream).await? == 0 {
            return Err(FieldError::new(
                input.target.field(),
                format!("names no {}", input.target.noun()),
            )
            .into());
        }
        let fields: Vec<&str> = input.fields.iter().map(String::as_str).collect();
        let targets = store_erasure::targets(self.store.pool(), &stream, &fields).await?;
        if let Some(position) = targets.in_the_log.first() {
            return Err(ServiceError::Conflict(format!(
                "the event at position {position} was recorded before erasable values were kept \
                 outside the log (migration 0018): its values are part of the hash chain and \
                 cannot be erased without rewriting it"
            )));
        }
        let id = Uuid::now_v7();
        let event = Erased::new(id, &input, targets.positions);
        let data =
            serde_json::to_value(&event).map_err(|e| ServiceError::Corrupt(e.to_string()))?;
        let for_response = event.clone();
        let response: ResponseBuilder =
            Arc::new(move |receipt: &AppendReceipt| receipt_body(&for_response, receipt));
        let request = AppendRequest {
            streams: vec![StreamAppend {
                stream: erasure::stream_name(id),
                expected: ExpectedVersion::NoStream,
                events: vec![super::log_event(ERASED, data)],
            }],
            metadata: w.metadata(),
            idempotency: w.claim(Effect::Done, &response),
        };
        let receipt = match self.store.append_request(request).await {
            Ok(AppendOutcome::Appended(receipt)) => receipt,
            Ok(AppendOutcome::Replayed(stored)) => return WriteOutcome::replay(stored),
            Err(StoreError::IdempotencyKeyReused { .. }) => {
                return Err(ServiceError::IdempotencyKeyReused);
            }
            Err(e) => return Err(e.into()),
        };
        self.apply_erasure(&event, receipt.last_position).await?;
        Ok(WriteOutcome::appended(
            Effect::Done,
            id,
            response(&receipt),
            &receipt,
        ))
    }

    /// Removes what the `Erased` event at `position` names, and forgets it
    /// in this process's caches (other processes forget within a second:
    /// [`Services::follow_erasures`]).
    async fn apply_erasure(&self, event: &Erased, position: i64) -> Result<(), ServiceError> {
        let (Some(target), Some(stream)) = (event.target(), event.erased_stream()) else {
            return Err(ServiceError::Corrupt(
                "an Erased event names no claim or story".into(),
            ));
        };
        let mark = ErasedMark {
            fields: event.fields.clone(),
            position,
        };
        let mut tx = self.store.pool().begin().await.map_err(StoreError::from)?;
        store_erasure::apply(&mut tx, &stream, target.id(), &event.positions, &mark).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.forget_erased(target);
        Ok(())
    }

    fn forget_erased(&self, target: Target) {
        if let (Target::Story(id), Ok(mut cache)) = (target, self.stories.lock()) {
            cache.evict(id);
        }
    }
}

/// How often each process looks for erasures made by others.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Services {
    /// Forgets within about a second what any process erases (the story
    /// cache is this process's only copy of erasable values; claims are
    /// folded from the log on every read). Called before the story cache's
    /// every fill, from a runtime; starts following once, from the head
    /// known then: nothing is cached yet, so what was erased before needs no
    /// forgetting.
    pub(crate) fn follow_erasures(&self) {
        self.erasure_follower
            .call_once(|| self.spawn_erasure_follower());
    }

    fn spawn_erasure_follower(&self) {
        let stories = Arc::downgrade(&self.stories);
        let pool = self.store.pool().clone();
        let mut seen = self.store.known_head();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(FOLLOW_EVERY).await;
                let Some(stories) = stories.upgrade() else {
                    return;
                };
                match erasures_since(&pool, seen).await {
                    Ok((head, story_ids)) => {
                        if let Ok(mut cache) = stories.lock() {
                            for id in story_ids {
                                cache.evict(id);
                            }
                        }
                        seen = head;
                    }
                    Err(e) => tracing::warn!(error = %e, "looking for erasures failed"),
                }
            }
        });
    }
}

/// The log's head and the stories erased after `after` up to it. One
/// statement, so a process's following costs one round trip a second.
async fn erasures_since(pool: &sqlx::PgPool, after: i64) -> Result<(i64, Vec<Uuid>), sqlx::Error> {
    // A range of the primary key: it costs the events since the last look.
    let (head, ids): (i64, Option<Vec<Option<String>>>) = sqlx::query_as(
        "SELECT h.position, (SELECT array_agg(e.data->>'story_id') FROM events e \
           WHERE e.position > $1 AND e.position <= h.position AND e.type = 'Erased') \
         FROM event_head h",
    )
    .bind(after)
    .fetch_one(pool)
    .await?;
    Ok((
        head,
        ids.unwrap_or_default()
            .into_iter()
            .filter_map(|id| id?.parse().ok())
            .collect(),
    ))
}
