//! The chain verifier keeps a verified prefix so that an integrity check
//! costs the log's newest events, not the whole log, and still catches
//! every kind of tampering: an edit that keeps the old hashes (at the next
//! full pass), a rewrite with every later hash recomputed (at once, at the
//! prefix's end), a deleted or cut-off tail (at once).

use factlog::store::chain::{self, ChainFields, GENESIS, HASH_LEN};
use factlog::store::integrity::{self, Extended};
use factlog::store::verify_chain;
use serde_json::Value;
use sqlx::{Connection, PgConnection};

use crate::store_integrity::{seed, tamper};
use crate::support::TestDb;

#[tokio::test]
async fn a_request_rehashes_only_past_the_verified_prefix_and_says_how_far_it_got() {
    let db = TestDb::new().await;
    seed(&db.store().await, 12).await;

    // No verifier has run: a request re-hashes at most its bound.
    let r = integrity::report(&db.pool, 5).await.expect("report");
    assert_eq!(
        (r.ok, r.checked, r.unverified, r.head_position),
        (true, 5, 7, 12)
    );

    assert_eq!(
        integrity::extend(&db.pool, 100).await.expect("extend"),
        Extended::Advanced(12)
    );
    assert_eq!(
        integrity::extend(&db.pool, 100).await.expect("extend"),
        Extended::Advanced(0)
    );
    let r = integrity::report(&db.pool, 5).await.expect("report");
    assert_eq!((r.ok, r.checked, r.unverified), (true, 12, 0));
    assert_eq!(r.state.position, 12);
    let verified = verify_chain(&db.pool, 0, |_| {}).await.expect("verify");
    assert_eq!(r.head_hash, verified.head_hash);

    // Three more: the request covers them past the prefix.
    seed(&db.store().await, 3).await;
    let r = integrity::report(&db.pool, 5).await.expect("report");
    assert_eq!(
        (r.ok, r.checked, r.unverified, r.head_position),
        (true, 15, 0, 15)
    );
}

#[tokio::test]
async fn an_edit_inside_the_prefix_that_keeps_the_hashes_is_caught_by_the_full_pass() {
    let db = TestDb::new().await;
    seed(&db.store().await, 12).await;
    integrity::extend(&db.pool, 100).await.expect("extend");
    tamper(
        &db,
        "UPDATE events SET data = jsonb_set(data, '{i}', '70') WHERE position = 7",
    )
    .await;
    // Every stored hash is as verified: only re-hashing event 7 shows it.
    assert!(integrity::report(&db.pool, 100).await.expect("report").ok);

    let pass = integrity::full_pass(&db.pool, 0, |_| {})
        .await
        .expect("full pass")
        .expect("no other pass runs");
    assert_eq!(pass.first_bad_position, Some(7));
    let r = integrity::report(&db.pool, 100).await.expect("report");
    assert_eq!(
        (r.ok, r.first_bad_position, r.checked, r.head_position),
        (false, Some(7), 6, 12)
    );
    assert_eq!(r.state.full_ok, Some(false));
    // The break sticks: extending stops there.
    assert_eq!(
        integrity::extend(&db.pool, 100).await.expect("extend"),
        Extended::Broken(7)
    );
}

/// Rewrites event `position`'s data and recomputes every later hash (and
/// the recorded head), as someone with the database and this code could:
/// the chain then holds link by link, and `factlog verify` passes.
pub(crate) async fn rewrite_and_rechain(db: &TestDb, position: i64) {
    let mut conn = PgConnection::connect(&db.url).await.expect("connect");
    sqlx::query("ALTER TABLE events DISABLE TRIGGER ALL")
        .execute(&mut conn)
        .await
        .expect("disable");
    sqlx::query("UPDATE events SET data = jsonb_set(data, '{i}', '700') WHERE position = $1")
        .bind(position)
        .execute(&mut conn)
        .await
        .expect("rewrite");
    type Row = (
        i64,
        uuid::Uuid,
        String,
        i64,
        String,
        Value,
        Value,
        String,
        chrono::DateTime<chrono::Utc>,
        Vec<u8>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT position, event_id, stream, version, type, data, metadata, actor, recorded_at, \
         hash FROM events ORDER BY position",
    )
    .fetch_all(&mut conn)
    .await
    .expect("rows");
    let mut prev: [u8; HASH_LEN] = GENESIS;
    for (pos, id, stream, version, ty, data, metadata, actor, at, hash) in rows {
        let (data, metadata) = (
            chain::canonical_json(&data),
            chain::canonical_json(&metadata),
        );
        let h = chain::link(
            &prev,
            &ChainFields {
                position: pos,
                event_id: id,
                stream: &stream,
                version,
                event_type: &ty,
                data: &data,
                actor: &actor,
                metadata: &metadata,
                recorded_at: at,
            },
        );
        if h.as_slice() != hash.as_slice() {
            sqlx::query("UPDATE events SET hash = $1 WHERE position = $2")
                .bind(h.as_slice())
                .bind(pos)
                .execute(&mut conn)
                .await
                .expect("rechain");
            sqlx::query("UPDATE event_head SET hash = $1 WHERE position = $2")
                .bind(h.as_slice())
                .bind(pos)
                .execute(&mut conn)
                .await
                .expect("head");
        }
        prev = h;
    }
    sqlx::query("ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_update_delete")
        .execute(&mut conn)
        .await
        .expect("enable");
}

