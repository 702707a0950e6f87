//! `GET /v1/events/stream`: the log as Server-Sent Events, live, resumable
//! with `Last-Event-ID`. Exempt from the request timeout.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;

use super::SharedState;
use super::auth::Auditor;
use super::error::ApiError;
use super::params::Params;
use crate::domain::error::FieldError;
use crate::service::reads::event_json;

pub async fn events(
    State(state): State<SharedState>,
    Auditor(_): Auditor,
    headers: HeaderMap,
    p: Params,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // A reconnecting EventSource sends the last id it saw; it wins over `after`.
    let resume = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| FieldError::new("Last-Event-ID", "must be an event position"))
        })
        .transpose()?;
    let after = match resume {
        Some(p) => p,
        None => p.position("after")?.unwrap_or(0),
    };
    let sub = state.services.store().subscribe(after);
    let stream = futures::stream::unfold(sub, |mut sub| async move {
        match sub.next().await {
            Ok(e) => {
                let event = Event::default()
                    .id(e.position.to_string())
                    .data(event_json(&e).to_string());
                Some((Ok(event), sub))
            }
            Err(err) => {
                // The client reconnects with Last-Event-ID and resumes exactly.
                tracing::warn!(error = %err, "event stream ended");
                None
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
