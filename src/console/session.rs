//! Console sessions: a random id in an HttpOnly, SameSite=Strict cookie,
//! and a row in `console_sessions` keyed by the id's SHA-256 (the id itself
//! is stored nowhere), so every API process knows every session.
//!
//! Every request resolves its cookie to the row and checks the token the
//! session was opened with against the token cache: a revoked token ends
//! its sessions within the cache's refresh (`auth::REFRESH`), an expired
//! session is refused and deleted, and "Sign out" deletes the row.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::csrf;
use super::error::ConsoleError;
use crate::api::SharedState;
use crate::domain::principal::Actor;

/// The session cookie's name.
pub const COOKIE: &str = "factlog_session";

/// How long a session lasts: 12 hours, the cookie's `Max-Age`.
pub const MAX_AGE_SECS: i64 = 12 * 60 * 60;

/// A signed-in user, for the request at hand.
pub struct Session {
    pub actor: Actor,
    id_hash: [u8; 32],
    csrf_secret: Vec<u8>,
}

impl Session {
    /// The token every writing form of this session carries.
    pub fn csrf_token(&self) -> String {
        csrf::token_for(&self.csrf_secret)
    }

    /// Whether the session is still open: signed out, expired or its token
    /// revoked, it is not (as a new request would find). For what outlives
    /// the request that resolved it (the queue's live stream).
    pub async fn still_open(&self, state: &SharedState) -> Result<bool, ConsoleError> {
        let token_hash: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT token_hash FROM console_sessions WHERE id_hash = $1 AND expires_at > now()",
        )
        .bind(self.id_hash.to_vec())
        .fetch_optional(state.services.store().pool())
        .await?;
        Ok(token_hash
            .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
            .is_some_and(|h| state.tokens.active(&h).is_some()))
    }
}

fn random32() -> Result<[u8; 32], ConsoleError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        ConsoleError::Service(crate::service::ServiceError::Corrupt(format!(
            "random number generator failed: {e}"
        )))
    })?;
    Ok(bytes)
}

/// A random value for a hidden form field (an idempotency key).
pub fn random_hex() -> Result<String, ConsoleError> {
    Ok(hex::encode(&random32()?[..16]))
}

fn hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

/// The session id the request's cookie carries, if any.
fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// Opens a session for a token (by its hash) and returns the cookie's
/// value. Expired sessions are swept on the way.
pub async fn open(pool: &PgPool, token_hash: &[u8; 32]) -> Result<String, ConsoleError> {
    let id = hex::encode(random32()?);
    let secret = random32()?;
    sqlx::query("DELETE FROM console_sessions WHERE expires_at <= now()")
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO console_sessions (id_hash, token_hash, csrf_secret, expires_at) \
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
    )
    .bind(hash(&id).to_vec())
    .bind(token_hash.to_vec())
    .bind(secret.to_vec())
    .bind(MAX_AGE_SECS as f64)
    .execute(pool)
    .await?;
    Ok(id)
}

/// Forgets the session (sign out).
pub async fn close(pool: &PgPool, session: &Session) -> Result<(), ConsoleError> {
    sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
        .bind(session.id_hash.to_vec())
        .execute(pool)
        .await?;
    Ok(())
}

/// The session the request's cookie names, if it is open, unexpired and
/// its token still active (also how the API's event streams take the
/// cookie).
pub(crate) async fn resolve(
    parts: &Parts,
    state: &SharedState,
) -> Result<Option<Session>, ConsoleError> {
    let Some(id) = cookie_value(&parts.headers) else {
        return Ok(None);
    };
    let id_hash = hash(id);
    let pool = state.services.store().pool();
    let row: Option<(Vec<u8>, Vec<u8>, bool)> = sqlx::query_as(
        "SELECT token_hash, csrf_secret, expires_at > now() FROM console_sessions \
         WHERE id_hash = $1",
    )
    .bind(id_hash.to_vec())
    .fetch_optional(pool)
    .await?;
    let Some((token_hash, csrf_secret, live)) = row else {
        return Ok(None);
    };
    if !live {
        sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash.to_vec())
            .execute(pool)
            .await?;
        return Ok(None);
    }
    let token_hash: [u8; 32] = token_hash.as_slice().try_into().map_err(|_| {
        ConsoleError::Service(crate::service::ServiceError::Corrupt(
            "a console session's token hash is not 32 bytes".into(),
        ))
    })?;
    // An opened session's token was active; not in memory now, it was
    // revoked (the cache reloads every `auth::REFRESH`).
    let Some(actor) = state.tokens.active(&token_hash) else {
        sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
            .bind(token_hash.to_vec())
            .execute(pool)
            .await?;
        return Ok(None);
    };
    tracing::Span::current().record("actor", actor.name.as_str());
    state
        .rate
        .check(&actor.name)
        .map_err(|wait| ConsoleError::TooMany {
            retry_after: wait.as_secs().max(1),
        })?;
    Ok(Some(Session {
        actor,
        id_hash,
        csrf_secret,
    }))
}

/// A page that needs someone signed in: without a session, the sign-in page.
impl FromRequestParts<SharedState> for Session {
    type Rejection = ConsoleError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, ConsoleError> {
        resolve(parts, state)
            .await?
            .ok_or(ConsoleError::SignInRequired)
    }
}

/// `Option<Session>`: pages that work either way (sign-in).
impl OptionalFromRequestParts<SharedState> for Session {
    type Rejection = ConsoleError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Option<Self>, ConsoleError> {
        resolve(parts, state).await
    }
}

/// The `Set-Cookie` value that stores a session id; `Secure` when the
/// console is reached over https. Its path is the whole site so that a
/// browser sends it to the API's event streams as well (`EventSource`
/// cannot send headers); every other API route ignores it.
pub fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/; Max-Age={MAX_AGE_SECS}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that makes the browser forget the session.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}
