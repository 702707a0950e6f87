use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use thiserror::Error;

use super::PRINCIPALS_STREAM;
use crate::domain::principal::{Role, valid_token_name};
use crate::store::{
    AppendOutcome, AppendRequest, ExpectedVersion, Metadata, NewEvent, PreparedAppend, StoreError,
    StreamAppend, append_batch,
};

#[derive(Debug, Error)]
pub enum TokenError {
    #[error(
        "invalid token name {0:?}: use 1-64 letters, digits, '-', '_', '.' or '@' (it is the actor recorded on every event)"
    )]
    BadName(String),
    #[error("invalid role {0:?}: use reader, editor, auditor or admin")]
    BadRole(String),
    #[error("a token named {0:?} already exists (names are never reused: audits refer to them)")]
    NameTaken(String),
    #[error("no active token is named {0:?}")]
    NotFound(String),
    #[error("random number generator failed: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TokenError {
    fn from(e: sqlx::Error) -> Self {
        TokenError::Store(e.into())
    }
}

/// SHA-256 of a bearer token: what is stored, and what requests are matched by.
/// Tokens carry 256 random bits, so a fast hash is the right one here (no
/// dictionary to slow down), and matching by hash reveals nothing usable
/// about the token through timing.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn new_token() -> Result<String, TokenError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
    Ok(format!("fl_{}", hex::encode(bytes)))
}

/// CLI actions are recorded as the actor `cli`.
const CLI_ACTOR: &str = "cli";

async fn record(
    tx: &mut sqlx::PgConnection,
    event_type: &str,
    name: &str,
    role: Role,
) -> Result<(), TokenError> {
    let prepared = PreparedAppend::new(
        AppendRequest {
            streams: vec![StreamAppend {
                stream: PRINCIPALS_STREAM.into(),
                expected: ExpectedVersion::Any,
                events: vec![NewEvent::new(
                    event_type,
                    json!({"schema": 1, "name": name, "role": role.as_str()}),
                )],
            }],
            metadata: Metadata::by(CLI_ACTOR),
            idempotency: None,
        },
        usize::MAX,
    )?;
    let mut results = append_batch(tx, std::slice::from_ref(&prepared)).await?;
    match results.pop() {
        Some(Ok(AppendOutcome::Appended(_))) => Ok(()),
        Some(Err(e)) => Err(e.into()),
        _ => Err(TokenError::Store(StoreError::InvalidAppend(
            "unexpected append outcome".into(),
        ))),
    }
}

/// Creates a token and returns it; only its hash is kept.
pub async fn create(pool: &PgPool, name: &str, role: &str) -> Result<String, TokenError> {
    if !valid_token_name(name) {
        return Err(TokenError::BadName(name.into()));
    }
    let role = Role::parse(role).ok_or_else(|| TokenError::BadRole(role.into()))?;
    let token = new_token()?;
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO tokens (name, role, token_hash) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(role.as_str())
    .bind(hash_token(&token).to_vec())
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(TokenError::NameTaken(name.into()));
    }
    record(&mut tx, "TokenIssued", name, role).await?;
    tx.commit().await?;
    Ok(token)
}

/// Revokes the named token; requests stop being accepted within the cache's
/// refresh interval.
pub async fn revoke(pool: &PgPool, name: &str) -> Result<(), TokenError> {
    let mut tx = pool.begin().await?;
    let role: Option<String> = sqlx::query_scalar(
        "UPDATE tokens SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL RETURNING role",
    )
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?;
    let role = role
        .and_then(|r| Role::parse(&r))
        .ok_or_else(|| TokenError::NotFound(name.into()))?;
    record(&mut tx, "TokenRevoked", name, role).await?;
    tx.commit().await?;
    Ok(())
}
