//! "Queue": pending claims this editor may confirm (not their own, not
//! already confirmed by them in this round), newest first. Read-only here.
//!
//! Live: the page's script listens to `/console/queue/stream` (Server-Sent
//! Events, one small `claim` event whenever a claim is asserted or changes,
//! sent once the list shows it) and then fetches the list again from
//! `/console/queue?fragment=1`, the same server-rendered list without the
//! page around it. Without the script, a reload shows the same.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::claims;
use super::error::ConsoleError;
use super::layout::{self, Nav};
use super::session::Session;
use crate::api::error::ApiError;
use crate::api::{SharedState, Standing};
use crate::projections::read::ClaimFilter;
use crate::service::ServiceError;
use crate::service::reads::CLAIMS;
use crate::store::RecordedEvent;

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
    /// `1`: only the list (what the page's script swaps in), not the page.
    fragment: Option<String>,
}

#[derive(Deserialize)]
pub struct StreamQuery {
    /// The position the page's list was read at (a reconnecting
    /// `EventSource`'s `Last-Event-ID` wins over it).
    after: Option<i64>,
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

/// `GET /console/queue`; with `fragment=1`, only the list.
pub async fn page(
    State(state): State<SharedState>,
    session: Session,
    Query(q): Query<QueueQuery>,
) -> Result<Response, ConsoleError> {
    let before: Option<Uuid> = q.before.as_deref().and_then(|s| s.parse().ok());
    if q.fragment.is_some() {
        let list = list(&state, &session, before).await?;
        return Ok(layout::respond(StatusCode::OK, list));
    }
    // Read before the list: every claim event after it is one the list may
    // not show yet, and the live stream starts there.
    let reached = state.services.reached(CLAIMS).await?;
    let list = list(&state, &session, before).await?;
    let may_write = session.actor.role.can_write();
    let content = html! {
        h1 { "Queue" }
        p { "Pending claims you may confirm, newest first (your own are not listed)." }
        @if !may_write {
            p class="notice" { "Your role (" (session.actor.role.as_str()) ") may read the queue but not confirm." }
        }
        @if before.is_none() {
            // The script follows the queue live on its first page.
            p id="queue-live" class="meta" role="status" hidden {}
            div id="queue-list"
                data-live={ "/console/queue/stream?after=" (reached) }
                data-fragment="/console/queue?fragment=1" {
                (list)
            }
        } @else {
            div id="queue-list" { (list) }
        }
    };
    Ok(layout::respond(
        StatusCode::OK,
        layout::page("Queue", Some(&session), Nav::Queue, content),
    ))
}

/// The queue's list from `before` on (the first page without it): the
/// claims, or words saying there are none, and a link to older ones.
async fn list(
    state: &SharedState,
    session: &Session,
    before: Option<Uuid>,
) -> Result<Markup, ConsoleError> {
    let mut cursor = before;
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
    Ok(html! {
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
    })
}

/// `GET /console/queue/stream`: Server-Sent Events for the Queue page's
/// script, one `claim` event (its `id` and `data` the event's position)
/// whenever a claim is asserted or changes, sent once the list shows it.
/// Authenticated by the session cookie, so an `EventSource` can open it;
/// the API's stream caps apply (the same slots, by token name), and it
/// ends when the session does (signed out, expired, token revoked).
pub async fn stream(
    State(state): State<SharedState>,
    session: Option<Session>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Response, ConsoleError> {
    // No session (any more): 204 tells an EventSource to stop reconnecting.
    let Some(session) = session else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let after = match crate::api::resume_after(&headers) {
        Ok(Some(p)) => p,
        _ => match q.after.filter(|p| *p >= 0) {
            Some(p) => p,
            None => state.services.reached(CLAIMS).await?,
        },
    };
    let slot = state
        .streams
        .take(&session.actor.name)
        .map_err(|e| match e {
            ApiError::TooManyStreams { retry_after, .. } => ConsoleError::TooMany { retry_after },
            other => ConsoleError::Service(ServiceError::Corrupt(other.to_string())),
        })?;
    let session = Arc::new(session);
    let st = state.clone();
    let standing = move || {
        let (session, state) = (session.clone(), st.clone());
        async move {
            match session.still_open(&state).await {
                Ok(true) => Standing::Allowed,
                Ok(false) => Standing::Ended,
                Err(_) => Standing::Unknown,
            }
        }
    };
    let services = state.services.clone();
    let show = move |e: RecordedEvent| {
        let services = services.clone();
        async move {
            if !e.stream.starts_with("claim-") {
                return None;
            }
            // The list is read from the claims' projection: say so once it
            // shows this event (or after the wait's limit: the page reads
            // what there is).
            if let Err(err) = services.wait_for(CLAIMS, e.position).await {
                tracing::debug!(error = %err, "queue stream: the projection is behind");
            }
            let position = e.position.to_string();
            Some(Event::default().event("claim").id(&position).data(position))
        }
    };
    Ok(crate::api::follow(state.services.store(), after, slot, standing, show).into_response())
}
