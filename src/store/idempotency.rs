//! Idempotency keys: the first successful response to a keyed write, kept in
//! PostgreSQL beside the events it produced (same transaction), so a retry
//! after a crash, a timeout or a lost response replays instead of appending.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

use super::append::AppendOutcome;
use super::chain;
use super::error::StoreError;
use super::event::AppendReceipt;

/// Identifies one keyed request: who sent it, the key, and what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFingerprint {
    /// Keys are scoped to the caller (a token's name): two callers never collide.
    pub scope: String,
    pub key: String,
    pub method: String,
    pub path: String,
    /// SHA-256 of the canonical JSON of the body: bodies are compared as parsed JSON.
    pub request_hash: [u8; 32],
}

impl RequestFingerprint {
    pub fn new(
        scope: impl Into<String>,
        key: impl Into<String>,
        method: impl Into<String>,
        path: impl Into<String>,
        body: &Value,
    ) -> Self {
        Self::of_canonical(scope, key, method, path, &chain::canonical_json(body))
    }

    /// The same, from a body already in canonical JSON (`chain::canonical_json`,
    /// or `chain::canonical_json_text` for a body `Value` cannot hold).
    pub fn of_canonical(
        scope: impl Into<String>,
        key: impl Into<String>,
        method: impl Into<String>,
        path: impl Into<String>,
        canonical_body: &str,
    ) -> Self {
        let request_hash: [u8; 32] = Sha256::digest(canonical_body.as_bytes()).into();
        RequestFingerprint {
            scope: scope.into(),
            key: key.into(),
            method: method.into(),
            path: path.into(),
            request_hash,
        }
    }
}

/// Builds a write's response body from its receipt, inside the append (the
/// body may show record times and positions that only exist then).
pub type ResponseBuilder = Arc<dyn Fn(&AppendReceipt) -> Value + Send + Sync>;

/// A keyed write's response, to be stored with its events.
#[derive(Clone)]
pub struct IdempotencyClaim {
    pub fingerprint: RequestFingerprint,
    /// The HTTP status of the response (only 2xx responses are stored).
    pub status: u16,
    /// Makes the response body; see [`with_receipt`] for the fields added to it.
    pub response: ResponseBuilder,
}

impl std::fmt::Debug for IdempotencyClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyClaim")
            .field("fingerprint", &self.fingerprint)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Adds a write's receipt to its response body when that is a JSON object:
/// `position` (of its last event), `version` (of the first stream, the one
/// the write addresses), `hash` (the chain hash of its last event) and
/// `leaf_hash` (its Merkle leaf hash, what an inclusion proof starts from).
pub fn with_receipt(mut body: Value, receipt: &AppendReceipt) -> Value {
    if let Value::Object(map) = &mut body {
        map.insert("position".into(), receipt.last_position.into());
        if let Some((_, version)) = receipt.streams.first() {
            map.insert("version".into(), (*version).into());
        }
        map.insert("hash".into(), receipt.last_hash.clone().into());
        map.insert("leaf_hash".into(), receipt.last_leaf_hash.clone().into());
    }
    body
}

impl std::ops::Deref for IdempotencyClaim {
    type Target = RequestFingerprint;
    fn deref(&self) -> &RequestFingerprint {
        &self.fingerprint
    }
}

impl IdempotencyClaim {
    pub(crate) fn response_with_receipt(&self, receipt: &AppendReceipt) -> Value {
        with_receipt((self.response)(receipt), receipt)
    }
}

/// A response replayed for a repeated request.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: Value,
    /// Position of the original write's last event.
    pub position: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct StoredEntry {
    method: String,
    path: String,
    request_hash: Vec<u8>,
    response: StoredResponse,
}

impl StoredEntry {
    pub(crate) fn from_claim(claim: &IdempotencyClaim, body: Value) -> Self {
        let position = body.get("position").and_then(Value::as_i64).unwrap_or(0);
        StoredEntry {
            method: claim.method.clone(),
            path: claim.path.clone(),
            request_hash: claim.request_hash.to_vec(),
            response: StoredResponse {
                status: claim.status,
                body,
                position,
            },
        }
    }

    fn matches(&self, f: &RequestFingerprint) -> bool {
        self.method == f.method && self.path == f.path && self.request_hash == f.request_hash
    }

    pub(crate) fn replay_for(&self, claim: &IdempotencyClaim) -> Result<AppendOutcome, StoreError> {
        if self.matches(&claim.fingerprint) {
            Ok(AppendOutcome::Replayed(self.response.clone()))
        } else {
            Err(StoreError::IdempotencyKeyReused {
                key: claim.key.clone(),
            })
        }
    }
}

type Row = (String, String, String, String, Vec<u8>, i16, Value, i64);

fn entry(row: Row) -> ((String, String), StoredEntry) {
    let (scope, key, method, path, request_hash, status, body, position) = row;
    (
        (scope, key),
        StoredEntry {
            method,
            path,
            request_hash,
            response: StoredResponse {
                status: status as u16,
                body,
                position,
            },
        },
    )
}

pub(crate) async fn fetch_many(
    conn: &mut PgConnection,
    claims: &[&IdempotencyClaim],
) -> Result<HashMap<(String, String), StoredEntry>, StoreError> {
    let scopes: Vec<&str> = claims.iter().map(|c| c.scope.as_str()).collect();
    let keys: Vec<&str> = claims.iter().map(|c| c.key.as_str()).collect();
    let rows: Vec<Row> = sqlx::query_as(
        // LATERAL: one primary-key probe per key, whatever the planner's
        // statistics say (a hash join would scan the table under the lock).
        "SELECT i.scope, i.key, i.method, i.path, i.request_hash, i.status, i.response, i.position \
         FROM unnest($1::text[], $2::text[]) AS q(scope, key) \
         CROSS JOIN LATERAL ( \
             SELECT * FROM idempotency_keys k WHERE k.scope = q.scope AND k.key = q.key \
         ) AS i",
    )
    .bind(&scopes)
    .bind(&keys)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(entry).collect())
}

/// Looks a request up before doing any work for it: `Ok(Some(..))` is the
/// response to replay, `Ok(None)` means the key is new, and
/// [`StoreError::IdempotencyKeyReused`] means it was used for another request.
/// The append re-checks under the log lock, so two racing first attempts
/// still write once.
pub async fn lookup(
    pool: &PgPool,
    f: &RequestFingerprint,
) -> Result<Option<StoredResponse>, StoreError> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT scope, key, method, path, request_hash, status, response, position \
         FROM idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind(&f.scope)
    .bind(&f.key)
    .fetch_optional(pool)
    .await?;
    match row.map(entry) {
        None => Ok(None),
        Some((_, e)) if e.matches(f) => Ok(Some(e.response)),
        Some(_) => Err(StoreError::IdempotencyKeyReused { key: f.key.clone() }),
    }
}

/// Forgets keys older than `retention`; returns how many went.
pub async fn purge(pool: &PgPool, retention: std::time::Duration) -> Result<u64, StoreError> {
    let secs = retention.as_secs_f64();
    let done = sqlx::query(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)",
    )
    .bind(secs)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
