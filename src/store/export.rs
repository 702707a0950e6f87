//! Reading the log for an export (`factlog export`): one binary `COPY … TO
//! STDOUT` of the events and their secrets, split into rows here and
//! written out as lines of the exchange format ([`super::exchange`]), with
//! no `serde_json::Value` in between unless an event has sealed values to
//! open. The database does what its own COPY of the rows does and no more;
//! the rest is this side's, on a thread of its own.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::chain::{HASH_LEN, canonical_json_text};
use super::leaf::{LeafFields, leaf_hash};

/// `COPY … (FORMAT binary)`'s signature, flags and (empty) header extension.
pub(crate) const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01 UTC.
pub(crate) const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// jsonb's binary format: a version byte, then the text.
pub(crate) const JSONB_VERSION: u8 = 1;
/// The columns [`select`] reads.
const COLUMNS: i16 = 11;

/// The events after `after` up to `head` with their secrets, in order. The
/// secrets' join is bounded too, so an export of a log's tail does not
/// walk `event_secrets` from its start.
pub fn select(after: i64, head: i64) -> String {
    format!(
        "SELECT e.position, e.event_id, e.stream, e.version, e.type, e.data, e.metadata, \
         e.actor, e.recorded_at, e.hash, s.secrets \
         FROM events e LEFT JOIN event_secrets s \
         ON s.position = e.position AND s.position > {after} AND s.position <= {head} \
         WHERE e.position > {after} AND e.position <= {head} ORDER BY e.position"
    )
}

/// [`select`] as the binary COPY an export reads.
pub fn copy_statement(after: i64, head: i64) -> String {
    format!("COPY ({}) TO STDOUT (FORMAT binary)", select(after, head))
}

/// One row of [`select`], borrowed from the COPY stream.
#[derive(Debug)]
pub struct StoredRow<'a> {
    pub position: i64,
    pub event_id: Uuid,
    pub stream: &'a str,
    pub version: i64,
    pub event_type: &'a str,
    /// The data's JSON text as stored (sealed values as commitments).
    pub data: &'a str,
    pub metadata: &'a str,
    pub actor: &'a str,
    pub recorded_at: DateTime<Utc>,
    pub hash: [u8; HASH_LEN],
    pub secrets: Option<&'a str>,
}

/// Splits a binary COPY stream, fed in chunks of any size, into rows.
#[derive(Debug, Default)]
pub struct CopyReader {
    buf: Vec<u8>,
    /// Where the next unread byte of `buf` is.
    at: usize,
    header: bool,
    ended: bool,
}

impl CopyReader {
    pub fn new() -> Self {
        CopyReader::default()
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
        } else if self.at > self.buf.len() / 2 {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// Whether the stream's trailer was read: a stream cut short has none.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The next whole row fed, if any.
    pub fn next_row(&mut self) -> Result<Option<StoredRow<'_>>, String> {
        if !self.header {
            let Some(rest) = self.buf.get(self.at..self.at + COPY_HEADER.len()) else {
                return Ok(None);
            };
            if rest != COPY_HEADER {
                return Err("the COPY stream has no binary header".into());
            }
            self.at += COPY_HEADER.len();
            self.header = true;
        }
        if self.ended {
            return Ok(None);
        }
        let Some((start, end)) = self.frame()? else {
            return Ok(None);
        };
        if start == end {
            self.ended = true;
            return Ok(None);
        }
        self.at = end;
        parse_row(&self.buf[start..end]).map(Some)
    }

    /// The bounds of the next whole tuple's fields (empty for the trailer).
    fn frame(&self) -> Result<Option<(usize, usize)>, String> {
        let b = &self.buf;
        let Some(count) = b.get(self.at..self.at + 2) else {
            return Ok(None);
        };
        let count = i16::from_be_bytes([count[0], count[1]]);
        let start = self.at + 2;
        if count == -1 {
            return Ok(Some((start, start)));
        }
        if count != COLUMNS {
            return Err(format!("a row of {count} columns, not {COLUMNS}"));
        }
        let mut i = start;
        for _ in 0..count {
            let Some(len) = b.get(i..i + 4) else {
                return Ok(None);
            };
            let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            i += 4 + usize::try_from(len).unwrap_or(0);
            if i > b.len() {
                return Ok(None);
            }
        }
        Ok(Some((start, i)))
    }
}

/// Fields of one tuple, in order, `None` for NULL.
struct Fields<'a> {
    b: &'a [u8],
}

