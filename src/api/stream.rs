//! `GET /v1/events/stream`: the log as Server-Sent Events, live, resumable
//! with `Last-Event-ID`. Exempt from the request timeout, so bounded
//! otherwise: open streams are capped per token and server-wide (429), and
//! every stream re-checks its token as often as the token cache reloads, so
//! a revoked token's streams end within the window that refuses its new
//! requests.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, KeepAliveStream, Sse};
use futures::Stream;

use super::SharedState;
use super::auth::{AUDIT_REFUSAL, Streamer, role_refused};
use super::error::{ApiError, Problem};
use super::openapi::{QueryProblems, TokenProblems};
use super::params::Params;
use crate::domain::error::FieldError;
use crate::service::reads::event_json;
use crate::store::{EventStore, RecordedEvent, Subscription};

/// How many event streams may be open at once.
#[derive(Debug, Clone, Copy)]
pub struct StreamCaps {
    pub per_token: usize,
    pub total: usize,
}

impl Default for StreamCaps {
    fn default() -> Self {
        StreamCaps {
            per_token: 8,
            total: 256,
        }
    }
}

/// The event streams open in this process, by token name.
pub struct StreamSlots {
    caps: StreamCaps,
    open: Mutex<(usize, HashMap<String, usize>)>,
}

/// One open stream's place; given back when the stream is dropped.
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    who: String,
}

