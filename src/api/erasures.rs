//! `POST /v1/erasures`: the admin's removal of personal values (API.md,
//! "Erasure"; README says what it cannot reach).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use utoipa::ToSchema;
use utoipa::openapi::schema::Object;
use uuid::Uuid;

use super::SharedState;
use super::auth::Admin;
use super::body::JsonBody;
use super::error::{ApiError, ConflictProblem, Problem, ValidationProblem};
use super::input;
use super::openapi::{BodyProblems, TokenProblems, WriteHeaders};
use super::write;
use crate::domain::error::text_schema;
use crate::service::view::Receipt;

/// Erase personal values
///
/// Admin only. Removes the named fields' values (and the salts that would
/// let anyone test a guess against the log's commitments) of a claim's or a
/// story's events from the database, the read models, the stored
/// idempotent responses and every process's caches (within 2 s), and
/// appends an `Erased` event naming the events, the fields and the reason.
/// Reads then show each field as `null`, beside `"erased": {"fields",
/// "position"}`. Nothing in the hash chain, the Merkle tree or any proof
/// changes. Erasing what is already erased changes nothing (`positions`
/// is then empty).
#[utoipa::path(
    post, path = "/v1/erasures", tag = "erasure", operation_id = "erase",
    security(("bearer" = [])),
    params(
        WriteHeaders,
    ),
    request_body(content = NewErasure, content_type = "application/json"),
    responses(
        (status = 200, description = "Erased: the receipt of the `Erased` event", body = ErasureReceipt, content_type = "application/json", headers(
            ("Idempotent-Replayed" = String, description = "`true` on a replay"),
        )),
        BodyProblems,
        TokenProblems,
        (status = 403, description = "Only admins may erase", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "An event to erase was recorded before erasable values were kept outside the log (migration 0018): its values are part of the hash chain", body = ConflictProblem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid: no claim or story by that id, an unknown or non-erasable field, an empty list, no reason; or the Idempotency-Key was used for another request", body = ValidationProblem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable; retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn erase(
    State(state): State<SharedState>,
    Admin(actor): Admin,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let w = write::context(actor, &headers, "/v1/erasures", &body)?;
    let outcome = state.services.erase(input::erasure(&body), &w).await?;
    Ok(write::respond(outcome, "/v1/erasures"))
}

/// What to erase: one claim's or one story's fields.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "claim_id": "0190a6a4-2a1b-7c3d-8e4f-5a6b7c8d9e0f",
    "fields": ["attributed_to", "notes"],
    "reason": "Source's request under GDPR art. 17, ticket 4411"
}))]
#[allow(dead_code, reason = "schema-only")]
pub struct NewErasure {
    /// A claim (or give `story_id`).
    claim_id: Option<Uuid>,
    /// A story (or give `claim_id`).
    story_id: Option<Uuid>,
    /// A claim's `attributed_to`, `quote`, `notes` (every confirmation
    /// note, dispute and retraction reason and evidence note); a story's
    /// `body`. At least one.
    #[schema(min_items = 1)]
    fields: Vec<ErasableField>,
    #[schema(schema_with = reason)]
    reason: String,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code, reason = "schema-only")]
pub enum ErasableField {
    AttributedTo,
    Quote,
    Notes,
    Body,
}

fn reason() -> Object {
    text_schema(input::NOTE, false)
        .description(Some("Why: kept in the log (never an erased value)."))
        .build()
}

/// The `Erased` event, as its receipt.
#[derive(ToSchema)]
#[allow(dead_code, reason = "schema-only: the body is a Value")]
pub struct ErasureReceipt {
    /// The erasure's id.
    id: Uuid,
    claim_id: Option<Uuid>,
    story_id: Option<Uuid>,
    fields: Vec<ErasableField>,
    /// The events whose values were removed.
    positions: Vec<i64>,
    reason: String,
    /// The admin token's name.
    erased_by: String,
    erased_at: DateTime<Utc>,
    #[serde(flatten)]
    receipt: Receipt,
}
