//! The Merkle leaf of an event: the bytes an auditor recomputes from what
//! `GET /v1/events` returns (AUDITING.md, "The leaf"). Sealed values enter
//! only as their commitments, so an erasure never changes a leaf.

use chrono::{DateTime, Utc};

use super::chain::canonical_json_text;
use super::read::LogRow;

/// Domain separation; a new encoding gets a new tag.
pub const LEAF_TAG: &[u8] = b"factlog-leaf-v1";

/// What a leaf covers.
pub struct LeafFields<'a> {
    pub position: i64,
    pub stream: &'a str,
    pub version: i64,
    pub event_type: &'a str,
    pub recorded_at: DateTime<Utc>,
    pub actor: &'a str,
    /// Canonical JSON of the data as stored: sealed fields as commitments.
    pub data: &'a str,
}

/// The leaf's bytes: the tag, then each field in a fixed order, integers as
/// 8 bytes big-endian and strings prefixed by their byte length (8 bytes
/// big-endian), so no two events encode alike.
pub fn leaf_bytes(f: &LeafFields<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        LEAF_TAG.len() + 56 + f.stream.len() + f.event_type.len() + f.actor.len() + f.data.len(),
    );
    out.extend_from_slice(LEAF_TAG);
    out.extend_from_slice(&f.position.to_be_bytes());
    put_str(&mut out, f.stream);
    out.extend_from_slice(&f.version.to_be_bytes());
    put_str(&mut out, f.event_type);
    out.extend_from_slice(&f.recorded_at.timestamp_micros().to_be_bytes());
    put_str(&mut out, f.actor);
    put_str(&mut out, f.data);
    out
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// RFC 9162's leaf hash of the event: `SHA-256(0x00 || leaf bytes)`.
pub fn leaf_hash(f: &LeafFields<'_>) -> [u8; 32] {
    crate::merkle::leaf_hash(&leaf_bytes(f))
}

/// The leaf hash of a log row, from the data as stored (sealed values as
/// their commitments): what the `tree` projection appends and `factlog
/// verify` recomputes. `None` when the stored data is not JSON.
pub fn leaf_of_row(row: &LogRow) -> Option<[u8; 32]> {
    let data = canonical_json_text(&row.data)?;
    Some(leaf_hash(&LeafFields {
        position: row.position,
        stream: &row.stream,
        version: row.version,
        event_type: &row.event_type,
        recorded_at: row.recorded_at,
        actor: &row.actor,
        data: &data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::chain::canonical_json;
    use crate::store::seal::commitment;
    use serde_json::json;

    /// The worked example of AUDITING.md, "The leaf": if this fails, the
    /// document is wrong too.
    #[test]
    fn the_documented_worked_example_holds() {
        let salt = [0x11u8; 32];
        let quote = "some 5,200 U.S. soldiers are stationed in Iraq";
        let c = hex::encode(commitment(&salt, quote));
        assert_eq!(
            c,
            "73b1595e47e5a6f2626265739b609f407991a3bc0dcc0a1af6af5bec7377b02e"
        );
        let data = canonical_json(&json!({"quote": c, "subject": "u.s. troops in iraq"}));
        let f = LeafFields {
            position: 42,
            stream: "claim-0190b3d2-7c4a-7e4b-9b1e-3f2a1c0d9e8f",
            version: 1,
            event_type: "ClaimAsserted",
            recorded_at: DateTime::parse_from_rfc3339("2020-01-05T12:00:00.000001Z")
                .unwrap()
                .with_timezone(&Utc),
            actor: "desk",
            data: &data,
        };
        let bytes = leaf_bytes(&f);
        assert_eq!(&bytes[..15], b"factlog-leaf-v1");
        assert_eq!(hex::encode(&bytes[15..23]), "000000000000002a");
        assert_eq!(
            hex::encode(leaf_hash(&f)),
            "091db7766da112299770d9c0e726cc03173acd985c0c11b2dacbf3584c382b0a"
        );
    }
}
