//! Request-wide concerns: one log line per request, the time limit, and the
//! headers every response carries.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
use tracing::Instrument;

use super::error::ApiError;

/// One line per request: method, path, status, latency, actor and request id
/// (the actor is filled in by the authentication extractor). Never the body
/// or the Authorization header.
pub async fn log_request(req: Request, next: Next) -> Response {
    let method = method_label(req.method());
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
        let route = res
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        http_metrics(method, route).record(status, elapsed);
        res
    }
    .instrument(span)
    .await
}

/// Carries the route template a request matched into its response, where
/// [`log_request`] (a layer outside the routing) can read it.
pub async fn tag_route(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut res = next.run(req).await;
    if let Some(route) = route {
        res.extensions_mut().insert(route);
    }
    res
}

/// A method as a label: the standard ones by name, anything else as
/// `other` (a client must not be able to mint label values).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Handles on the metrics of one (method, route template), registered once
/// (a look-up in the registry per request costs a hash of the name and
/// labels, and label strings allocated each time).
struct HttpMetrics {
    method: &'static str,
    route: &'static str,
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
            slot.get_or_init(|| {
                metrics::counter!(
                    "factlog_http_requests_total",
                    "method" => self.method,
                    "route" => self.route,
                    "status" => status.to_string()
                )
            })
            .increment(1);
        }
        self.duration.record(seconds);
    }
}

type RouteMetrics = HashMap<(&'static str, &'static str), &'static HttpMetrics>;

/// The metrics of a (method, route): the routes are the router's templates,
/// a fixed set, so each is made once and kept for the process's life.
fn http_metrics(method: &'static str, route: &str) -> &'static HttpMetrics {
    static ALL: OnceLock<RwLock<RouteMetrics>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        // The recorder first, or these handles would record nowhere.
        super::metrics::handle();
        RwLock::new(HashMap::new())
    });
    if let Some(m) = all
        .read()
        .ok()
        .and_then(|map| map.get(&(method, route)).copied())
    {
        return m;
    }
    let route: &'static str = Box::leak(route.to_owned().into_boxed_str());
    let made: &'static HttpMetrics = Box::leak(Box::new(HttpMetrics {
        method,
        route,
        by_status: [const { OnceLock::new() }; 500],
        duration: metrics::histogram!(
            "factlog_http_request_duration_seconds",
            "method" => method,
            "route" => route
        ),
    }));
    match all.write() {
        Ok(mut map) => map.entry((method, route)).or_insert(made),
        Err(_) => made,
    }
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

/// `X-Content-Type-Options: nosniff` on every response, so a browser never
/// runs a body as anything but its declared type; `Cache-Control: no-store`
/// on every response under `/v1` (all of it is behind a token, and none of it
/// may sit in a shared cache) and on any response to a request that carried
/// credentials.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let private = path == "/v1"
        || path.starts_with("/v1/")
        || req.headers().contains_key(header::AUTHORIZATION);
    let mut res = next.run(req).await;
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if private {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
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
