//! "Queue": pending claims this editor may confirm (not their own, not
//! already confirmed by them in this round), newest first. Read-only here.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::claims;
use super::error::ConsoleError;
use super::layout::{self, Nav};
use super::session::Session;
use crate::api::SharedState;
use crate::projections::read::ClaimFilter;

/// Claims shown on one page of the queue.
const PAGE: usize = 50;
/// Claims read per query while filling a page.
const BATCH: i64 = 100;
/// Most claims read for one page (the user's own are skipped, so a page may
/// need more than one batch; it never needs the whole backlog).
const MAX_SCAN: usize = 1_000;

#[derive(Deserialize)]
pub struct QueueQuery {
    /// The id the previous page ended at.
    before: Option<String>,
}

/// Whether `name` may confirm the claim (its view): not the asserter, not
/// one who confirmed it in this round.
fn may_confirm(c: &Value, name: &str) -> bool {
    c.get("asserted_by").and_then(Value::as_str) != Some(name)
        && !c
            .get("confirmed_by")
            .and_then(Value::as_array)
            .is_some_and(|by| by.iter().any(|b| b.as_str() == Some(name)))
}

/// `GET /console/queue`.
pub async fn page(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<QueueQuery>,
) -> Result<Response, ConsoleError> {
    let mut cursor: Option<Uuid> = q.before.as_deref().and_then(|s| s.parse().ok());
    let filter = ClaimFilter {
        status: Some("pending".into()),
        story_id: None,
        asserted_by: None,
    };
    let me = session.actor.name.as_str();
    let mut shown = Vec::new();
    let mut scanned = 0;
    let more = loop {
        let page = state
            .services
            .list_claims_newest_first(&filter, cursor, BATCH)
            .await?;
        for c in page.items {
            scanned += 1;
            cursor = c
                .get("id")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok());
            if may_confirm(&c, me) {
                shown.push(c);
                if shown.len() == PAGE {
                    break;
                }
            }
        }
        let next = page.next.is_some();
        if shown.len() == PAGE || !next || scanned >= MAX_SCAN {
            // A full page may end exactly at the last claim: then "older"
            // finds nothing, which it says.
            break next || shown.len() == PAGE;
        }
    };
    let mut titles = std::collections::HashMap::new();
    for c in &shown {
        if let Some(id) = c
            .get("story_id")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Uuid>().ok())
            && !titles.contains_key(&id)
            && let Some(story) = state.services.load_story(id).await?
        {
            titles.insert(id, story.registered.title);
        }
    }
    let title_of = |c: &Value| {
        c.get("story_id")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Uuid>().ok())
            .and_then(|id| titles.get(&id).map(String::as_str))
    };
    let may_write = session.actor.role.can_write();
    let content = html! {
        h1 { "Queue" }
        p { "Pending claims you may confirm, newest first (your own are not listed)." }
        @if !may_write {
            p class="notice" { "Your role (" (session.actor.role.as_str()) ") may read the queue but not confirm." }
        }
        @if shown.is_empty() {
            p class="notice" { "Nothing is waiting for you." }
        } @else {
            ul class="items" {
                @for c in &shown { (claims::summary(c, true, title_of(c))) }
            }
        }
        @if more {
            @if let Some(c) = cursor {
                p { a href={ "/console/queue?before=" (c) } { "Older claims" } }
            }
        }
    };
    Ok(layout::respond(
        StatusCode::OK,
        layout::page("Queue", Some(&session), Nav::Queue, content),
    ))
}
