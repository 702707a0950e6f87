//! "Audit" (auditors and admins): the log's events by actor and time
//! window, paged (the service's audit read, as `/v1/audit`), and the latest
//! signed checkpoint (as `/v1/checkpoint`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::error::ConsoleError;
use super::facts::{check_text, encode, json_text, local_input, parse_time};
use super::layout::{self, Nav};
use super::session::Session;
use crate::api::SharedState;
use crate::service::{ServiceError, checkpoints};
use crate::store::AuditFilter;

/// Events on one page.
const PAGE: i64 = 50;

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    /// The position the previous page ended at.
    #[serde(default)]
    after: String,
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// A stream's name, linking to its page when the console has one.
fn stream(name: &str) -> Markup {
    let page = if let Some(id) = name.strip_prefix("claim-") {
        Some(format!("/console/claims/{id}"))
    } else {
        name.strip_prefix("story-")
            .map(|id| format!("/console/stories/{id}"))
    };
    html! {
        @match page {
            Some(href) => a href=(href) { (name) },
            None => (name),
        }
    }
}

fn event(e: &Value) -> Markup {
    html! {
        li {
            strong { (text(e, "type")) } " by " (text(e, "actor")) " at " (text(e, "recorded_at"))
            div class="meta" {
                "position " (e.get("position").and_then(Value::as_i64).unwrap_or_default())
                " in " (stream(text(e, "stream")))
            }
            pre class="data" { (json_text(&e["data"])) }
        }
    }
}

/// `GET /console/audit?actor=…&since=…&until=…`.
pub async fn page(
    State(state): State<SharedState>,
    session: Session,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ConsoleError> {
    if !session.actor.role.can_audit() {
        return Err(ConsoleError::Forbidden(format!(
            "The {} role may not audit; auditors and admins may.",
            session.actor.role.as_str()
        )));
    }
    let Query(q) = query.map_err(|e| ConsoleError::BadForm(e.body_text()))?;
    let time = |label: &str, typed: &str| match typed.trim() {
        "" => Ok(None),
        t => parse_time(label, t).map(Some),
    };
    let checked = (|| {
        check_text("Actor", &q.actor)?;
        let since = time("Since", &q.since)?;
        let until = time("Until", &q.until)?;
        let after = match q.after.trim() {
            "" => None,
            a => Some(
                a.parse::<i64>()
                    .ok()
                    .filter(|p| *p >= 0)
                    .ok_or("This page of events does not exist; show the events again.")?,
            ),
        };
        Ok::<_, String>((since, until, after))
    })();
    let (events, words) = match checked {
        Ok((since, until, after)) => {
            let filter = AuditFilter {
                actor: Some(q.actor.trim().to_owned()).filter(|a| !a.is_empty()),
                since,
                until,
            };
            let page = state.services.audit(&filter, after, PAGE).await?;
            let input = |t: Option<chrono::DateTime<chrono::Utc>>, typed: &str| {
                t.as_ref()
                    .map(local_input)
                    .unwrap_or_else(|| typed.to_owned())
            };
            (
                Some((page, input(since, &q.since), input(until, &q.until))),
                None,
            )
        }
        Err(words) => (None, Some(words)),
    };
    let checkpoint =
        match checkpoints::latest(state.services.store().pool(), state.services.proofs()).await {
            Ok(c) => Some(c),
            Err(ServiceError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
    let (since_value, until_value) = match &events {
        Some((_, s, u)) => (s.clone(), u.clone()),
        None => (q.since.clone(), q.until.clone()),
    };
    let content = html! {
        h1 { "Audit" }
        (layout::message(words.as_deref()))
        form class="stacked" method="get" action="/console/audit" {
            label {
                "Actor" span class="hint" { "a token's name; every actor when empty" }
                input type="text" name="actor" value=(q.actor);
            }
            label {
                "Since" span class="hint" { "UTC; recorded at or after" }
                input type="datetime-local" name="since" step="1" value=(since_value);
            }
            label {
                "Until" span class="hint" { "UTC; recorded before" }
                input type="datetime-local" name="until" step="1" value=(until_value);
            }
            button type="submit" { "Show events" }
        }
        @if let Some((page, since, until)) = &events {
            h2 { "Events" }
            @if page.items.is_empty() {
                p class="notice" { "No events match." }
            } @else {
                ul class="items" {
                    @for e in &page.items { (event(e)) }
                }
            }
            @if let Some(next) = &page.next {
                p {
                    a href={ "/console/audit?actor=" (encode(&q.actor)) "&since=" (encode(since))
                             "&until=" (encode(until)) "&after=" (next) } { "Later events" }
                }
            }
        }
        h2 { "Latest checkpoint" }
        @match &checkpoint {
            Some(c) => {
                dl class="fields" {
                    dt { "Tree size" } dd { (c.size) " events" }
                    dt { "Signed at" } dd { (c.signed_at.to_rfc3339()) }
                }
                pre class="note" { (c.note) }
            }
            None => p class="notice" { "No checkpoint has been signed yet." },
        }
    };
    let status = if words.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(layout::respond(
        status,
        layout::page("Audit", Some(&session), Nav::Audit, content),
    ))
}
