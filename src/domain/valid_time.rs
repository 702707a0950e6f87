//! When a claim is true in the world (`valid_at`), as opposed to when it was
//! recorded. Newsroom sources are often vague ("in January 2020"), so a
//! valid time may be a year, a month, a day, or an exact instant.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    KnownFormat, Object, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::{PartialSchema, ToSchema};

use super::error::FieldError;

/// Longer input cannot be a valid time; refusing it early keeps the error
/// message short and the parser's work bounded.
const MAX_LEN: usize = 64;

const DATE_FORM: &str = "must be a date as YYYY, YYYY-MM or YYYY-MM-DD";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Precision {
    Year,
    Month,
    Day,
}

/// A calendar date known to a year, a month or a day (`YYYY`, `YYYY-MM`,
/// `YYYY-MM-DD`), years 0001–9999. Only real dates can be built.
///
/// Two partial dates are equal only when form and value agree: `2020-01` is
/// not `2020-01-01`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PartialDate {
    // The first day covered, plus how much of it was given: storing a real
    // `NaiveDate` means validity is checked once and never re-derived.
    first_day: NaiveDate,
    precision: Precision,
}

impl PartialDate {
    /// Parses `YYYY`, `YYYY-MM` or `YYYY-MM-DD` (ASCII digits, zero-padded).
    /// `field` names the input in the error.
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        let bad = |msg: &str| FieldError::new(field, msg);
        let form_msg = DATE_FORM;
        let parts: Vec<&str> = s.split('-').collect();
        let widths_ok = parts.len() <= 3
            && parts
                .iter()
                .zip([4, 2, 2])
                .all(|(p, w)| p.len() == w && p.bytes().all(|b| b.is_ascii_digit()));
        if !widths_ok {
            return Err(bad(form_msg));
        }
        // Widths are checked, so these parse; a failure still maps to an error.
        let num = |p: &str| p.parse::<u32>().map_err(|_| bad(form_msg));
        let year = num(parts[0])?;
        let month = parts.get(1).map(|p| num(p)).transpose()?;
        let day = parts.get(2).map(|p| num(p)).transpose()?;
        Self::new(year, month, day).map_err(|msg| bad(&msg))
    }

    /// Builds a partial date from its parts; `day` requires `month`.
    /// The error is a human message (no field name).
    pub fn new(year: u32, month: Option<u32>, day: Option<u32>) -> Result<Self, String> {
        if !(1..=9999).contains(&year) {
            return Err("year must be between 0001 and 9999".into());
        }
        if let Some(m) = month
            && !(1..=12).contains(&m)
        {
            return Err(format!("month {m:02} does not exist"));
        }
        let precision = match (month, day) {
            (None, None) => Precision::Year,
            (Some(_), None) => Precision::Month,
            (Some(_), Some(_)) => Precision::Day,
            (None, Some(_)) => return Err("a day needs a month".into()),
        };
        // `year` is at most 9999, so the cast cannot wrap.
        let first_day = NaiveDate::from_ymd_opt(year as i32, month.unwrap_or(1), day.unwrap_or(1))
            .ok_or_else(|| {
                format!(
                    "{year:04}-{:02}-{:02} is not a real date",
                    month.unwrap_or(1),
                    day.unwrap_or(1)
                )
            })?;
        Ok(Self {
            first_day,
            precision,
        })
    }

    pub fn year(&self) -> i32 {
        self.first_day.year()
    }

    pub fn month(&self) -> Option<u32> {
        (self.precision >= Precision::Month).then(|| self.first_day.month())
    }

    pub fn day(&self) -> Option<u32> {
        (self.precision == Precision::Day).then(|| self.first_day.day())
    }

    /// Midnight UTC at the start of the period.
    pub fn earliest_instant(&self) -> DateTime<Utc> {
        self.first_day.and_time(NaiveTime::MIN).and_utc()
    }
}

impl fmt::Display for PartialDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.first_day;
        match self.precision {
            Precision::Year => write!(f, "{:04}", d.year()),
            Precision::Month => write!(f, "{:04}-{:02}", d.year(), d.month()),
            Precision::Day => write!(f, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day()),
        }
    }
}

