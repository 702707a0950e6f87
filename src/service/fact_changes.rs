//! The readers' change feed: every change to a fact's current state
//! (status, value, valid time), in log order, from the facts projection's
//! verified claim versions.
//!
//! Each event of the log belongs to one claim's stream, so a position
//! changes at most one fact: a change is known by its position alone, which
//! is what `next_after` and an SSE stream's `Last-Event-ID` resume after.
//! The feed never reads past the facts projection's checkpoint, so a change
//! it has passed is never applied later: nothing is skipped.

use std::collections::HashMap;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::reads::FACTS;
use super::{ServiceError, Services};
use crate::domain::claim::Claim;
use crate::domain::fact::{Fact, FactStatus, headline_of};
use crate::domain::valid_time::ValidTime;
use crate::domain::value::ClaimValue;
use crate::projections::read as pread;

/// One change to a fact's current state.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FactChange {
    /// The event that changed it; also the SSE event's `id`.
    pub position: i64,
    pub fact_id: Uuid,
    pub status: FactStatus,
    /// Null when unverified or contested.
    pub value: Option<ClaimValue>,
    pub valid_at: Option<ValidTime>,
}

/// A page of the change feed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FactChangePage {
    pub items: Vec<FactChange>,
    /// Send as `after` for the next page: the last position this page
    /// looked at (past the last item when later events changed no fact).
    pub next_after: i64,
}

/// One version of a claim, as the feed lays facts out from.
struct Version {
    from: i64,
    to: Option<i64>,
    claim: Claim,
}

fn summary(f: &Fact) -> (FactStatus, &Option<ClaimValue>, &Option<ValidTime>) {
    (f.status, &f.value, &f.valid_at)
}

impl Services {
    /// Changes after `after`, looking at up to `limit` claim versions.
    pub async fn fact_changes(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<FactChangePage, ServiceError> {
        let upto = self.reached(FACTS).await?;
        let rows = pread::claim_versions_after(self.store.pool(), after, upto, limit).await?;
        let next_after = if (rows.len() as i64) < limit {
            upto.max(after)
        } else {
            rows.last().map_or(after, |(p, _)| *p)
        };
        let (first, last) = match (rows.first(), rows.last()) {
            (Some((first, _)), Some((last, _))) => (*first, *last),
            _ => {
                return Ok(FactChangePage {
                    items: Vec::new(),
                    next_after,
                });
            }
        };
        let mut facts: Vec<Uuid> = rows.iter().map(|(_, f)| *f).collect();
        facts.sort_unstable();
        facts.dedup();
        // Every verified version these facts had from just before the first
        // change to the last, fetched and parsed once (a page's facts may
        // have hundreds of claims each, most never verified); each change is
        // laid out from them, and from when each fact began.
        let mut versions: HashMap<Uuid, Vec<Version>> = HashMap::with_capacity(facts.len());
        for (fact, from, to, state) in
            pread::verified_versions_spanning(self.store.pool(), &facts, first - 1, last).await?
        {
            let claim: Claim =
                serde_json::from_str(&state).map_err(|e| ServiceError::Corrupt(e.to_string()))?;
            versions
                .entry(fact)
                .or_default()
                .push(Version { from, to, claim });
        }
        let began: HashMap<Uuid, i64> = pread::first_positions(self.store.pool(), &facts)
            .await?
            .into_iter()
            .filter_map(|(fact, first)| Some((fact, first?)))
            .collect();
        let at = |fact: Uuid, position: i64| -> Option<Fact> {
            if began.get(&fact).is_none_or(|b| *b > position) {
                return None;
            }
            let live = versions
                .get(&fact)
                .into_iter()
                .flatten()
                .filter(|v| v.from <= position && v.to.is_none_or(|t| t > position))
                .map(|v| &v.claim);
            Some(headline_of(fact, live))
        };
        let mut items = Vec::new();
        let mut seen: Option<(i64, Uuid)> = None;
        for (position, fact_id) in rows {
            if seen == Some((position, fact_id)) {
                continue;
            }
            seen = Some((position, fact_id));
            let Some(now) = at(fact_id, position) else {
                continue;
            };
            let before = at(fact_id, position - 1);
            if before.as_ref().map(summary) != Some(summary(&now)) {
                items.push(FactChange {
                    position,
                    fact_id,
                    status: now.status,
                    value: now.value,
                    valid_at: now.valid_at,
                });
            }
        }
        Ok(FactChangePage { items, next_after })
    }
}
