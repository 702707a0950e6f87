//! The exchange format of the log (`factlog export`, `factlog import`): one
//! event per line, as `/v1/events` shows it plus the hash of the event before
//! (`prev_hash`), so that a line alone can be checked: its chain hash
//! recomputed from `prev_hash` and its fields, its Merkle leaf from its
//! fields and salts (AUDITING.md, "The exchange format"). Pure: reading the
//! file and writing the log are the callers' (`commands/exchange.rs`,
//! [`super::import`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::chain::{self, ChainFields, GENESIS, HASH_LEN};
use super::event::RecordedEvent;
use super::leaf::{self, LeafFields};
use super::seal;

/// One line of an export: the fields of [`RecordedEvent`] (values shown,
/// with their salts) and `prev_hash`, in this order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLine {
    pub position: i64,
    pub stream: String,
    pub version: i64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub recorded_at: DateTime<Utc>,
    pub actor: String,
    pub data: Value,
    pub metadata: Value,
    pub event_id: Uuid,
    /// Hex chain hash of the event at `position - 1` (64 zeros before the
    /// first event).
    pub prev_hash: String,
    pub hash: String,
    pub leaf_hash: String,
    #[serde(default)]
    pub salts: BTreeMap<String, String>,
}

impl LogLine {
    /// The line of `event`, whose predecessor's chain hash is `prev_hash` (hex).
    pub fn new(event: RecordedEvent, prev_hash: String) -> Self {
        LogLine {
            position: event.position,
            stream: event.stream,
            version: event.version,
            event_type: event.event_type,
            recorded_at: event.recorded_at,
            actor: event.actor,
            data: event.data,
            metadata: event.metadata,
            event_id: event.event_id,
            prev_hash,
            hash: event.hash,
            leaf_hash: event.leaf_hash,
            salts: event.salts,
        }
    }
}

/// A line that was checked, as the log stores it: the data sealed again,
/// data and metadata as canonical JSON text, the secrets beside them.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRow {
    /// The line of the file it came from (1-based).
    pub line: u64,
    pub position: i64,
    pub event_id: Uuid,
    pub stream: String,
    pub version: i64,
    pub event_type: String,
    /// Canonical JSON of the data as stored (sealed values as commitments).
    pub data: String,
    /// Canonical JSON of the metadata.
    pub metadata: String,
    pub actor: String,
    pub recorded_at: DateTime<Utc>,
    pub prev_hash: [u8; HASH_LEN],
    pub hash: [u8; HASH_LEN],
    /// `{path: {salt, value}}` as JSON text, when a value is sealed.
    pub secrets: Option<String>,
}

/// Why a line was refused, with its (1-based) number in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct LineError {
    pub line: u64,
    pub reason: String,
}

/// What the line before left for the next one to follow.
#[derive(Debug, Clone, Copy)]
struct Previous {
    position: i64,
    hash: [u8; HASH_LEN],
    recorded_at: DateTime<Utc>,
}

/// Checks the lines of one file in order: each line alone (its chain hash
/// from its `prev_hash`, its leaf), and each against the line before (the
/// next position, the previous line's hash, a record time no earlier).
#[derive(Debug, Default)]
pub struct LineChecker {
    line: u64,
    previous: Option<Previous>,
}

impl LineChecker {
    pub fn new() -> Self {
        LineChecker::default()
    }

    /// Lines read so far (the number of the last one).
    pub fn lines(&self) -> u64 {
        self.line
    }

    /// Checks the next line of the file (without its line ending).
    pub fn check(&mut self, text: &[u8]) -> Result<ImportRow, LineError> {
        self.line += 1;
        let line = self.line;
        let fail = |reason: String| LineError { line, reason };
        let parsed: LogLine = serde_json::from_slice(text).map_err(|e| fail(json_reason(&e)))?;
        let row = check_line(parsed, self.previous.as_ref(), line).map_err(fail)?;
        self.previous = Some(Previous {
            position: row.position,
            hash: row.hash,
            recorded_at: row.recorded_at,
        });
        Ok(row)
    }
}

/// A serde_json error in the words of a line: what is wrong and at which
/// column (its own "at line 1" would only confuse).
fn json_reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let what = text
        .rfind(" at line ")
        .map_or(text.as_str(), |i| &text[..i]);
    match e.classify() {
        serde_json::error::Category::Eof => {
            format!("the line is cut short (truncated JSON: {what})")
        }
        serde_json::error::Category::Syntax => {
            format!("not JSON ({what} at column {})", e.column())
        }
        _ => format!("not an event line ({what} at column {})", e.column()),
    }
}

fn hash_field(name: &str, hex_text: &str) -> Result<[u8; HASH_LEN], String> {
    let mut out = [0u8; HASH_LEN];
    hex::decode_to_slice(hex_text, &mut out)
        .map_err(|_| format!("{name} is not {} hex digits", 2 * HASH_LEN))?;
    Ok(out)
}

