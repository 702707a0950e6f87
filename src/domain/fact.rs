//! A fact: everything claimed about one (subject, property), laid out along
//! valid time. Pure: computed from the fact's claims, by the facts projection
//! and (for `valid_at` queries) at read time.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::claim::{Claim, Status};
use super::valid_time::ValidTime;
use super::value::ClaimValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactStatus {
    Verified,
    Contested,
    Unverified,
}

impl FactStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FactStatus::Verified => "verified",
            FactStatus::Contested => "contested",
            FactStatus::Unverified => "unverified",
        }
    }

    pub fn parse(s: &str) -> Option<FactStatus> {
        Some(match s {
            "verified" => FactStatus::Verified,
            "contested" => FactStatus::Contested,
            "unverified" => FactStatus::Unverified,
            _ => return None,
        })
    }
}

/// One claim as a fact shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactClaim {
    pub id: Uuid,
    /// When the claim was recorded: with `id`, the order of a fact's claims
    /// (and what lets the facts projection update a document in place).
    pub asserted_at: DateTime<Utc>,
    pub value: ClaimValue,
    /// Where the claim holds: its own valid_at, else its story's publication time.
    pub valid_at: ValidTime,
    pub status: Status,
    pub story_id: Uuid,
    pub asserted_by: String,
    pub confirmed_by: Vec<String>,
}

/// One valid time of a fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub valid_at: ValidTime,
    pub status: FactStatus,
    /// The agreed value; null when contested or unverified.
    pub value: Option<ClaimValue>,
    /// The distinct values of the verified claims at this valid time.
    pub values: Vec<ClaimValue>,
    /// Every claim at this valid time, whatever its status.
    pub claim_ids: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    pub id: Uuid,
    pub subject: String,
    pub property: String,
    pub status: FactStatus,
    pub value: Option<ClaimValue>,
    pub valid_at: Option<ValidTime>,
    pub claims: Vec<FactClaim>,
    pub timeline: Vec<TimelineEntry>,
}

/// Where a claim holds in valid time.
pub fn effective_valid_at(c: &Claim) -> ValidTime {
    c.asserted
        .valid_at
        .unwrap_or_else(|| ValidTime::Instant(c.asserted.story_published_at.fixed_offset()))
}

impl FactClaim {
    pub fn of(c: &Claim) -> FactClaim {
        FactClaim {
            id: c.asserted.claim_id,
            asserted_at: c.asserted_at,
            value: c.asserted.value.clone(),
            valid_at: effective_valid_at(c),
            status: c.status,
            story_id: c.asserted.story_id,
            asserted_by: c.asserted_by.clone(),
            confirmed_by: c.confirmations.iter().map(|x| x.by.clone()).collect(),
        }
    }

    fn order(&self) -> (DateTime<Utc>, Uuid) {
        (self.asserted_at, self.id)
    }
}

/// Lays a fact's claims out along valid time. `claims` may be in any order;
/// the display subject and property are those of the earliest asserted claim.
pub fn compute<'a>(fact_id: Uuid, claims: impl IntoIterator<Item = &'a Claim>) -> Option<Fact> {
    let claims: Vec<&Claim> = claims.into_iter().collect();
    let first = claims
        .iter()
        .min_by_key(|c| (c.asserted_at, c.asserted.claim_id))?;
    let (subject, property) = (
        first.asserted.subject.clone(),
        first.asserted.property.clone(),
    );
    let shown = claims.iter().map(|c| FactClaim::of(c)).collect();
    Some(lay_out(fact_id, subject, property, shown))
}

impl Fact {
    /// This document with `changed` claims (new ones, or new states of
    /// claims already shown) laid out again: equal to [`compute`] over all
    /// of the fact's claims, without needing the unchanged ones' states.
    pub fn with_changes<'a>(self, changed: impl IntoIterator<Item = &'a Claim>) -> Fact {
        let Fact {
            id,
            mut subject,
            mut property,
            mut claims,
            ..
        } = self;
        let mut earliest: Option<&Claim> = None;
        for c in changed {
            let shown = FactClaim::of(c);
            match claims.iter_mut().find(|x| x.id == shown.id) {
                Some(slot) => *slot = shown,
                None => claims.push(shown),
            }
            if earliest.is_none_or(|e| {
                (c.asserted_at, c.asserted.claim_id) < (e.asserted_at, e.asserted.claim_id)
            }) {
                earliest = Some(c);
            }
        }
        // Subject and property are those of the earliest claim: a claim in
        // `changed` when it sorts first, else the document's own.
        claims.sort_by_key(FactClaim::order);
        if let (Some(c), Some(first)) = (earliest, claims.first())
            && first.id == c.asserted.claim_id
        {
            subject = c.asserted.subject.clone();
            property = c.asserted.property.clone();
        }
        lay_out(id, subject, property, claims)
    }
}

fn lay_out(fact_id: Uuid, subject: String, property: String, mut claims: Vec<FactClaim>) -> Fact {
    claims.sort_by_key(FactClaim::order);
    let mut timeline: Vec<TimelineEntry> = Vec::new();
    for c in &claims {
        let at = c.valid_at;
        let entry = match timeline.iter_mut().find(|e| e.valid_at == at) {
            Some(e) => e,
            None => {
                timeline.push(TimelineEntry {
                    valid_at: at,
                    status: FactStatus::Unverified,
                    value: None,
                    values: Vec::new(),
                    claim_ids: Vec::new(),
                });
                let last = timeline.len() - 1;
                &mut timeline[last]
            }
        };
        entry.claim_ids.push(c.id);
        if c.status == Status::Verified && !entry.values.iter().any(|v| v.same_as(&c.value)) {
            entry.values.push(c.value.clone());
        }
    }
    timeline.sort_by_key(|e| e.valid_at);
    for e in &mut timeline {
        (e.status, e.value) = match e.values.len() {
            0 => (FactStatus::Unverified, None),
            1 => (FactStatus::Verified, e.values.first().cloned()),
            _ => (FactStatus::Contested, None),
        };
    }

    let mut fact = Fact {
        id: fact_id,
        subject,
        property,
        status: FactStatus::Unverified,
        value: None,
        valid_at: None,
        claims,
        timeline,
    };
    fact.settle(None);
    fact
}

impl Fact {
    /// Sets status, value and valid_at from the latest valid time that has a
    /// verified claim, at or before `at` when given.
    pub fn settle(&mut self, at: Option<&ValidTime>) {
        let latest = self
            .timeline
            .iter()
            .rev()
            .filter(|e| at.is_none_or(|q| e.valid_at.is_at_or_before(q)))
            .find(|e| !e.values.is_empty());
        (self.status, self.value, self.valid_at) = match latest {
            Some(e) => (e.status, e.value.clone(), Some(e.valid_at)),
            None => (FactStatus::Unverified, None, None),
        };
    }
}
