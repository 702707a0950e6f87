//! Request-wide concerns: one log line per request, and the time limit.

use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::error::ApiError;

/// One line per request: method, path, status, latency, actor and request id
/// (the actor is filled in by the authentication extractor). Never the body
/// or the Authorization header.
pub async fn log_request(req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %request_id,
        actor = tracing::field::Empty,
    );
    let started = Instant::now();
    async move {
        let res = next.run(req).await;
        let elapsed = started.elapsed().as_secs_f64();
        let status = res.status().as_u16();
        tracing::info!(status, latency_ms = elapsed * 1000.0, "request");
        metrics::counter!("factlog_http_requests_total", "status" => status.to_string())
            .increment(1);
        metrics::histogram!("factlog_http_request_duration_seconds").record(elapsed);
        res
    }
    .instrument(span)
    .await
}

pub async fn timeout(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            let mut res = ApiError::Unavailable(format!(
                "the request took longer than {} s; retry",
                limit.as_secs()
            ))
            .into_response();
            *res.status_mut() = super::TIMEOUT_STATUS;
            res
        }
    }
}
