//! HTTP only: routes, extractors, handlers and the one error mapping.
//! Nothing here writes SQL; handlers call `service` (writes and reads).

mod auth;
pub(crate) mod body;
mod claim_review;
mod claims;
mod csv;
mod docs;
mod erasures;
pub mod error;
mod fact_feed;
pub(crate) mod input;
mod metrics;
mod middleware;
mod negotiate;
pub mod openapi;
mod params;
mod proofs;
pub mod ratelimit;
mod reads;
mod server;
mod service;
mod stories;
mod stream;
mod write;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::routing::get;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use server::{PeerAddr, ServerLimits, raise_fd_limit, serve};
pub(crate) use stream::{Standing, follow, resume_after};
pub use stream::{StreamCaps, StreamSlots};

use crate::auth::TokenCache;
use crate::service::Services;

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub cors_origins: Vec<String>,
    /// Where ClaimReview's links point and whom it names as author.
    pub publication: crate::service::claim_review::Publication,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub tokens: Arc<TokenCache>,
    pub limits: Limits,
    pub rate: Arc<ratelimit::RateLimiter>,
    /// Open event streams, capped per token and in all.
    pub streams: Arc<stream::StreamSlots>,
}

/// The state handlers see: one shared allocation, so handing it to each
/// request (axum clones the state per request and per extractor) costs one
/// reference count rather than one per service.
#[derive(Clone)]
pub struct SharedState(Arc<AppState>);

impl std::ops::Deref for SharedState {
    type Target = AppState;
    fn deref(&self) -> &AppState {
        &self.0
    }
}

pub fn router(state: AppState) -> Router {
    // Installed before the first request so nothing recorded is lost.
    metrics::handle();
    let cors_layer = cors(&state.limits.cors_origins);
    let request_timeout = state.limits.request_timeout;
    let state = SharedState(Arc::new(state));
    let request_id = HeaderName::from_static("x-request-id");
    let (timed, _) = timed_routes().split_for_parts();
    // The editors' console: HTML, not part of the API's document.
    let timed = timed
        .layer(axum::middleware::from_fn(negotiate::enforce))
        .nest(
            "/console",
            crate::console::router(state.limits.max_body_bytes),
        )
        .layer(axum::middleware::from_fn_with_state(
            request_timeout,
            middleware::timeout,
        ))
        .route_layer(axum::middleware::from_fn(middleware::tag_route));
    // A live stream has no deadline.
    let (untimed, _) = untimed_routes().split_for_parts();
    let untimed = untimed
        .layer(axum::middleware::from_fn(negotiate::enforce))
        .route_layer(axum::middleware::from_fn(middleware::tag_route));

    let mut app = timed
        .merge(untimed)
        .fallback(service::not_found)
        .method_not_allowed_fallback(service::method_not_allowed)
        // Bodies are limited (413) by the JSON extractor, after authentication.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(middleware::log_request))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(
            request_id,
            middleware::MakeRequestId,
        ));
    if let Some(cors) = cors_layer {
        app = app.layer(cors);
    }
    // Outermost, so every response has them, CORS preflights included.
    app.layer(axum::middleware::from_fn(middleware::security_headers))
        .with_state(state)
}

/// The routes that answer within the request timeout. Each is registered
/// with its `#[utoipa::path]` description, so none can exist undescribed
/// (`/openapi.json` is collected from these and [`untimed_routes`]).
fn timed_routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::default()
        .routes(routes!(stories::create))
        .routes(routes!(stories::get))
        .routes(routes!(claims::create, reads::list_claims))
        .routes(routes!(claims::get))
        .routes(routes!(claims::confirm))
        .routes(routes!(claims::dispute))
        .routes(routes!(claims::retract))
        .routes(routes!(claims::amend))
        .routes(routes!(claims::evidence))
        .routes(routes!(erasures::erase))
        .routes(routes!(reads::list_facts))
        .routes(routes!(fact_feed::changes))
        .routes(routes!(reads::get_fact))
        .routes(routes!(reads::fact_history))
        .routes(routes!(claim_review::of_story))
        .routes(routes!(claim_review::feed))
        .routes(routes!(reads::audit))
        .routes(routes!(reads::events))
        .routes(routes!(reads::integrity))
        .routes(routes!(reads::request_full_check))
        .routes(routes!(proofs::latest))
        .routes(routes!(proofs::at_least))
        .routes(routes!(proofs::inclusion))
        .routes(routes!(proofs::consistency))
        .routes(routes!(service::healthz))
        .routes(routes!(service::readyz))
        .routes(routes!(metrics::render))
        .routes(routes!(docs::openapi_json))
        .routes(routes!(docs::page))
        // The browser's own script, which the page loads: not part of the API.
        .route("/docs/rapidoc-min.js", get(docs::script))
}

/// The live event stream, which has no deadline.
fn untimed_routes() -> OpenApiRouter<SharedState> {
    OpenApiRouter::default()
        .routes(routes!(stream::events))
        .routes(routes!(fact_feed::stream))
}

/// The paths of every route, as described on their handlers.
pub(crate) fn described_routes() -> utoipa::openapi::OpenApi {
    let mut doc = timed_routes().into_openapi();
    doc.merge(untimed_routes().into_openapi());
    doc
}

/// Cross-origin access only for the listed origins.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    let list: Vec<HeaderValue> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if list.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(list))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
                axum::http::header::IF_MATCH,
                HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([
                axum::http::header::ETAG,
                axum::http::header::LOCATION,
                axum::http::header::LINK,
                HeaderName::from_static("x-request-id"),
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// Status used when a request overruns its time.
pub(crate) const TIMEOUT_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;
