//! How claims and stories look in responses (and in stored idempotent
//! responses, which must be byte-for-byte what was first sent).

use serde_json::{Value, json};

use crate::domain::claim::Claim;
use crate::domain::story::Story;

pub fn claim(c: &Claim) -> Value {
    let a = &c.asserted;
    json!({
        "id": a.claim_id,
        "story_id": a.story_id,
        "subject": a.subject,
        "property": a.property,
        "fact_id": a.fact_id,
        "value": a.value,
        "quote": a.quote,
        "valid_at": a.valid_at,
        "attributed_to": a.attributed_to,
        "corrects": a.corrects,
        "status": c.status.as_str(),
        "asserted_by": c.asserted_by,
        "asserted_at": c.asserted_at,
        "confirmed_by": c.confirmations.iter().map(|x| x.by.as_str()).collect::<Vec<_>>(),
        "confirmations": c.confirmations,
        "disputes": c.disputes,
        "evidence": c.evidence,
        "retraction": c.retraction,
        "superseded_by": c.superseded_by,
        "version": c.version,
        "updated_at": c.updated_at,
    })
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