/// When a claim holds: a [`PartialDate`] or an RFC 3339 instant.
///
/// # Ordering
/// Valid times order by the earliest instant they cover; on a tie the
/// coarser comes first (year < month < day < instant), and instants at the
/// same moment written with different offsets order by offset (west first).
/// Equality is "identical in form and value": `2020-01` ≠ `2020-01-01`, and
/// `14:30:00Z` ≠ `15:30:00+01:00` even though they are the same moment.
///
/// "The latest valid time at or before `q`" means the greatest `t` with
/// `t <= q` in this order ([`ValidTime::is_at_or_before`]). A coarse query
/// therefore means its *start*: as of `2020-01` excludes `2020-01-15`, and
/// as of `2020-01-31` includes `2020-01` (which began earlier).
#[derive(Debug, Clone, Copy)]
pub enum ValidTime {
    Date(PartialDate),
    Instant(DateTime<FixedOffset>),
}

impl ValidTime {
    /// Parses a `valid_at`: `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, or an RFC 3339
    /// timestamp with `Z` or a numeric offset (years 0001–9999 in the time
    /// as written). Errors name the field `valid_at`.
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        Self::parse_field("valid_at", s)
    }

    /// [`ValidTime::parse`] with the error naming `field`.
    pub fn parse_field(field: &str, s: &str) -> Result<Self, FieldError> {
        if s.len() > MAX_LEN {
            return Err(FieldError::new(field, "is too long to be a valid time"));
        }
        // Dates are at most 10 characters; anything longer must be an instant.
        if s.len() <= 10 {
            return PartialDate::parse(field, s)
                .map(ValidTime::Date)
                .map_err(|e| {
                    if e.message == DATE_FORM {
                        FieldError::new(field, format!("{DATE_FORM}, or an RFC 3339 timestamp"))
                    } else {
                        e
                    }
                });
        }
        let instant = DateTime::parse_from_rfc3339(s).map_err(|e| {
            FieldError::new(
                field,
                format!("must be YYYY, YYYY-MM, YYYY-MM-DD or an RFC 3339 timestamp such as 2020-01-05T14:30:00Z ({e})"),
            )
        })?;
        if !(1..=9999).contains(&instant.year()) {
            return Err(FieldError::new(field, "year must be between 0001 and 9999"));
        }
        Ok(ValidTime::Instant(instant))
    }

    /// The first moment the valid time covers: midnight UTC at the start of
    /// a date, or the instant itself.
    pub fn earliest_instant(&self) -> DateTime<Utc> {
        match self {
            ValidTime::Date(d) => d.earliest_instant(),
            ValidTime::Instant(t) => t.with_timezone(&Utc),
        }
    }

    /// `self <= query`: whether a claim valid at `self` is in force as of
    /// `query` (see the ordering rules on the type).
    pub fn is_at_or_before(&self, query: &ValidTime) -> bool {
        self <= query
    }

    // Instants rank after every date form so a day sorts before the
    // midnight instant that starts it.
    fn sort_key(&self) -> (DateTime<Utc>, u8, i32) {
        match self {
            ValidTime::Date(d) => (d.earliest_instant(), d.precision as u8, 0),
            ValidTime::Instant(t) => (t.with_timezone(&Utc), 3, t.offset().local_minus_utc()),
        }
    }
}

impl fmt::Display for ValidTime {
    /// Dates print as given. Instants print normalized: `T` and `Z` upper
    /// case, a zero offset as `Z`, fractional seconds as 0, 3, 6 or 9 digits
    /// (`.5` → `.500`); the offset as written is kept otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValidTime::Date(d) => d.fmt(f),
            ValidTime::Instant(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        }
    }
}

// Equality, order and hash all come from one key so they can never disagree
// (chrono's own `==` ignores the offset, which would not).
impl PartialEq for ValidTime {
    fn eq(&self, other: &Self) -> bool {
        self.sort_key() == other.sort_key()
    }
}

impl Eq for ValidTime {}