impl<'a> Fields<'a> {
    fn next(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.b.split_first_chunk::<4>()?;
        let len = i32::from_be_bytes(*len);
        let Ok(len) = usize::try_from(len) else {
            self.b = rest;
            return None;
        };
        let (field, rest) = rest.split_at(len);
        self.b = rest;
        Some(field)
    }

    fn bytes(&mut self, name: &str) -> Result<&'a [u8], String> {
        self.next().ok_or_else(|| format!("{name} is NULL"))
    }

    fn int8(&mut self, name: &str) -> Result<i64, String> {
        let b = self.bytes(name)?;
        Ok(i64::from_be_bytes(
            b.try_into().map_err(|_| format!("{name} is not 8 bytes"))?,
        ))
    }

    fn text(&mut self, name: &str) -> Result<&'a str, String> {
        std::str::from_utf8(self.bytes(name)?).map_err(|_| format!("{name} is not UTF-8"))
    }

    fn jsonb(b: &'a [u8], name: &str) -> Result<&'a str, String> {
        match b.split_first() {
            Some((&JSONB_VERSION, text)) => {
                std::str::from_utf8(text).map_err(|_| format!("{name} is not UTF-8"))
            }
            _ => Err(format!("{name} is not jsonb of version {JSONB_VERSION}")),
        }
    }
}

fn parse_row(b: &[u8]) -> Result<StoredRow<'_>, String> {
    let mut f = Fields { b };
    let position = f.int8("position")?;
    let event_id = Uuid::from_slice(f.bytes("event_id")?).map_err(|e| e.to_string())?;
    let stream = f.text("stream")?;
    let version = f.int8("version")?;
    let event_type = f.text("type")?;
    let data = Fields::jsonb(f.bytes("data")?, "data")?;
    let metadata = Fields::jsonb(f.bytes("metadata")?, "metadata")?;
    let actor = f.text("actor")?;
    let micros = f.int8("recorded_at")?;
    let recorded_at = DateTime::from_timestamp_micros(micros.saturating_add(PG_EPOCH_MICROS))
        .ok_or_else(|| format!("recorded_at {micros} is out of range"))?;
    let hash = f
        .bytes("hash")?
        .try_into()
        .map_err(|_| "hash is not 32 bytes".to_owned())?;
    let secrets = f.next().map(|b| Fields::jsonb(b, "secrets")).transpose()?;
    Ok(StoredRow {
        position,
        event_id,
        stream,
        version,
        event_type,
        data,
        metadata,
        actor,
        recorded_at,
        hash,
        secrets,
    })
}

fn push_hex(out: &mut Vec<u8>, hash: &[u8; HASH_LEN]) {
    let mut text = [0u8; 2 * HASH_LEN];
    // Cannot fail: the buffer is exactly twice the hash.
    let _ = hex::encode_to_slice(hash, &mut text);
    out.push(b'"');
    out.extend_from_slice(&text);
    out.push(b'"');
}

fn push_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), String> {
    serde_json::to_writer(&mut *out, value).map_err(|e| e.to_string())
}

fn push_int(out: &mut Vec<u8>, n: i64) {
    use std::io::Write as _;
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{n}");
}

/// An event's secrets as `event_secrets` keeps them (migrations/0018),
/// borrowed from their JSON text: by sealed path, the salt and the value.
type Secrets<'a> = BTreeMap<Cow<'a, str>, Secret<'a>>;

#[derive(Debug, Deserialize)]
struct Secret<'a> {
    #[serde(borrow, default)]
    salt: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
}

/// Appends the canonical JSON text `stored` with each sealed value put
/// back where its commitment is, as [`seal::open`] does to a `Value`, but
/// by splicing text: most events are sealed, and a parse and serialization
/// of each would cost more than the rest of its line.
fn open_into(out: &mut Vec<u8>, stored: &str, secrets: &Secrets<'_>) {
    let s = stored.as_bytes();
    let mut spans: Vec<(Range<usize>, &str)> = secrets
        .iter()
        .filter_map(|(path, secret)| Some((span_at(s, path)?, secret.value?.get())))
        .collect();
    spans.sort_by_key(|(r, _)| r.start);
    let mut at = 0;
    for (range, value) in spans {
        if range.start < at {
            // One sealed path inside another: not a shape the store seals.
            continue;
        }
        out.extend_from_slice(&s[at..range.start]);
        out.extend_from_slice(value.as_bytes());
        at = range.end;
    }
    out.extend_from_slice(&s[at..]);
}

