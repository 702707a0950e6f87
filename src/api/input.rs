//! Request bodies of the write endpoints, turned into validated commands.
//! Every refusal names the field it is about (422).

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::body::{Fields, JsonBody};
use crate::domain::claim::{Amendment, Command};
use crate::domain::erasure::{NewErasure, Target};
use crate::domain::error::FieldError;
use crate::domain::error::check_text;
use crate::domain::text::{check_key_bytes, check_url_bytes};
use crate::domain::valid_time::ValidTime;
use crate::domain::value::ClaimValue;
use crate::service::{NewClaim, NewStory};

/// Bounds on free text, in characters. Text that is indexed has a bound in
/// bytes as well (`domain::text::BTREE_MAX_ENTRY_BYTES` says why and which).
pub(super) const SHORT: usize = 500;
pub(super) const TITLE: usize = 1_000;
pub(super) const NOTE: usize = 5_000;
pub(super) const QUOTE: usize = 10_000;
pub(super) const URL: usize = 2_048;

fn text(fields: &Fields, name: &str, max: usize) -> Result<String, FieldError> {
    let s = fields.required_str(name)?;
    check_text(name, &s, max, false)?;
    Ok(s)
}

/// A subject or property: text whose normalized key is indexed.
fn key_text(fields: &Fields, name: &str) -> Result<String, FieldError> {
    let s = text(fields, name, SHORT)?;
    check_key_bytes(name, &s)?;
    Ok(s)
}

fn optional_text(fields: &Fields, name: &str, max: usize) -> Result<Option<String>, FieldError> {
    let s = fields.optional_str(name)?;
    if let Some(s) = &s {
        check_text(name, s, max, false)?;
    }
    Ok(s)
}

fn uuid(fields: &Fields, name: &str) -> Result<Option<Uuid>, FieldError> {
    fields
        .optional_str(name)?
        .map(|s| {
            s.parse::<Uuid>()
                .map_err(|_| FieldError::new(name, "must be a UUID"))
        })
        .transpose()
}

fn url(fields: &Fields, name: &str, required: bool) -> Result<Option<String>, FieldError> {
    let u = if required {
        Some(fields.required_str(name)?)
    } else {
        fields.optional_str(name)?
    };
    if let Some(u) = &u {
        check_text(name, u, URL, false)?;
        check_url_bytes(name, u)?;
        let lower = u.to_ascii_lowercase();
        let scheme_ok = lower.starts_with("http://") || lower.starts_with("https://");
        let host_ok = u.split_once("://").is_some_and(|(_, rest)| {
            rest.split(['/', '?', '#'])
                .next()
                .is_some_and(|h| !h.is_empty())
        });
        if !scheme_ok || !host_ok || u.chars().any(char::is_whitespace) {
            return Err(FieldError::new(name, "must be an absolute http(s) URL"));
        }
    }
    Ok(u)
}

/// RFC 3339, or a plain date (taken as midnight UTC).
fn published_at(fields: &Fields) -> Result<DateTime<Utc>, FieldError> {
    let s = fields.required_str("published_at")?;
    if let Ok(t) = DateTime::parse_from_rfc3339(&s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(&s, "%Y-%m-%d")
        .ok()
        .filter(|_| s.len() == 10)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            FieldError::new(
                "published_at",
                "must be an RFC 3339 timestamp (2020-01-06T09:30:00Z) or a date (2020-01-06)",
            )
        })
}

fn valid_at(fields: &Fields) -> Result<Option<ValidTime>, FieldError> {
    fields
        .optional_str("valid_at")?
        .map(|s| ValidTime::parse_field("valid_at", &s))
        .transpose()
}

fn value(raw: &str) -> Result<ClaimValue, FieldError> {
    ClaimValue::parse(raw)
}

pub fn story(body: &JsonBody) -> Result<NewStory, FieldError> {
    let f = Fields::of(body, &["title", "publisher", "published_at", "url", "body"])?;
    Ok(NewStory {
        title: text(&f, "title", TITLE)?,
        publisher: text(&f, "publisher", SHORT)?,
        published_at: published_at(&f)?,
        url: url(&f, "url", false)?,
        body: {
            let b = f.optional_str("body")?;
            if let Some(b) = &b {
                check_text("body", b, usize::MAX, true)?;
            }
            b
        },
    })
}

