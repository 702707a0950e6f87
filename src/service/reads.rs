//! The read side: what clients and auditors query, and the `wait_for`
//! read-your-writes rule.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use utoipa::ToSchema;
use uuid::Uuid;

use super::fact_cache::Lookup;
use super::{ServiceError, Services, view};
use crate::domain::claim::Claim;
use crate::domain::erasable::ErasedMark;
use crate::domain::fact::{self, Fact};
use crate::domain::story::{Story, StoryRegistered};
use crate::domain::valid_time::ValidTime;
use crate::projections::read::{self as pread, ClaimFilter, FactFilter};
use crate::projections::{self, AnyProjection};
use crate::store::integrity::{self, IntegrityReport, IntegrityState};
use crate::store::{self, AuditFilter, RecordedEvent};

/// How long a read waits for `wait_for` before answering 503.
pub const WAIT_FOR_LIMIT: Duration = Duration::from_secs(5);

/// What a read is served from, for `wait_for`.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// The log itself (a claim, a story's own fields, events, audit, integrity).
    Log,
    /// One or more projections.
    Projections(&'static [&'static dyn AnyProjection]),
    /// Current fact documents: the fact cache's watermark when there is a
    /// cache, else the facts projection.
    FactDocuments,
}

pub const FACTS: Source = Source::Projections(&[projections::FACTS]);
/// Claims are their open versions, which the facts projection keeps.
pub const CLAIMS: Source = FACTS;
pub const FACT_DOCUMENTS: Source = Source::FactDocuments;

/// A page of results and the cursor of the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

fn page<T>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> String) -> Page<T> {
    // One extra row was fetched to learn whether another page exists.
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(key) } else { None };
    Page { items: rows, next }
}

impl Services {
    /// Answers once `source` has caught up with `position`, or
    /// [`ServiceError::NotCaughtUp`] after [`WAIT_FOR_LIMIT`].
    pub async fn wait_for(&self, source: Source, position: i64) -> Result<(), ServiceError> {
        self.check_acknowledged(position).await?;
        self.wait_until(
            source,
            position,
            tokio::time::Instant::now() + WAIT_FOR_LIMIT,
        )
        .await
    }

    /// Refuses a position past the log's head: it was never acknowledged
    /// to anyone, so no one can have a receipt for it and there is nothing
    /// to wait for. (The head this process knows of is never ahead of the
    /// real one, and the real one is the primary's.)
    pub(super) async fn check_acknowledged(&self, position: i64) -> Result<(), ServiceError> {
        if position > self.store.known_head() {
            let head = self.store.head().await?.position;
            if position > head {
                return Err(ServiceError::BeyondHead { position, head });
            }
        }
        Ok(())
    }

    /// [`Services::wait_for`] on this handle's reader (the primary: the
    /// notifications it waits on are the primary's), giving up at `deadline`.
    pub(super) async fn wait_until(
        &self,
        source: Source,
        position: i64,
        deadline: tokio::time::Instant,
    ) -> Result<(), ServiceError> {
        let source = match (source, &self.facts) {
            (Source::FactDocuments, Some(cache)) => {
                return match cache.wait_for(position, deadline).await {
                    true => Ok(()),
                    false => Err(ServiceError::NotCaughtUp { position }),
                };
            }
            (Source::FactDocuments, None) => FACTS,
            (other, _) => other,
        };
        let mut head = self.store.head_watch();
        let mut checkpoints = self.store.checkpoint_watch();
        loop {
            head.borrow_and_update();
            checkpoints.borrow_and_update();
            if self.reached(source).await? >= position {
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(ServiceError::NotCaughtUp { position });
            }
            // Woken by a commit or a checkpoint anywhere; the short timeout
            // only bounds the cost of a lost notification.
            let nap = (deadline - now).min(Duration::from_millis(250));
            tokio::select! {
                _ = head.changed() => {},
                _ = checkpoints.changed() => {},
                _ = tokio::time::sleep(nap) => {},
            }
        }
    }

