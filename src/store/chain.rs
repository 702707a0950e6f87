//! The hash chain: a canonical byte encoding of each event and the SHA-256
//! link from one event to the next. Appends and `verify` share this code, so
//! a mismatch can only mean the stored row changed.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const HASH_LEN: usize = 32;

/// The hash "before" the first event.
pub const GENESIS: [u8; HASH_LEN] = [0u8; HASH_LEN];

/// Domain separation for the encoding; bump it if the encoding ever changes.
const ENCODING_TAG: &[u8] = b"factlog-event-v1";

/// The fields of an event that the chain covers.
pub struct ChainFields<'a> {
    pub position: i64,
    pub event_id: Uuid,
    pub stream: &'a str,
    pub version: i64,
    pub event_type: &'a str,
    /// Canonical JSON text (see [`canonical_json`]).
    pub data: &'a str,
    pub actor: &'a str,
    /// Canonical JSON text (see [`canonical_json`]).
    pub metadata: &'a str,
    pub recorded_at: DateTime<Utc>,
}

/// `SHA-256(previous hash || encoding(event))`.
pub fn link(previous: &[u8; HASH_LEN], fields: &ChainFields<'_>) -> [u8; HASH_LEN] {
    let mut h = Sha256::new();
    h.update(previous);
    h.update(ENCODING_TAG);
    h.update(fields.position.to_be_bytes());
    h.update(fields.event_id.as_bytes());
    put_str(&mut h, fields.stream);
    h.update(fields.version.to_be_bytes());
    put_str(&mut h, fields.event_type);
    put_str(&mut h, fields.data);
    put_str(&mut h, fields.actor);
    put_str(&mut h, fields.metadata);
    h.update(fields.recorded_at.timestamp_micros().to_be_bytes());
    let out = h.finalize();
    let mut hash = [0u8; HASH_LEN];
    hash.copy_from_slice(&out);
    hash
}

/// Length-prefixed, so no two field sequences encode to the same bytes.
fn put_str(h: &mut Sha256, s: &str) {
    h.update((s.len() as u64).to_be_bytes());
    h.update(s.as_bytes());
}

/// A JSON text that depends only on the value, not on how it was written:
/// object keys sorted by their UTF-8 bytes, no insignificant white space,
/// numbers in serde_json's shortest round-trip form. PostgreSQL's `jsonb`
/// keeps strings exactly and numbers as exact decimals, so a value read back
/// from the log encodes to the same text it had when it was appended.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&canonical_number(&n.to_string())),
        Value::String(s) => push_json_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(k, out);
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
    }
}

/// A JSON number as its decimal value alone: an integer written out, anything
/// else as `[-]digits e N` with no leading or trailing zeros. jsonb keeps a number's value but not its spelling
/// (`1.7e19` comes back as `17000000000000000000`, `5.0` may come back as an
/// integer once parsed), so the chain hashes the value, not the spelling.
pub fn canonical_number(text: &str) -> String {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().unwrap_or(0)),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: String = int.chars().chain(frac.chars()).collect();
    let mut exp = exponent - frac.len() as i64;
    let leading = digits.len() - digits.trim_start_matches('0').len();
    digits.drain(..leading);
    if digits.is_empty() {
        return "0".into();
    }
    while digits.ends_with('0') {
        digits.pop();
        exp += 1;
    }
    let sign = if negative { "-" } else { "" };
    // Integers are written out in full (as integers they read back exactly;
    // with an exponent a JSON parser would take them for floats).
    if exp >= 0 && digits.len() as i64 + exp <= 40 {
        format!("{sign}{digits}{}", "0".repeat(exp as usize))
    } else {
        format!("{sign}{digits}e{exp}")
    }
}

