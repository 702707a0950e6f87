//! Projection batches are planned for the handful of rows they touch. Planner
//! estimates on the projections' tables can be far off (a fresh or rebuilt
//! table has no statistics; a skewed one has bad ones), and an estimate of
//! thousands of rows made the planner start parallel workers for a batch
//! that reads a few: 7 ms of start-up around 0.1 ms of work, every batch.

use factlog::projections::{batch_options, explain_open_states};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use crate::support::TestDb;

#[tokio::test]
async fn a_batch_look_up_never_starts_parallel_workers() {
    let db = TestDb::new().await;
    // 300,000 versions and no statistics yet (as in a fresh or rebuilt
    // table before autovacuum's first ANALYZE): the planner's default
    // selectivities promise a large share of the table for 100 claims.
    sqlx::query(
        "INSERT INTO claim_versions \
           (claim_id, fact_id, from_position, to_position, recorded_from, recorded_to, state, \
            story_id, status, asserted_by) \
         SELECT gen_random_uuid(), '00000000-0000-5000-8000-000000000001', i, i + 1, now(), now(), \
                '{\"padding\": \"................................................................\"}', \
                gen_random_uuid(), 'pending', 'ann' \
         FROM generate_series(1, 300000) AS i",
    )
    .execute(&db.pool)
    .await
    .expect("versions");
    let ids: Vec<Uuid> = (0..100).map(|_| Uuid::now_v7()).collect();

    // The premise: with PostgreSQL's default settings this look-up goes
    // parallel.
    let mut pooled = db.pool.acquire().await.expect("pooled connection");
    let default_plan = plan_of(&mut pooled, &ids).await;
    assert!(
        default_plan.contains("Gather"),
        "this test needs statistics that make the default plan parallel:\n{default_plan}"
    );

    let plan = plan_of(&mut worker_connection(&db).await, &ids).await;
    assert!(
        !plan.contains("Gather") && plan.contains("claim_versions_pkey"),
        "a worker's batch should read the primary key without parallel workers:\n{plan}"
    );
}

/// A worker prepares its statements once and PostgreSQL may keep the first
/// plan it finds worth keeping; on a new, empty table every index looks
/// equally cheap. The look-up must still be planned on the primary key
/// then, not on a claims listing index that merely contains `claim_id`
/// (which would be read whole on every batch once the table has grown).
#[tokio::test]
async fn a_batch_look_up_planned_on_an_empty_table_reads_the_key() {
    let db = TestDb::new().await;
    let mut worker = worker_connection(&db).await;
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut worker)
        .await
        .expect("generic plans");
    let ids: Vec<Uuid> = (0..10).map(|_| Uuid::now_v7()).collect();
    let plan = plan_of(&mut worker, &ids).await;
    assert!(
        plan.contains("claim_versions_pkey"),
        "the look-up should read the primary key:\n{plan}"
    );
}

/// A connection as a projection worker opens it.
async fn worker_connection(db: &TestDb) -> PgConnection {
    PgConnection::connect_with(&batch_options(&db.pool))
        .await
        .expect("a worker's connection")
}

/// The plan `conn` makes for the batch look-up of `ids`' current states.
async fn plan_of(conn: &mut PgConnection, ids: &[Uuid]) -> String {
    explain_open_states(conn, ids)
        .await
        .expect("explain")
        .join("\n")
}
