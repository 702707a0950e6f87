//! Which fields of which events hold personal data that an erasure may
//! remove (API.md, "Erasure"). The store seals exactly these paths on
//! append, so the log keeps only salted commitments of them.

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
}