impl PartialOrd for ValidTime {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ValidTime {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl Hash for ValidTime {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.sort_key().hash(state);
    }
}

impl Serialize for ValidTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ValidTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ValidTime::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for PartialDate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PartialDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PartialDate::parse("date", &s).map_err(serde::de::Error::custom)
    }
}

// How valid times look in the OpenAPI document. Patterns (ECMA-262) follow
// the parsers above, so generated clients and fuzzers send what is accepted.

/// `YYYY` or `YYYY-MM`, year 0001-9999 (full dates use `format: date`).
const YEAR_OR_MONTH: &str =
    r"^([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})(-(0[1-9]|1[0-2]))?$";

fn string_schema(format: Option<KnownFormat>, pattern: Option<&str>, description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(format.map(SchemaFormat::KnownFormat))
        .pattern(pattern)
        .description(Some(description))
        .build()
}

impl PartialSchema for ValidTime {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(string_schema(
                None,
                Some(YEAR_OR_MONTH),
                "a year or a month",
            ))
            .item(string_schema(Some(KnownFormat::Date), None, "a day"))
            .item(string_schema(
                Some(KnownFormat::DateTime),
                None,
                "an RFC 3339 timestamp",
            ))
            .description(Some(
                "When a claim holds in the world: YYYY, YYYY-MM, YYYY-MM-DD or an RFC 3339 \
                 timestamp. Precision follows the form.",
            ))
            .examples(["2020-01-06"])
            .into()
    }
}

impl ToSchema for ValidTime {}

/// Named `CalendarDate` in the document: two dates agree only in the same form.
impl PartialSchema for PartialDate {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(string_schema(
                None,
                Some(YEAR_OR_MONTH),
                "a year or a month",
            ))
            .item(string_schema(Some(KnownFormat::Date), None, "a day"))
            .examples(["2020-01-06"])
            .into()
    }
}

impl ToSchema for PartialDate {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("CalendarDate")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vt(s: &str) -> ValidTime {
        ValidTime::parse(s).unwrap()
    }

    #[test]
    fn partial_date_forms() {
        let d = PartialDate::parse("date", "2020-01-06").unwrap();
        assert_eq!((d.year(), d.month(), d.day()), (2020, Some(1), Some(6)));
        let m = PartialDate::parse("date", "2020-01").unwrap();
        assert_eq!((m.year(), m.month(), m.day()), (2020, Some(1), None));
        let y = PartialDate::parse("date", "0001").unwrap();
        assert_eq!((y.year(), y.month(), y.day()), (1, None, None));
        assert_ne!(m, PartialDate::parse("date", "2020-01-01").unwrap());
        assert_eq!(
            PartialDate::parse("date", "2024-02-29")
                .unwrap()
                .to_string(),
            "2024-02-29"
        );
    }

    #[test]
    fn impossible_or_malformed_dates_are_refused() {
        for s in [
            "2021-02-29",
            "2020-13",
            "2020-00",
            "2020-01-00",
            "2020-04-31",
            "0000",
            "10000",
            "2020-1",
            "2020-01-1",
            "20-01-01",
            "2020/01/01",
            "2020-01-01-01",
            "",
            "2020-",
            "-2020",
            " 2020",
            "２０２０",
            "+2020",
            "2020-1-01",
        ] {
            let e = PartialDate::parse("value.date", s).unwrap_err();
            assert_eq!(e.field, "value.date", "{s}");
            assert!(ValidTime::parse(s).is_err(), "{s}");
        }
        assert!(
            ValidTime::parse("2021-02-29")
                .unwrap_err()
                .message
                .contains("not a real date")
        );
        assert!(PartialDate::new(2020, None, Some(1)).is_err());
    }

