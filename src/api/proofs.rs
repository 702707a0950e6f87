//! The verifiable log over HTTP: signed checkpoints and the proofs an
//! auditor checks them with (AUDITING.md). Any role may ask.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::SharedState;
use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::openapi::{QueryProblems, TokenProblems};
use super::params::Params;
use crate::domain::error::FieldError;
use crate::service::checkpoints::{self, ConsistencyProof, InclusionProof};
use crate::store::tree::StoredCheckpoint;

/// A tree size or position: a positive integer, named in the 422 otherwise.
fn count(p: &Params, name: &str) -> Result<Option<u64>, FieldError> {
    Ok(p.position(name)?.map(|n| n as u64))
}

fn note(c: StoredCheckpoint) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        c.note,
    )
        .into_response()
}

/// The latest checkpoint
///
/// A C2SP signed note (`tlog-checkpoint`): the log's origin, its tree size
/// and root hash (base64), a blank line, then the Ed25519 signature line.
/// Keep it: any later checkpoint must prove consistent with it.
#[utoipa::path(
    get, path = "/v1/checkpoint", tag = "verifiable log",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The latest signed checkpoint", body = String, content_type = "text/plain"),
        TokenProblems,
        (status = 404, description = "No checkpoint has been signed yet (the log is empty)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn latest(State(state): State<SharedState>, _: Caller) -> Result<Response, ApiError> {
    Ok(note(
        checkpoints::latest(state.services.store().pool(), state.services.proofs()).await?,
    ))
}

/// A checkpoint of at least a size
///
/// The earliest checkpoint whose tree holds at least `size` leaves: to
/// bring an old checkpoint forward one step at a time.
#[utoipa::path(
    get, path = "/v1/checkpoints", tag = "verifiable log",
    security(("bearer" = [])),
    params(
        ("size" = u64, Query, minimum = 0, description = "The tree size the checkpoint must reach"),
    ),
    responses(
        (status = 200, description = "The signed checkpoint", body = String, content_type = "text/plain"),
        QueryProblems,
        TokenProblems,
        (status = 404, description = "No checkpoint has been signed yet", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn at_least(
    State(state): State<SharedState>,
    _: Caller,
    p: Params,
) -> Result<Response, ApiError> {
    let size = count(&p, "size")?.ok_or_else(|| FieldError::new("size", "is required"))?;
    Ok(note(
        checkpoints::at_least(state.services.store().pool(), state.services.proofs(), size).await?,
    ))
}

/// An inclusion proof
///
/// The RFC 9162 audit path of the event at `position` (leaf
/// `position - 1`) in the tree of `tree_size` leaves, by default the
/// latest checkpoint's. Hash the leaf up the path and compare with the
/// checkpoint's root.
#[utoipa::path(
    get, path = "/v1/proofs/inclusion", tag = "verifiable log",
    security(("bearer" = [])),
    params(
        ("position" = u64, Query, minimum = 1, description = "The event's position"),
        ("tree_size" = Option<u64>, Query, minimum = 1, description = "A checkpointed tree size (default: the latest checkpoint's)"),
    ),
    responses(
        (status = 200, description = "The audit path", body = InclusionProof, content_type = "application/json"),
        QueryProblems,
        TokenProblems,
        (status = 404, description = "No checkpoint has been signed yet", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn inclusion(
    State(state): State<SharedState>,
    _: Caller,
    p: Params,
) -> Result<Json<InclusionProof>, ApiError> {
    let position =
        count(&p, "position")?.ok_or_else(|| FieldError::new("position", "is required"))?;
    let size = count(&p, "tree_size")?;
    Ok(Json(
        checkpoints::inclusion(
            state.services.store().pool(),
            state.services.proofs(),
            position,
            size,
        )
        .await?,
    ))
}

/// A consistency proof
///
/// The RFC 9162 proof that the tree of `to` leaves (by default the latest
/// checkpoint's) extends the tree of `from` leaves: the log only grew.
#[utoipa::path(
    get, path = "/v1/proofs/consistency", tag = "verifiable log",
    security(("bearer" = [])),
    params(
        ("from" = u64, Query, minimum = 1, description = "The older tree size (a checkpoint you kept)"),
        ("to" = Option<u64>, Query, minimum = 1, description = "The newer tree size (default: the latest checkpoint's)"),
    ),
    responses(
        (status = 200, description = "The consistency proof", body = ConsistencyProof, content_type = "application/json"),
        QueryProblems,
        TokenProblems,
        (status = 404, description = "No checkpoint has been signed yet", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn consistency(
    State(state): State<SharedState>,
    _: Caller,
    p: Params,
) -> Result<Json<ConsistencyProof>, ApiError> {
    let from = count(&p, "from")?.ok_or_else(|| FieldError::new("from", "is required"))?;
    let to = count(&p, "to")?;
    Ok(Json(
        checkpoints::consistency(
            state.services.store().pool(),
            state.services.proofs(),
            from,
            to,
        )
        .await?,
    ))
}
