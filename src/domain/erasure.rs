//! An erasure request and the `Erased` event it appends (API.md, "Erasure").
//! The event names what was removed and why, never a removed value.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::claim::SCHEMA;
use super::erasable::FIELDS;
use super::error::FieldError;

pub const ERASED: &str = "Erased";

/// Each erasure is its own stream, so that erasures never contend.
pub fn stream_name(id: Uuid) -> String {
    format!("erasure-{id}")
}

/// What an erasure removes values from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Claim(Uuid),
    Story(Uuid),
}

impl Target {
    /// The request field that names it.
    pub fn field(self) -> &'static str {
        match self {
            Target::Claim(_) => "claim_id",
            Target::Story(_) => "story_id",
        }
    }

    /// What it is, in words: `claim` or `story`.
    pub fn noun(self) -> &'static str {
        match self {
            Target::Claim(_) => "claim",
            Target::Story(_) => "story",
        }
    }

    /// The stream whose events hold its values.
    pub fn stream(self) -> String {
        match self {
            Target::Claim(id) => super::claim::stream_name(id),
            Target::Story(id) => super::story::stream_name(id),
        }
    }

    pub fn id(self) -> Uuid {
        match self {
            Target::Claim(id) | Target::Story(id) => id,
        }
    }

    /// The erasable fields of a claim or of a story.
    pub fn erasable(self) -> &'static [&'static str] {
        match self {
            Target::Claim(_) => &["attributed_to", "quote", "notes"],
            Target::Story(_) => &["body"],
        }
    }
}

/// A checked erasure request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewErasure {
    pub target: Target,
    /// Sorted, each once.
    pub fields: Vec<String>,
    pub reason: String,
}

impl NewErasure {
    /// Checks the fields against what the target has: at least one, each
    /// erasable there.
    pub fn new(target: Target, fields: Vec<String>, reason: String) -> Result<Self, FieldError> {
        if fields.is_empty() {
            return Err(FieldError::new("fields", "must name at least one field"));
        }
        for (i, f) in fields.iter().enumerate() {
            if !FIELDS.contains(&f.as_str()) {
                return Err(FieldError::new(
                    format!("fields[{i}]"),
                    format!(
                        "is not an erasable field; expected one of: {}",
                        FIELDS.join(", ")
                    ),
                ));
            }
            if !target.erasable().contains(&f.as_str()) {
                return Err(FieldError::new(
                    format!("fields[{i}]"),
                    format!(
                        "is not a field of a {}; it has: {}",
                        target.noun(),
                        target.erasable().join(", ")
                    ),
                ));
            }
        }
        let mut fields = fields;
        fields.sort();
        fields.dedup();
        Ok(NewErasure {
            target,
            fields,
            reason,
        })
    }
}

/// The `Erased` event's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erased {
    pub schema: u32,
    pub erasure_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub story_id: Option<Uuid>,
    pub fields: Vec<String>,
    /// The events whose values it removed.
    pub positions: Vec<i64>,
    pub reason: String,
}

impl Erased {
    pub fn new(erasure_id: Uuid, e: &NewErasure, positions: Vec<i64>) -> Self {
        let (claim_id, story_id) = match e.target {
            Target::Claim(id) => (Some(id), None),
            Target::Story(id) => (None, Some(id)),
        };
        Erased {
            schema: SCHEMA,
            erasure_id,
            claim_id,
            story_id,
            fields: e.fields.clone(),
            positions,
            reason: e.reason.clone(),
        }
    }

    pub fn target(&self) -> Option<Target> {
        match (self.claim_id, self.story_id) {
            (Some(id), None) => Some(Target::Claim(id)),
            (None, Some(id)) => Some(Target::Story(id)),
            _ => None,
        }
    }

    /// The stream whose events it erased.
    pub fn erased_stream(&self) -> Option<String> {
        self.target().map(Target::stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_erasure_names_fields_its_target_has() {
        let claim = Target::Claim(Uuid::nil());
        let story = Target::Story(Uuid::nil());
        let ok = NewErasure::new(
            claim,
            vec!["quote".into(), "notes".into(), "quote".into()],
            "r".into(),
        )
        .unwrap();
        assert_eq!(ok.fields, ["notes", "quote"]);
        assert_eq!(
            NewErasure::new(claim, vec![], "r".into())
                .unwrap_err()
                .field,
            "fields"
        );
        assert_eq!(
            NewErasure::new(claim, vec!["subject".into()], "r".into())
                .unwrap_err()
                .field,
            "fields[0]"
        );
        let e =
            NewErasure::new(claim, vec!["quote".into(), "body".into()], "r".into()).unwrap_err();
        assert_eq!(e.field, "fields[1]");
        assert!(e.message.contains("claim"), "{}", e.message);
        assert!(NewErasure::new(story, vec!["quote".into()], "r".into()).is_err());
        assert!(NewErasure::new(story, vec!["body".into()], "r".into()).is_ok());
    }
}