impl StreamSlots {
    pub fn new(caps: StreamCaps) -> Arc<Self> {
        Arc::new(StreamSlots {
            caps,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// A place for one more stream of `who` (a token's name), or 429.
    pub(crate) fn take(self: &Arc<Self>, who: &str) -> Result<StreamSlot, ApiError> {
        let full = |detail: String| ApiError::TooManyStreams {
            detail,
            retry_after: 5,
        };
        let mut open = self
            .open
            .lock()
            .map_err(|_| ApiError::Internal("stream slots poisoned".into()))?;
        if open.0 >= self.caps.total {
            return Err(full(format!(
                "the server has {} event streams open, its limit; retry later",
                self.caps.total
            )));
        }
        let mine = open.1.entry(who.to_owned()).or_default();
        if *mine >= self.caps.per_token {
            return Err(full(format!(
                "this token has {} event streams open, its limit; close one first",
                self.caps.per_token
            )));
        }
        *mine += 1;
        open.0 += 1;
        metrics::gauge!("factlog_event_streams_open").set(open.0 as f64);
        Ok(StreamSlot {
            slots: self.clone(),
            who: who.to_owned(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.slots.open.lock() {
            open.0 = open.0.saturating_sub(1);
            if let Some(n) = open.1.get_mut(&self.who) {
                *n -= 1;
                if *n == 0 {
                    open.1.remove(&self.who);
                }
            }
            metrics::gauge!("factlog_event_streams_open").set(open.0 as f64);
        }
    }
}

/// Whether a stream's reader may still read it, as [`follow`] asks.
pub(crate) enum Standing {
    Allowed,
    /// Its token was revoked, its session ended, …: the stream ends.
    Ended,
    /// Cannot tell now (the database is away: the subscription will say so).
    Unknown,
}

/// What a stream carries from one event to the next.
struct Live<C, S> {
    sub: Subscription,
    standing: C,
    show: S,
    check: tokio::time::Interval,
    _slot: StreamSlot,
}

impl<C, CF, S, SF> Live<C, S>
where
    C: FnMut() -> CF,
    CF: Future<Output = Standing>,
    S: FnMut(RecordedEvent) -> SF,
    SF: Future<Output = Option<Event>>,
{
    /// The next event to send, or `None` when the stream must end: its
    /// reader may no longer read it, or the log cannot be read (the client
    /// resumes with `Last-Event-ID`).
    async fn next(&mut self) -> Option<Event> {
        loop {
            tokio::select! {
                e = self.sub.next() => match e {
                    Ok(e) => {
                        if let Some(event) = (self.show)(e).await {
                            return Some(event);
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "event stream ended");
                        return None;
                    }
                },
                _ = self.check.tick() => {
                    if let Standing::Ended = (self.standing)().await {
                        tracing::info!("event stream ended: its reader may no longer read it");
                        return None;
                    }
                }
            }
        }
    }
}

/// The log after `after`, live, as Server-Sent Events: each event becomes
/// what `show` makes of it (or nothing), and the stream ends once
/// `standing` (asked every half reload of the token cache, so within the
/// window that refuses the reader's new requests) says it is over. `slot`
/// is held for as long as the stream is open.
pub(crate) fn follow<C, CF, S, SF>(
    store: &EventStore,
    after: i64,
    slot: StreamSlot,
    standing: C,
    show: S,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + Send + use<C, CF, S, SF>>
where
    C: FnMut() -> CF + Send + 'static,
    CF: Future<Output = Standing> + Send,
    S: FnMut(RecordedEvent) -> SF + Send + 'static,
    SF: Future<Output = Option<Event>> + Send,
{
    let mut check = tokio::time::interval(crate::auth::REFRESH / 2);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    check.reset();
    let live = Live {
        sub: store.subscribe(after),
        standing,
        show,
        check,
        _slot: slot,
    };
    let stream = futures::stream::unfold(live, |mut live| async move {
        let event = live.next().await?;
        Some((Ok(event), live))
    });
    with_keep_alive(stream)
}

/// An SSE response that sends a comment every 15 s while nothing happens,
/// so proxies keep an idle stream open.
pub(crate) fn with_keep_alive<S>(stream: S) -> Sse<KeepAliveStream<S>>
where
    S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
{
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Where an API stream starts: after the `Last-Event-ID` a reconnecting
/// `EventSource` sends, else after `?after=` (default 0).
pub(crate) fn start_after(headers: &HeaderMap, p: &Params) -> Result<i64, ApiError> {
    Ok(match resume_after(headers)? {
        Some(p) => p,
        None => p.position("after")?.unwrap_or(0),
    })
}

/// The position a reconnecting `EventSource` resumes after: the
/// `Last-Event-ID` it sends, when it sends one.
pub(crate) fn resume_after(headers: &HeaderMap) -> Result<Option<i64>, FieldError> {
    headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| FieldError::new("Last-Event-ID", "must be an event position"))
        })
        .transpose()
}

/// One Server-Sent Event of the stream, as an event-stream parser reads it
/// (keep-alive comments aside): `id` is the event's position (what
/// `Last-Event-ID` resumes after), `data` the event as `/v1/events` shows
/// it, as JSON text.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "describes the wire format; built by axum's Sse")]
pub struct StreamEvent {
    #[schema(pattern = "^[0-9]+$", example = "42")]
    id: String,
    /// JSON text of an `Event`.
    data: String,
}

/// Follow the log live
///
/// Auditor or admin, by bearer token or the console's session cookie
/// (which is how a browser's `EventSource` can open it). Server-Sent Events: each event's `id:` is its
/// position and its `data:` the event as in `GET /v1/events`. Resumable
/// with `Last-Event-ID`; no request timeout applies.
#[utoipa::path(
    get, path = "/v1/events/stream", tag = "audit", operation_id = "event_stream",
    security(("bearer" = [])),
    params(
        ("after" = Option<i64>, Query, minimum = 0, description = "Start after this position (default 0)"),
        ("Last-Event-ID" = Option<String>, Header, pattern = r"^ *[0-9]{1,18} *$", description = "Resume after this position (sent by browsers on reconnect)"),
    ),
    responses(
        (status = 200, description = "A stream of events, live: each Server-Sent Event is one event of the log", body = StreamEvent, content_type = "text/event-stream"),
        QueryProblems,
        TokenProblems,
        (status = 403, description = "Only auditors and admins may read the log", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "This token, or the server, has as many event streams open as it may (FACTLOG_STREAMS_PER_TOKEN, FACTLOG_MAX_STREAMS); see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn events(
    State(state): State<SharedState>,
    reader: Streamer,
    headers: HeaderMap,
    p: Params,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    if !reader.actor.role.can_audit() {
        return Err(role_refused(reader.actor.role, AUDIT_REFUSAL));
    }
    let after = start_after(&headers, &p)?;
    let slot = state.streams.take(&reader.actor.name)?;
    let credential = Arc::new(reader.credential);
    let standing = {
        let state = state.clone();
        move || {
            let (state, credential) = (state.clone(), credential.clone());
            async move { credential.standing(&state).await }
        }
    };
    let show = |e: RecordedEvent| {
        std::future::ready(Some(
            Event::default()
                .id(e.position.to_string())
                .data(event_json(&e).to_string()),
        ))
    };
    Ok(follow(state.services.store(), after, slot, standing, show))
}
