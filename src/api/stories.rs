//! Story endpoints: register one, read one with its claims.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::SharedState;
use super::auth::{Caller, Writer};
use super::body::JsonBody;
use super::error::ApiError;
use super::input;
use super::openapi::{
    BodyProblems, ConflictProblem, NewStory, Problem, QueryProblems, Story, StoryReceipt,
    TokenProblems, ValidationProblem,
};
use super::params::Params;
use super::reads::wait;
use super::write::{self, path_id};
use crate::service::reads::CLAIMS;
use crate::service::view;

/// Register a story
///
/// Editor or admin. A story's `url`, when given, is unique.
#[utoipa::path(
    post, path = "/v1/stories", tag = "stories", operation_id = "create_story",
    security(("bearer" = [])),
    params(
        ("Idempotency-Key" = Option<String>, Header, max_length = 255, pattern = r"^[\x21-\x7E]{1,255}$", description = "1-255 visible ASCII characters (0x21-0x7E: no spaces or tabs). Makes the write safe to retry: a repeat with the same key, path and body returns the first response and writes nothing; the same key with another body or path is 422. Scoped to the token's name, kept at least 24 h."),
        ("X-Request-Id" = Option<String>, Header, description = "A UUID to correlate the write's events with; one is made when absent. Echoed in the response."),
    ),
    request_body(content = NewStory, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered", body = StoryReceipt, content_type = "application/json", headers(
            ("ETag" = String, description = "The story's version, quoted: `\"1\"`"),
            ("Location" = String, description = "`/v1/stories/{id}`"),
            ("Idempotent-Replayed" = String, description = "`true` when this is a replay of an earlier request with the same Idempotency-Key"),
        ), links(
            ("GetStory" = (operation_id = "get_story", parameters(("id" = "$response.body#/id")), description = "Read the story just registered")),
        )),
        BodyProblems,
        TokenProblems,
        (status = 403, description = "The token's role may not write", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A story with this url is already registered: `existing_story_id` names it", body = ConflictProblem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid, or the Idempotency-Key was used for another request", body = ValidationProblem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable; retry", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    State(state): State<SharedState>,
    Writer(actor): Writer,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let w = write::context(actor, &headers, "/v1/stories", &body)?;
    let outcome = state
        .services
        .register_story(input::story(&body), &w)
        .await?;
    Ok(write::respond(outcome, "/v1/stories"))
}

// The story's own fields from its stream (always current); its claims from
// the facts projection's open claim versions (`wait_for` applies to them).
/// Read a story
///
/// The story's own fields always reflect every acknowledged write; its
/// `claims` come from projections (see `wait_for`).
#[utoipa::path(
    get, path = "/v1/stories/{id}", tag = "stories", operation_id = "get_story",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "The story's id"),
        ("wait_for" = Option<i64>, Query, minimum = 0, description = "Answer once the projections read here have applied this position"),
    ),
    responses(
        (status = 200, description = "The story with a summary of its claims", body = Story, content_type = "application/json", headers(
            ("ETag" = String, description = "The story's version, quoted"),
        )),
        QueryProblems,
        TokenProblems,
        (status = 404, description = "No story has this id", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable, or `wait_for` was not reached in 5 s", body = Problem, content_type = "application/problem+json", headers(
            ("Retry-After" = String, description = "Seconds to wait before retrying"),
        )),
    )
)]
pub async fn get(
    State(state): State<SharedState>,
    Caller(_): Caller,
    Path(id): Path<String>,
    p: Params,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "story")?;
    wait(&state, &p, CLAIMS).await?;
    let story = state
        .services
        .load_story(id)
        .await?
        .ok_or_else(|| ApiError::not_found("story"))?;
    let claims = state.services.story_claims(id).await?;
    let mut res = Json(view::story(&story, &claims)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", story.version)) {
        res.headers_mut().insert(header::ETAG, v);
    }
    Ok(res)
}
