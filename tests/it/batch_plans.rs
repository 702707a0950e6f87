//! Projection batches are planned for the handful of rows they touch. Planner
//! estimates on the projections' tables can be far off (a fresh or rebuilt
//! table has no statistics; a skewed one has bad ones), and an estimate of
//! thousands of rows made the planner start parallel workers for a batch
//! that reads a few: 7 ms of start-up around 0.1 ms of work, every batch.
//! Workers' connections forbid parallel plans for that reason; the look-up
//! of claims' current states is also on a unique index now (one row per
//! claim, whatever the statistics say), so it stays small on any connection.

use factlog::projections::{batch_options, explain_open_states};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::support::TestDb;

#[tokio::test]
async fn the_current_states_look_up_stays_on_its_unique_index() {
    let db = TestDb::new().await;
    // 300,000 current versions and no statistics yet (as in a fresh or rebuilt
    // table before autovacuum's first ANALYZE): the planner's default
    // selectivities promise a large share of the table for 100 claims.
    sqlx::query(
        "INSERT INTO claim_versions \
           (claim_id, fact_id, from_position, to_position, recorded_from, recorded_to, state, \
            story_id, status, asserted_by) \
         SELECT gen_random_uuid(), '00000000-0000-5000-8000-000000000001', i, NULL, now(), NULL, \
                '{\"padding\": \"................................................................\"}', \
                gen_random_uuid(), 'pending', 'ann' \
         FROM generate_series(1, 300000) AS i",
    )
    .execute(&db.pool)
    .await
    .expect("versions");
    let ids: Vec<Uuid> = (0..100).map(|_| Uuid::now_v7()).collect();
    let mut pooled = db.pool.acquire().await.expect("pooled connection");
    let mut worker = PgConnection::connect_with(&batch_options(&db.pool))
        .await
        .expect("a worker's connection");
    for (who, conn) in [("a pooled", &mut *pooled), ("a worker's", &mut worker)] {
        let plan = explain_open_states(conn, &ids)
            .await
            .expect("explain")
            .join("\n");
        assert!(
            !plan.contains("Gather") && plan.contains("claim_versions_open "),
            "on {who} connection the look-up should read claim_versions_open without \
             parallel workers:\n{plan}"
        );
    }
}