fn check_line(l: LogLine, previous: Option<&Previous>, line: u64) -> Result<ImportRow, String> {
    let prev_hash = hash_field("prev_hash", &l.prev_hash)?;
    let hash = hash_field("hash", &l.hash)?;
    let leaf_hash = hash_field("leaf_hash", &l.leaf_hash)?;
    if l.position < 1 {
        return Err(format!("position {} is not a position", l.position));
    }
    match previous {
        Some(p) if l.position != p.position + 1 => {
            return Err(format!(
                "position {} does not follow the line before (position {}): a line is missing or out of order",
                l.position, p.position
            ));
        }
        Some(p) if prev_hash != p.hash => {
            return Err("its prev_hash is not the hash of the line before".into());
        }
        Some(p) if l.recorded_at < p.recorded_at => {
            return Err("its recorded_at is earlier than the line before's".into());
        }
        None if l.position == 1 && prev_hash != GENESIS => {
            return Err("the log's first event must follow 64 zeros (prev_hash)".into());
        }
        _ => {}
    }
    if l.version < 1 {
        return Err(format!("version {} is not a version", l.version));
    }
    for (name, s) in [
        ("stream", &l.stream),
        ("type", &l.event_type),
        ("actor", &l.actor),
    ] {
        if s.contains('\0') || (name != "actor" && s.is_empty()) {
            return Err(format!("its {name} is empty or holds U+0000"));
        }
    }
    if chain::contains_nul(&l.data) || chain::contains_nul(&l.metadata) {
        return Err("its data or metadata holds U+0000".into());
    }
    let mut data = l.data;
    let secrets = seal::reseal(&mut data, &l.salts)?;
    let data = chain::canonical_json(&data);
    let metadata = chain::canonical_json(&l.metadata);
    let computed = chain::link(
        &prev_hash,
        &ChainFields {
            position: l.position,
            event_id: l.event_id,
            stream: &l.stream,
            version: l.version,
            event_type: &l.event_type,
            data: &data,
            actor: &l.actor,
            metadata: &metadata,
            recorded_at: l.recorded_at,
        },
    );
    if computed != hash {
        return Err(format!(
            "the chain hash does not match: its fields and prev_hash hash to {}, the line says {}",
            hex::encode(computed),
            l.hash
        ));
    }
    let leaf = leaf::leaf_hash(&LeafFields {
        position: l.position,
        stream: &l.stream,
        version: l.version,
        event_type: &l.event_type,
        recorded_at: l.recorded_at,
        actor: &l.actor,
        data: &data,
    });
    if leaf != leaf_hash {
        return Err(format!(
            "the leaf hash does not match: its fields hash to {}, the line says {}",
            hex::encode(leaf),
            l.leaf_hash
        ));
    }
    Ok(ImportRow {
        line,
        position: l.position,
        event_id: l.event_id,
        stream: l.stream,
        version: l.version,
        event_type: l.event_type,
        data,
        metadata,
        actor: l.actor,
        recorded_at: l.recorded_at,
        prev_hash,
        hash,
        secrets: secrets.map(|s| s.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_log;
    use serde_json::json;

    /// Two chained lines, made the way the appender and export make them.
    fn two_lines() -> Vec<String> {
        test_log::chained(2, |p| {
            (
                json!({"quote": format!("q{p}"), "subject": "s"}),
                vec!["quote"],
            )
        })
        .into_iter()
        .map(|e| {
            let event = RecordedEvent {
                position: e.position,
                stream: test_log::STREAM.into(),
                version: e.position,
                event_type: test_log::EVENT_TYPE.into(),
                recorded_at: e.recorded_at,
                actor: test_log::ACTOR.into(),
                data: e.shown,
                metadata: json!({}),
                event_id: e.event_id,
                hash: hex::encode(e.hash),
                leaf_hash: hex::encode(e.leaf),
                salts: seal::salts(e.secrets.as_ref()),
            };
            serde_json::to_string(&LogLine::new(event, hex::encode(e.prev))).unwrap()
        })
        .collect()
    }

    #[test]
    fn exported_lines_check_and_give_back_the_stored_data() {
        let lines = two_lines();
        let mut checker = LineChecker::new();
        let a = checker.check(lines[0].as_bytes()).unwrap();
        let b = checker.check(lines[1].as_bytes()).unwrap();
        assert_eq!((a.position, b.position), (1, 2));
        assert_eq!(b.prev_hash, a.hash);
        let stored: Value = serde_json::from_str(&a.data).unwrap();
        assert_eq!(stored["quote"].as_str().unwrap().len(), 64, "a commitment");
        let secrets: Value = serde_json::from_str(a.secrets.as_deref().unwrap()).unwrap();
        assert_eq!(secrets["quote"]["value"], "q1");
    }

    fn first_error(lines: &[String]) -> LineError {
        let mut checker = LineChecker::new();
        for l in lines {
            if let Err(e) = checker.check(l.as_bytes()) {
                return e;
            }
        }
        panic!("every line checked");
    }

    #[test]
    fn each_kind_of_bad_line_is_named() {
        let lines = two_lines();
        let changed = lines[1].replace("\"q2\"", "\"q3\"");
        let e = first_error(&[lines[0].clone(), changed]);
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("chain hash"), "{e}");

        // A file may begin anywhere: its first line is checked against its own prev_hash.
        assert!(LineChecker::new().check(lines[1].as_bytes()).is_ok());
        let e = first_error(&[lines[1].replace("\"version\":2", "\"version\":3")]);
        assert!(e.to_string().starts_with("line 1: the chain hash"), "{e}");

        let e = first_error(&[lines[0].clone(), lines[0].clone()]);
        assert!(e.reason.contains("does not follow"), "{e}");

        let cut = &lines[1][..lines[1].len() / 2];
        let e = first_error(&[lines[0].clone(), cut.to_owned()]);
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("cut short"), "{e}");

        let e = first_error(&["hello".to_owned()]);
        assert!(e.reason.starts_with("not JSON"), "{e}");

        let e = first_error(&["{\"position\": 1}".to_owned()]);
        assert!(e.reason.starts_with("not an event line"), "{e}");
    }
}
