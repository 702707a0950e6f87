//! The shapes of the log: what callers hand to `append` and what readers get back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// What the caller believes about a stream before appending to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Append whatever the stream's current version is.
    Any,
    /// The stream must not exist yet (it is being created).
    NoStream,
    /// The stream must be at exactly this version (1 after its first event).
    Exact(u64),
}

impl ExpectedVersion {
    pub fn admits(self, current: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current == 0,
            ExpectedVersion::Exact(v) => current == v,
        }
    }
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "{v}"),
        }
    }
}

/// An event not yet in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: String,
    pub data: Value,
    /// Dotted paths of erasable fields in `data`: sealed on append
    /// (`seal`), so the log keeps only their commitments.
    pub sealed: &'static [&'static str],
}

impl NewEvent {
    pub fn new(event_type: impl Into<String>, data: Value) -> Self {
        NewEvent {
            event_type: event_type.into(),
            data,
            sealed: &[],
        }
    }

    /// The same event with the fields at `paths` sealed on append.
    pub fn sealing(mut self, paths: &'static [&'static str]) -> Self {
        self.sealed = paths;
        self
    }
}

/// Who and why: recorded with every event of one append.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// The principal that caused the write (a token's name, or `cli`).
    pub actor: String,
    /// Ties together every event caused by one request or job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The event or command that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The request's `Idempotency-Key`, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl Metadata {
    pub fn by(actor: impl Into<String>) -> Self {
        Metadata {
            actor: actor.into(),
            ..Metadata::default()
        }
    }

    /// The JSON stored in the `metadata` column: everything but the actor,
    /// which has a column of its own (audit queries filter on it).
    pub(crate) fn stored_json(&self) -> Value {
        let mut map = serde_json::Map::new();
        if let Some(id) = self.correlation_id {
            map.insert("correlation_id".into(), Value::String(id.to_string()));
        }
        if let Some(id) = self.causation_id {
            map.insert("causation_id".into(), Value::String(id.to_string()));
        }
        if let Some(key) = &self.idempotency_key {
            map.insert("idempotency_key".into(), Value::String(key.clone()));
        }
        Value::Object(map)
    }
}

/// Events for one stream, part of an atomic append.
#[derive(Debug, Clone)]
pub struct StreamAppend {
    pub stream: String,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// An immutable, hash-chained record.
// As it stands in the log, and as `/v1/events`, the audit trail and the
// event stream show it (`Event` in the OpenAPI document, in this order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Event)]
pub struct RecordedEvent {
    /// Global, strictly increasing; no reader ever skips one.
    pub position: i64,
    /// `story-<uuid>`, `claim-<uuid>` or `principals`.
    pub stream: String,
    #[schema(minimum = 1)]
    pub version: i64,
    /// E.g. `StoryRegistered`, `ClaimAsserted`, `ClaimConfirmed`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Database clock; never decreases as position grows.
    pub recorded_at: DateTime<Utc>,
    /// The name of the token that wrote it (`cli` for the command line).
    pub actor: String,
    #[schema(value_type = Object)]
    pub data: Value,
    /// Who asked and why: `correlation_id`, `idempotency_key`, ... as recorded.
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub event_id: Uuid,
    /// Hex SHA-256 chaining this event to the one before it (lower case).
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub hash: String,
    /// Hex RFC 9162 leaf hash of this event in the log's Merkle tree,
    /// recomputable from the fields above and `salts` (AUDITING.md).
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub leaf_hash: String,
    /// The salt (hex) of each erasable field of `data` that the leaf commits
    /// to, by its dotted path (`quote`, `changes.quote`, `note`, ...). Empty
    /// for events recorded before the verifiable log: their leaves cover
    /// the values themselves.
    #[serde(default)]
    #[schema(required = true)]
    pub salts: std::collections::BTreeMap<String, String>,
}

/// An event as every view writes it: keys in byte order, as a
/// `serde_json::Value` (whose map sorts them) writes them, without building
/// one; a page of the log is a thousand events.
pub struct SortedKeys<'a>(pub &'a RecordedEvent);

impl Serialize for SortedKeys<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        // Every field named: one added to the event cannot be left out here.
        let RecordedEvent {
            position,
            stream,
            version,
            event_type,
            recorded_at,
            actor,
            data,
            metadata,
            event_id,
            hash,
            leaf_hash,
            salts,
        } = self.0;
        let mut out = serializer.serialize_struct("Event", 12)?;
        out.serialize_field("actor", actor)?;
        out.serialize_field("data", data)?;
        out.serialize_field("event_id", event_id)?;
        out.serialize_field("hash", hash)?;
        out.serialize_field("leaf_hash", leaf_hash)?;
        out.serialize_field("metadata", metadata)?;
        out.serialize_field("position", position)?;
        out.serialize_field("recorded_at", recorded_at)?;
        out.serialize_field("salts", salts)?;
        out.serialize_field("stream", stream)?;
        out.serialize_field("type", event_type)?;
        out.serialize_field("version", version)?;
        out.end()
    }
}

/// Where one appended event landed (its content is what was appended).
#[derive(Debug, Clone, PartialEq)]
pub struct AppendedEvent {
    pub position: i64,
    pub event_id: Uuid,
    pub stream: String,
    pub version: i64,
}

/// What a successful append hands back: the receipt a client keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendReceipt {
    /// Each stream appended to, with its version after the append, in request order.
    pub streams: Vec<(String, u64)>,
    pub first_position: i64,
    /// Global position of the append's last event.
    pub last_position: i64,
    /// Chain hash (hex) of the append's last event.
    pub last_hash: String,
    /// Merkle leaf hash (hex) of the append's last event.
    pub last_leaf_hash: String,
    pub recorded_at: DateTime<Utc>,
    /// Who appended (every event of one append has the same actor).
    pub actor: String,
    /// Each event, in order.
    pub events: Vec<AppendedEvent>,
}

impl AppendReceipt {
    /// The version of `stream` after this append.
    pub fn version_of(&self, stream: &str) -> Option<u64> {
        self.streams
            .iter()
            .find(|(s, _)| s == stream)
            .map(|(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorted_keys_write_what_a_value_writes() {
        let event = RecordedEvent {
            position: 42,
            stream: "claim-1".into(),
            version: 3,
            event_type: "ClaimAsserted".into(),
            recorded_at: DateTime::parse_from_rfc3339("2026-12-07T16:12:00.123456Z")
                .expect("a time")
                .with_timezone(&Utc),
            actor: "desk \"a\"".into(),
            data: json!({"z": [1, 2.5, {"b": null, "a": "é\n"}], "a": {"y": true, "x": -0.0}}),
            metadata: json!({"idempotency_key": "k", "correlation_id": "c"}),
            event_id: Uuid::from_u128(0x1234),
            hash: "ab".repeat(32),
            leaf_hash: "cd".repeat(32),
            salts: [("quote".to_owned(), "ef".repeat(32))].into(),
        };
        let through_value = serde_json::to_value(&event).expect("a value").to_string();
        let direct = serde_json::to_string(&SortedKeys(&event)).expect("json");
        assert_eq!(direct, through_value);
    }
}
