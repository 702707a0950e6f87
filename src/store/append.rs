//! Appending: one transaction per batch of commands, serialized on the
//! `event_head` row lock.
//!
//! Holding that lock from the moment positions are chosen until commit is what
//! makes positions gapless and commit-ordered: a transaction can only read the
//! head after the previous holder's commit is visible (PostgreSQL releases row
//! locks after it marks the transaction committed), so a reader that sees
//! position N has necessarily been able to see every position below N.
//! Batching many callers' commands into one transaction (group commit) keeps
//! that single lock from capping throughput: one fsync serves the whole batch.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::chain::{self, ChainFields, HASH_LEN};
use super::error::StoreError;
use super::event::{AppendReceipt, AppendedEvent, ExpectedVersion, Metadata, StreamAppend};
use super::idempotency::{IdempotencyClaim, StoredResponse};
use super::{leaf, seal};

/// One atomic write: events for one or more streams, all or nothing.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub streams: Vec<StreamAppend>,
    pub metadata: Metadata,
    /// When set, the write's response is stored with its events, and a later
    /// request with the same key replays it instead of appending.
    pub idempotency: Option<IdempotencyClaim>,
}

/// What came of an [`AppendRequest`].
#[derive(Debug, Clone, PartialEq)]
pub enum AppendOutcome {
    Appended(AppendReceipt),
    /// The idempotency key had already been used for this same request; its
    /// first response is returned and nothing was written.
    Replayed(StoredResponse),
}

/// An append whose JSON has been validated and encoded, ready for the log.
#[derive(Debug, Clone)]
pub struct PreparedAppend {
    pub(crate) request: AppendRequest,
    /// Canonical JSON of each event's data, stream by stream, sealed
    /// fields as their commitments.
    data: Vec<Vec<String>>,
    /// Each event's sealed values and salts (JSON text), where it has any.
    secrets: Vec<Vec<Option<String>>>,
    metadata: String,
    pub(crate) event_count: usize,
}

impl PreparedAppend {
    /// Validates and encodes outside the lock, so the critical section only
    /// assigns positions and hashes.
    pub fn new(request: AppendRequest, max_event_bytes: usize) -> Result<Self, StoreError> {
        if request.streams.is_empty() || request.streams.iter().any(|s| s.events.is_empty()) {
            return Err(StoreError::InvalidAppend(
                "an append needs at least one event for each stream it names".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for s in &request.streams {
            if s.stream.is_empty() || s.stream.contains('\0') {
                return Err(StoreError::InvalidAppend("invalid stream name".into()));
            }
            if !seen.insert(s.stream.as_str()) {
                return Err(StoreError::InvalidAppend(format!(
                    "stream {} is named twice in one append",
                    s.stream
                )));
            }
        }
        if request.metadata.actor.contains('\0')
            || request
                .metadata
                .idempotency_key
                .as_deref()
                .is_some_and(|k| k.contains('\0'))
        {
            return Err(StoreError::InvalidAppend(
                "metadata must not contain U+0000".into(),
            ));
        }
        let metadata = chain::canonical_json(&request.metadata.stored_json());
        let mut data = Vec::with_capacity(request.streams.len());
        let mut secrets = Vec::with_capacity(request.streams.len());
        let mut event_count = 0;
        for s in &request.streams {
            let mut encoded = Vec::with_capacity(s.events.len());
            let mut kept = Vec::with_capacity(s.events.len());
            for e in &s.events {
                if e.event_type.is_empty() || e.event_type.contains('\0') {
                    return Err(StoreError::InvalidAppend("invalid event type".into()));
                }
                if chain::contains_nul(&e.data) {
                    return Err(StoreError::InvalidAppend(
                        "event data must not contain U+0000".into(),
                    ));
                }
                let (text, secret) = if e.sealed.is_empty() {
                    (chain::canonical_json(&e.data), None)
                } else {
                    let mut sealed = e.data.clone();
                    let secret = seal::seal(&mut sealed, e.sealed)?;
                    (
                        chain::canonical_json(&sealed),
                        secret.map(|v| chain::canonical_json(&v)),
                    )
                };
                let size = text.len()
                    + secret.as_ref().map_or(0, String::len)
                    + metadata.len()
                    + e.event_type.len()
                    + s.stream.len();
                if size > max_event_bytes {
                    return Err(StoreError::EventTooLarge {
                        size,
                        limit: max_event_bytes,
                    });
                }
                event_count += 1;
                encoded.push(text);
                kept.push(secret);
            }
            data.push(encoded);
            secrets.push(kept);
        }
        Ok(PreparedAppend {
            request,
            data,
            secrets,
            metadata,
            event_count,
        })
    }
}

/// Column arrays for one multi-row INSERT, borrowing from the batch (no
/// copies of event data while the log-head lock is held).
#[derive(Default)]
struct Rows<'a> {
    position: Vec<i64>,
    event_id: Vec<Uuid>,
    stream: Vec<&'a str>,
    version: Vec<i64>,
    event_type: Vec<&'a str>,
    data: Vec<&'a str>,
    metadata: Vec<&'a str>,
    actor: Vec<&'a str>,
    hash: Vec<Vec<u8>>,
    secret_position: Vec<i64>,
    secret: Vec<&'a str>,
}

#[derive(Default)]
struct IdempotencyRows {
    scope: Vec<String>,
    key: Vec<String>,
    method: Vec<String>,
    path: Vec<String>,
    request_hash: Vec<Vec<u8>>,
    status: Vec<i16>,
    response: Vec<String>,
    position: Vec<i64>,
}

/// The log's head as the appender last left it: enough to chain the next
/// batch without asking the database first.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownHead {
    pub position: i64,
    pub hash: [u8; HASH_LEN],
    pub recorded_at: DateTime<Utc>,
    /// The database clock minus this process's clock, as last read under the
    /// lock: `recorded_at` is the database clock even when the database is
    /// not asked for it.
    pub clock_offset: chrono::TimeDelta,
    /// When the offset was read; a lane reads it afresh every little while.
    pub clock_read: std::time::Instant,
}

/// A batch laid out against a head: each command's outcome and the rows
/// that make it so.
struct Plan<'a> {
    results: Vec<Result<AppendOutcome, StoreError>>,
    rows: Rows<'a>,
    idem_rows: IdempotencyRows,
    after: KnownHead,
}

