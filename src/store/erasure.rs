//! Erasure in the store: which events of a stream hold values an erasure
//! would remove, and the removal itself (API.md, "Erasure"). The log is
//! never touched: the values and their salts leave `event_secrets`, where
//! an erasure's mark takes their place (`seal::erase`), and the stored
//! idempotent responses of the stream's writes are rewritten without them.

use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::error::StoreError;
use super::seal;
use crate::domain::erasable::{self, ErasedMark};

/// What erasing `fields` of one stream would remove.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Targets {
    /// The events that still hold a value of one of the fields.
    pub positions: Vec<i64>,
    /// Events recorded before values were sealed out of the log
    /// (migrations/0018) that hold such a value in the log itself: these
    /// cannot be erased without rewriting the chain.
    pub in_the_log: Vec<i64>,
}

/// The events of `stream` whose `fields` an erasure would remove.
pub async fn targets(pool: &PgPool, stream: &str, fields: &[&str]) -> Result<Targets, StoreError> {
    let rows: Vec<(i64, String, Value, Option<Value>)> = sqlx::query_as(
        "SELECT e.position, e.type, e.data, s.secrets FROM events e \
         LEFT JOIN event_secrets s USING (position) WHERE e.stream = $1 ORDER BY e.version",
    )
    .bind(stream)
    .fetch_all(pool)
    .await?;
    let mut t = Targets::default();
    for (position, event_type, data, secrets) in rows {
        let erased = secrets.as_ref().map(seal::erased_paths).unwrap_or_default();
        for path in erasable::sealed_paths(&event_type) {
            if !erasable::field_of(path).is_some_and(|f| fields.contains(&f)) {
                continue;
            }
            let sealed = secrets.as_ref().is_some_and(|s| s.get(*path).is_some());
            if sealed {
                t.positions.push(position);
                break;
            }
            let holds_value = seal::at_path(&data, path).is_some_and(|v| !v.is_null());
            if holds_value && !erased.iter().any(|p| p == path) {
                t.in_the_log.push(position);
                break;
            }
        }
    }
    Ok(t)
}

/// Removes `mark.fields`' values and salts from the events at `positions`
/// and rewrites the stored responses of the writes to the resource `id`
/// (its stream `stream`) with those fields null. Idempotent: the request
/// that appends the `Erased` event runs it, and so does the facts projection
/// when it reaches the event, in its own transaction, so that a crash in
/// between leaves nothing behind. Returns how many events lost a value.
pub async fn apply(
    conn: &mut PgConnection,
    stream: &str,
    id: Uuid,
    positions: &[i64],
    mark: &ErasedMark,
) -> Result<usize, StoreError> {
    let rows: Vec<(i64, Value)> = sqlx::query_as(
        "SELECT position, secrets FROM event_secrets WHERE position = ANY($1) \
         ORDER BY position FOR UPDATE",
    )
    .bind(positions)
    .fetch_all(&mut *conn)
    .await?;
    let mut changed_positions = Vec::new();
    let mut changed_secrets = Vec::new();
    for (position, mut secrets) in rows {
        let paths: Vec<String> = secrets
            .as_object()
            .map(|m| {
                m.keys()
                    .filter(|p| {
                        erasable::field_of(p).is_some_and(|f| mark.fields.iter().any(|x| x == f))
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        if seal::erase(&mut secrets, &paths, mark.position) {
            changed_positions.push(position);
            changed_secrets.push(secrets.to_string());
        }
    }
    if !changed_positions.is_empty() {
        sqlx::query(
            "UPDATE event_secrets s SET secrets = u.x::jsonb \
             FROM unnest($1::bigint[], $2::text[]) AS u(p, x) WHERE s.position = u.p",
        )
        .bind(&changed_positions)
        .bind(&changed_secrets)
        .execute(&mut *conn)
        .await?;
    }
    // A response to any write of the stream shows the resource as it was
    // then, erased fields included.
    let stored: Vec<(String, String, Value)> = sqlx::query_as(
        "SELECT k.scope, k.key, k.response FROM idempotency_keys k \
         WHERE k.position IN (SELECT position FROM events WHERE stream = $1) FOR UPDATE",
    )
    .bind(stream)
    .fetch_all(&mut *conn)
    .await?;
    let id = id.to_string();
    let (mut scopes, mut keys, mut responses) = (Vec::new(), Vec::new(), Vec::new());
    for (scope, key, mut response) in stored {
        if response.get("id").and_then(Value::as_str) == Some(id.as_str())
            && erasable::scrub_view(&mut response, mark)
        {
            scopes.push(scope);
            keys.push(key);
            responses.push(response.to_string());
        }
    }
    if !keys.is_empty() {
        sqlx::query(
            "UPDATE idempotency_keys k SET response = u.r::jsonb \
             FROM unnest($1::text[], $2::text[], $3::text[]) AS u(s, k, r) \
             WHERE k.scope = u.s AND k.key = u.k",
        )
        .bind(&scopes)
        .bind(&keys)
        .bind(&responses)
        .execute(&mut *conn)
        .await?;
    }
    Ok(changed_positions.len())
}
