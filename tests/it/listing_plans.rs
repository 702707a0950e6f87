//! Filtered listings stay on the filter's index, whatever the filtered rows'
//! place in the key order. The claims editors list most (`status=pending`)
//! are the newest; a plan that walks the primary key and filters row by row
//! reads every older claim first, on every page.

use factlog::projections::read::{ClaimFilter, explain_claims};
use sqlx::Connection;
use uuid::Uuid;

use crate::support::TestDb;

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

    let mut conn = sqlx::PgConnection::connect(&db.url)
        .await
        .expect("connection");
    // What a pooled connection ends up with once it caches the statement.
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut conn)
        .await
        .expect("generic plans");
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