/// Lays `batch` out after `head`, given each stream's version and the
/// idempotency entries already stored. Pure: the same plan whether the
/// versions were read under the lock or assumed and checked under it.
fn plan<'a>(
    batch: &'a [PreparedAppend],
    head: &KnownHead,
    mut versions: HashMap<&'a str, u64>,
    mut stored: HashMap<(String, String), super::idempotency::StoredEntry>,
) -> Plan<'a> {
    let recorded_at = head.recorded_at;
    let mut prev = head.hash;
    let mut results = Vec::with_capacity(batch.len());
    let mut rows = Rows::default();
    let mut idem_rows = IdempotencyRows::default();
    let mut position = head.position;

    for prepared in batch {
        let req = &prepared.request;
        if let Some(claim) = &req.idempotency
            && let Some(entry) = stored.get(&(claim.scope.clone(), claim.key.clone()))
        {
            results.push(entry.replay_for(claim));
            continue;
        }
        if let Some(conflict) = req.streams.iter().find_map(|s| {
            let actual = versions.get(s.stream.as_str()).copied().unwrap_or(0);
            (!s.expected.admits(actual)).then(|| StoreError::WrongExpectedVersion {
                stream: s.stream.clone(),
                expected: s.expected,
                actual,
            })
        }) {
            results.push(Err(conflict));
            continue;
        }

        let first_position = position + 1;
        let mut recorded = Vec::with_capacity(prepared.event_count);
        let mut stream_versions = Vec::with_capacity(req.streams.len());
        let actor = req.metadata.actor.as_str();
        let mut last_leaf = [0u8; HASH_LEN];
        for ((s, encoded), kept) in req
            .streams
            .iter()
            .zip(&prepared.data)
            .zip(&prepared.secrets)
        {
            let mut version = versions.get(s.stream.as_str()).copied().unwrap_or(0);
            for ((event, data_text), secret) in s.events.iter().zip(encoded).zip(kept) {
                position += 1;
                version += 1;
                let event_id = Uuid::now_v7();
                let hash = chain::link(
                    &prev,
                    &ChainFields {
                        position,
                        event_id,
                        stream: &s.stream,
                        version: version as i64,
                        event_type: &event.event_type,
                        data: data_text,
                        actor,
                        metadata: &prepared.metadata,
                        recorded_at,
                    },
                );
                prev = hash;
                if let Some(secret) = secret {
                    rows.secret_position.push(position);
                    rows.secret.push(secret);
                }
                rows.position.push(position);
                rows.event_id.push(event_id);
                rows.stream.push(&s.stream);
                rows.version.push(version as i64);
                rows.event_type.push(&event.event_type);
                rows.data.push(data_text);
                rows.metadata.push(&prepared.metadata);
                rows.actor.push(actor);
                rows.hash.push(hash.to_vec());
                recorded.push(AppendedEvent {
                    position,
                    event_id,
                    stream: s.stream.clone(),
                    version: version as i64,
                });
            }
            versions.insert(&s.stream, version);
            stream_versions.push((s.stream.clone(), version));
        }
        // The receipt's leaf: the append's last event, as the tree will see it.
        if let (Some(s), Some(data)) = (
            req.streams.last(),
            prepared.data.last().and_then(|d| d.last()),
        ) && let Some(event) = s.events.last()
        {
            last_leaf = leaf::leaf_hash(&leaf::LeafFields {
                position,
                stream: &s.stream,
                version: versions.get(s.stream.as_str()).copied().unwrap_or(0) as i64,
                event_type: &event.event_type,
                recorded_at,
                actor,
                data,
            });
        }
        let receipt = AppendReceipt {
            streams: stream_versions,
            first_position,
            last_position: position,
            last_hash: hex::encode(prev),
            last_leaf_hash: hex::encode(last_leaf),
            recorded_at,
            actor: actor.to_owned(),
            events: recorded,
        };
        if let Some(claim) = &req.idempotency {
            let response = claim.response_with_receipt(&receipt);
            idem_rows.scope.push(claim.scope.clone());
            idem_rows.key.push(claim.key.clone());
            idem_rows.method.push(claim.method.clone());
            idem_rows.path.push(claim.path.clone());
            idem_rows.request_hash.push(claim.request_hash.to_vec());
            idem_rows.status.push(claim.status as i16);
            idem_rows.response.push(chain::canonical_json(&response));
            idem_rows.position.push(position);
            // A second request with the same key later in this batch replays this one.
            stored.insert(
                (claim.scope.clone(), claim.key.clone()),
                super::idempotency::StoredEntry::from_claim(claim, response),
            );
        }
        results.push(Ok(AppendOutcome::Appended(receipt)));
    }
    Plan {
        results,
        rows,
        idem_rows,
        after: KnownHead {
            position,
            hash: prev,
            recorded_at,
            ..head.clone()
        },
    }
}

