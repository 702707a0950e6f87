//! Request-wide concerns: one log line per request, and the time limit.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
use tracing::Instrument;

use super::error::ApiError;

/// One line per request: method, path, status, latency, actor and request id
/// (the actor is filled in by the authentication extractor). Never the body
/// or the Authorization header.
pub async fn log_request(req: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
        actor = tracing::field::Empty,
    );
    let started = Instant::now();
    async move {
        let res = next.run(req).await;
        let elapsed = started.elapsed().as_secs_f64();
        let status = res.status().as_u16();
        tracing::info!(status, latency_ms = elapsed * 1000.0, "request");
        http_metrics().record(status, elapsed);
        res
    }
    .instrument(span)
    .await
}

/// Handles on the per-request metrics, registered once (a look-up in the
/// registry per request costs a hash of the name and labels, and a label
/// string allocated each time).
struct HttpMetrics {
    /// Indexed by status code (100-599).
    by_status: [OnceLock<Counter>; 500],
    duration: Histogram,
}

impl HttpMetrics {
    fn record(&self, status: u16, seconds: f64) {
        if let Some(slot) = usize::from(status)
            .checked_sub(100)
            .and_then(|i| self.by_status.get(i))
        {
            slot.get_or_init(
                || metrics::counter!("factlog_http_requests_total", "status" => status.to_string()),
            )
            .increment(1);
        }
        self.duration.record(seconds);
    }
}

fn http_metrics() -> &'static HttpMetrics {
    static METRICS: OnceLock<HttpMetrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        // The recorder first, or these handles would record nowhere.
        super::metrics::handle();
        HttpMetrics {
            by_status: [const { OnceLock::new() }; 500],
            duration: metrics::histogram!("factlog_http_request_duration_seconds"),
        }
    })
}

/// Request ids for requests that come without one: UUIDs (version 4, as
/// before) from a keyed permutation of a counter, so minting one is a few
/// arithmetic operations instead of a `getrandom` system call per request.
/// The key is random per process; ids stay unique within a process and
/// collide across processes no more often than random ones would.
#[derive(Clone, Copy, Default)]
pub struct MakeRequestId;

impl tower_http::request_id::MakeRequestId for MakeRequestId {
    fn make_request_id<B>(
        &mut self,
        _: &axum::http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        let id = next_request_id().hyphenated().to_string();
        axum::http::HeaderValue::from_str(&id)
            .ok()
            .map(tower_http::request_id::RequestId::new)
    }
}

fn next_request_id() -> uuid::Uuid {
    static KEY: OnceLock<(u64, u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (k0, k1) = *KEY.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let hi = splitmix64(n ^ k0);
    let lo = splitmix64(n.wrapping_add(k1) ^ hi);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// A bijection on 64-bit integers that scrambles every bit (SplitMix64's
/// finalizer).
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_version_4_uuids_and_distinct() {
        let ids: std::collections::HashSet<uuid::Uuid> =
            (0..10_000).map(|_| next_request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            assert_eq!(id.get_version_num(), 4);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        }
    }
}
