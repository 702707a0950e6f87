//! Claim endpoints: assert, the life-cycle actions, and read one.

use axum::Json;
use axum::extract::{Path, State};
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
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let w = write::context(actor, &headers, "/v1/claims", &body)?;
    let outcome = state.services.assert_claim(input::claim(&body), &w).await?;
    Ok(write::respond(outcome, "/v1/claims"))
}

async fn act(
    state: SharedState,
    actor: Actor,
    id: String,
    action: &str,
    headers: HeaderMap,
    body: JsonBody,
    parse: fn(&JsonBody) -> Result<Command, FieldError>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "claim")?;
    // The canonical path, whatever spelling of the id the client used.
    let path = format!("/v1/claims/{}/{action}", id.hyphenated());
    let w = write::context(actor, &headers, &path, &body)?;
    let outcome = state.services.act_on_claim(id, parse(&body), &w).await?;
    Ok(write::respond(outcome, "/v1/claims"))
}

/// The life-cycle actions differ only in how the body is read (all of a
/// confirmation's fields are optional, so it may be empty) and parsed.
macro_rules! action {
    ($(#[$doc:meta])* $name:ident, $action:literal, $body:ty, $parse:path) => {
        $(#[$doc])*
        pub async fn $name(
            State(state): State<SharedState>,
            Writer(actor): Writer,
            Path(id): Path<String>,
            headers: HeaderMap,
            body: $body,
        ) -> Result<Response, ApiError> {
            act(state, actor, id, $action, headers, body.into(), $parse).await
        }
    };
}

action!(
    /// `POST /v1/claims/{id}/confirmations`.
    confirm,
    "confirmations",
    OptionalJsonBody,
    input::confirmation
);
action!(
    /// `POST /v1/claims/{id}/disputes`.
    dispute,
    "disputes",
    JsonBody,
    input::dispute
);
action!(
    /// `POST /v1/claims/{id}/retraction`.
    retract,
    "retraction",
    JsonBody,
    input::retraction
);
action!(
    /// `POST /v1/claims/{id}/amendments`.
    amend,
    "amendments",
    JsonBody,
    input::amendment
);
action!(
    /// `POST /v1/claims/{id}/evidence`.
    evidence,
    "evidence",
    JsonBody,
    input::evidence
);

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
