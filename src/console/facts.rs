//! "Facts": a search by subject and property (the API's facts listing), and
//! a fact's page: its status and value, a "Timeline" along valid time, its
//! claims, and "As of" a record time (the service's `as_of` read: the fact
//! as it was known then).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::claims::value_text;
use super::error::ConsoleError;
use super::layout::{self, Nav};
use super::session::Session;
use crate::api::SharedState;
use crate::domain::fact::Fact;
use crate::domain::text::normalize_key;
use crate::domain::value::ClaimValue;
use crate::projections::read::FactFilter;
use crate::service::ServiceError;

/// Facts on one page of results.
const PAGE: i64 = 50;

/// The longest search text, as the API's query parameters allow.
const MAX_TEXT_CHARS: usize = 1_000;

/// A time typed into a form: RFC 3339, or a date and time without a zone
/// (what a `datetime-local` input sends), taken as UTC.
pub fn parse_time(label: &str, typed: &str) -> Result<DateTime<Utc>, String> {
    let s = typed.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .map(|t| t.and_utc())
    .ok_or_else(|| {
        format!(
            "{label}: must be a date and time such as 2024-05-01T09:30 (UTC) \
                 or 2024-05-01T09:30:00+02:00."
        )
    })
}

/// A time as a `datetime-local` input holds it (UTC, to the second).
pub fn local_input(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Search text as the API's query parameters accept it.
pub fn check_text(label: &str, typed: &str) -> Result<(), String> {
    if typed.contains('\0') {
        Err(format!("{label}: must not contain U+0000."))
    } else if typed.chars().count() > MAX_TEXT_CHARS {
        Err(format!("{label}: is too long."))
    } else {
        Ok(())
    }
}

/// A query string's value, percent-encoded.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn value_words(v: Option<&ClaimValue>) -> Markup {
    html! {
        @match v.and_then(|v| serde_json::to_value(v).ok()) {
            Some(v) => (value_text(&v)),
            None => span class="meta" { "none agreed" },
        }
    }
}

fn read_fact(raw: &[u8]) -> Result<Fact, ConsoleError> {
    serde_json::from_slice(raw)
        .map_err(|e| ConsoleError::Service(ServiceError::Corrupt(e.to_string())))
}

#[derive(Deserialize, Default)]
pub struct SearchQuery {
    #[serde(default)]
    subject: String,
    #[serde(default)]
    property: String,
    /// The last fact of the previous page.
    #[serde(default)]
    after: String,
}

