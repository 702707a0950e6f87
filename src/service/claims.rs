use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use super::{
    Effect, IfMatch, MAX_ATTEMPTS, ServiceError, Services, WriteContext, WriteOutcome, view,
};
use crate::domain::claim::{self, Asserted, Claim, ClaimEvent, Command, Context, Recorded};
use crate::domain::erasable::ErasedMark;
use crate::domain::error::FieldError;
use crate::domain::text;
use crate::domain::valid_time::ValidTime;
use crate::domain::value::ClaimValue;
use crate::store::{
    AppendOutcome, AppendReceipt, AppendRequest, ExpectedVersion, NewEvent, RecordedEvent,
    ResponseBuilder, StoreError, StreamAppend,
};

/// A validated `POST /v1/claims` body.
#[derive(Debug, Clone, PartialEq)]
pub struct NewClaim {
    pub story_id: Uuid,
    pub subject: String,
    pub property: String,
    pub value: ClaimValue,
    pub quote: String,
    pub valid_at: Option<ValidTime>,
    pub attributed_to: Option<String>,
    pub corrects: Option<Uuid>,
}

pub(crate) fn fold(events: &[RecordedEvent]) -> Result<Option<Claim>, ServiceError> {
    let mut state = None;
    for e in events {
        let event = ClaimEvent::from_log(&e.event_type, &e.data).map_err(ServiceError::Corrupt)?;
        state = claim::evolve(
            state,
            &event,
            &Recorded {
                actor: e.actor.clone(),
                at: e.recorded_at,
            },
        );
        if let Some(claim) = &mut state {
            claim::note_erased(claim, ErasedMark::of_data(&e.data).as_ref());
        }
    }
    Ok(state)
}

/// The claim's state after the receipt's events, rendered: the response body.
fn claim_response(before: Option<Claim>, events: Vec<ClaimEvent>) -> ResponseBuilder {
    Arc::new(move |receipt: &AppendReceipt| {
        let mut state = before.clone();
        // All of an append's events share its actor and record time.
        for event in &events {
            state = claim::evolve(
                state,
                event,
                &Recorded {
                    actor: receipt.actor.clone(),
                    at: receipt.recorded_at,
                },
            );
        }
        state.as_ref().map(view::claim).unwrap_or(Value::Null)
    })
}

fn to_new(events: &[ClaimEvent]) -> Vec<NewEvent> {
    events
        .iter()
        .map(|e| super::log_event(e.type_name(), e.data()))
        .collect()
}

/// How one append attempt ended.
enum Attempt {
    Done(WriteOutcome),
    /// Another write moved this stream on first.
    Raced {
        stream: String,
    },
}

impl Services {
    pub async fn load_claim(&self, id: Uuid) -> Result<Option<Claim>, ServiceError> {
        fold(&self.read_whole_stream(&claim::stream_name(id)).await?)
    }

    async fn append_write(
        &self,
        streams: Vec<StreamAppend>,
        w: &WriteContext,
        (effect, id): (Effect, Uuid),
        response: ResponseBuilder,
    ) -> Result<Attempt, ServiceError> {
        let request = AppendRequest {
            streams,
            metadata: w.metadata(),
            idempotency: w.claim(effect, &response),
        };
        match self.store.append_request(request).await {
            Ok(AppendOutcome::Appended(receipt)) => Ok(Attempt::Done(WriteOutcome::appended(
                effect,
                id,
                response(&receipt),
                &receipt,
            ))),
            Ok(AppendOutcome::Replayed(stored)) => Ok(Attempt::Done(WriteOutcome::replay(stored)?)),
            Err(StoreError::WrongExpectedVersion { stream, .. }) => Ok(Attempt::Raced { stream }),
            Err(StoreError::IdempotencyKeyReused { .. }) => Err(ServiceError::IdempotencyKeyReused),
            Err(e) => Err(e.into()),
        }
    }

