//! Recomputing the hash chain: over the whole log (`factlog verify`, the
//! background verifier's full passes) or over a stretch of it from a link
//! already known to hold (the verifier extending its verified prefix, and
//! `GET /v1/integrity` checking what lies beyond it).

use futures::TryStreamExt;
use sqlx::{PgConnection, PgPool};

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

/// A stretch of the chain re-hashed from a link known to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Events whose links were recomputed and held.
    pub checked: u64,
    /// The first position that breaks the chain: an altered event or the
    /// position after a gap.
    pub first_bad: Option<i64>,
    /// The last event that held (the starting link when none did).
    pub last_position: i64,
    pub last_hash: [u8; HASH_LEN],
}

/// Streams the events after `from` (whose hash is `from_hash`) up to
/// `until`, at most `limit` of them, in position order, and recomputes each
/// link. Stops at the first break. Memory does not depend on how many are
/// read: rows are hashed as they arrive.
pub async fn rehash(
    conn: &mut PgConnection,
    from: (i64, [u8; HASH_LEN]),
    until: i64,
    limit: Option<i64>,
    every: u64,
    mut progress: impl FnMut(u64),
) -> Result<Segment, StoreError> {
    let mut seg = Segment {
        checked: 0,
        first_bad: None,
        last_position: from.0,
        last_hash: from.1,
    };
    let mut rows = sqlx::query_as::<_, Row>(concat!(
        "SELECT ",
        event_columns!(),
        " FROM events WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3"
    ))
    .bind(from.0)
    .bind(until)
    .bind(limit)
    .fetch(&mut *conn);
    while let Some(r) = rows.try_next().await? {
        let (position, event_id, stream, version, event_type, data, metadata, actor, at, hash) = r;
        if position != seg.last_position + 1 {
            seg.first_bad = Some(seg.last_position + 1);
            break;
        }
        let data = chain::canonical_json(&data);
        let metadata = chain::canonical_json(&metadata);
        let computed = chain::link(
            &seg.last_hash,
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
            seg.first_bad = Some(position);
            break;
        }
        seg.checked += 1;
        seg.last_position = position;
        seg.last_hash = computed;
        if every > 0 && seg.checked.is_multiple_of(every) {
            progress(seg.checked);
        }
    }
    Ok(seg)
}

/// The recorded head (`event_head`): the last position and its hash.
pub async fn recorded_head(conn: &mut PgConnection) -> Result<(i64, [u8; HASH_LEN]), StoreError> {
    let (position, hash): (i64, Vec<u8>) = sqlx::query_as("SELECT position, hash FROM event_head")
        .fetch_one(&mut *conn)
        .await?;
    Ok((position, to_hash(&hash)?))
}

pub(crate) fn to_hash(bytes: &[u8]) -> Result<[u8; HASH_LEN], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("a stored hash is not 32 bytes".into()))
}

/// Where a segment that ran to the recorded head without a break leaves the
/// chain: a log that ends before its recorded head lost its tail (the break
/// is one past its last event), and a last event whose hash is not the
/// recorded one was altered (or the head was).
pub fn check_against_head(seg: &Segment, head: (i64, [u8; HASH_LEN])) -> Option<i64> {
    if seg.first_bad.is_some() {
        return seg.first_bad;
    }
    if seg.last_position < head.0 {
        return Some(seg.last_position + 1);
    }
    if seg.last_position == head.0 && seg.last_hash != head.1 {
        return Some(head.0);
    }
    None
}

/// Streams the log in position order and recomputes every link. Stops at the
/// first break. `progress` is called every `every` events with the count so far.
pub async fn verify(
    pool: &PgPool,
    every: u64,
    progress: impl FnMut(u64),
) -> Result<VerifyReport, StoreError> {
    let mut conn = pool.acquire().await?;
    let head = recorded_head(&mut conn).await?;
    // Everything up to the recorded head: events appended meanwhile belong
    // to a later run.
    let seg = rehash(&mut conn, (0, GENESIS), head.0, None, every, progress).await?;
    let first_bad = check_against_head(&seg, head);
    Ok(VerifyReport {
        ok: first_bad.is_none(),
        checked: seg.checked,
        first_bad_position: first_bad,
        head_position: seg.last_position,
        head_hash: hex::encode(seg.last_hash),
    })
}