/// Where the value at dotted `path` (`changes.quote`) sits in canonical
/// JSON text `s` (no white space), if there is one.
fn span_at(s: &[u8], path: &str) -> Option<Range<usize>> {
    let mut span = 0..s.len();
    for key in path.split('.') {
        span = member(s, span.start, key)?;
    }
    Some(span)
}

/// The value of member `key` of the object that starts at `at`.
fn member(s: &[u8], at: usize, key: &str) -> Option<Range<usize>> {
    if s.get(at) != Some(&b'{') {
        return None;
    }
    let mut i = at + 1;
    if s.get(i) == Some(&b'}') {
        return None;
    }
    loop {
        let key_end = skip_string(s, i)?;
        // Sealed paths are plain names: a key that matches them needs no escapes.
        let name = s.get(i + 1..key_end - 1)?;
        if s.get(key_end) != Some(&b':') {
            return None;
        }
        let start = key_end + 1;
        let end = skip_value(s, start)?;
        if name == key.as_bytes() {
            return Some(start..end);
        }
        match s.get(end) {
            Some(b',') => i = end + 1,
            _ => return None,
        }
    }
}

/// The end of the string that starts at `at`.
fn skip_string(s: &[u8], at: usize) -> Option<usize> {
    if s.get(at) != Some(&b'"') {
        return None;
    }
    let mut i = at + 1;
    loop {
        match s.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// The end of the value that starts at `at`.
fn skip_value(s: &[u8], at: usize) -> Option<usize> {
    match s.get(at)? {
        b'"' => skip_string(s, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match s.get(i)? {
                    b'"' => {
                        i = skip_string(s, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => Some(
            s[at..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']'))
                .map_or(s.len(), |n| at + n),
        ),
    }
}

/// Appends the exchange line of `row` (with its line ending) to `out`: the
/// fields of [`super::exchange::LogLine`] in its order, the data opened,
/// its leaf computed from the data as stored. `prev_hash` is the chain
/// hash of the event before.
pub fn write_line(
    out: &mut Vec<u8>,
    row: &StoredRow<'_>,
    prev_hash: &[u8; HASH_LEN],
) -> Result<(), String> {
    let what = |field: &str| format!("position {}: its {field} is not JSON", row.position);
    let stored = canonical_json_text(row.data).ok_or_else(|| what("data"))?;
    let metadata = canonical_json_text(row.metadata).ok_or_else(|| what("metadata"))?;
    let leaf = leaf_hash(&LeafFields {
        position: row.position,
        stream: row.stream,
        version: row.version,
        event_type: row.event_type,
        recorded_at: row.recorded_at,
        actor: row.actor,
        data: &stored,
    });
    out.extend_from_slice(b"{\"position\":");
    push_int(out, row.position);
    out.extend_from_slice(b",\"stream\":");
    push_json(out, row.stream)?;
    out.extend_from_slice(b",\"version\":");
    push_int(out, row.version);
    out.extend_from_slice(b",\"type\":");
    push_json(out, row.event_type)?;
    out.extend_from_slice(b",\"recorded_at\":");
    push_json(out, &row.recorded_at)?;
    out.extend_from_slice(b",\"actor\":");
    push_json(out, row.actor)?;
    out.extend_from_slice(b",\"data\":");
    let secrets: Secrets<'_> = match row.secrets {
        None => BTreeMap::new(),
        Some(text) => serde_json::from_str(text).map_err(|_| what("secrets"))?,
    };
    match row.secrets {
        // Erased events are rare: they take the slower way through a
        // `Value`, which also adds the erasure's mark.
        Some(text) if secrets.contains_key(super::seal::ERASED_KEY) => {
            let opened = super::seal::open_text(&stored, Some(text))?;
            out.extend_from_slice(opened.as_bytes());
        }
        _ => open_into(out, &stored, &secrets),
    }
    out.extend_from_slice(b",\"metadata\":");
    out.extend_from_slice(metadata.as_bytes());
    out.extend_from_slice(b",\"event_id\":");
    push_json(out, &row.event_id)?;
    out.extend_from_slice(b",\"prev_hash\":");
    push_hex(out, prev_hash);
    out.extend_from_slice(b",\"hash\":");
    push_hex(out, &row.hash);
    out.extend_from_slice(b",\"leaf_hash\":");
    push_hex(out, &leaf);
    out.extend_from_slice(b",\"salts\":");
    let salts: BTreeMap<&str, &str> = secrets
        .iter()
        .filter_map(|(path, s)| Some((path.as_ref(), s.salt.as_deref()?)))
        .collect();
    push_json(out, &salts)?;
    out.extend_from_slice(b"}\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::chain::{self, GENESIS};
    use crate::store::exchange::LineChecker;
    use crate::store::seal;
    use crate::store::test_log;
    use serde_json::{Value, json};

    fn field(out: &mut Vec<u8>, b: Option<&[u8]>) {
        match b {
            Some(b) => {
                out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                out.extend_from_slice(b);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }

    fn jsonb(text: &str) -> Vec<u8> {
        let mut b = vec![JSONB_VERSION];
        b.extend_from_slice(text.as_bytes());
        b
    }

    /// A binary COPY of two chained events as the log stores them, the
    /// first sealed, the second not.
    fn stream() -> Vec<u8> {
        let mut out = COPY_HEADER.to_vec();
        let events = test_log::chained(2, |p| {
            let data = json!({"quote": "5,200 \"troops\"", "subject": "s", "n": 1.5});
            (data, if p == 1 { vec!["quote"] } else { vec![] })
        });
        for e in events {
            out.extend_from_slice(&COLUMNS.to_be_bytes());
            field(&mut out, Some(&e.position.to_be_bytes()));
            field(&mut out, Some(e.event_id.as_bytes()));
            field(&mut out, Some(test_log::STREAM.as_bytes()));
            field(&mut out, Some(&e.position.to_be_bytes()));
            field(&mut out, Some(test_log::EVENT_TYPE.as_bytes()));
            field(&mut out, Some(&jsonb(&e.data)));
            field(&mut out, Some(&jsonb("{}")));
            field(&mut out, Some(test_log::ACTOR.as_bytes()));
            let micros = e.recorded_at.timestamp_micros() - PG_EPOCH_MICROS;
            field(&mut out, Some(&micros.to_be_bytes()));
            field(&mut out, Some(&e.hash));
            field(
                &mut out,
                e.secrets.map(|s| jsonb(&s.to_string())).as_deref(),
            );
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    #[test]
    fn rows_split_anywhere_become_lines_an_import_accepts() {
        let mut reader = CopyReader::new();
        let mut prev = GENESIS;
        let mut lines = Vec::new();
        // One byte at a time: every boundary a network read may cut.
        for b in stream() {
            reader.feed(&[b]);
            while let Some(row) = reader.next_row().unwrap() {
                let mut line = Vec::new();
                write_line(&mut line, &row, &prev).unwrap();
                prev = row.hash;
                lines.push(line);
            }
        }
        assert!(reader.ended());
        assert_eq!(lines.len(), 2);
        let mut checker = LineChecker::new();
        for line in &lines {
            let text = line.strip_suffix(b"\n").unwrap();
            checker.check(text).unwrap();
            let shown: Value = serde_json::from_slice(text).unwrap();
            assert_eq!(shown["data"]["quote"], "5,200 \"troops\"", "opened");
        }
        let first: Value = serde_json::from_slice(&lines[0]).unwrap();
        assert_eq!(first["salts"].as_object().unwrap().len(), 1);
    }

    #[test]
    fn a_stream_without_its_header_is_refused() {
        let mut reader = CopyReader::new();
        reader.feed(&stream()[1..]);
        assert!(reader.next_row().is_err());
    }

    #[test]
    fn spliced_values_open_the_data_as_a_value_would() {
        let shown = json!({
            "a": {"x": "}\\\"]{", "y": [1, {"quote": "not me"}]},
            "changes": {"attributed_to": null, "quote": "a \"quote\" {with} [brackets]", "z": 2.5},
            "note": "n\u{e9}\n", "zz": true
        });
        let mut stored = shown.clone();
        let secrets = seal::seal(&mut stored, &["changes.quote", "note", "absent.x"])
            .unwrap()
            .unwrap();
        let canonical = chain::canonical_json(&stored);
        // As event_secrets gives it back: jsonb's spacing.
        let text = serde_json::to_string_pretty(&secrets).unwrap();
        let parsed: Secrets<'_> = serde_json::from_str(&text).unwrap();
        let mut out = Vec::new();
        open_into(&mut out, &canonical, &parsed);
        let opened: Value = serde_json::from_slice(&out).unwrap();
        let mut expected = stored.clone();
        seal::open(&mut expected, &secrets);
        assert_eq!(opened, expected);
        assert_eq!(opened, shown);
    }
}
