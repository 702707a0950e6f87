//! HTTP only: routes, extractors, handlers and the one error mapping.
//! Nothing here writes SQL; handlers call into `store` (and later the
//! domain and projections).

pub mod error;
mod service;

use axum::Router;
use axum::routing::get;

use crate::store::EventStore;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: EventStore,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(service::healthz))
        .route("/readyz", get(service::readyz))
        .with_state(state)
}