    /// The position `source` has caught up with on this handle's reader:
    /// everything at or before it shows in what is read from it (for fact
    /// documents, the facts projection's position, not the cache's).
    pub async fn reached(&self, source: Source) -> Result<i64, ServiceError> {
        let pool = self.read_pool();
        Ok(match source {
            Source::Log => store::read_head(pool).await?.position,
            Source::Projections(list) => {
                let names: Vec<&str> = list.iter().map(|p| p.name()).collect();
                projections::lowest_checkpoint(pool, &names).await?
            }
            Source::FactDocuments => {
                projections::lowest_checkpoint(pool, &[projections::FACTS.name()]).await?
            }
        })
    }

    pub async fn list_claims(
        &self,
        filter: &ClaimFilter,
        cursor: Option<Uuid>,
        limit: i64,
    ) -> Result<Page<Value>, ServiceError> {
        self.claims_page(filter, cursor, pread::Order::Ascending, limit)
            .await
    }

    /// [`Services::list_claims`] newest first: `before` is the id the
    /// previous page ended at (the console's queue).
    pub async fn list_claims_newest_first(
        &self,
        filter: &ClaimFilter,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Page<Value>, ServiceError> {
        self.claims_page(filter, before, pread::Order::Descending, limit)
            .await
    }

    async fn claims_page(
        &self,
        filter: &ClaimFilter,
        cursor: Option<Uuid>,
        order: pread::Order,
        limit: i64,
    ) -> Result<Page<Value>, ServiceError> {
        let rows =
            pread::claims_in_order(self.read_pool(), filter, cursor, order, limit + 1).await?;
        let p = page(rows, limit, |(id, _)| id.to_string());
        Ok(Page {
            items: p
                .items
                .iter()
                .map(|(id, state)| render_claim(*id, state))
                .collect::<Result<_, _>>()?,
            next: p.next,
        })
    }

    /// Registered stories, newest first, from the log (`before`: the
    /// position the previous page ended at). Each carries the position it
    /// was registered at, the page's cursor.
    pub async fn list_stories(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Page<(i64, Story)>, ServiceError> {
        let rows = store::stories_newest_first(self.read_pool(), before, limit + 1).await?;
        let p = page(rows, limit, |e| e.position.to_string());
        let items = p
            .items
            .into_iter()
            .map(|e| {
                let erased = ErasedMark::of_data(&e.data);
                let registered: StoryRegistered =
                    serde_json::from_value(e.data).map_err(corrupt)?;
                Ok((
                    e.position,
                    Story {
                        registered,
                        registered_by: e.actor,
                        registered_at: e.recorded_at,
                        version: 1,
                        erased,
                    },
                ))
            })
            .collect::<Result<_, ServiceError>>()?;
        Ok(Page {
            items,
            next: p.next,
        })
    }

    /// A page of facts, each document as [`Services::fact_document`] serves
    /// it (so at least as new as a `wait_for` on [`FACT_DOCUMENTS`]).
    pub async fn list_facts(
        &self,
        filter: &FactFilter,
        cursor: Option<Uuid>,
        limit: i64,
    ) -> Result<Page<Box<RawValue>>, ServiceError> {
        let ids = pread::facts(self.read_pool(), filter, cursor, limit + 1).await?;
        let p = page(ids, limit, Uuid::to_string);
        let mut items = Vec::with_capacity(p.items.len());
        // The served bytes go into the page as they are, not through a
        // `Value` tree and back.
        for body in self.fact_documents(&p.items).await?.into_iter().flatten() {
            let text = String::from_utf8(body.to_vec())
                .map_err(|e| ServiceError::Corrupt(e.to_string()))?;
            items.push(RawValue::from_string(text).map_err(corrupt)?);
        }
        Ok(Page {
            items,
            next: p.next,
        })
    }

    /// A fact's current document as served: compact JSON, from the fact
    /// cache when it has it (reads after `wait_for` on [`FACT_DOCUMENTS`]).
    pub async fn fact_document(&self, id: Uuid) -> Result<Option<Bytes>, ServiceError> {
        Ok(self.fact_documents(&[id]).await?.pop().flatten())
    }

    /// The current documents of `ids`, in order (`None` for a fact the
    /// projection does not have): hits from the fact cache, the misses laid
    /// out from their claims' open versions, read in one statement.
    async fn fact_documents(&self, ids: &[Uuid]) -> Result<Vec<Option<Bytes>>, ServiceError> {
        let mut docs = Vec::with_capacity(ids.len());
        let mut misses = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            match self.facts.as_ref().map(|c| c.lookup(*id)) {
                Some(Lookup::Hit(body)) => docs.push(Some(body)),
                // The ticket is taken before the read, as a fill requires.
                Some(Lookup::Miss(ticket)) => {
                    docs.push(None);
                    misses.push((i, *id, Some(ticket)));
                }
                Some(Lookup::Bypass) | None => {
                    docs.push(None);
                    misses.push((i, *id, None));
                }
            }
        }
        if misses.is_empty() {
            return Ok(docs);
        }
        // Only the primary's documents may enter the cache: it is kept exact
        // by evictions the primary's checkpoints drive, and a standby's older
        // document put in after them would be served as current. So misses
        // that fill are read there; the rest (no cache, or one not trusted
        // now) from this handle's reader.
        let (filling, plain): (Vec<_>, Vec<_>) = misses.into_iter().partition(|m| m.2.is_some());
        for (pool, group) in [(self.store.pool(), filling), (self.read_pool(), plain)] {
            if group.is_empty() {
                continue;
            }
            let wanted: Vec<Uuid> = group.iter().map(|m| m.1).collect();
            let mut found: HashMap<Uuid, Vec<String>> = pread::fact_claims(pool, &wanted)
                .await?
                .into_iter()
                .collect();
            for (i, id, ticket) in group {
                let Some(states) = found.remove(&id) else {
                    continue;
                };
                let Some(fact) = lay_out(id, &states)? else {
                    continue;
                };
                // A boxed slice gives back the spare capacity serializing leaves.
                let body = Bytes::from(
                    serde_json::to_vec(&fact)
                        .map_err(corrupt)?
                        .into_boxed_slice(),
                );
                if let (Some(cache), Some(ticket)) = (&self.facts, ticket) {
                    cache.fill(ticket, id, body.clone());
                }
                docs[i] = Some(body);
            }
        }
        Ok(docs)
    }

    /// A fact now or `as_of` a record time, its headline taken at or before
    /// `valid_at` when given (now: wait on [`FACT_DOCUMENTS`]; as of a time:
    /// on [`FACTS`]).
    pub async fn fact(
        &self,
        id: Uuid,
        as_of: Option<DateTime<Utc>>,
        valid_at: Option<ValidTime>,
    ) -> Result<Option<Value>, ServiceError> {
        let mut fact: Fact = match as_of {
            None => match self.fact_document(id).await? {
                None => return Ok(None),
                Some(doc) if valid_at.is_none() => {
                    return Ok(Some(serde_json::from_slice(&doc).map_err(corrupt)?));
                }
                Some(doc) => serde_json::from_slice(&doc).map_err(corrupt)?,
            },
            // As known then: computed from the claims' states at that time.
            Some(t) => {
                let states = pread::claim_states_at(self.read_pool(), id, t).await?;
                match lay_out(id, &states)? {
                    None => return Ok(None),
                    Some(f) => f,
                }
            }
        };
        if let Some(at) = valid_at {
            fact.settle(Some(&at));
        }
        Ok(Some(
            serde_json::to_value(&fact).map_err(|e| ServiceError::Corrupt(e.to_string()))?,
        ))
    }

    pub async fn fact_history(
        &self,
        id: Uuid,
        cursor: Option<i64>,
        limit: i64,
    ) -> Result<Option<Page<Value>>, ServiceError> {
        if !pread::fact_exists(self.read_pool(), id).await? {
            return Ok(None);
        }
        let rows =
            pread::fact_history(self.read_pool(), id, cursor.unwrap_or(0), limit + 1).await?;
        let p = page(rows, limit, |r| r.0.to_string());
        Ok(Some(Page {
            items: p
                .items
                .into_iter()
                .map(
                    |(position, recorded_at, actor, event_type, claim_id, data)| {
                        // Through a `Value`, as every view (sorted keys).
                        serde_json::to_value(HistoryItem {
                            position,
                            recorded_at,
                            actor,
                            event_type,
                            claim_id,
                            data,
                        })
                        .map_err(corrupt)
                    },
                )
                .collect::<Result<_, _>>()?,
            next: p.next,
        }))
    }

    pub async fn audit(
        &self,
        filter: &AuditFilter,
        cursor: Option<i64>,
        limit: i64,
    ) -> Result<Page<Value>, ServiceError> {
        let rows = store::audit(self.read_pool(), filter, cursor.unwrap_or(0), limit + 1).await?;
        let p = page(rows, limit, |e| e.position.to_string());
        Ok(Page {
            items: p.items.iter().map(event_json).collect(),
            next: p.next,
        })
    }

    /// A page of the log, to be written with [`store::SortedKeys`] as
    /// every view is.
    pub async fn events(&self, after: i64, limit: i64) -> Result<Vec<RecordedEvent>, ServiceError> {
        Ok(store::read_all(self.read_pool(), after, limit).await?)
    }

    /// The chain's integrity from the verifier's state and the events
    /// past it (bounded: `store::integrity`).
    pub async fn integrity(&self) -> Result<IntegrityReport, ServiceError> {
        let began = std::time::Instant::now();
        let r = integrity::report(self.store.pool(), integrity::REQUEST_TAIL_LIMIT).await?;
        // A fresh read: `/readyz` need not lag behind what an auditor was
        // just shown.
        self.store.chain_status().publish(&r.state, began);
        Ok(r)
    }

    /// Asks for a full pass over the chain on `by`'s behalf.
    pub async fn request_full_check(&self, by: &str) -> Result<IntegrityState, ServiceError> {
        let began = std::time::Instant::now();
        let state = integrity::request_full_pass(self.store.pool(), by).await?;
        self.store.chain_status().publish(&state, began);
        Ok(state)
    }

    /// The views of a story's claims (their open versions in the facts projection).
    pub async fn story_claims(&self, story_id: Uuid) -> Result<Vec<Value>, ServiceError> {
        let states = pread::claims_of_story(self.read_pool(), story_id).await?;
        states
            .iter()
            .map(|state| render_claim(story_id, state))
            .collect()
    }
}

/// A claim as the API shows it, from its stored state (an open version).
/// `id` only names the claim (or story) in the error.
pub(super) fn render_claim(id: Uuid, state: &str) -> Result<Value, ServiceError> {
    let claim: Claim = serde_json::from_str(state)
        .map_err(|e| ServiceError::Corrupt(format!("stored state of {id} is unreadable: {e}")))?;
    Ok(view::claim(&claim))
}

/// An event as `/v1/events`, the audit trail and the SSE stream show it:
/// every field of [`RecordedEvent`], keys sorted.
pub fn event_json(e: &RecordedEvent) -> Value {
    // Plain data: serializing it into a Value cannot fail.
    serde_json::to_value(e).unwrap_or(Value::Null)
}

/// One event of one of the fact's claims.
#[derive(Serialize, ToSchema)]
pub struct HistoryItem {
    position: i64,
    recorded_at: DateTime<Utc>,
    actor: String,
    /// The event type, e.g. `ClaimAsserted`.
    #[serde(rename = "type")]
    event_type: String,
    claim_id: Uuid,
    /// The payload as recorded.
    #[schema(value_type = Object)]
    data: Value,
}

fn corrupt(e: serde_json::Error) -> ServiceError {
    ServiceError::Corrupt(e.to_string())
}

/// A fact's document laid out from its claims' stored states (JSON text):
/// now from their open versions, as of a record time from their versions
/// then.
pub(super) fn lay_out(id: Uuid, states: &[String]) -> Result<Option<Fact>, ServiceError> {
    let claims = states
        .iter()
        .map(|s| serde_json::from_str::<Claim>(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(corrupt)?;
    Ok(fact::compute(id, &claims))
}