/// Appends a batch of prepared commands inside the caller's transaction.
///
/// Takes the log-head lock (held until the caller commits or rolls back),
/// checks every command's expected versions and idempotency key against the
/// log as it stands under the lock, and writes the accepted ones with one
/// statement. Each command gets its own result: a conflict in one does not
/// fail the others. The caller must commit for the accepted ones to count.
pub async fn append_batch(
    conn: &mut PgConnection,
    batch: &[PreparedAppend],
) -> Result<Vec<Result<AppendOutcome, StoreError>>, StoreError> {
    Ok(append_locked(conn, batch).await?.0)
}

/// [`append_batch`], also returning the head as this transaction leaves it.
pub(crate) async fn append_locked(
    conn: &mut PgConnection,
    batch: &[PreparedAppend],
) -> Result<(Vec<Result<AppendOutcome, StoreError>>, KnownHead), StoreError> {
    let mut names: Vec<&str> = batch
        .iter()
        .flat_map(|p| p.request.streams.iter().map(|s| s.stream.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    // The head lock, and then the streams' versions under it (migrations/0004).
    type LockRow = (i64, Vec<u8>, DateTime<Utc>, Option<String>, Option<i64>);
    let locked: Vec<LockRow> = sqlx::query_as("SELECT * FROM factlog_lock_head($1::text[])")
        .bind(&names)
        .fetch_all(&mut *conn)
        .await?;
    let local = Utc::now();
    let Some((head_position, head_hash, recorded_at, _, _)) = locked.first().cloned() else {
        return Err(StoreError::InvalidAppend("the log head is missing".into()));
    };
    let head = KnownHead {
        clock_offset: recorded_at - local,
        clock_read: std::time::Instant::now(),
        position: head_position,
        hash: head_hash
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::InvalidAppend("corrupt event_head hash".into()))?,
        recorded_at,
    };
    let mut versions: HashMap<&str, u64> = HashMap::with_capacity(names.len());
    for (_, _, _, stream, version) in &locked {
        if let (Some(s), Some(v)) = (stream, version)
            && let Some(name) = names.iter().find(|n| **n == s.as_str())
        {
            versions.insert(name, *v as u64);
        }
    }

    let keyed: Vec<&IdempotencyClaim> = batch
        .iter()
        .filter_map(|p| p.request.idempotency.as_ref())
        .collect();
    let stored = if keyed.is_empty() {
        HashMap::new()
    } else {
        super::idempotency::fetch_many(&mut *conn, &keyed).await?
    };

    let plan = plan(batch, &head, versions, stored);
    if plan.rows.position.is_empty() {
        return Ok((plan.results, head));
    }
    // Versions and keys were checked above under the lock this transaction
    // holds, so the statement's own checks have nothing left to assume.
    append_at(
        conn,
        FastPlan {
            head: head.position,
            names: Vec::new(),
            versions: Vec::new(),
            recorded_at,
            plan,
        },
    )
    .await
}

/// A batch laid out for the one-round-trip append.
pub(crate) struct FastPlan<'a> {
    head: i64,
    names: Vec<&'a str>,
    versions: Vec<i64>,
    recorded_at: DateTime<Utc>,
    plan: Plan<'a>,
}

