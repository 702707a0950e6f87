//! Which fields of which events hold personal data that an erasure may
//! remove (API.md, "Erasure"). The store seals exactly these paths on
//! append, so the log keeps only salted commitments of them.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

/// The fields an erasure request names.
pub const FIELDS: &[&str] = &["attributed_to", "quote", "notes", "body"];

/// Dotted paths in an event's data that hold erasable values, by event type.
pub fn sealed_paths(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "ClaimAsserted" => &["quote", "attributed_to"],
        "ClaimAmended" => &["changes.quote", "changes.attributed_to"],
        "EvidenceAttached" | "ClaimConfirmed" => &["note"],
        "ClaimDisputed" | "ClaimRetracted" => &["reason"],
        "StoryRegistered" => &["body"],
        _ => &[],
    }
}

/// The erasure field (one of [`FIELDS`]) a sealed path belongs to.
pub fn field_of(path: &str) -> Option<&'static str> {
    match path.rsplit('.').next()? {
        "quote" => Some("quote"),
        "attributed_to" => Some("attributed_to"),
        "note" | "reason" => Some("notes"),
        "body" => Some("body"),
        _ => None,
    }
}

/// Which erasable fields of a claim or story an erasure removed, and the
/// position of the (latest) `Erased` event that did: what reads show beside
/// the fields, which read as `null`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErasedMark {
    /// Among `attributed_to`, `quote`, `notes`, `body`.
    pub fields: Vec<String>,
    /// The `Erased` event's position.
    pub position: i64,
}

impl ErasedMark {
    /// The mark an opened event's data carries (`store::seal::open`), if any.
    pub fn of_data(data: &serde_json::Value) -> Option<ErasedMark> {
        let mark = data.get("erased")?;
        Some(ErasedMark {
            fields: mark
                .get("fields")?
                .as_array()?
                .iter()
                .filter_map(|f| f.as_str().map(str::to_owned))
                .collect(),
            position: mark.get("position")?.as_i64()?,
        })
    }

    /// This mark with `other`'s fields added and the later position.
    pub fn merge(mark: &mut Option<ErasedMark>, other: &ErasedMark) {
        let m = mark.get_or_insert_with(Default::default);
        for f in &other.fields {
            if !m.fields.contains(f) {
                m.fields.push(f.clone());
            }
        }
        m.fields.sort();
        m.position = m.position.max(other.position);
    }
}

/// Reads an erased (`null`) text field as empty: the rules hold the texts
/// they were given, and an erased one is none. Views show an empty required
/// text as `null` (it cannot be empty otherwise: input refuses that).
pub fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// The other half of [`null_as_empty`], for views.
pub fn empty_as_null<S: Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    if text.is_empty() {
        s.serialize_none()
    } else {
        s.serialize_str(text)
    }
}

/// Erases `mark.fields` from a claim's or story's view as a response showed
/// it (a stored idempotent response): each such field `null` (an optional
/// note left out, as views leave out a note there is none of) and the view's
/// `erased` mark merged with `mark`. Returns whether the view changed.
pub fn scrub_view(view: &mut serde_json::Value, mark: &ErasedMark) -> bool {
    use serde_json::Value;
    let Some(object) = view.as_object_mut() else {
        return false;
    };
    let has = |f: &str| mark.fields.iter().any(|x| x == f);
    for field in ["quote", "attributed_to", "body"] {
        if has(field)
            && let Some(slot) = object.get_mut(field)
        {
            *slot = Value::Null;
        }
    }
    if has("notes") {
        for (list, key) in [("confirmations", "note"), ("evidence", "note")] {
            if let Some(Value::Array(items)) = object.get_mut(list) {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    item.remove(key);
                }
            }
        }
        if let Some(Value::Array(items)) = object.get_mut("disputes") {
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                item.insert("reason".into(), Value::Null);
            }
        }
        if let Some(Value::Object(r)) = object.get_mut("retraction") {
            r.insert("reason".into(), Value::Null);
        }
    }
    let mut merged = object
        .get("erased")
        .and_then(|m| serde_json::from_value::<ErasedMark>(m.clone()).ok());
    let before = merged.clone();
    ErasedMark::merge(&mut merged, mark);
    if merged == before {
        return false;
    }
    match serde_json::to_value(&merged) {
        Ok(m) => {
            object.insert("erased".into(), m);
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sealed_path_belongs_to_an_erasable_field() {
        for t in [
            "ClaimAsserted",
            "ClaimAmended",
            "EvidenceAttached",
            "ClaimConfirmed",
            "ClaimDisputed",
            "ClaimRetracted",
            "StoryRegistered",
        ] {
            assert!(!sealed_paths(t).is_empty(), "{t}");
            for p in sealed_paths(t) {
                assert!(FIELDS.contains(&field_of(p).unwrap()), "{p}");
            }
        }
        assert!(sealed_paths("ClaimSuperseded").is_empty());
        assert!(sealed_paths("TokenIssued").is_empty());
    }

    #[test]
    fn a_scrubbed_view_shows_the_erased_fields_null_and_says_so() {
        let mut view = serde_json::json!({
            "id": "c", "quote": "Ann said", "attributed_to": "Ann", "subject": "s",
            "confirmations": [{"by": "bo", "note": "called Ann"}],
            "disputes": [{"by": "cy", "reason": "Ann lied"}],
            "evidence": [{"by": "bo", "url": "u", "note": "Ann's letter"}],
            "retraction": {"by": "bo", "reason": "Ann asked"},
        });
        let quote = ErasedMark {
            fields: vec!["quote".into()],
            position: 9,
        };
        assert!(scrub_view(&mut view, &quote));
        assert_eq!(view["quote"], serde_json::Value::Null);
        assert_eq!(view["attributed_to"], "Ann", "only the fields named");
        let notes = ErasedMark {
            fields: vec!["attributed_to".into(), "notes".into()],
            position: 12,
        };
        assert!(scrub_view(&mut view, &notes));
        assert!(!scrub_view(&mut view, &notes), "twice changes nothing");
        assert!(!view.to_string().contains("Ann"), "{view}");
        assert_eq!(view["subject"], "s");
        assert_eq!(
            view["erased"],
            serde_json::json!({"fields": ["attributed_to", "notes", "quote"], "position": 12})
        );
    }
}
