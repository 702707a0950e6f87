//! Authentication and roles as extractors: a handler that takes `Writer`
//! cannot run for a caller who may not write.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::error::ApiError;
use super::server::PeerAddr;
use super::stream::Standing;
use super::{AppState, SharedState};
use crate::auth::hash_token;
use crate::domain::principal::{Actor, Role};

/// Any authenticated caller (reads). Carries no actor: no read depends on
/// who asks, and the request's log line names the caller already.
pub struct Caller;

/// Whoever opens an event stream, by bearer token or, for browsers (whose
/// `EventSource` cannot send headers), by the console's session cookie.
pub struct Streamer {
    pub actor: Actor,
    pub credential: Credential,
}

/// What a stream's reader showed, to be asked again while the stream lasts.
pub enum Credential {
    Token(TokenHash),
    Session(crate::console::session::Session),
}

impl Credential {
    /// Whether the reader may still read: the token not revoked, the
    /// session not signed out, expired or its token revoked.
    pub async fn standing(&self, state: &SharedState) -> Standing {
        match self {
            Credential::Token(hash) => match state.tokens.authenticate(hash).await {
                Ok(Some(_)) => Standing::Allowed,
                Ok(None) => Standing::Ended,
                Err(_) => Standing::Unknown,
            },
            Credential::Session(session) => match session.still_open(state).await {
                Ok(true) => Standing::Allowed,
                Ok(false) => Standing::Ended,
                Err(_) => Standing::Unknown,
            },
        }
    }
}

/// An editor or admin (writes).
pub struct Writer(pub Actor);

/// An admin (erasure).
pub struct Admin(pub Actor);

/// An auditor or admin (audit, raw events, integrity).
pub struct Auditor(pub Actor);

/// What a token is known by once read (see [`crate::auth::hash_token`]).
pub type TokenHash = [u8; 32];

async fn authenticate(parts: &Parts, state: &AppState) -> Result<(Actor, TokenHash), ApiError> {
    let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(ApiError::Unauthenticated(
        "send Authorization: Bearer <token>",
    ))?;
    if values.next().is_some() {
        // RFC 9110 allows one; which of two would be the caller's is a guess.
        return Err(ApiError::BadRequest(
            "the Authorization header appears more than once; send it once".into(),
        ));
    }
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthenticated(
            "send Authorization: Bearer <token>",
        ))?;
    let hash = hash_token(token);
    let actor = match state.tokens.active(&hash) {
        Some(actor) => actor,
        None => {
            // Almost always a failure (else a token created in the last
            // two seconds): limited per address before it may wait for a
            // reload of the tokens.
            let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0.ip());
            state
                .rate
                .check_failure(peer)
                .map_err(|wait| ApiError::TooManyFailures {
                    retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
                })?;
            state
                .tokens
                .resolve(&hash)
                .await?
                .ok_or(ApiError::Unauthenticated("the token is unknown or revoked"))?
        }
    };
    tracing::Span::current().record("actor", actor.name.as_str());
    state
        .rate
        .check(&actor.name)
        .map_err(|wait| ApiError::TooManyRequests {
            retry_after: wait.as_secs().max(1),
        })?;
    Ok((actor, hash))
}

/// [`authenticate`], refusing a role that `may` says no to; `refusal` ends
/// the message: what the role may not do, and who may.
async fn authenticate_as(
    parts: &Parts,
    state: &AppState,
    may: fn(Role) -> bool,
    refusal: &str,
) -> Result<(Actor, TokenHash), ApiError> {
    let (actor, hash) = authenticate(parts, state).await?;
    if !may(actor.role) {
        return Err(role_refused(actor.role, refusal));
    }
    Ok((actor, hash))
}

/// What a role may not do, and who may (the end of a 403's words).
pub const AUDIT_REFUSAL: &str = "audit; auditors and admins may";

/// The 403 for a role that may not do what it asked.
pub fn role_refused(role: Role, refusal: &str) -> ApiError {
    ApiError::RoleNotAllowed(format!("the {} role may not {refusal}", role.as_str()))
}

impl FromRequestParts<SharedState> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        authenticate(parts, state).await?;
        Ok(Caller)
    }
}

impl FromRequestParts<SharedState> for Streamer {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            let session = crate::console::session::resolve(parts, state)
                .await
                .map_err(|e| match e {
                    crate::console::error::ConsoleError::TooMany { retry_after } => {
                        ApiError::TooManyRequests { retry_after }
                    }
                    crate::console::error::ConsoleError::Service(e) => e.into(),
                    other => ApiError::Internal(other.to_string()),
                })?;
            if let Some(session) = session {
                return Ok(Streamer {
                    actor: session.actor.clone(),
                    credential: Credential::Session(session),
                });
            }
        }
        // No cookie either: the bearer token's answer (401 without one).
        let (actor, hash) = authenticate(parts, state).await?;
        Ok(Streamer {
            actor,
            credential: Credential::Token(hash),
        })
    }
}

impl FromRequestParts<SharedState> for Writer {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let (actor, _) = authenticate_as(
            parts,
            state,
            Role::can_write,
            "write; editors and admins may",
        )
        .await?;
        Ok(Writer(actor))
    }
}

impl FromRequestParts<SharedState> for Auditor {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let (actor, _) = authenticate_as(parts, state, Role::can_audit, AUDIT_REFUSAL).await?;
        Ok(Auditor(actor))
    }
}

impl FromRequestParts<SharedState> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let (actor, _) =
            authenticate_as(parts, state, Role::can_erase, "erase; only admins may").await?;
        Ok(Admin(actor))
    }
}
