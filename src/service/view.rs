//! How claims and stories look in responses (and in stored idempotent
//! responses, which must be byte-for-byte what was first sent). The views'
//! docs and fields are also their description in `/openapi.json`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::claim::{Claim, Confirmation, Dispute, Evidence, Retraction, Status};
use crate::domain::erasable::ErasedMark;
use crate::domain::story::Story;
use crate::domain::valid_time::ValidTime;
use crate::domain::value::ClaimValue;

/// A claim as folded from its own stream.
// As responses show it (single reads, listings, a story's claims), rendered
// through a `Value`, whose keys come out sorted whatever the order declared
// here (the order the document lists them in).
#[derive(Serialize, ToSchema)]
#[schema(as = Claim)]
pub struct ClaimView<'a> {
    id: Uuid,
    story_id: Uuid,
    subject: &'a str,
    property: &'a str,
    /// Deterministic from the normalized subject and property.
    fact_id: Uuid,
    value: &'a ClaimValue,
    /// `null` once erased.
    #[serde(serialize_with = "crate::domain::erasable::empty_as_null")]
    #[schema(nullable)]
    quote: &'a str,
    valid_at: &'a Option<ValidTime>,
    attributed_to: &'a Option<String>,
    corrects: &'a Option<Uuid>,
    #[schema(value_type = Status)]
    status: &'static str,
    /// The name of the token that asserted it.
    asserted_by: &'a str,
    asserted_at: &'a DateTime<Utc>,
    /// Who confirmed it in the current verification round.
    confirmed_by: Vec<&'a str>,
    confirmations: &'a [Confirmation],
    disputes: &'a [Dispute],
    evidence: &'a [Evidence],
    retraction: &'a Option<Retraction>,
    superseded_by: &'a Option<Uuid>,
    /// The claim stream's version; also its `ETag`.
    #[schema(minimum = 1)]
    version: u64,
    updated_at: &'a DateTime<Utc>,
    /// Present once an erasure removed some of the claim's fields, which
    /// then read as `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    erased: &'a Option<ErasedMark>,
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
            erased: &c.erased,
        }
    }
}

pub fn claim(c: &Claim) -> Value {
    // Serializing plain data into a Value cannot fail.
    serde_json::to_value(ClaimView::of(c)).unwrap_or(Value::Null)
}

/// A story: its own fields, from its stream, and its claims.
// Rendered through a `Value` (sorted keys) like a claim.
#[derive(Serialize, ToSchema)]
#[schema(as = Story)]
pub struct StoryView<'a> {
    id: Uuid,
    title: &'a str,
    publisher: &'a str,
    published_at: &'a DateTime<Utc>,
    url: &'a Option<String>,
    body: &'a Option<String>,
    registered_by: &'a str,
    registered_at: &'a DateTime<Utc>,
    #[schema(minimum = 1)]
    version: u64,
    /// Present once an erasure removed the story's body.
    #[serde(skip_serializing_if = "Option::is_none")]
    erased: &'a Option<ErasedMark>,
    /// From projections: see `wait_for`.
    #[schema(value_type = Vec<ClaimView>)]
    claims: &'a [Value],
}

/// A story's own fields at the top level, plus its claims (their views).
pub fn story(s: &Story, claims: &[Value]) -> Value {
    let r = &s.registered;
    let view = StoryView {
        id: r.story_id,
        title: &r.title,
        publisher: &r.publisher,
        published_at: &r.published_at,
        url: &r.url,
        body: &r.body,
        registered_by: &s.registered_by,
        registered_at: &s.registered_at,
        version: s.version,
        erased: &s.erased,
        claims,
    };
    serde_json::to_value(view).unwrap_or(Value::Null)
}

/// What every write adds to the resource it answers with.
// Added by `store::with_receipt`; described only.
#[derive(ToSchema)]
#[allow(dead_code, reason = "schema-only: the receipt is added to a Value")]
pub struct Receipt {
    /// Global position of the write's last event.
    position: i64,
    /// The addressed stream's version after the write.
    #[schema(minimum = 1)]
    version: u64,
    /// Chain hash (hex SHA-256) of the write's last event: the client's receipt.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    hash: String,
    /// Merkle leaf hash (hex) of the write's last event: give it with
    /// `position` to `GET /v1/proofs/inclusion`.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    leaf_hash: String,
}

/// A claim as a write leaves it, with the write's receipt.
#[derive(ToSchema)]
#[allow(dead_code, reason = "schema-only")]
pub struct ClaimReceipt {
    #[serde(flatten)]
    claim: ClaimView<'static>,
    #[serde(flatten)]
    receipt: Receipt,
}

#[derive(ToSchema)]
#[allow(dead_code, reason = "schema-only")]
pub struct StoryReceipt {
    #[serde(flatten)]
    story: StoryView<'static>,
    #[serde(flatten)]
    receipt: Receipt,
}
