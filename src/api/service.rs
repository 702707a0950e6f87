//! Service endpoints that need no token.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use axum::response::{IntoResponse, Response};

use super::SharedState;
use super::error::{ApiError, Problem};
use crate::db;
use crate::service::checkpoints::SigningState;

/// Liveness
#[utoipa::path(
    get, path = "/healthz", tag = "service",
    responses(
        (status = 200, description = "The process is up", body = Health, content_type = "application/json"),
    )
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

// Ready when the database answers and every migration is applied.
/// Readiness
///
/// The database answers and every migration is applied.
#[utoipa::path(
    get, path = "/readyz", tag = "service",
    responses(
        (status = 200, description = "Ready to serve", body = Ready, content_type = "application/json"),
        (status = 503, description = "The database is unreachable or not migrated", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(State(state): State<SharedState>) -> Result<Json<Value>, ApiError> {
    let applied = db::migrations_applied(state.services.store().pool())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::Unavailable("the database is unreachable".into())
        })?;
    if !applied {
        return Err(ApiError::Unavailable(
            "migrations are not applied yet".into(),
        ));
    }
    let head = state.services.store().known_head();
    // A stuck projection does not stop this process serving writes and the
    // log, so it stays ready, but says so loudly.
    let mut projections = BTreeMap::new();
    let mut degraded = false;
    for c in crate::projections::checkpoints(state.services.store().pool()).await? {
        degraded |= c.failed_position.is_some();
        projections.insert(
            c.name,
            ProjectionProgress {
                position: c.position,
                lag_events: (head - c.position).max(0),
                failed_position: c.failed_position,
                error: c.last_error,
            },
        );
    }
    // A broken chain does not stop this process serving either; it is
    // what an operator must hear about first.
    let chain = state.services.store().chain_status().get().await?;
    degraded |= chain.first_bad_position.is_some();
    let checkpoints = state.services.signing_state().await?;
    degraded |= checkpoints.stalled();
    let ready = Ready {
        status: if degraded {
            Readiness::Degraded
        } else {
            Readiness::Ready
        },
        head,
        projections,
        integrity: ChainProgress {
            ok: chain.first_bad_position.is_none(),
            first_bad_position: chain.first_bad_position,
            verified_position: chain.position,
            unverified_events: (head - chain.position).max(0),
        },
        checkpoints,
    };
    // Through a `Value`, as every view (sorted keys).
    Ok(Json(
        serde_json::to_value(ready).map_err(|e| ApiError::Internal(e.to_string()))?,
    ))
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    status: Readiness,
    /// The latest log position this process knows of.
    head: i64,
    /// Each projection by name (`facts`).
    projections: BTreeMap<String, ProjectionProgress>,
    integrity: ChainProgress,
    /// Signed checkpoints of the Merkle tree: degraded on a fork, or when
    /// growth has waited over 10 s for a signature.
    checkpoints: SigningState,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    Ready,
    /// A projection is stuck on an event, the chain is broken, or signing
    /// has stopped; writes and the log still work.
    Degraded,
}

#[derive(Serialize, ToSchema)]
pub struct ProjectionProgress {
    /// The last log position it applied.
    position: i64,
    /// How many events it is behind the head.
    lag_events: i64,
    /// The event it is stuck on, if any.
    failed_position: Option<i64>,
    error: Option<String>,
}

/// The hash chain as the background verifier has found it.
#[derive(Serialize, ToSchema)]
pub struct ChainProgress {
    /// No pass has found a break.
    ok: bool,
    first_bad_position: Option<i64>,
    /// The end of the verified prefix.
    verified_position: i64,
    /// Events past it, not re-hashed yet.
    unverified_events: i64,
}

pub async fn not_found() -> Response {
    ApiError::NotFound("no such endpoint".into()).into_response()
}

pub async fn method_not_allowed() -> Response {
    let mut res = super::error::problem(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this endpoint does not accept that method",
        Default::default(),
    );
    *res.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    res
}