    #[test]
    fn instants() {
        let t = vt("2020-01-05T14:30:00Z");
        assert_eq!(t.to_string(), "2020-01-05T14:30:00Z");
        assert_eq!(
            vt("2020-01-05t14:30:00+00:00").to_string(),
            "2020-01-05T14:30:00Z"
        );
        assert_eq!(
            vt("2020-01-05T14:30:00.5-05:00").to_string(),
            "2020-01-05T14:30:00.500-05:00"
        );
        assert_eq!(
            vt("2020-01-05T14:30:00-05:00").earliest_instant(),
            vt("2020-01-05T19:30:00Z").earliest_instant()
        );
        assert_ne!(vt("2020-01-05T14:30:00-05:00"), vt("2020-01-05T19:30:00Z"));
        for s in [
            "2020-01-05T14:30:00",
            "2020-01-05T14:30Z",
            "2020-01-05T25:00:00Z",
            "2021-02-29T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "2020-01-05T14:30:00Z ",
            "2020-01-05T14:30:00+24:00",
        ] {
            assert!(ValidTime::parse(s).is_err(), "{s}");
        }
        let long = format!("2020-01-05T14:30:00.{}Z", "1".repeat(60));
        assert!(ValidTime::parse(&long).is_err());
    }

    #[test]
    fn ordering_examples() {
        let chain = [
            "2020-01-01T00:00:00+01:00",
            "2019-12-31T23:59:59Z",
            "2020",
            "2020-01",
            "2020-01-01",
            "2020-01-01T00:00:00Z",
            "2020-01-01T01:00:00+01:00",
            "2020-01-01T00:00:00.001Z",
            "2020-01-02",
            "2020-01-31",
            "2020-02",
        ];
        for w in chain.windows(2) {
            assert!(vt(w[0]) < vt(w[1]), "{} < {}", w[0], w[1]);
        }
        // Same moment, different offsets: distinct but ordered (west first).
        assert!(vt("2020-01-01T00:00:00Z") < vt("2020-01-01T01:00:00+01:00"));
        assert!(vt("2019-12-31T23:00:00-02:00") > vt("2020-01-01"));
        assert!(vt("2020-01-31").is_at_or_before(&vt("2020-01-31")));
        assert!(vt("2020-01").is_at_or_before(&vt("2020-01-31")));
        assert!(!vt("2020-01-15").is_at_or_before(&vt("2020-01")));
    }

    #[test]
    fn serde_as_string() {
        let t = vt("2020-01-05T14:30:00+02:00");
        let j = serde_json::to_value(t).unwrap();
        assert_eq!(j, serde_json::json!("2020-01-05T14:30:00+02:00"));
        assert_eq!(serde_json::from_value::<ValidTime>(j).unwrap(), t);
        assert!(serde_json::from_str::<ValidTime>("\"2020-13\"").is_err());
        let d = PartialDate::parse("date", "2020-01").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"2020-01\"");
    }

    fn any_valid_time() -> impl Strategy<Value = ValidTime> {
        let date = (
            1u32..=9999,
            prop::option::of((1u32..=12, prop::option::of(1u32..=31))),
        )
            .prop_filter_map("real date", |(y, md)| {
                let (m, d) = md.map_or((None, None), |(m, d)| (Some(m), d));
                PartialDate::new(y, m, d).ok().map(ValidTime::Date)
            });
        let instant = (
            0i64..253_402_214_400,
            0u32..1_000_000_000,
            -86_399i32..86_399,
        )
            .prop_filter_map("in range", |(secs, nanos, off)| {
                let utc = DateTime::from_timestamp(secs, nanos)?;
                let t = utc.with_timezone(&FixedOffset::east_opt(off / 60 * 60)?);
                (1..=9999)
                    .contains(&t.year())
                    .then_some(ValidTime::Instant(t))
            });
        prop_oneof![date, instant]
    }

    proptest! {
        #[test]
        fn display_round_trips(t in any_valid_time()) {
            let shown = t.to_string();
            let back = ValidTime::parse(&shown).unwrap();
            prop_assert_eq!(back, t);
            prop_assert_eq!(back.to_string(), shown);
        }

        #[test]
        fn order_is_consistent(a in any_valid_time(), b in any_valid_time()) {
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            prop_assert_eq!(a == b, a.to_string() == b.to_string());
            if a.earliest_instant() < b.earliest_instant() {
                prop_assert!(a < b);
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,30}|[0-9:TZ+.-]{0,30}") {
            let _ = ValidTime::parse(&s);
        }
    }
}
