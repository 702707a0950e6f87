//! Claim endpoints: assert, the life-cycle actions, and read one.

use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::SharedState;
use super::auth::{Caller, Writer};
use super::body::{JsonBody, OptionalJsonBody};
use super::error::ApiError;
use super::input;
use super::params::Params;
use super::reads::wait;
use super::write::{self, path_id};
use crate::domain::claim::Command;
use crate::domain::error::FieldError;
use crate::domain::principal::Actor;
use crate::service::reads::Source;
use crate::service::view;

pub async fn create(
    State(state): State<SharedState>,
    Writer(actor): Writer,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let w = write::context(actor, &headers, uri.path(), &body)?;
    let outcome = state.services.assert_claim(input::claim(&body), &w).await?;
    Ok(write::respond(outcome, "/v1/claims"))
}

async fn act(
    state: SharedState,
    actor: Actor,
    id: String,
    path: &str,
    headers: HeaderMap,
    body: JsonBody,
    parse: fn(&JsonBody) -> Result<Command, FieldError>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "claim")?;
    let w = write::context(actor, &headers, path, &body)?;
    let outcome = state.services.act_on_claim(id, parse(&body), &w).await?;
    Ok(write::respond(outcome, "/v1/claims"))
}

pub async fn confirm(
    State(state): State<SharedState>,
    Writer(actor): Writer,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    OptionalJsonBody(body): OptionalJsonBody,
) -> Result<Response, ApiError> {
    act(
        state,
        actor,
        id,
        uri.path(),
        headers,
        body,
        input::confirmation,
    )
    .await
}

pub async fn dispute(
    State(state): State<SharedState>,
    Writer(actor): Writer,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    act(state, actor, id, uri.path(), headers, body, input::dispute).await
}

pub async fn retract(
    State(state): State<SharedState>,
    Writer(actor): Writer,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    act(
        state,
        actor,
        id,
        uri.path(),
        headers,
        body,
        input::retraction,
    )
    .await
}

pub async fn amend(
    State(state): State<SharedState>,
    Writer(actor): Writer,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    act(
        state,
        actor,
        id,
        uri.path(),
        headers,
        body,
        input::amendment,
    )
    .await
}

pub async fn evidence(
    State(state): State<SharedState>,
    Writer(actor): Writer,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    act(state, actor, id, uri.path(), headers, body, input::evidence).await
}

/// Folded from the claim's own stream: reflects every acknowledged write.
pub async fn get(
    State(state): State<SharedState>,
    Caller(_): Caller,
    Path(id): Path<String>,
    p: Params,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "claim")?;
    wait(&state, &p, Source::Log).await?;
    let claim = state
        .services
        .load_claim(id)
        .await?
        .ok_or_else(|| ApiError::not_found("claim"))?;
    let mut res = Json(view::claim(&claim)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", claim.version)) {
        res.headers_mut().insert(header::ETAG, v);
    }
    Ok(res)
}