fn push_json_string(s: &str, out: &mut String) {
    out.push('"');
    // Runs of characters that need no escape are copied whole: every
    // string of every event passes through here, for each leaf hashed.
    // What needs one is ASCII, never inside a multi-byte character, so a
    // byte search finds it and slicing there keeps to char boundaries.
    let mut rest = s;
    while let Some((at, c)) = rest
        .bytes()
        .enumerate()
        .find(|&(_, b)| b == b'"' || b == b'\\' || b < 0x20)
    {
        out.push_str(&rest[..at]);
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c => out.push_str(&format!("\\u{:04x}", c)),
        }
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

/// [`canonical_json`] computed from a JSON text rather than a parsed value,
/// each number taken from its digits: the same text for every value that
/// `serde_json::Value` holds exactly, and defined where it cannot hold one
/// (a number beyond binary floating point's range, such as `1e400`, which
/// an exact decimal `amount` may be). `None` when the text is not JSON, or
/// nests deeper than serde_json allows (128).
pub fn canonical_json_text(text: &str) -> Option<String> {
    let mut parser = TextParser {
        s: text.as_bytes(),
        i: 0,
    };
    let mut out = String::with_capacity(text.len());
    parser.value(0, &mut out)?;
    parser.ws();
    (parser.i == parser.s.len()).then_some(out)
}

/// The nesting serde_json allows.
const MAX_DEPTH: usize = 128;

struct TextParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> TextParser<'a> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|b| b" \t\n\r".contains(b)) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        self.ws();
        (self.s.get(self.i) == Some(&b)).then(|| self.i += 1)
    }

    fn value(&mut self, depth: usize, out: &mut String) -> Option<()> {
        self.ws();
        match *self.s.get(self.i)? {
            b'{' => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                // Sorted by key bytes; a repeated key keeps its last value,
                // as serde_json's map does.
                let mut members = std::collections::BTreeMap::new();
                if self.eat(b'}').is_none() {
                    loop {
                        self.ws();
                        let key = self.string()?;
                        self.eat(b':')?;
                        let mut v = String::new();
                        self.value(depth + 1, &mut v)?;
                        members.insert(key, v);
                        if self.eat(b',').is_none() {
                            self.eat(b'}')?;
                            break;
                        }
                    }
                }
                out.push('{');
                for (n, (k, v)) in members.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    push_json_string(k, out);
                    out.push(':');
                    out.push_str(v);
                }
                out.push('}');
            }
            b'[' => {
                if depth >= MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                out.push('[');
                if self.eat(b']').is_none() {
                    loop {
                        self.value(depth + 1, out)?;
                        if self.eat(b',').is_none() {
                            self.eat(b']')?;
                            break;
                        }
                        out.push(',');
                    }
                }
                out.push(']');
            }
            b'"' => {
                let s = self.string()?;
                push_json_string(&s, out);
            }
            b't' | b'f' | b'n' => {
                let word = [&b"true"[..], b"false", b"null"]
                    .into_iter()
                    .find(|w| self.s[self.i..].starts_with(w))?;
                self.i += word.len();
                out.push_str(std::str::from_utf8(word).ok()?);
            }
            _ => {
                let start = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|b| b.is_ascii_digit() || b"+-.eE".contains(b))
                {
                    self.i += 1;
                }
                let number = std::str::from_utf8(&self.s[start..self.i]).ok()?;
                // The grammar is serde_json's to check; this only reads it.
                serde_json::from_str::<serde::de::IgnoredAny>(number).ok()?;
                let exponent_digits = number
                    .find(['e', 'E'])
                    .map_or(0, |e| number[e + 1..].trim_start_matches(['+', '-']).len());
                if exponent_digits > 15 {
                    // Beyond what `canonical_number` reads; written as sent
                    // (no other spelling of a number comes out like this).
                    out.push_str(&number.to_ascii_lowercase());
                } else {
                    out.push_str(&canonical_number(number));
                }
            }
        }
        Some(())
    }

    /// A string token, decoded (escapes and all) by serde_json; one
    /// without escapes or control characters is borrowed as it is.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let start = self.i;
        if self.s.get(self.i) != Some(&b'"') {
            return None;
        }
        self.i += 1;
        let mut plain = true;
        loop {
            match *self.s.get(self.i)? {
                b'"' => break,
                b'\\' => {
                    plain = false;
                    self.i += 2;
                }
                b => {
                    plain &= b >= 0x20;
                    self.i += 1;
                }
            }
        }
        self.i += 1;
        let token = self.s.get(start..self.i)?;
        if plain {
            return std::str::from_utf8(&token[1..token.len() - 1])
                .ok()
                .map(Cow::Borrowed);
        }
        serde_json::from_slice(token).ok().map(Cow::Owned)
    }
}

