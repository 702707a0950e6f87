//! A fact: everything claimed about one (subject, property), laid out along
//! valid time. Pure: a fact's document is computed from its claims' states
//! when it is read; the facts projection keeps only its [`Summary`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::claim::{Claim, Status};
use super::valid_time::ValidTime;
use super::value::ClaimValue;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

// One claim as a fact shows it. (Its docs are the API's description.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct FactClaim {
    pub id: Uuid,
    /// When the claim was recorded; a fact's claims are in this order.
    // With `id`, that order is what lets the facts projection keep a
    // [`Summary`] up to date from the changed claims alone.
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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

/// Everything claimed about one (subject, property) pair, along valid time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Fact {
    pub id: Uuid,
    pub subject: String,
    pub property: String,
    /// That of the latest valid time with a verified claim; `unverified`
    /// when there is none.
    pub status: FactStatus,
    /// Null when unverified or contested.
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

/// What the facts projection keeps of a fact between changes: the claim its
/// subject and property are shown from, and its verified claims.
///
/// Only verified claims give a valid time a value, so they alone decide the
/// fact's status, value and valid time; the rest of the document is laid out
/// from the claims' current states when it is read. Keeping the unverified
/// claims out is what makes recording a claim cost the same whatever the
/// number of claims its fact already has: a new pending claim, or a dispute of
/// an unverified one, leaves the summary as it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub subject: String,
    pub property: String,
    /// The earliest asserted claim (record time, then id): the one the
    /// subject and property are taken from, as in [`compute`].
    pub first: (DateTime<Utc>, Uuid),
    /// In claim order.
    pub verified: Vec<FactClaim>,
}

impl Summary {
    /// The summary of a fact with these claims (in any order).
    pub fn of<'a>(claims: impl IntoIterator<Item = &'a Claim>) -> Option<Summary> {
        let mut claims = claims.into_iter();
        let c = claims.next()?;
        let summary = Summary {
            subject: c.asserted.subject.clone(),
            property: c.asserted.property.clone(),
            first: (c.asserted_at, c.asserted.claim_id),
            verified: Vec::new(),
        };
        Some(summary.with_changes(std::iter::once(c).chain(claims)))
    }

    /// This summary with `changed` claims (new ones, or new states of claims
    /// it already counts): equal to [`Summary::of`] all of the fact's claims,
    /// without needing the unchanged ones.
    pub fn with_changes<'a>(mut self, changed: impl IntoIterator<Item = &'a Claim>) -> Summary {
        for c in changed {
            let order = (c.asserted_at, c.asserted.claim_id);
            if order < self.first {
                self.first = order;
                self.subject = c.asserted.subject.clone();
                self.property = c.asserted.property.clone();
            }
            self.verified.retain(|v| v.id != c.asserted.claim_id);
            if c.status == Status::Verified {
                self.verified.push(FactClaim::of(c));
            }
        }
        self.verified.sort_by_key(FactClaim::order);
        self
    }

    /// The fact's headline (status, value, valid time) as its full document
    /// has it: laid out from the verified claims alone.
    pub fn headline(&self, fact_id: Uuid) -> Fact {
        lay_out(
            fact_id,
            self.subject.clone(),
            self.property.clone(),
            self.verified.clone(),
        )
    }
}

/// The headline (status, value, valid time) of a fact whose verified claims
/// are `verified` (others among them are ignored): what [`Summary::headline`]
/// gives, without the subject and property, which need its first claim.
pub fn headline_of<'a>(fact_id: Uuid, verified: impl IntoIterator<Item = &'a Claim>) -> Fact {
    let claims = verified
        .into_iter()
        .filter(|c| c.status == Status::Verified)
        .map(FactClaim::of)
        .collect();
    lay_out(fact_id, String::new(), String::new(), claims)
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