#[tokio::test]
async fn a_rewrite_with_every_later_hash_recomputed_is_caught_at_once() {
    let db = TestDb::new().await;
    seed(&db.store().await, 12).await;
    integrity::extend(&db.pool, 100).await.expect("extend");
    rewrite_and_rechain(&db, 4).await;
    assert!(
        verify_chain(&db.pool, 0, |_| {}).await.expect("verify").ok,
        "the rewritten chain holds link by link"
    );
    // But event 12 is not the event 12 that was verified.
    let r = integrity::report(&db.pool, 100).await.expect("report");
    assert_eq!((r.ok, r.first_bad_position), (false, Some(12)));
    // Nor does a full pass take the rewritten log for the verified one.
    let pass = integrity::full_pass(&db.pool, 0, |_| {})
        .await
        .expect("pass")
        .expect("ran");
    assert_eq!(pass.first_bad_position, Some(12));
    assert!(!integrity::report(&db.pool, 100).await.expect("report").ok);
}

#[tokio::test]
async fn a_cut_tail_is_caught_inside_and_past_the_prefix() {
    // Past the prefix: the last event deleted, the recorded head left.
    let db = TestDb::new().await;
    seed(&db.store().await, 6).await;
    integrity::extend(&db.pool, 100).await.expect("extend");
    seed(&db.store().await, 2).await;
    tamper(&db, "DELETE FROM events WHERE position = 8").await;
    let r = integrity::report(&db.pool, 100).await.expect("report");
    assert_eq!(
        (r.ok, r.first_bad_position, r.head_position),
        (false, Some(8), 8)
    );

    // Inside it: events cut and the recorded head moved back to match.
    let db = TestDb::new().await;
    seed(&db.store().await, 6).await;
    integrity::extend(&db.pool, 100).await.expect("extend");
    tamper(&db, "DELETE FROM events WHERE position >= 5").await;
    sqlx::query(
        "UPDATE event_head SET position = 4, hash = (SELECT hash FROM events WHERE position = 4)",
    )
    .execute(&db.pool)
    .await
    .expect("head");
    let r = integrity::report(&db.pool, 100).await.expect("report");
    assert_eq!(
        (r.ok, r.first_bad_position, r.head_position),
        (false, Some(5), 4)
    );
}

#[tokio::test]
async fn one_full_pass_at_a_time_and_asking_again_before_it_starts_changes_nothing() {
    let db = TestDb::new().await;
    seed(&db.store().await, 3).await;
    let first = integrity::request_full_pass(&db.pool, "audrey")
        .await
        .expect("ask");
    assert!(first.full_pending());
    let again = integrity::request_full_pass(&db.pool, "mallory")
        .await
        .expect("ask");
    assert_eq!(
        (again.full_requested_at, again.full_requested_by.as_deref()),
        (first.full_requested_at, Some("audrey"))
    );

    // A pass holding the lock keeps a second from starting.
    let mut holder = PgConnection::connect(&db.url).await.expect("connect");
    sqlx::query("SELECT pg_advisory_lock((x'0FAC7106'::bigint << 16) | x'100'::bigint)")
        .execute(&mut holder)
        .await
        .expect("lock");
    assert_eq!(
        integrity::full_pass(&db.pool, 0, |_| {})
            .await
            .expect("pass"),
        None
    );
    holder.close().await.expect("close");
    let pass = integrity::full_pass(&db.pool, 0, |_| {})
        .await
        .expect("pass")
        .expect("ran");
    assert_eq!((pass.checked, pass.first_bad_position), (3, None));
    let s = integrity::state(&db.pool).await.expect("state");
    assert!(!s.full_pending());
    assert_eq!((s.full_ok, s.full_checked), (Some(true), Some(3)));
}
