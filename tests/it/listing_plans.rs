//! Filtered listings stay on the filter's index, whatever the filtered rows'
//! place in the key order. The claims editors list most (`status=pending`)
//! are the newest; a plan that walks the primary key and filters row by row
//! reads every older claim first, on every page.

use factlog::projections::read::{ClaimFilter, explain_claims};
use sqlx::Connection;
use uuid::Uuid;

use crate::support::TestDb;

/// A connection that plans every statement as a pooled connection does once
/// it has cached it: generically, without the arguments.
async fn generic_plans(db: &TestDb) -> sqlx::PgConnection {
    let mut conn = sqlx::PgConnection::connect(&db.url)
        .await
        .expect("connection");
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut conn)
        .await
        .expect("generic plans");
    conn
}

#[tokio::test]
async fn pending_claims_are_listed_from_the_status_index() {
    let db = TestDb::new().await;
    // 3,000 verified claims, then 2,000 pending ones at the far end of the
    // key order: common enough that the planner expects to meet one every
    // few rows along the primary key.
    sqlx::query(
        "INSERT INTO claim_versions (claim_id, fact_id, from_position, recorded_from, state, \
             story_id, status, asserted_by) \
         SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, \
                gen_random_uuid(), i, now(), '{}', gen_random_uuid(), \
                CASE WHEN i > 3000 THEN 'pending' ELSE 'verified' END, 'ann' \
         FROM generate_series(1, 5000) AS i",
    )
    .execute(&db.pool)
    .await
    .expect("claims");
    sqlx::query("ANALYZE claim_versions")
        .execute(&db.pool)
        .await
        .expect("analyze");

    let mut conn = generic_plans(&db).await;
    let filter = ClaimFilter {
        status: Some("pending".into()),
        ..ClaimFilter::default()
    };
    for after in [None, Some(Uuid::nil())] {
        let plan = explain_claims(&mut conn, &filter, after, 21)
            .await
            .expect("explain")
            .join("\n");
        assert!(
            plan.contains("claim_versions_open_status") && !plan.contains("claim_versions_pkey"),
            "the listing should read claim_versions_open_status, not walk the primary key:\n{plan}"
        );
    }
}

/// The fact cache's pass (`fact_changes`), in the generic plan a connection
/// caches, reads the events after the checkpoint it last saw by position and
/// looks each one's claim up by key. (Written as a join, the statement took
/// 3.9 ms per pass in the write benchmark, ten passes a second or more, with
/// whole scans of `claim_versions` among its plans; this guards the shape
/// that cannot do that.)
#[tokio::test]
async fn the_fact_cache_pass_looks_claims_up_by_key() {
    let db = TestDb::new().await;
    sqlx::raw_sql(
        "INSERT INTO claim_versions (claim_id, fact_id, from_position, recorded_from, state, \
             story_id, status, asserted_by) \
         SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, \
                gen_random_uuid(), i, now(), '{}', gen_random_uuid(), 'pending', 'ann' \
         FROM generate_series(1, 5000) AS i; \
         INSERT INTO events (position, event_id, stream, version, type, data, metadata, actor, \
             recorded_at, hash) \
         SELECT i, gen_random_uuid(), \
                'claim-00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'), 1, \
                'ClaimAsserted', '{}', '{}', 'ann', now(), decode(repeat('00', 32), 'hex') \
         FROM generate_series(1, 5000) AS i; \
         ANALYZE claim_versions; ANALYZE events;",
    )
    .execute(&db.pool)
    .await
    .expect("claims and their events");

    let mut conn = generic_plans(&db).await;
    // Run it as the pass does (a prepared statement) with the generic plan.
    let plan = factlog::projections::read::explain_fact_changes(&mut conn, 0, 1, 10_001)
        .await
        .expect("explain")
        .join("\n");
    assert!(
        plan.contains("Index Scan using events_pkey")
            && plan.contains("Index Scan using claim_versions_pkey")
            && !plan.contains("events_stream_version")
            && !plan.contains("Seq Scan")
            && !plan.contains("Hash"),
        "each claim event's fact should be looked up by key:\n{plan}"
    );
}
