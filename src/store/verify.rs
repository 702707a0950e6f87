//! Recomputing the hash chain over the whole log (`factlog verify`, and
//! later `GET /v1/integrity`).

use futures::TryStreamExt;
use sqlx::PgPool;

use super::chain::{self, ChainFields, GENESIS, HASH_LEN};
use super::error::StoreError;
use super::read::{Row, event_columns};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub ok: bool,
    /// Events whose links were recomputed.
    pub checked: u64,
    /// The first position where the chain breaks: an altered event, a
    /// missing one (the position after a gap), or a truncated tail (one past
    /// the last event when the recorded head is further on).
    pub first_bad_position: Option<i64>,
    /// The last event's position and stored hash (what auditors keep).
    pub head_position: i64,
    pub head_hash: String,
}

/// Streams the log in position order and recomputes every link. Stops at the
/// first break. `progress` is called every `every` events with the count so far.
pub async fn verify(
    pool: &PgPool,
    every: u64,
    mut progress: impl FnMut(u64),
) -> Result<VerifyReport, StoreError> {
    let mut conn = pool.acquire().await?;
    let recorded_head: (i64, Vec<u8>) = sqlx::query_as("SELECT position, hash FROM event_head")
        .fetch_one(&mut *conn)
        .await?;

    let mut prev: [u8; HASH_LEN] = GENESIS;
    let mut expected_position = 1i64;
    let mut checked = 0u64;
    let mut first_bad = None;
    let mut last = (0i64, GENESIS.to_vec());
    {
        let mut rows = sqlx::query_as::<_, Row>(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events ORDER BY position"
        ))
        .fetch(&mut *conn);
        while let Some(r) = rows.try_next().await? {
            let (position, event_id, stream, version, event_type, data, metadata, actor, at, hash) =
                r;
            if position != expected_position {
                first_bad = Some(expected_position);
                break;
            }
            let data = chain::canonical_json(&data);
            let metadata = chain::canonical_json(&metadata);
            let computed = chain::link(
                &prev,
                &ChainFields {
                    position,
                    event_id,
                    stream: &stream,
                    version,
                    event_type: &event_type,
                    data: &data,
                    actor: &actor,
                    metadata: &metadata,
                    recorded_at: at,
                },
            );
            if computed.as_slice() != hash.as_slice() {
                first_bad = Some(position);
                break;
            }
            prev = computed;
            checked += 1;
            expected_position += 1;
            last = (position, hash);
            if every > 0 && checked.is_multiple_of(every) {
                progress(checked);
            }
        }
    }
    // A log that ends before its recorded head lost its tail.
    if first_bad.is_none() && (recorded_head.0 != last.0 || recorded_head.1 != last.1) {
        first_bad = Some(last.0 + 1);
    }
    Ok(VerifyReport {
        ok: first_bad.is_none(),
        checked,
        first_bad_position: first_bad,
        head_position: last.0,
        head_hash: hex::encode(&last.1),
    })
}