impl FastPlan<'_> {
    /// The head as it will be once this batch commits.
    pub(crate) fn after(&self) -> &KnownHead {
        &self.plan.after
    }
}

/// Lays `batch` out for the one-round-trip append (migrations/0005): after
/// `head` as this process last wrote it (or will have, once the batches in
/// flight commit), with each stream assumed at the version its first
/// command expects. `None` when the batch cannot be laid out without reading
/// (an `Any` append, or nothing left to write after in-batch conflicts).
pub(crate) fn lay_out<'a>(batch: &'a [PreparedAppend], head: &KnownHead) -> Option<FastPlan<'a>> {
    let mut assumed: HashMap<&str, u64> = HashMap::new();
    for p in batch {
        for s in &p.request.streams {
            let v = match s.expected {
                ExpectedVersion::Any => return None,
                ExpectedVersion::NoStream => 0,
                ExpectedVersion::Exact(v) => v,
            };
            assumed.entry(s.stream.as_str()).or_insert(v);
        }
    }
    let (names, versions): (Vec<&str>, Vec<i64>) =
        assumed.iter().map(|(s, v)| (*s, *v as i64)).unzip();
    // The database clock as this process reads it through the offset, in
    // microseconds (what timestamptz keeps, and what the chain hashes),
    // never before the head's.
    let now = Utc::now() + head.clock_offset;
    let now = DateTime::<Utc>::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
    let start = KnownHead {
        recorded_at: now.max(head.recorded_at),
        ..head.clone()
    };
    let plan = plan(batch, &start, assumed, HashMap::new());
    // Every command conflicting with an earlier one in the batch: only the
    // two-step path can tell the callers the versions for certain.
    if plan.rows.position.is_empty() {
        return None;
    }
    Some(FastPlan {
        head: head.position,
        names,
        versions,
        recorded_at: start.recorded_at,
        plan,
    })
}

/// Sends a laid-out batch as one statement outside any explicit
/// transaction, so lock, checks, insert and commit cost a single round
/// trip. An `Err` means something moved, a key was already used, or
/// anything else failed: nothing was written then, and the caller takes
/// [`append_locked`] instead.
///
/// The two-step path writes with the same statement inside its transaction,
/// where the checks pass under the lock it already holds.
pub(crate) async fn append_at(
    conn: &mut PgConnection,
    fast: FastPlan<'_>,
) -> Result<(Vec<Result<AppendOutcome, StoreError>>, KnownHead), StoreError> {
    let FastPlan {
        head,
        names,
        versions,
        recorded_at,
        plan:
            Plan {
                results,
                rows,
                idem_rows,
                after,
            },
    } = fast;
    sqlx::query(
        "SELECT factlog_append_at($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
         $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)",
    )
    .bind(head)
    .bind(&names)
    .bind(&versions)
    .bind(&rows.position)
    .bind(&rows.event_id)
    .bind(&rows.stream)
    .bind(&rows.version)
    .bind(&rows.event_type)
    .bind(&rows.data)
    .bind(&rows.metadata)
    .bind(&rows.actor)
    .bind(&rows.hash)
    .bind(recorded_at)
    .bind(&idem_rows.scope)
    .bind(&idem_rows.key)
    .bind(&idem_rows.method)
    .bind(&idem_rows.path)
    .bind(&idem_rows.request_hash)
    .bind(&idem_rows.status)
    .bind(&idem_rows.response)
    .bind(&idem_rows.position)
    .bind(after.position)
    .bind(after.hash.to_vec())
    .bind(&rows.secret_position)
    .bind(&rows.secret)
    .execute(&mut *conn)
    .await?;
    Ok((results, after))
}
