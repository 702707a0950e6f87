//! A claim's value: what a source says the answer is. Parsed strictly from
//! client JSON (every mistake names its field), stored in events in the same
//! shape, and compared by identity fields only, to decide whether two claims
//! agree.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use super::error::{FieldError, check_text};
use super::valid_time::PartialDate;

/// Bound for unit, label, outcome and entity id, in characters.
pub const MAX_SHORT_CHARS: usize = 1_000;
/// Bound for a text value, in characters.
pub const MAX_TEXT_CHARS: usize = 10_000;
/// Bounds for decimals: text length, significant digits, and the written
/// exponent's magnitude. Far beyond any reported figure, small enough that
/// comparison and keys stay cheap.
pub const MAX_DECIMAL_LEN: usize = 100;
pub const MAX_SIGNIFICANT_DIGITS: usize = 40;
pub const MAX_EXPONENT: i64 = 1_000;

const DECIMAL_FORM: &str =
    "must be a decimal: a JSON number or a string such as \"5200\", \"-0.25\" or \"5.2e3\"";

/// An exact decimal, kept as the text it arrived in (so a client gets back
/// what it sent) together with a normalized form for comparison.
///
/// Accepted text is the JSON number grammar, whether it came as a number or
/// a string: optional `-`, no `+`, no leading zeros (`05`), digits on both
/// sides of a `.`, optional exponent (`5.2e3`, `1E-2`), no white space, and
/// no `NaN`/`Infinity`.
///
/// `==` is structural (`5200` ≠ `5200.0`, as stored values differ); use
/// [`Decimal::cmp_value`] for numeric comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    text: String,
    negative: bool,
    // Significant digits without leading or trailing zeros; empty for zero.
    digits: String,
    // The value is `digits × 10^exponent`.
    exponent: i64,
}