/// `GET /console/facts?subject=…&property=…`.
pub async fn list(
    State(state): State<SharedState>,
    session: Session,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Response, ConsoleError> {
    let Query(q) = query.map_err(|e| ConsoleError::BadForm(e.body_text()))?;
    let key = |s: &str| Some(s.trim()).filter(|s| !s.is_empty()).map(normalize_key);
    let checked = check_text("Subject", &q.subject)
        .and_then(|_| check_text("Property", &q.property))
        .and_then(|_| match q.after.trim() {
            "" => Ok(None),
            a => a
                .parse::<Uuid>()
                .map(Some)
                .map_err(|_| "This page of results does not exist; search again.".to_owned()),
        });
    let (results, words) = match checked {
        Ok(cursor) => {
            let filter = FactFilter {
                subject_key: key(&q.subject),
                property_key: key(&q.property),
                status: None,
            };
            let page = state.services.list_facts(&filter, cursor, PAGE).await?;
            let facts = page
                .items
                .iter()
                .map(|raw| read_fact(raw.get().as_bytes()))
                .collect::<Result<Vec<_>, _>>()?;
            (Some((facts, page.next)), None)
        }
        Err(words) => (None, Some(words)),
    };
    let status = if words.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let content = html! {
        h1 { "Facts" }
        (layout::message(words.as_deref()))
        form class="stacked" method="get" action="/console/facts" role="search" {
            label { "Subject" input type="text" name="subject" value=(q.subject); }
            label { "Property" input type="text" name="property" value=(q.property); }
            button type="submit" { "Search" }
        }
        @if let Some((facts, next)) = &results {
            h2 { "Results" }
            @if facts.is_empty() {
                p class="notice" { "No fact matches." }
            } @else {
                ul class="items" {
                    @for f in facts {
                        li {
                            a href={ "/console/facts/" (f.id) } { (f.subject) " — " (f.property) }
                            ": " (value_words(f.value.as_ref()))
                            " " span class="status" { "(" (f.status.as_str()) ")" }
                            div class="meta" { (f.claims.len()) " claim(s)" }
                        }
                    }
                }
            }
            @if let Some(next) = next {
                p {
                    a href={ "/console/facts?subject=" (encode(&q.subject)) "&property="
                             (encode(&q.property)) "&after=" (next) } { "More facts" }
                }
            }
        }
    };
    Ok(layout::respond(
        status,
        layout::page("Facts", Some(&session), Nav::Facts, content),
    ))
}

#[derive(Deserialize, Default)]
pub struct FactQuery {
    #[serde(default)]
    as_of: String,
}

/// The fact's status, value, timeline and claims.
fn fact_body(f: &Fact) -> Markup {
    html! {
        dl class="fields" {
            dt { "Status" } dd class="status" { (f.status.as_str()) }
            dt { "Value" } dd { (value_words(f.value.as_ref())) }
            dt { "Valid at" } dd {
                @match &f.valid_at {
                    Some(t) => (t.to_string()),
                    None => span class="meta" { "none" },
                }
            }
        }
        h2 { "Timeline" }
        @if f.timeline.is_empty() {
            p class="meta" { "Nothing yet." }
        } @else {
            ol class="items timeline" {
                @for t in &f.timeline {
                    li {
                        strong { (t.valid_at.to_string()) } ": "
                        span class="status" { (t.status.as_str()) } " — "
                        (value_words(t.value.as_ref()))
                        @if t.values.len() > 1 {
                            div class="meta" {
                                "verified values: "
                                @for (i, v) in t.values.iter().enumerate() {
                                    @if i > 0 { "; " }
                                    (value_words(Some(v)))
                                }
                            }
                        }
                        div class="meta" {
                            "claims: "
                            @for (i, id) in t.claim_ids.iter().enumerate() {
                                @if i > 0 { ", " }
                                a href={ "/console/claims/" (id) } { "claim " (i + 1) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Claims" }
        @if f.claims.is_empty() {
            p class="meta" { "None." }
        } @else {
            ul class="items" {
                @for c in &f.claims {
                    li {
                        a href={ "/console/claims/" (c.id) } { (value_words(Some(&c.value))) }
                        " " span class="status" { "(" (c.status.as_str()) ")" }
                        div class="meta" {
                            "valid at " (c.valid_at.to_string())
                            "; asserted by " (c.asserted_by) " at " (c.asserted_at.to_rfc3339())
                            @if !c.confirmed_by.is_empty() {
                                "; confirmed by " (c.confirmed_by.join(", "))
                            }
                            "; " a href={ "/console/stories/" (c.story_id) } { "the story" }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /console/facts/{id}?as_of=…`.
pub async fn page(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
    query: Result<Query<FactQuery>, QueryRejection>,
) -> Result<Response, ConsoleError> {
    let Query(q) = query.map_err(|e| ConsoleError::BadForm(e.body_text()))?;
    let missing = || ConsoleError::NotFound("No fact has this id.".into());
    let id: Uuid = id.parse().map_err(|_| missing())?;
    let now = state
        .services
        .fact_document(id)
        .await?
        .ok_or_else(missing)?;
    let now = read_fact(&now)?;
    let (as_of, words) = match q.as_of.trim() {
        "" => (None, None),
        typed => match parse_time("As of", typed) {
            Ok(t) => (Some(t), None),
            Err(words) => (None, Some(words)),
        },
    };
    // As known then: `None` inside when nothing had been recorded yet.
    let then = match as_of {
        Some(t) => Some(match state.services.fact(id, Some(t), None).await? {
            Some(v) => Some(
                serde_json::from_value::<Fact>(v)
                    .map_err(|e| ConsoleError::Service(ServiceError::Corrupt(e.to_string())))?,
            ),
            None => None,
        }),
        None => None,
    };
    let shown_input = as_of
        .as_ref()
        .map(local_input)
        .unwrap_or_else(|| q.as_of.clone());
    let title = format!("{} — {}", now.subject, now.property);
    let content = html! {
        h1 { (title) }
        (layout::message(words.as_deref()))
        form class="stacked inline" method="get" action={ "/console/facts/" (id) } {
            label {
                "As of" span class="hint" { "a record time (UTC): the fact as it was known then" }
                input type="datetime-local" name="as_of" step="1" value=(shown_input);
            }
            button type="submit" { "Show" }
        }
        @match (&as_of, &then) {
            (Some(t), Some(Some(f))) => {
                p class="notice" {
                    "As known at " (t.to_rfc3339()) ". "
                    a href={ "/console/facts/" (id) } { "As known now" }
                }
                (fact_body(f))
            }
            (Some(t), _) => {
                p class="notice" {
                    "Nothing had been recorded about this fact by " (t.to_rfc3339()) ". "
                    a href={ "/console/facts/" (id) } { "As known now" }
                }
            }
            _ => (fact_body(&now)),
        }
    };
    let status = if words.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(layout::respond(
        status,
        layout::page(&title, Some(&session), Nav::Facts, content),
    ))
}

/// A stored value, for lists that hold JSON.
pub fn json_text(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_typed_or_as_a_browser_sends_them() {
        let t = |s: &str| parse_time("As of", s).map(|t| t.to_rfc3339());
        assert_eq!(
            t("2024-05-01T09:30").as_deref(),
            Ok("2024-05-01T09:30:00+00:00")
        );
        assert_eq!(
            t("2024-05-01T09:30:15").as_deref(),
            Ok("2024-05-01T09:30:15+00:00")
        );
        assert_eq!(
            t("2024-05-01T09:30:00+02:00").as_deref(),
            Ok("2024-05-01T07:30:00+00:00")
        );
        assert!(t("yesterday").unwrap_err().starts_with("As of: must be"));
        assert_eq!(encode("a b&c=é"), "a%20b%26c%3D%C3%A9");
    }
}