    /// `POST /v1/claims`.
    pub async fn assert_claim(
        &self,
        input: Result<NewClaim, FieldError>,
        w: &WriteContext,
    ) -> Result<WriteOutcome, ServiceError> {
        let input = input?;
        let story = self
            .load_story(input.story_id)
            .await?
            .ok_or_else(|| FieldError::new("story_id", "no story has this id"))?;
        if let Some(body) = &story.registered.body
            && !text::quote_occurs(body, &input.quote)
        {
            return Err(
                FieldError::new("quote", "the quote does not occur in the story's body").into(),
            );
        }
        if let Some(corrected) = input.corrects
            && self.load_claim(corrected).await?.is_none()
        {
            return Err(FieldError::new("corrects", "no claim has this id").into());
        }
        if let Some(stored) = w.replay(&self.store).await? {
            return WriteOutcome::replay(stored);
        }

        let id = Uuid::now_v7();
        let stream = claim::stream_name(id);
        let event = ClaimEvent::ClaimAsserted(Box::new(Asserted {
            schema: claim::SCHEMA,
            claim_id: id,
            story_id: input.story_id,
            fact_id: text::fact_id(&input.subject, &input.property),
            subject: input.subject,
            property: input.property,
            value: input.value,
            quote: input.quote,
            valid_at: input.valid_at,
            attributed_to: input.attributed_to,
            corrects: input.corrects,
            story_published_at: story.registered.published_at,
        }));
        let streams = vec![StreamAppend {
            stream: stream.clone(),
            expected: ExpectedVersion::NoStream,
            events: to_new(std::slice::from_ref(&event)),
        }];
        let response = claim_response(None, vec![event]);
        match self
            .append_write(streams, w, (Effect::Created, id), response)
            .await?
        {
            Attempt::Done(outcome) => Ok(outcome),
            // A fresh UUID v7 stream cannot exist already.
            Attempt::Raced { .. } => Err(ServiceError::Contended),
        }
    }

    /// Confirm, dispute, retract, amend or attach evidence to a claim.
    /// `input` is the parsed body: checked only once the claim is known to
    /// exist, so an unknown claim is a 404 whatever the body says.
    pub async fn act_on_claim(
        &self,
        id: Uuid,
        input: Result<Command, FieldError>,
        w: &WriteContext,
    ) -> Result<WriteOutcome, ServiceError> {
        for _ in 0..MAX_ATTEMPTS {
            let claim = self
                .load_claim(id)
                .await?
                .ok_or(ServiceError::NotFound("claim"))?;
            let cmd = input.clone()?;
            if let Command::Amend(changes) = &cmd {
                if changes.is_empty() {
                    return Err(FieldError::new(
                        "body",
                        "name at least one of value, quote, valid_at, attributed_to",
                    )
                    .into());
                }
                if let Some(quote) = &changes.quote {
                    let story = self.load_story(claim.asserted.story_id).await?;
                    if let Some(body) = story.as_ref().and_then(|s| s.registered.body.as_deref())
                        && !text::quote_occurs(body, quote)
                    {
                        return Err(FieldError::new(
                            "quote",
                            "the quote does not occur in the story's body",
                        )
                        .into());
                    }
                }
            }
            if let Some(stored) = w.replay(&self.store).await? {
                return WriteOutcome::replay(stored);
            }
            w.check_if_match(claim.version)?;

            let events = claim::decide(
                &claim,
                &cmd,
                &Context {
                    actor: &w.actor,
                    required_confirmations: self.rules.required_confirmations,
                },
            )?;
            let stream = claim::stream_name(id);
            let mut streams = vec![StreamAppend {
                stream: stream.clone(),
                expected: ExpectedVersion::Exact(claim.version),
                events: to_new(&events),
            }];
            // The only write that touches two streams: a verified correction
            // supersedes the claim it corrects, in the same transaction.
            if let Some(target) = claim.asserted.corrects {
                let corrected = self.load_claim(target).await?;
                if let (Some(superseded), Some(c)) = (
                    claim::supersede_on_verify(&events, &claim, corrected.as_ref()),
                    corrected.as_ref(),
                ) {
                    streams.push(StreamAppend {
                        stream: claim::stream_name(target),
                        expected: ExpectedVersion::Exact(c.version),
                        events: to_new(&[superseded]),
                    });
                }
            }
            let response = claim_response(Some(claim.clone()), events);
            match self
                .append_write(streams, w, (Effect::Done, id), response)
                .await?
            {
                Attempt::Done(outcome) => return Ok(outcome),
                Attempt::Raced { stream: raced } => {
                    if raced == stream && matches!(w.if_match, Some(IfMatch::Version(_))) {
                        let current = self.load_claim(id).await?.map(|c| c.version).unwrap_or(0);
                        return Err(ServiceError::PreconditionFailed { current });
                    }
                    // Lost a race without asking for a version: decide again
                    // on the new state.
                }
            }
        }
        Err(ServiceError::Contended)
    }
}