impl Decimal {
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        let form = || FieldError::new(field, DECIMAL_FORM);
        if s.len() > MAX_DECIMAL_LEN {
            return Err(FieldError::new(
                field,
                format!("must be at most {MAX_DECIMAL_LEN} characters"),
            ));
        }
        let b = s.as_bytes();
        // End of the run of ASCII digits starting at `from` (clamped, so it
        // can never index past the end).
        let digit_run = |from: usize| {
            let from = from.min(b.len());
            from + b[from..].iter().take_while(|c| c.is_ascii_digit()).count()
        };
        let negative = b.first() == Some(&b'-');
        let int_start = usize::from(negative);
        let mut i = digit_run(int_start);
        // Only ASCII has been consumed, so every slice below is on a char boundary.
        let int = &s[int_start..i];
        if int.is_empty() || (int.len() > 1 && int.starts_with('0')) {
            return Err(form());
        }
        let mut frac = "";
        if b.get(i) == Some(&b'.') {
            let end = digit_run(i + 1);
            frac = &s[i + 1..end];
            if frac.is_empty() {
                return Err(form());
            }
            i = end;
        }
        let mut written_exp: i64 = 0;
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            let exp_negative = b.get(i) == Some(&b'-');
            if matches!(b.get(i), Some(b'-' | b'+')) {
                i += 1;
            }
            let end = digit_run(i);
            let exp_digits = &s[i..end];
            if exp_digits.is_empty() {
                return Err(form());
            }
            i = end;
            let significant = exp_digits.trim_start_matches('0');
            let out_of_range = || {
                FieldError::new(
                    field,
                    format!("must have an exponent between -{MAX_EXPONENT} and {MAX_EXPONENT}"),
                )
            };
            // Four digits cannot overflow; longer is out of range anyway.
            if significant.len() > 4 {
                return Err(out_of_range());
            }
            let magnitude: i64 = if significant.is_empty() {
                0
            } else {
                significant.parse().map_err(|_| form())?
            };
            if magnitude > MAX_EXPONENT {
                return Err(out_of_range());
            }
            written_exp = if exp_negative { -magnitude } else { magnitude };
        }
        if i != b.len() {
            return Err(form());
        }

        let all = format!("{int}{frac}");
        let no_leading = all.trim_start_matches('0');
        let digits = no_leading.trim_end_matches('0');
        if digits.len() > MAX_SIGNIFICANT_DIGITS {
            return Err(FieldError::new(
                field,
                format!("must have at most {MAX_SIGNIFICANT_DIGITS} significant digits"),
            ));
        }
        let trailing_zeros = no_leading.len() - digits.len();
        // Lengths are bounded by MAX_DECIMAL_LEN, so these casts are exact.
        let exponent = written_exp - frac.len() as i64 + trailing_zeros as i64;
        let zero = digits.is_empty();
        Ok(Self {
            text: s.to_owned(),
            negative: negative && !zero,
            digits: digits.to_owned(),
            exponent: if zero { 0 } else { exponent },
        })
    }

    /// The text as the client sent it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// A form equal for equal values: `0`, or `[-]d[.ddd]e<exp>` with the
    /// first digit non-zero and no trailing zeros (`5200` → `5.2e3`).
    pub fn canonical(&self) -> String {
        let Some(first) = self.digits.get(..1) else {
            return "0".into();
        };
        let rest = &self.digits[1..];
        let sign = if self.negative { "-" } else { "" };
        let point = if rest.is_empty() { "" } else { "." };
        format!("{sign}{first}{point}{rest}e{}", self.adjusted_exponent())
    }

    /// Numeric comparison (`5200` = `5200.0` = `5.2e3`).
    pub fn cmp_value(&self, other: &Self) -> Ordering {
        let sign = |d: &Self| match (d.digits.is_empty(), d.negative) {
            (true, _) => 0,
            (false, true) => -1,
            (false, false) => 1,
        };
        let (a, b) = (sign(self), sign(other));
        if a != b || a == 0 {
            return a.cmp(&b);
        }
        // Same sign, both non-zero: the leading digit's position decides,
        // then the digits themselves, aligned at that leading digit (no
        // trailing zeros, so a longer string with an equal prefix is larger).
        let magnitude = self
            .adjusted_exponent()
            .cmp(&other.adjusted_exponent())
            .then_with(|| self.digits.cmp(&other.digits));
        if self.negative {
            magnitude.reverse()
        } else {
            magnitude
        }
    }

    fn adjusted_exponent(&self) -> i64 {
        self.exponent + self.digits.len() as i64 - 1
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A claim's value. Build it with [`ClaimValue::parse`] (request bodies) or
/// serde (stored events), which enforce every rule; a hand-built
/// `Text` that breaks them would not deserialize back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimValue {
    // Boxed: a quantity holds three decimals and would otherwise triple the
    // size of every value (and of every event and command that carries one).
    Quantity(Box<Quantity>),
    Date(PartialDate),
    Outcome(Outcome),
    Entity(Entity),
    Boolean(bool),
    Text(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    amount: Decimal,
    unit: String,
    approximate: bool,
    lower: Option<Decimal>,
    upper: Option<Decimal>,
}

impl Quantity {
    pub fn amount(&self) -> &Decimal {
        &self.amount
    }
    pub fn unit(&self) -> &str {
        &self.unit
    }
    pub fn approximate(&self) -> bool {
        self.approximate
    }
    pub fn lower(&self) -> Option<&Decimal> {
        self.lower.as_ref()
    }
    pub fn upper(&self) -> Option<&Decimal> {
        self.upper.as_ref()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    outcome: String,
    votes_for: Option<u64>,
    votes_against: Option<u64>,
}

impl Outcome {
    pub fn outcome(&self) -> &str {
        &self.outcome
    }
    /// The JSON field `for`.
    pub fn votes_for(&self) -> Option<u64> {
        self.votes_for
    }
    /// The JSON field `against`.
    pub fn votes_against(&self) -> Option<u64> {
        self.votes_against
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    label: String,
    id: Option<String>,
}

impl Entity {
    pub fn label(&self) -> &str {
        &self.label
    }
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

impl ClaimValue {
    /// Parses the JSON text of a value object from a request. Decimal
    /// amounts given as JSON numbers are read from their raw text, so no
    /// digit is lost to floating point. Errors name the field, e.g.
    /// `value.amount`; `value` itself when the text is not a JSON object.
    pub fn parse(raw_json: &str) -> Result<Self, FieldError> {
        let RawObject(entries) = serde_json::from_str(raw_json).map_err(|e| {
            if e.classify() == serde_json::error::Category::Data {
                FieldError::new("value", "must be a JSON object with a \"kind\"")
            } else {
                FieldError::new("value", format!("is not valid JSON: {e}"))
            }
        })?;
        let mut seen = HashSet::with_capacity(entries.len());
        let mut fields = Vec::with_capacity(entries.len());
        for (key, raw) in entries {
            let name = field_name(&key);
            if !seen.insert(key.clone()) {
                return Err(FieldError::new(name, "appears more than once"));
            }
            let field = Field::from_raw(&name, raw.get())?;
            fields.push((key, field));
        }
        build(fields)
    }

    /// Validates an already-parsed JSON value (the stored shape). Non-integer
    /// JSON numbers are refused in decimal fields: their exact digits are
    /// gone by now, and the stored shape always has decimal strings there.
    pub fn from_json_value(value: serde_json::Value) -> Result<Self, FieldError> {
        let serde_json::Value::Object(map) = value else {
            return Err(FieldError::new(
                "value",
                "must be a JSON object with a \"kind\"",
            ));
        };
        build(
            map.into_iter()
                .map(|(k, v)| (k, Field::from_value(v)))
                .collect(),
        )
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ClaimValue::Quantity(_) => "quantity",
            ClaimValue::Date(_) => "date",
            ClaimValue::Outcome(_) => "outcome",
            ClaimValue::Entity(_) => "entity",
            ClaimValue::Boolean(_) => "boolean",
            ClaimValue::Text(_) => "text",
        }
    }

    /// Whether two claims agree. Only identity fields count: quantity amount
    /// (numerically) and unit (exactly); date in form and value; outcome;
    /// entity id when both have one, otherwise label; boolean; text trimmed
    /// and lower-cased. Different kinds never agree.
    pub fn same_as(&self, other: &Self) -> bool {
        match (self, other) {
            (ClaimValue::Quantity(a), ClaimValue::Quantity(b)) => {
                a.unit == b.unit && a.amount.cmp_value(&b.amount) == Ordering::Equal
            }
            (ClaimValue::Date(a), ClaimValue::Date(b)) => a == b,
            (ClaimValue::Outcome(a), ClaimValue::Outcome(b)) => a.outcome == b.outcome,
            (ClaimValue::Entity(a), ClaimValue::Entity(b)) => match (&a.id, &b.id) {
                (Some(x), Some(y)) => x == y,
                _ => a.label == b.label,
            },
            (ClaimValue::Boolean(a), ClaimValue::Boolean(b)) => a == b,
            (ClaimValue::Text(a), ClaimValue::Text(b)) => fold_text(a) == fold_text(b),
            _ => false,
        }
    }

    /// A string for grouping agreeing values (a JSON array, so no field can
    /// run into the next). For every kind but entity, keys are equal exactly
    /// when [`ClaimValue::same_as`] holds.
    ///
    /// An entity's key uses its id when it has one, else its label. Equal
    /// keys therefore always mean `same_as`, but an entity with an id and
    /// one without can be `same_as` (equal labels) with different keys: no
    /// key can do better, because that relation is not transitive (A{Q1,x}
    /// ~ B{x} ~ C{Q2,x}, yet A ≁ C). `same_as` is the authority.
    pub fn identity_key(&self) -> String {
        let key = match self {
            ClaimValue::Quantity(q) => {
                serde_json::json!(["quantity", q.amount.canonical(), q.unit])
            }
            ClaimValue::Date(d) => serde_json::json!(["date", d.to_string()]),
            ClaimValue::Outcome(o) => serde_json::json!(["outcome", o.outcome]),
            ClaimValue::Entity(e) => match &e.id {
                Some(id) => serde_json::json!(["entity", "id", id]),
                None => serde_json::json!(["entity", "label", e.label]),
            },
            ClaimValue::Boolean(b) => serde_json::json!(["boolean", b]),
            ClaimValue::Text(t) => serde_json::json!(["text", fold_text(t)]),
        };
        key.to_string()
    }
}

fn fold_text(s: &str) -> String {
    s.trim().to_lowercase()
}

/// `value.<key>`, with an absurdly long client key cut so error messages
/// stay readable.
fn field_name(key: &str) -> String {
    const MAX: usize = 64;
    match key.char_indices().nth(MAX) {
        Some((cut, _)) => format!("value.{}…", &key[..cut]),
        None => format!("value.{key}"),
    }
}

/// One member of the value object, reduced to what validation needs.
enum Field {
    Str(String),
    /// A JSON number's exact text.
    Num(String),
    /// A non-integer number from an already-parsed `serde_json::Value`,
    /// whose exact text is lost.
    InexactNum,
    Bool(bool),
    Null,
    /// An array or object: never valid for any field.
    Other,
}

impl Field {
    fn from_raw(name: &str, raw: &str) -> Result<Self, FieldError> {
        let raw = raw.trim();
        Ok(match raw {
            "true" => Field::Bool(true),
            "false" => Field::Bool(false),
            "null" => Field::Null,
            _ => match raw.as_bytes().first() {
                Some(b'"') => Field::Str(serde_json::from_str(raw).map_err(|e| {
                    FieldError::new(name, format!("is not a valid JSON string: {e}"))
                })?),
                Some(b'-' | b'0'..=b'9') => Field::Num(raw.to_owned()),
                // Arrays and objects; RawValue has already checked the syntax.
                _ => Field::Other,
            },
        })
    }

    fn from_value(v: serde_json::Value) -> Self {
        use serde_json::Value as V;
        match v {
            V::String(s) => Field::Str(s),
            V::Number(n) if n.is_i64() || n.is_u64() => Field::Num(n.to_string()),
            V::Number(_) => Field::InexactNum,
            V::Bool(b) => Field::Bool(b),
            V::Null => Field::Null,
            V::Array(_) => Field::Other,
            V::Object(_) => Field::Other,
        }
    }
}

/// The object's members, taken out one by one as each is validated.
struct Members(Vec<(String, Field)>);

impl Members {
    /// Absent and `null` both mean "not given".
    fn take(&mut self, key: &str) -> Option<Field> {
        let at = self.0.iter().position(|(k, _)| k == key)?;
        match self.0.swap_remove(at).1 {
            Field::Null => None,
            field => Some(field),
        }
    }

    fn text(&mut self, key: &str, max_chars: usize) -> Result<Option<String>, FieldError> {
        let name = field_name(key);
        match self.take(key) {
            None => Ok(None),
            Some(Field::Str(s)) => {
                check_text(&name, &s, max_chars, false)?;
                Ok(Some(s))
            }
            Some(_) => Err(FieldError::new(name, "must be a string")),
        }
    }

    fn boolean(&mut self, key: &str) -> Result<Option<bool>, FieldError> {
        match self.take(key) {
            None => Ok(None),
            Some(Field::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(FieldError::new(field_name(key), "must be true or false")),
        }
    }

    fn count(&mut self, key: &str) -> Result<Option<u64>, FieldError> {
        let bad = || FieldError::new(field_name(key), "must be a non-negative integer");
        match self.take(key) {
            None => Ok(None),
            Some(Field::Num(n)) => n.parse().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    fn decimal(&mut self, key: &str) -> Result<Option<Decimal>, FieldError> {
        let name = field_name(key);
        match self.take(key) {
            None => Ok(None),
            Some(Field::Str(s) | Field::Num(s)) => Decimal::parse(&name, &s).map(Some),
            Some(Field::InexactNum) => Err(FieldError::new(
                name,
                "must be a decimal string here: a fractional JSON number has lost its exact digits",
            )),
            Some(_) => Err(FieldError::new(name, DECIMAL_FORM)),
        }
    }
}

fn required<T>(key: &str, v: Option<T>) -> Result<T, FieldError> {
    v.ok_or_else(|| FieldError::new(field_name(key), "is required"))
}

const KINDS: &[(&str, &[&str])] = &[
    (
        "quantity",
        &["amount", "unit", "approximate", "lower", "upper"],
    ),
    ("date", &["date"]),
    ("outcome", &["outcome", "for", "against"]),
    ("entity", &["label", "id"]),
    ("boolean", &["value"]),
    ("text", &["text"]),
];

/// The kinds of value a claim may have, in the order the API lists them.
pub fn kinds() -> impl Iterator<Item = &'static str> {
    KINDS.iter().map(|(kind, _)| *kind)
}

fn build(fields: Vec<(String, Field)>) -> Result<ClaimValue, FieldError> {
    let mut m = Members(fields);
    let kind = match m.take("kind") {
        None => return Err(FieldError::new("value.kind", "is required")),
        Some(Field::Str(k)) => k,
        Some(_) => return Err(FieldError::new("value.kind", "must be a string")),
    };
    let Some((kind, allowed)) = KINDS.iter().find(|(k, _)| *k == kind) else {
        return Err(FieldError::new(
            "value.kind",
            "must be one of quantity, date, outcome, entity, boolean, text",
        ));
    };
    // Report unknown fields before missing ones: a misspelt field explains
    // the missing one.
    if let Some((key, _)) = m.0.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        return Err(FieldError::new(
            field_name(key),
            format!("is not a field of a {kind} value"),
        ));
    }
    Ok(match *kind {
        "quantity" => ClaimValue::Quantity(Box::new(quantity(&mut m)?)),
        "date" => {
            let s = required("date", m.text("date", MAX_SHORT_CHARS)?)?;
            ClaimValue::Date(PartialDate::parse("value.date", &s)?)
        }
        "outcome" => ClaimValue::Outcome(Outcome {
            outcome: required("outcome", m.text("outcome", MAX_SHORT_CHARS)?)?,
            votes_for: m.count("for")?,
            votes_against: m.count("against")?,
        }),
        "entity" => ClaimValue::Entity(Entity {
            label: required("label", m.text("label", MAX_SHORT_CHARS)?)?,
            id: m.text("id", MAX_SHORT_CHARS)?,
        }),
        "boolean" => ClaimValue::Boolean(required("value", m.boolean("value")?)?),
        _ => ClaimValue::Text(required("text", m.text("text", MAX_TEXT_CHARS)?)?),
    })
}

fn quantity(m: &mut Members) -> Result<Quantity, FieldError> {
    let q = Quantity {
        amount: required("amount", m.decimal("amount")?)?,
        unit: required("unit", m.text("unit", MAX_SHORT_CHARS)?)?,
        approximate: m.boolean("approximate")?.unwrap_or(false),
        lower: m.decimal("lower")?,
        upper: m.decimal("upper")?,
    };
    if let (Some(lo), Some(hi)) = (&q.lower, &q.upper)
        && lo.cmp_value(hi) == Ordering::Greater
    {
        return Err(FieldError::new(
            "value.lower",
            format!("must not be greater than value.upper ({lo} > {hi})"),
        ));
    }
    let below = q
        .lower
        .as_ref()
        .filter(|lo| q.amount.cmp_value(lo) == Ordering::Less);
    let above = q
        .upper
        .as_ref()
        .filter(|hi| q.amount.cmp_value(hi) == Ordering::Greater);
    if below.is_some() || above.is_some() {
        return Err(FieldError::new(
            "value.amount",
            "must lie within value.lower and value.upper",
        ));
    }
    Ok(q)
}

/// The value object's members as raw JSON text, in order, duplicates kept
/// (serde_json's own maps would silently keep the last).
struct RawObject(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
                    out.push(entry);
                }
                Ok(RawObject(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl Serialize for ClaimValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("kind", self.kind())?;
        match self {
            ClaimValue::Quantity(q) => {
                m.serialize_entry("amount", q.amount.as_str())?;
                m.serialize_entry("unit", &q.unit)?;
                m.serialize_entry("approximate", &q.approximate)?;
                if let Some(lo) = &q.lower {
                    m.serialize_entry("lower", lo.as_str())?;
                }
                if let Some(hi) = &q.upper {
                    m.serialize_entry("upper", hi.as_str())?;
                }
            }
            ClaimValue::Date(d) => m.serialize_entry("date", d)?,
            ClaimValue::Outcome(o) => {
                m.serialize_entry("outcome", &o.outcome)?;
                if let Some(n) = o.votes_for {
                    m.serialize_entry("for", &n)?;
                }
                if let Some(n) = o.votes_against {
                    m.serialize_entry("against", &n)?;
                }
            }
            ClaimValue::Entity(e) => {
                m.serialize_entry("label", &e.label)?;
                m.serialize_entry("id", &e.id)?;
            }
            ClaimValue::Boolean(b) => m.serialize_entry("value", b)?,
            ClaimValue::Text(t) => m.serialize_entry("text", t)?,
        }
        m.end()
    }
}

/// Goes through `serde_json::Value` rather than raw text so it also works
/// inside internally tagged or flattened event enums (which buffer their
/// input and cannot hand out raw JSON).
impl<'de> Deserialize<'de> for ClaimValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        ClaimValue::from_json_value(v).map_err(de::Error::custom)
    }
}

// How values look on the wire, for the OpenAPI document.

/// The JSON number grammar, as text (what [`Decimal::parse`] accepts).
const DECIMAL_PATTERN: &str = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$";

/// A decimal string, or a JSON number read from its text; responses always
/// use the string.
impl PartialSchema for Decimal {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(DECIMAL_PATTERN))
                    .max_length(Some(MAX_DECIMAL_LEN)),
            )
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .description(Some(
                "An exact decimal: a string such as \"5200\", \"-0.25\" or \"5.2e3\", or a JSON \
                 number. Returned as a string, exactly as sent.",
            ))
            .examples(["5200"])
            .into()
    }
}

