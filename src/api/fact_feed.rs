//! The readers' change feed: `GET /v1/facts/changes` (pages) and
//! `GET /v1/facts/stream` (the same, live, as Server-Sent Events), for any
//! role. See `service::fact_changes` for what a change is.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use futures::Stream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::SharedState;
use super::auth::{Caller, Credential, Streamer};
use super::error::{ApiError, Problem};
use super::openapi::{QueryProblems, TokenProblems};
use super::params::{Limit, Params};
use super::stream::{Standing, StreamSlot, start_after, with_keep_alive};
use crate::service::Services;
use crate::service::fact_changes::{FactChange, FactChangePage};

/// Claim versions a stream looks at per query.
const STREAM_PAGE: i64 = 200;

/// Changes to facts
///
/// Every change to a fact's current state (`status`, `value`,
/// `valid_at`), in log order, after `after`. Poll with `next_after`; the
/// feed reads only what the facts projection has applied, so nothing it
/// has passed appears later.
#[utoipa::path(
    get, path = "/v1/facts/changes", tag = "facts", operation_id = "fact_changes",
    security(("bearer" = [])),
    params(
        ("after" = Option<i64>, Query, minimum = 0, description = "Start after this position (default 0)"),
        Limit,
    ),
    responses(
        (status = 200, description = "A page of changes", body = FactChangePage, content_type = "application/json"),
        QueryProblems,
        TokenProblems,
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn changes(
    State(state): State<SharedState>,
    _: Caller,
    p: Params,
) -> Result<Json<FactChangePage>, ApiError> {
    let after = p.position("after")?.unwrap_or(0);
    let limit = p.limit()?;
    Ok(Json(state.services.fact_changes(after, limit).await?))
}

/// Follow changes to facts live
///
/// Any role, by bearer token or the console's session cookie (which is
/// how a browser's `EventSource` can open it). Server-Sent Events: each event's `id:` is the position of the
/// change and its `data:` the change as in `GET /v1/facts/changes`.
/// Resumable with `Last-Event-ID`; no request timeout applies; a revoked
/// token's (or ended session's) stream ends within the token cache's
/// reload.
#[utoipa::path(
    get, path = "/v1/facts/stream", tag = "facts", operation_id = "fact_stream",
    security(("bearer" = [])),
    params(
        ("after" = Option<i64>, Query, minimum = 0, description = "Start after this position (default 0)"),
        ("Last-Event-ID" = Option<String>, Header, pattern = r"^ *[0-9]{1,18} *$", description = "Resume after this position (sent by browsers on reconnect)"),
    ),
    responses(
        (status = 200, description = "A stream of changes, live: each Server-Sent Event is one `FactChange`", body = FactChange, content_type = "text/event-stream"),
        QueryProblems,
        TokenProblems,
        (status = 429, description = "This token, or the server, has as many event streams open as it may; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn stream(
    State(state): State<SharedState>,
    reader: Streamer,
    headers: HeaderMap,
    p: Params,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let after = start_after(&headers, &p)?;
    let slot = state.streams.take(&reader.actor.name)?;
    let feed = Feed {
        services: state.services.clone(),
        checkpoints: state.services.store().checkpoint_watch(),
        state: state.clone(),
        credential: reader.credential,
        checked: Instant::now(),
        after,
        pending: VecDeque::new(),
        _slot: slot,
    };
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        let change = feed.next().await?;
        let event = Event::default()
            .id(change.position.to_string())
            .data(serde_json::to_string(&change).unwrap_or_default());
        Some((Ok(event), feed))
    });
    Ok(with_keep_alive(stream))
}

/// One open change stream.
struct Feed {
    services: Services,
    checkpoints: watch::Receiver<u64>,
    state: SharedState,
    credential: Credential,
    checked: Instant,
    after: i64,
    pending: VecDeque<FactChange>,
    _slot: StreamSlot,
}

impl Feed {
    /// The next change, or `None` when the stream must end: its token was
    /// revoked, or the feed cannot be read (the client resumes with
    /// `Last-Event-ID`).
    async fn next(&mut self) -> Option<FactChange> {
        loop {
            if self.checked.elapsed() >= crate::auth::REFRESH / 2 {
                self.checked = Instant::now();
                if let Standing::Ended = self.credential.standing(&self.state).await {
                    tracing::info!("change stream ended: its reader may no longer read it");
                    return None;
                }
            }
            if let Some(change) = self.pending.pop_front() {
                return Some(change);
            }
            // Marked seen before reading, so a checkpoint moving meanwhile
            // wakes the wait below.
            self.checkpoints.borrow_and_update();
            match self.services.fact_changes(self.after, STREAM_PAGE).await {
                Ok(page) => {
                    let moved = page.next_after != self.after;
                    self.after = page.next_after;
                    self.pending.extend(page.items);
                    if moved {
                        continue;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "change stream ended");
                    return None;
                }
            }
            // Caught up: wait for a projection to move (in any process), or
            // for the next look at the token.
            tokio::select! {
                r = self.checkpoints.changed() => if r.is_err() { return None },
                _ = tokio::time::sleep(crate::auth::REFRESH / 2) => {}
            }
        }
    }
}
