//! A claim's page (its fields and status; actions come later), and how a
//! claim is shown in lists.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;
use uuid::Uuid;

use super::error::ConsoleError;
use super::layout::{self, Nav};
use super::session::Session;
use crate::api::SharedState;
use crate::service::view;

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// A claim's value in words: `5200 soldier (approximate)`, `passed (170 for,
/// 0 against)`, …
pub fn value_text(v: &Value) -> String {
    let kind = text(v, "kind");
    match kind {
        "quantity" => {
            let mut s = format!("{} {}", text(v, "amount"), text(v, "unit"));
            let bounds = (
                v.get("lower").and_then(Value::as_str),
                v.get("upper").and_then(Value::as_str),
            );
            match bounds {
                (Some(l), Some(u)) => s.push_str(&format!(" (between {l} and {u})")),
                (Some(l), None) => s.push_str(&format!(" (at least {l})")),
                (None, Some(u)) => s.push_str(&format!(" (at most {u})")),
                (None, None) => {}
            }
            if v.get("approximate").and_then(Value::as_bool) == Some(true) {
                s.push_str(" (approximate)");
            }
            s
        }
        "date" => text(v, "date").to_owned(),
        "outcome" => {
            let mut s = text(v, "outcome").to_owned();
            let votes = (
                v.get("for").and_then(Value::as_u64),
                v.get("against").and_then(Value::as_u64),
            );
            match votes {
                (Some(f), Some(a)) => s.push_str(&format!(" ({f} for, {a} against)")),
                (Some(f), None) => s.push_str(&format!(" ({f} for)")),
                (None, Some(a)) => s.push_str(&format!(" ({a} against)")),
                (None, None) => {}
            }
            s
        }
        "entity" => match v.get("id").and_then(Value::as_str) {
            Some(id) => format!("{} ({id})", text(v, "label")),
            None => text(v, "label").to_owned(),
        },
        "boolean" => match v.get("value").and_then(Value::as_bool) {
            Some(true) => "yes".into(),
            Some(false) => "no".into(),
            None => String::new(),
        },
        "text" => text(v, "text").to_owned(),
        _ => String::new(),
    }
}

/// One claim in a list (the queue, a story's claims): subject, property,
/// value, status, the quote, linking to its page.
/// `story` is the title of its story, to name it (the queue).
pub fn summary(c: &Value, with_quote: bool, story: Option<&str>) -> Markup {
    let id = text(c, "id");
    html! {
        li {
            a href={ "/console/claims/" (id) } {
                (text(c, "subject")) " — " (text(c, "property"))
            }
            ": " (value_text(&c["value"]))
            " " span class="status" { "(" (text(c, "status")) ")" }
            @if with_quote {
                blockquote { (text(c, "quote")) }
            }
            div class="meta" {
                @if let Some(title) = story {
                    "in " a href={ "/console/stories/" (text(c, "story_id")) } { (title) } "; "
                }
                "asserted by " (text(c, "asserted_by")) " at " (text(c, "asserted_at"))
            }
        }
    }
}

fn optional(v: &Value, key: &str) -> Markup {
    html! {
        @match v.get(key).and_then(Value::as_str) {
            Some(s) => (s),
            None => span class="meta" { "none" },
        }
    }
}

/// `GET /console/claims/{id}`.
pub async fn page(
    State(state): State<SharedState>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let missing = || ConsoleError::NotFound("No claim has this id.".into());
    let id: Uuid = id.parse().map_err(|_| missing())?;
    let claim = state.services.load_claim(id).await?.ok_or_else(missing)?;
    let c = view::claim(&claim);
    let list = |key: &str| {
        c.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let confirmed = list("confirmed_by");
    let disputes = list("disputes");
    let evidence = list("evidence");
    let story_id = text(&c, "story_id");
    let title = format!("{} — {}", text(&c, "subject"), text(&c, "property"));
    let content = html! {
        h1 { (title) }
        dl class="fields" {
            dt { "Status" } dd class="status" { (text(&c, "status")) }
            dt { "Subject" } dd { (text(&c, "subject")) }
            dt { "Property" } dd { (text(&c, "property")) }
            dt { "Value kind" } dd { (text(&c["value"], "kind")) }
            dt { "Value" } dd { (value_text(&c["value"])) }
            dt { "Valid at" } dd { (optional(&c, "valid_at")) }
            dt { "Attributed to" } dd { (optional(&c, "attributed_to")) }
            dt { "Quote" } dd { blockquote { (text(&c, "quote")) } }
            dt { "Story" } dd { a href={ "/console/stories/" (story_id) } { "the story" } }
            dt { "Asserted by" } dd { (text(&c, "asserted_by")) " at " (text(&c, "asserted_at")) }
            dt { "Confirmed by" } dd {
                @if confirmed.is_empty() { span class="meta" { "no one yet" } }
                @else {
                    @for (i, by) in confirmed.iter().enumerate() {
                        @if i > 0 { ", " }
                        (by.as_str().unwrap_or_default())
                    }
                }
            }
            @if let Some(corrects) = c.get("corrects").and_then(Value::as_str) {
                dt { "Corrects" } dd { a href={ "/console/claims/" (corrects) } { "an earlier claim" } }
            }
            @if let Some(by) = c.get("superseded_by").and_then(Value::as_str) {
                dt { "Superseded by" } dd { a href={ "/console/claims/" (by) } { "a later claim" } }
            }
            @if let Some(r) = c.get("retraction").filter(|r| !r.is_null()) {
                dt { "Retracted" } dd { (text(r, "by")) " at " (text(r, "at")) ": " (text(r, "reason")) }
            }
            dt { "Version" } dd { (c["version"].as_u64().unwrap_or_default()) }
        }
        h2 { "Disputes" }
        @if disputes.is_empty() { p class="meta" { "None." } }
        @else {
            ul class="items" {
                @for d in &disputes {
                    li { (text(d, "by")) " at " (text(d, "at")) ": " (text(d, "reason")) }
                }
            }
        }
        h2 { "Evidence" }
        @if evidence.is_empty() { p class="meta" { "None." } }
        @else {
            ul class="items" {
                @for e in &evidence {
                    li {
                        (text(e, "url"))
                        @if let Some(note) = e.get("note").and_then(Value::as_str) { " — " (note) }
                        div class="meta" { (text(e, "by")) " at " (text(e, "at")) }
                    }
                }
            }
        }
    };
    Ok(layout::respond(
        StatusCode::OK,
        layout::page(&title, Some(&session), Nav::Stories, content),
    ))
}