impl ToSchema for Decimal {}

/// `Value` in the document: one schema per kind, discriminated by `kind`.
impl PartialSchema for ClaimValue {
    fn schema() -> RefOr<Schema> {
        wire::Value::schema()
    }
}

impl ToSchema for ClaimValue {
    fn name() -> Cow<'static, str> {
        wire::Value::name()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        wire::Value::schemas(schemas);
    }
}

/// The shapes [`ClaimValue`]'s `Serialize` writes and [`ClaimValue::parse`]
/// reads, one per kind. Only described, never built.
#[allow(dead_code, reason = "schema-only types: only their derives are used")]
mod wire {
    use utoipa::ToSchema;
    use utoipa::openapi::schema::Object;

    use super::super::error::{nullable_text_schema, text_schema};
    use super::super::valid_time::PartialDate;
    use super::{Decimal, MAX_SHORT_CHARS, MAX_TEXT_CHARS};

    fn short_text() -> Object {
        text_schema(MAX_SHORT_CHARS, false).build()
    }

    fn long_text() -> Object {
        text_schema(MAX_TEXT_CHARS, false).build()
    }

    fn entity_id() -> Object {
        nullable_text_schema(MAX_SHORT_CHARS)
            .description(Some("An external identifier, e.g. a Wikidata id."))
            .build()
    }

