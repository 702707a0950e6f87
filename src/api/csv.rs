//! Listings as CSV (RFC 4180) for spreadsheets: a header row, one row per
//! item, CRLF line ends, a field quoted when it holds a comma, a quote or a
//! line break.
//!
//! Values go out exactly as stored, with no escaping of spreadsheet
//! formulas: a cell beginning with `=` is the text the editor recorded, and
//! rewriting it would make the CSV disagree with the JSON. README says to
//! open these files as text.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

/// One column: its header and how to take its cell from an item's JSON.
pub type Column = (&'static str, fn(&Value) -> String);

/// A claim, as `GET /v1/claims` lists it.
pub const CLAIM_COLUMNS: &[Column] = &[
    ("id", |c| cell(&c["id"])),
    ("story_id", |c| cell(&c["story_id"])),
    ("fact_id", |c| cell(&c["fact_id"])),
    ("subject", |c| cell(&c["subject"])),
    ("property", |c| cell(&c["property"])),
    ("status", |c| cell(&c["status"])),
    ("value_kind", |c| cell(&c["value"]["kind"])),
    ("value", |c| main_value(&c["value"])),
    ("value_unit", |c| cell(&c["value"]["unit"])),
    ("value_json", |c| cell(&c["value"])),
    ("valid_at", |c| cell(&c["valid_at"])),
    ("quote", |c| cell(&c["quote"])),
    ("attributed_to", |c| cell(&c["attributed_to"])),
    ("corrects", |c| cell(&c["corrects"])),
    ("superseded_by", |c| cell(&c["superseded_by"])),
    ("asserted_by", |c| cell(&c["asserted_by"])),
    ("asserted_at", |c| cell(&c["asserted_at"])),
    ("confirmed_by", |c| cell(&c["confirmed_by"])),
    ("version", |c| cell(&c["version"])),
    ("updated_at", |c| cell(&c["updated_at"])),
];

/// A fact, as `GET /v1/facts` lists it (its claims and timeline are in the
/// JSON; here, how many claims it has).
pub const FACT_COLUMNS: &[Column] = &[
    ("id", |f| cell(&f["id"])),
    ("subject", |f| cell(&f["subject"])),
    ("property", |f| cell(&f["property"])),
    ("status", |f| cell(&f["status"])),
    ("value_kind", |f| cell(&f["value"]["kind"])),
    ("value", |f| main_value(&f["value"])),
    ("value_unit", |f| cell(&f["value"]["unit"])),
    ("value_json", |f| cell(&f["value"])),
    ("valid_at", |f| cell(&f["valid_at"])),
    ("claims", |f| cell(&f["claims"])),
];

/// What a fact's row shows of its document. A contested fact's document
/// holds every claim and its timeline, many times the row: those are
/// skipped, not built.
#[derive(Deserialize)]
struct FactCells {
    id: Value,
    subject: Value,
    property: Value,
    status: Value,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    valid_at: Value,
    #[serde(default)]
    claims: Vec<serde::de::IgnoredAny>,
}

/// A fact document (its JSON text) as the item [`FACT_COLUMNS`] read, with
/// `claims` the number of its claims.
pub fn fact_item(document: &str) -> Result<Value, serde_json::Error> {
    let f: FactCells = serde_json::from_str(document)?;
    Ok(serde_json::json!({
        "id": f.id,
        "subject": f.subject,
        "property": f.property,
        "status": f.status,
        "value": f.value,
        "valid_at": f.valid_at,
        "claims": f.claims.len(),
    }))
}

/// A JSON value as a cell: strings as they are, nothing as an empty cell,
/// objects and lists as compact JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The one field a value is about (a quantity's amount, a date, a label…).
fn main_value(v: &Value) -> String {
    let field = match v["kind"].as_str() {
        Some("quantity") => "amount",
        Some("date") => "date",
        Some("outcome") => "outcome",
        Some("entity") => "label",
        Some("boolean") => "value",
        Some("text") => "text",
        _ => return String::new(),
    };
    cell(&v[field])
}

/// Appends one field, quoted when RFC 4180 requires it.
fn push_field(out: &mut String, text: &str) {
    if text.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

fn push_row<'a>(out: &mut String, fields: impl IntoIterator<Item = &'a str>) {
    for (i, f) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_field(out, f);
    }
    out.push_str("\r\n");
}

/// The table: a header row, then a row per item.
pub fn table(columns: &[Column], items: &[Value]) -> String {
    let mut out = String::new();
    push_row(&mut out, columns.iter().map(|(name, _)| *name));
    for item in items {
        let cells: Vec<String> = columns.iter().map(|(_, take)| take(item)).collect();
        push_row(&mut out, cells.iter().map(String::as_str));
    }
    out
}

/// The response: `text/csv` with its header row declared (RFC 4180
/// section 3).
pub fn response(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8; header=present"),
        )],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_are_quoted_only_when_rfc_4180_needs_it() {
        let mut out = String::new();
        push_row(&mut out, ["plain", "a,b", "say \"hi\"", "two\r\nlines", ""]);
        assert_eq!(
            out,
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\r\nlines\",\r\n"
        );
    }

    #[test]
    fn a_claims_value_is_spread_over_kind_main_field_unit_and_json() {
        let claim = json!({
            "id": "c", "value": {"kind": "quantity", "amount": "5200", "unit": "soldier", "approximate": true},
            "confirmed_by": ["ann", "bo"], "attributed_to": null, "version": 3,
        });
        let t = table(CLAIM_COLUMNS, &[claim]);
        let mut lines = t.split("\r\n");
        let head: Vec<&str> = lines.next().expect("header").split(',').collect();
        let row = lines.next().expect("row");
        let at = |name: &str| head.iter().position(|h| *h == name).expect(name);
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells[at("value_kind")], "quantity");
        assert_eq!(cells[at("value")], "5200");
        assert_eq!(cells[at("value_unit")], "soldier");
        assert!(row.contains("\"{\"\"amount\"\":\"\"5200\"\""), "{row}");
        assert!(row.contains("\"[\"\"ann\"\",\"\"bo\"\"]\""), "{row}");
    }
}
