//! A fact: everything claimed about one (subject, property), laid out along
//! valid time. Pure: computed from the fact's claims, by the facts projection
//! and (for `valid_at` queries) at read time.

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

/// Lays a fact's claims out along valid time. `claims` may be in any order;
/// the display subject and property are those of the earliest asserted claim.
pub fn compute<'a>(fact_id: Uuid, claims: impl IntoIterator<Item = &'a Claim>) -> Option<Fact> {
    let mut claims: Vec<&Claim> = claims.into_iter().collect();
    claims.sort_by_key(|c| (c.asserted_at, c.asserted.claim_id));
    let first = claims.first()?;

    let mut timeline: Vec<TimelineEntry> = Vec::new();
    for c in &claims {
        let at = effective_valid_at(c);
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
        entry.claim_ids.push(c.asserted.claim_id);
        if c.status == Status::Verified
            && !entry.values.iter().any(|v| v.same_as(&c.asserted.value))
        {
            entry.values.push(c.asserted.value.clone());
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
        subject: first.asserted.subject.clone(),
        property: first.asserted.property.clone(),
        status: FactStatus::Unverified,
        value: None,
        valid_at: None,
        claims: claims
            .iter()
            .map(|c| FactClaim {
                id: c.asserted.claim_id,
                value: c.asserted.value.clone(),
                valid_at: effective_valid_at(c),
                status: c.status,
                story_id: c.asserted.story_id,
                asserted_by: c.asserted_by.clone(),
                confirmed_by: c.confirmations.iter().map(|x| x.by.clone()).collect(),
            })
            .collect(),
        timeline,
    };
    fact.settle(None);
    Some(fact)
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