    #[derive(ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum QuantityKind {
        Quantity,
    }
    #[derive(ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum DateKind {
        Date,
    }
    #[derive(ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum OutcomeKind {
        Outcome,
    }
    #[derive(ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum EntityKind {
        Entity,
    }
    #[derive(ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum BooleanKind {
        Boolean,
    }
    #[derive(ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum TextKind {
        Text,
    }

    /// A number of something. Only `amount` (numerically) and `unit` decide
    /// whether two quantities agree.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[schema(example = json!({"kind": "quantity", "amount": "5200", "unit": "soldier", "approximate": true}))]
    pub struct QuantityValue {
        #[schema(inline)]
        pub kind: QuantityKind,
        pub amount: Decimal,
        #[schema(schema_with = short_text)]
        pub unit: String,
        /// Default false.
        pub approximate: Option<bool>,
        /// Lower bound; at most `amount`.
        pub lower: Option<Decimal>,
        /// Upper bound; at least `amount`.
        pub upper: Option<Decimal>,
    }

    /// A calendar date, at the precision written.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[schema(example = json!({"kind": "date", "date": "2020-01-06"}))]
    pub struct DateValue {
        #[schema(inline)]
        pub kind: DateKind,
        pub date: PartialDate,
    }

    /// The result of a vote or decision; only `outcome` decides agreement.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[schema(example = json!({"kind": "outcome", "outcome": "passed", "for": 170, "against": 0}))]
    pub struct OutcomeValue {
        #[schema(inline)]
        pub kind: OutcomeKind,
        #[schema(schema_with = short_text)]
        pub outcome: String,
        #[serde(rename = "for")]
        #[schema(minimum = 0)]
        pub votes_for: Option<u64>,
        #[serde(rename = "against")]
        #[schema(minimum = 0)]
        pub votes_against: Option<u64>,
    }

    /// A person, organisation or thing. Agreement uses `id` when both sides
    /// have one, else `label`.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[schema(example = json!({"kind": "entity", "label": "Brig. Gen. William Seely", "id": null}))]
    pub struct EntityValue {
        #[schema(inline)]
        pub kind: EntityKind,
        #[schema(schema_with = short_text)]
        pub label: String,
        #[schema(schema_with = entity_id)]
        pub id: Option<String>,
    }

    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[schema(example = json!({"kind": "boolean", "value": true}))]
    pub struct BooleanValue {
        #[schema(inline)]
        pub kind: BooleanKind,
        pub value: bool,
    }

    /// Free text; compared trimmed and case-folded.
    #[derive(ToSchema)]
    #[serde(deny_unknown_fields)]
    #[schema(example = json!({"kind": "text", "text": "The bill passed."}))]
    pub struct TextValue {
        #[schema(inline)]
        pub kind: TextKind,
        #[schema(schema_with = long_text)]
        pub text: String,
    }

    /// A claim's typed value, discriminated by `kind`.
    #[derive(ToSchema)]
    #[serde(untagged)]
    #[schema(discriminator(property_name = "kind", mapping(
        ("quantity" = "#/components/schemas/QuantityValue"),
        ("date" = "#/components/schemas/DateValue"),
        ("outcome" = "#/components/schemas/OutcomeValue"),
        ("entity" = "#/components/schemas/EntityValue"),
        ("boolean" = "#/components/schemas/BooleanValue"),
        ("text" = "#/components/schemas/TextValue"),
    )))]
    pub enum Value {
        Quantity(QuantityValue),
        Date(DateValue),
        Outcome(OutcomeValue),
        Entity(EntityValue),
        Boolean(BooleanValue),
        Text(TextValue),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn parse(s: &str) -> ClaimValue {
        ClaimValue::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> FieldError {
        match ClaimValue::parse(s) {
            Ok(v) => panic!("{s} parsed as {v:?}"),
            Err(e) => e,
        }
    }

    fn dec(s: &str) -> Decimal {
        Decimal::parse("d", s).unwrap()
    }

    #[test]
    fn values_stay_small() {
        assert!(std::mem::size_of::<ClaimValue>() <= 64);
    }

    #[test]
    fn contract_examples_round_trip_exactly() {
        for (input, output) in [
            (
                r#"{"kind":"quantity","amount":"5200","unit":"soldier","approximate":true}"#,
                json!({"kind":"quantity","amount":"5200","unit":"soldier","approximate":true}),
            ),
            (
                r#"{"kind":"quantity","amount":5200.0,"unit":"soldier","lower":"5000","upper":6e3}"#,
                json!({"kind":"quantity","amount":"5200.0","unit":"soldier","approximate":false,"lower":"5000","upper":"6e3"}),
            ),
            (
                r#"{"kind":"date","date":"2020-01-06"}"#,
                json!({"kind":"date","date":"2020-01-06"}),
            ),
            (
                r#"{"kind":"outcome","outcome":"passed","for":170,"against":0}"#,
                json!({"kind":"outcome","outcome":"passed","for":170,"against":0}),
            ),
            (
                r#"{"kind":"outcome","outcome":"passed"}"#,
                json!({"kind":"outcome","outcome":"passed"}),
            ),
            (
                r#"{"kind":"entity","label":"Brig. Gen. William Seely","id":null}"#,
                json!({"kind":"entity","label":"Brig. Gen. William Seely","id":null}),
            ),
            (
                r#"{"kind":"entity","label":"Douglas Adams","id":"Q42"}"#,
                json!({"kind":"entity","label":"Douglas Adams","id":"Q42"}),
            ),
            (
                r#"{"kind":"entity","label":"Douglas Adams"}"#,
                json!({"kind":"entity","label":"Douglas Adams","id":null}),
            ),
            (
                r#"{"kind":"boolean","value":true}"#,
                json!({"kind":"boolean","value":true}),
            ),
            (
                r#"{ "text" : " Café “quoted” \t", "kind":"text" }"#,
                json!({"kind":"text","text":" Café “quoted” \t"}),
            ),
        ] {
            let v = parse(input);
            let stored = serde_json::to_value(&v).unwrap();
            assert_eq!(stored, output, "{input}");
            let back: ClaimValue = serde_json::from_value(stored.clone()).unwrap();
            assert_eq!(back, v);
            assert_eq!(serde_json::to_value(&back).unwrap(), stored);
        }
    }

    #[test]
    fn number_amounts_keep_every_digit() {
        let v = parse(r#"{"kind":"quantity","amount":0.1000000000000000055511,"unit":"m"}"#);
        let ClaimValue::Quantity(q) = &v else {
            panic!("{v:?}")
        };
        assert_eq!(q.amount().as_str(), "0.1000000000000000055511");
        assert_eq!(q.amount().canonical(), "1.000000000000000055511e-1");
        // Beyond f64's range, yet exact.
        let big = parse(r#"{"kind":"quantity","amount":-12.5E+400,"unit":"m"}"#);
        assert_eq!(serde_json::to_value(&big).unwrap()["amount"], "-12.5E+400");
        assert!(!v.same_as(&parse(r#"{"kind":"quantity","amount":0.1,"unit":"m"}"#)));
    }

    #[test]
    fn decimal_grammar() {
        for ok in [
            "0", "-0", "5200", "5200.0", "5.2e3", "5.2E+3", "52e-1", "0.000", "1e1000",
        ] {
            assert!(Decimal::parse("d", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "abc",
            "1.2.3",
            "NaN",
            "Infinity",
            "-",
            "+5",
            "05",
            "00",
            ".5",
            "5.",
            "1e",
            "1e+",
            " 5",
            "5 ",
            "1,000",
            "0x10",
            "1e1001",
            "1e99999999999999999999",
            "٣",
            "5e3.0",
        ] {
            assert_eq!(
                Decimal::parse("value.amount", bad).unwrap_err().field,
                "value.amount",
                "{bad}"
            );
        }
        let long = format!("1.{}", "0".repeat(MAX_DECIMAL_LEN));
        assert!(Decimal::parse("d", &long).is_err());
        assert!(Decimal::parse("d", &"9".repeat(40)).is_ok());
        assert!(Decimal::parse("d", &"9".repeat(41)).is_err());
        // Zeros at either end are not significant.
        assert!(Decimal::parse("d", &format!("0.{}1{}", "0".repeat(30), "0".repeat(30))).is_ok());
    }

    #[test]
    fn decimal_comparison() {
        use Ordering::*;
        for (a, b, want) in [
            ("5200", "5200.0", Equal),
            ("5200", "5.2e3", Equal),
            ("5200", "5000", Greater),
            ("0", "-0.0", Equal),
            ("-1", "0", Less),
            ("-2", "-10", Greater),
            ("0.5", "0.49999", Greater),
            ("99", "1e2", Less),
            ("1.01", "1.1", Less),
            ("1e-1000", "0", Greater),
        ] {
            assert_eq!(dec(a).cmp_value(&dec(b)), want, "{a} vs {b}");
            assert_eq!(dec(b).cmp_value(&dec(a)), want.reverse(), "{b} vs {a}");
        }
        assert_eq!(dec("5200.00").canonical(), "5.2e3");
        assert_eq!(dec("-0.0").canonical(), "0");
        assert_eq!(dec("-0.050").canonical(), "-5e-2");
    }

    #[test]
    fn invalid_values_name_their_field() {
        for (input, field) in [
            ("[]", "value"),
            ("\"quantity\"", "value"),
            ("{", "value"),
            (r#"{"kind":"quantity","amount":"1"} x"#, "value"),
            ("{}", "value.kind"),
            (r#"{"kind":5}"#, "value.kind"),
            (r#"{"kind":"money"}"#, "value.kind"),
            (
                r#"{"kind":"Quantity","amount":"1","unit":"m"}"#,
                "value.kind",
            ),
            (r#"{"kind":"quantity","unit":"m"}"#, "value.amount"),
            (
                r#"{"kind":"quantity","amount":null,"unit":"m"}"#,
                "value.amount",
            ),
            (
                r#"{"kind":"quantity","amount":"abc","unit":"m"}"#,
                "value.amount",
            ),
            (
                r#"{"kind":"quantity","amount":true,"unit":"m"}"#,
                "value.amount",
            ),
            (
                r#"{"kind":"quantity","amount":["1"],"unit":"m"}"#,
                "value.amount",
            ),
            (r#"{"kind":"quantity","amount":"1"}"#, "value.unit"),
            (
                r#"{"kind":"quantity","amount":"1","unit":"  "}"#,
                "value.unit",
            ),
            (
                r#"{"kind":"quantity","amount":"1","unit":"m","approximate":"yes"}"#,
                "value.approximate",
            ),
            (
                r#"{"kind":"quantity","amount":"1","unit":"m","lower":"x"}"#,
                "value.lower",
            ),
            (
                r#"{"kind":"quantity","amount":"5","unit":"m","lower":"6","upper":"4"}"#,
                "value.lower",
            ),
            (
                r#"{"kind":"quantity","amount":"7","unit":"m","lower":"4","upper":"6"}"#,
                "value.amount",
            ),
            (
                r#"{"kind":"quantity","amount":"3","unit":"m","lower":"4"}"#,
                "value.amount",
            ),
            (
                r#"{"kind":"quantity","amount":"1","unit":"m","units":"m"}"#,
                "value.units",
            ),
            (
                r#"{"kind":"quantity","amount":"1","unit":"m","unit":"s"}"#,
                "value.unit",
            ),
            (r#"{"kind":"date","date":"2021-02-29"}"#, "value.date"),
            (r#"{"kind":"date","date":"2020-13"}"#, "value.date"),
            (r#"{"kind":"date","date":20200106}"#, "value.date"),
            (
                r#"{"kind":"date","date":"2020-01-06T00:00:00Z"}"#,
                "value.date",
            ),
            (r#"{"kind":"outcome","outcome":""}"#, "value.outcome"),
            (
                r#"{"kind":"outcome","outcome":"passed","for":-1}"#,
                "value.for",
            ),
            (
                r#"{"kind":"outcome","outcome":"passed","for":1.5}"#,
                "value.for",
            ),
            (
                r#"{"kind":"outcome","outcome":"passed","against":"3"}"#,
                "value.against",
            ),
            (
                r#"{"kind":"outcome","outcome":"passed","for":1e2}"#,
                "value.for",
            ),
            (r#"{"kind":"entity","label":"x","id":""}"#, "value.id"),
            (r#"{"kind":"entity","label":"x","id":42}"#, "value.id"),
            (r#"{"kind":"entity","id":"Q42"}"#, "value.label"),
            (r#"{"kind":"boolean","value":"true"}"#, "value.value"),
            (r#"{"kind":"boolean"}"#, "value.value"),
            (r#"{"kind":"text","text":"a\u0000b"}"#, "value.text"),
            (r#"{"kind":"text","text":"\ud800"}"#, "value.text"),
            (r#"{"kind":"text","text":"hi","extra":1}"#, "value.extra"),
        ] {
            let e = err(input);
            assert_eq!(e.field, field, "{input}: {e}");
            assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn length_bounds() {
        let ok = format!(
            r#"{{"kind":"text","text":"{}"}}"#,
            "é".repeat(MAX_TEXT_CHARS)
        );
        parse(&ok);
        let long = format!(
            r#"{{"kind":"text","text":"{}"}}"#,
            "é".repeat(MAX_TEXT_CHARS + 1)
        );
        assert_eq!(err(&long).field, "value.text");
        let unit = format!(
            r#"{{"kind":"quantity","amount":1,"unit":"{}"}}"#,
            "u".repeat(1001)
        );
        assert_eq!(err(&unit).field, "value.unit");
        let key = format!(r#"{{"kind":"text","text":"x","{}":1}}"#, "k".repeat(500));
        assert!(err(&key).field.chars().count() < 80);
    }

    #[test]
    fn stored_shape_refuses_inexact_numbers() {
        let v = json!({"kind":"quantity","amount":5200.5,"unit":"m","approximate":false});
        let e = ClaimValue::from_json_value(v).unwrap_err();
        assert_eq!(e.field, "value.amount");
        let ok = json!({"kind":"quantity","amount":5200,"unit":"m"});
        assert!(
            ClaimValue::from_json_value(ok).is_ok(),
            "integers are exact"
        );
    }

    #[test]
    fn deserializes_inside_tagged_event_enums() {
        #[derive(Deserialize, Serialize, Debug, PartialEq)]
        #[serde(tag = "type", rename_all = "snake_case")]
        enum Event {
            Asserted { value: ClaimValue },
        }
        let e = Event::Asserted {
            value: parse(r#"{"kind":"quantity","amount":"1.50","unit":"kg"}"#),
        };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), e);
        let bad = r#"{"type":"asserted","value":{"kind":"text","text":""}}"#;
        assert!(serde_json::from_str::<Event>(bad).is_err());
    }

    #[test]
    fn agreement() {
        let same = |a: &str, b: &str| parse(a).same_as(&parse(b));
        let q = |amount: &str, unit: &str| {
            format!(r#"{{"kind":"quantity","amount":{amount},"unit":"{unit}"}}"#)
        };
        assert!(same(&q("5200", "soldier"), &q("\"5200.0\"", "soldier")));
        assert!(same(&q("5.2e3", "soldier"), &q("5200", "soldier")));
        assert!(!same(&q("5000", "soldier"), &q("5200", "soldier")));
        assert!(!same(&q("5200", "soldier"), &q("5200", "soldiers")));
        assert!(same(
            r#"{"kind":"quantity","amount":1,"unit":"m","approximate":true,"lower":0}"#,
            &q("1", "m")
        ));
        assert!(!same(
            r#"{"kind":"date","date":"2020-01"}"#,
            r#"{"kind":"date","date":"2020-01-01"}"#
        ));
        assert!(same(
            r#"{"kind":"outcome","outcome":"passed","for":1}"#,
            r#"{"kind":"outcome","outcome":"passed","for":2}"#
        ));
        assert!(same(
            r#"{"kind":"text","text":" Hello World "}"#,
            r#"{"kind":"text","text":"hello world"}"#
        ));
        assert!(!same(
            r#"{"kind":"text","text":"hello  world"}"#,
            r#"{"kind":"text","text":"hello world"}"#
        ));
        assert!(!same(
            r#"{"kind":"boolean","value":true}"#,
            r#"{"kind":"text","text":"true"}"#
        ));
        assert!(!same(
            r#"{"kind":"boolean","value":true}"#,
            r#"{"kind":"boolean","value":false}"#
        ));
    }

    #[test]
    fn entity_agreement_and_keys() {
        let e = |label: &str, id: Option<&str>| {
            ClaimValue::from_json_value(json!({"kind":"entity","label":label,"id":id})).unwrap()
        };
        let a = e("Douglas Adams", Some("Q42"));
        let b = e("D. Adams", Some("Q42"));
        let c = e("Douglas Adams", None);
        let d = e("Douglas Adams", Some("Q1"));
        assert!(
            a.same_as(&b) && a.identity_key() == b.identity_key(),
            "same id"
        );
        assert!(
            !a.same_as(&d) && a.identity_key() != d.identity_key(),
            "different ids"
        );
        assert!(a.same_as(&c), "one id missing: labels decide");
        assert_ne!(
            a.identity_key(),
            c.identity_key(),
            "documented gap: same_as decides"
        );
        assert!(c.same_as(&e("Douglas Adams", None)));
        assert_eq!(c.identity_key(), e("Douglas Adams", None).identity_key());
        assert!(
            !c.same_as(&e("douglas adams", None)),
            "labels compare exactly"
        );
    }

    fn decimal_text() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "0", "-0", "0.0", "5200", "5200.0", "5.2e3", "52E2", "5000", "-5200"
            ])
            .prop_map(String::from),
            "-?(0|[1-9][0-9]{0,12})(\\.[0-9]{1,8})?([eE][+-]?[0-9]{1,3})?",
        ]
    }

    fn any_value_json() -> impl Strategy<Value = String> {
        let word = || {
            prop::sample::select(vec![
                "m", "M", "soldier", " x ", "Ünï", "a\"b\\c", "\u{a0}y",
            ])
        };
        let opt_dec = || prop::option::of(decimal_text());
        prop_oneof![
            (
                decimal_text(),
                any::<bool>(),
                word(),
                any::<bool>(),
                opt_dec(),
                opt_dec()
            )
                .prop_map(|(amount, as_string, unit, approx, lower, upper)| {
                    let amount = if as_string {
                        json!(amount).to_string()
                    } else {
                        amount
                    };
                    let mut s = format!(
                        r#"{{"kind":"quantity","amount":{amount},"unit":{},"approximate":{approx}"#,
                        json!(unit)
                    );
                    // Bounds are kept only when they hold, so most cases parse.
                    if let Some(lo) = lower {
                        s.push_str(&format!(r#","lower":"{lo}""#));
                    }
                    if let Some(hi) = upper {
                        s.push_str(&format!(r#","upper":{hi}"#));
                    }
                    s + "}"
                }),
            prop::sample::select(vec!["2020", "2020-01", "2020-01-01", "2024-02-29"])
                .prop_map(|d| format!(r#"{{"kind":"date","date":"{d}"}}"#)),
            (
                word(),
                prop::option::of(0u64..1000),
                prop::option::of(any::<u64>())
            )
                .prop_map(|(o, f, a)| {
                    json!({"kind":"outcome","outcome":o,"for":f,"against":a}).to_string()
                }),
            (
                word(),
                prop::option::of(prop::sample::select(vec!["Q1", "Q42"]))
            )
                .prop_map(|(l, id)| json!({"kind":"entity","label":l,"id":id}).to_string()),
            any::<bool>().prop_map(|b| json!({"kind":"boolean","value":b}).to_string()),
            prop::sample::select(vec![
                "Hello",
                " hello ",
                "HELLO",
                "héllo",
                "\u{1f600}",
                "a\tb"
            ])
            .prop_map(|t| json!({"kind":"text","text":t}).to_string()),
        ]
    }

    proptest! {
        #[test]
        fn decimal_parse_never_panics(s in "\\PC{0,40}|[-+0-9.eE]{0,40}") {
            let _ = Decimal::parse("d", &s);
            let _ = ClaimValue::parse(&s);
            let _ = ClaimValue::parse(&format!(r#"{{"kind":"quantity","unit":"m","amount":"{s}"}}"#));
        }

        #[test]
        fn decimal_order_matches_f64_where_exact(a in -1_000_000i64..1_000_000, b in -1_000_000i64..1_000_000, sa in 0u32..4, sb in 0u32..4) {
            // Integers scaled by powers of ten are exact in both worlds.
            let da = dec(&format!("{a}e-{sa}"));
            let db = dec(&format!("{b}e-{sb}"));
            let fa = a as f64 / 10f64.powi(sa as i32);
            let fb = b as f64 / 10f64.powi(sb as i32);
            let want = (a as i128 * 10i128.pow(sb)).cmp(&(b as i128 * 10i128.pow(sa)));
            prop_assert_eq!(da.cmp_value(&db), want, "{} vs {}", fa, fb);
        }

        #[test]
        fn stored_values_round_trip(raw in any_value_json()) {
            if let Ok(v) = ClaimValue::parse(&raw) {
                let stored = serde_json::to_value(&v).unwrap();
                let back: ClaimValue = serde_json::from_value(stored.clone()).unwrap();
                prop_assert_eq!(&back, &v);
                prop_assert_eq!(serde_json::to_value(&back).unwrap(), stored);
                let text = serde_json::to_string(&v).unwrap();
                prop_assert_eq!(ClaimValue::parse(&text).unwrap(), v);
            }
        }

        #[test]
        fn same_as_is_an_equivalence_matching_keys(a in any_value_json(), b in any_value_json()) {
            if let (Ok(a), Ok(b)) = (ClaimValue::parse(&a), ClaimValue::parse(&b)) {
                prop_assert!(a.same_as(&a));
                prop_assert_eq!(a.same_as(&b), b.same_as(&a));
                let keys_equal = a.identity_key() == b.identity_key();
                if keys_equal {
                    prop_assert!(a.same_as(&b), "equal keys always agree");
                }
                if !matches!(a, ClaimValue::Entity(_)) {
                    prop_assert_eq!(a.same_as(&b), keys_equal);
                }
            }
        }
    }
}
