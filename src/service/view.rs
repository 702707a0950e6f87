//! How claims and stories look in responses (and in stored idempotent
//! responses, which must be byte-for-byte what was first sent).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::domain::claim::{Claim, Confirmation, Dispute, Evidence, Retraction};
use crate::domain::story::Story;
use crate::domain::valid_time::ValidTime;
use crate::domain::value::ClaimValue;

/// A claim as responses show it (single reads, listings, a story's claims),
/// rendered through a `Value`, whose keys come out sorted whatever the
/// order declared here.
#[derive(Serialize)]
struct ClaimView<'a> {
    id: Uuid,
    quote: &'a str,
    value: &'a ClaimValue,
    status: &'static str,
    fact_id: Uuid,
    subject: &'a str,
    version: u64,
    corrects: &'a Option<Uuid>,
    disputes: &'a [Dispute],
    evidence: &'a [Evidence],
    property: &'a str,
    story_id: Uuid,
    valid_at: &'a Option<ValidTime>,
    retraction: &'a Option<Retraction>,
    updated_at: &'a DateTime<Utc>,
    asserted_at: &'a DateTime<Utc>,
    asserted_by: &'a str,
    confirmed_by: Vec<&'a str>,
    attributed_to: &'a Option<String>,
    confirmations: &'a [Confirmation],
    superseded_by: &'a Option<Uuid>,
}

impl<'a> ClaimView<'a> {
    fn of(c: &'a Claim) -> Self {
        let a = &c.asserted;
        ClaimView {
            id: a.claim_id,
            story_id: a.story_id,
            subject: &a.subject,
            property: &a.property,
            fact_id: a.fact_id,
            value: &a.value,
            quote: &a.quote,
            valid_at: &a.valid_at,
            attributed_to: &a.attributed_to,
            corrects: &a.corrects,
            status: c.status.as_str(),
            asserted_by: &c.asserted_by,
            asserted_at: &c.asserted_at,
            confirmed_by: c.confirmations.iter().map(|x| x.by.as_str()).collect(),
            confirmations: &c.confirmations,
            disputes: &c.disputes,
            evidence: &c.evidence,
            retraction: &c.retraction,
            superseded_by: &c.superseded_by,
            version: c.version,
            updated_at: &c.updated_at,
        }
    }
}

pub fn claim(c: &Claim) -> Value {
    // Serializing plain data into a Value cannot fail.
    serde_json::to_value(ClaimView::of(c)).unwrap_or(Value::Null)
}

/// A story's own fields at the top level, plus its claims (their views).
pub fn story(s: &Story, claims: &[Value]) -> Value {
    let r = &s.registered;
    json!({
        "id": r.story_id,
        "title": r.title,
        "publisher": r.publisher,
        "published_at": r.published_at,
        "url": r.url,
        "body": r.body,
        "registered_by": s.registered_by,
        "registered_at": s.registered_at,
        "version": s.version,
        "claims": claims,
    })
}
