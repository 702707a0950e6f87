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
use super::params::Params;
use super::reads::wait;
use super::write::{self, path_id};
use crate::service::reads::CLAIMS;
use crate::service::view;

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

/// The story's own fields from its stream (always current); its claims from
/// the facts projection's open claim versions (`wait_for` applies to them).
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