/// Whether a JSON value holds a U+0000 anywhere (PostgreSQL text and jsonb refuse it).
pub fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// `push_json_string` as first written, a character at a time.
    fn escaped_char_by_char(s: &str) -> String {
        let mut out = String::from('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    proptest! {
        #[test]
        fn strings_are_escaped_as_char_by_char(s in "(\\PC|[\"\\\\\u{0}-\u{1f}é€😀])*") {
            let mut out = String::new();
            push_json_string(&s, &mut out);
            prop_assert_eq!(out, escaped_char_by_char(&s));
        }
    }

    #[test]
    fn key_order_and_spacing_do_not_matter() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": [1, 2], "x": "é"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":"\u00e9","y":[1,2]},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(canonical_json(&a), r#"{"a":{"x":"é","y":[1,2]},"b":1}"#);
    }

    #[test]
    fn control_characters_are_escaped_and_negative_zero_is_zero() {
        assert_eq!(canonical_json(&json!("a\u{1}b\"")), r#""a\u0001b\"""#);
        assert_eq!(canonical_json(&json!(-0.0)), "0");
    }

    #[test]
    fn numbers_are_hashed_by_value_not_spelling() {
        for (a, b) in [
            ("1.7010758543213646e19", "17010758543213646000"),
            ("5.0", "5"),
            ("0.5", "5e-1"),
            ("-1200", "-1.2E3"),
            ("0.000", "0"),
            ("1e30", "1000000000000000000000000000000"),
        ] {
            assert_eq!(canonical_number(a), canonical_number(b), "{a} vs {b}");
        }
        assert_ne!(canonical_number("5200"), canonical_number("5000"));
        assert_eq!(
            canonical_number("10377437462313717928"),
            "10377437462313717928"
        );
    }

    #[test]
    fn every_field_changes_the_hash() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let base = ChainFields {
            position: 1,
            event_id: Uuid::nil(),
            stream: "claim-1",
            version: 1,
            event_type: "ClaimAsserted",
            data: "{}",
            actor: "ann",
            metadata: "{}",
            recorded_at: at,
        };
        let h = link(&GENESIS, &base);
        let variants = [
            link(
                &GENESIS,
                &ChainFields {
                    position: 2,
                    ..base
                },
            ),
            link(
                &GENESIS,
                &ChainFields {
                    event_id: Uuid::max(),
                    ..base
                },
            ),
            link(
                &GENESIS,
                &ChainFields {
                    stream: "claim-2",
                    ..base
                },
            ),
            link(&GENESIS, &ChainFields { version: 2, ..base }),
            link(
                &GENESIS,
                &ChainFields {
                    event_type: "X",
                    ..base
                },
            ),
            link(&GENESIS, &ChainFields { data: "[]", ..base }),
            link(
                &GENESIS,
                &ChainFields {
                    actor: "bob",
                    ..base
                },
            ),
            link(
                &GENESIS,
                &ChainFields {
                    metadata: "[]",
                    ..base
                },
            ),
            link(
                &GENESIS,
                &ChainFields {
                    recorded_at: at + chrono::Duration::microseconds(1),
                    ..base
                },
            ),
            link(&[1u8; HASH_LEN], &base),
        ];
        for v in variants {
            assert_ne!(v, h);
        }
        // Length prefixes keep field boundaries apart.
        let shifted = link(
            &GENESIS,
            &ChainFields {
                stream: "claim-1C",
                event_type: "laimAsserted",
                ..base
            },
        );
        assert_ne!(shifted, h);
    }
}