pub fn claim(body: &JsonBody) -> Result<NewClaim, FieldError> {
    let f = Fields::of(
        body,
        &[
            "story_id",
            "subject",
            "property",
            "value",
            "quote",
            "valid_at",
            "attributed_to",
            "corrects",
        ],
    )?;
    Ok(NewClaim {
        story_id: uuid(&f, "story_id")?
            .ok_or_else(|| FieldError::new("story_id", "is required"))?,
        subject: key_text(&f, "subject")?,
        property: key_text(&f, "property")?,
        value: value(f.required_raw("value")?)?,
        quote: text(&f, "quote", QUOTE)?,
        valid_at: valid_at(&f)?,
        attributed_to: optional_text(&f, "attributed_to", SHORT)?,
        corrects: uuid(&f, "corrects")?,
    })
}

pub fn confirmation(body: &JsonBody) -> Result<Command, FieldError> {
    let f = Fields::of(body, &["note"])?;
    Ok(Command::Confirm {
        note: optional_text(&f, "note", NOTE)?,
    })
}

pub fn dispute(body: &JsonBody) -> Result<Command, FieldError> {
    let f = Fields::of(body, &["reason"])?;
    Ok(Command::Dispute {
        reason: text(&f, "reason", NOTE)?,
    })
}

pub fn retraction(body: &JsonBody) -> Result<Command, FieldError> {
    let f = Fields::of(body, &["reason"])?;
    Ok(Command::Retract {
        reason: text(&f, "reason", NOTE)?,
    })
}

pub fn evidence(body: &JsonBody) -> Result<Command, FieldError> {
    let f = Fields::of(body, &["url", "note"])?;
    Ok(Command::AttachEvidence {
        url: url(&f, "url", true)?.unwrap_or_default(),
        note: optional_text(&f, "note", NOTE)?,
    })
}

/// Any of value, quote, valid_at, attributed_to; `null` clears the optional two.
pub fn amendment(body: &JsonBody) -> Result<Command, FieldError> {
    let f = Fields::of(body, &["value", "quote", "valid_at", "attributed_to"])?;
    let mut a = Amendment::default();
    if f.has("value") {
        a.value = Some(value(f.required_raw("value")?)?);
    }
    if f.has("quote") {
        a.quote = Some(text(&f, "quote", QUOTE)?);
    }
    if f.has("valid_at") {
        a.valid_at = Some(valid_at(&f)?);
    }
    if f.has("attributed_to") {
        a.attributed_to = Some(optional_text(&f, "attributed_to", SHORT)?);
    }
    Ok(Command::Amend(Box::new(a)))
}

/// A URL as [`url`] accepts it, for `/openapi.json` (ECMA-262): absolute
/// http(s) with a host, no white space.
pub(super) fn url_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::domain::error::text_schema(URL, false)
        .pattern(Some(r"^[hH][tT][tT][pP][sS]?://[^/?#\s\x00]+[^\s\x00]*$"))
}

/// `POST /v1/erasures`: a claim or a story, the fields, and why.
pub fn erasure(body: &JsonBody) -> Result<NewErasure, FieldError> {
    let f = Fields::of(body, &["claim_id", "story_id", "fields", "reason"])?;
    let target = match (uuid(&f, "claim_id")?, uuid(&f, "story_id")?) {
        (Some(id), None) => Target::Claim(id),
        (None, Some(id)) => Target::Story(id),
        (Some(_), Some(_)) => {
            return Err(FieldError::new(
                "story_id",
                "name a claim or a story, not both",
            ));
        }
        (None, None) => {
            return Err(FieldError::new("claim_id", "is required (or story_id)"));
        }
    };
    let fields: Vec<String> = serde_json::from_str(f.required_raw("fields")?)
        .map_err(|_| FieldError::new("fields", "must be an array of field names"))?;
    let reason = text(&f, "reason", NOTE)?;
    NewErasure::new(target, fields, reason)
}
