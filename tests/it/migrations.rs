//! Upgrades of databases that hold data: what a migration derives from
//! stored rows is checked against what the code of the day would write.

use chrono::{DateTime, Utc};
use factlog::db::MIGRATOR;
use factlog::domain::claim::{self, Claim, Recorded};
use factlog::projections::read::{ClaimFilter, claims};
use uuid::Uuid;

use crate::projection_runs::{assert_event, verifying_confirmation};
use crate::support::TestDb;

/// 0015 moves the claims listings onto the open versions of
/// `claim_versions`: the new columns of every version, open or closed, come
/// from that version's own stored state, and `claims_view` goes.
#[tokio::test]
async fn migration_0015_fills_claim_versions_from_their_states() {
    let db = TestDb::unmigrated().await;
    MIGRATOR
        .run_to(14, &db.pool)
        .await
        .expect("migrations up to 0014");

    let (claim_id, story_id) = (Uuid::now_v7(), Uuid::now_v7());
    let at = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
    let asserted = claim::evolve(
        None,
        &assert_event(claim_id, story_id, 5_200, None),
        &Recorded {
            actor: "ann".into(),
            at: at("2026-11-01T10:00:00Z"),
        },
    )
    .expect("asserted");
    let verified: Claim = claim::evolve(
        Some(asserted.clone()),
        &verifying_confirmation(),
        &Recorded {
            actor: "bob".into(),
            at: at("2026-11-01T11:00:00Z"),
        },
    )
    .expect("verified");
    let json = |c: &Claim| serde_json::to_string(c).expect("state");
    let fact_id = asserted.asserted.fact_id;
    // What the two projections of the day held: the claim's row, and its
    // versions (the first closed where the second begins).
    sqlx::query(
        "INSERT INTO claims_view (claim_id, story_id, fact_id, status, asserted_by, state, position) \
         VALUES ($1, $2, $3, 'verified', 'ann', $4::json, 2)",
    )
    .bind(claim_id)
    .bind(story_id)
    .bind(fact_id)
    .bind(json(&verified))
    .execute(&db.pool)
    .await
    .expect("claims_view row");
    sqlx::query(
        "INSERT INTO claim_versions (claim_id, fact_id, from_position, to_position, recorded_from, \
             recorded_to, state) \
         VALUES ($1, $2, 1, 2, '2026-11-01T10:00:00Z', '2026-11-01T11:00:00Z', $3::json), \
                ($1, $2, 2, NULL, '2026-11-01T11:00:00Z', NULL, $4::json)",
    )
    .bind(claim_id)
    .bind(fact_id)
    .bind(json(&asserted))
    .bind(json(&verified))
    .execute(&db.pool)
    .await
    .expect("claim_versions rows");

    MIGRATOR
        .run(&db.pool)
        .await
        .expect("the rest of the migrations");

    let versions: Vec<(Uuid, String, String, Option<i64>)> = sqlx::query_as(
        "SELECT story_id, status, asserted_by, to_position FROM claim_versions \
         ORDER BY from_position",
    )
    .fetch_all(&db.pool)
    .await
    .expect("versions");
    assert_eq!(
        versions,
        vec![
            (story_id, "pending".to_owned(), "ann".to_owned(), Some(2)),
            (story_id, "verified".to_owned(), "ann".to_owned(), None),
        ],
        "each version keeps its own status"
    );
    let listed = claims(
        &db.pool,
        &ClaimFilter {
            status: Some("verified".into()),
            story_id: Some(story_id),
            asserted_by: Some("ann".into()),
        },
        None,
        10,
    )
    .await
    .expect("listing");
    assert_eq!(listed.len(), 1, "the claim is listed once, as it is now");
    assert_eq!(listed[0].0, claim_id);
    let pending = claims(
        &db.pool,
        &ClaimFilter {
            status: Some("pending".into()),
            ..ClaimFilter::default()
        },
        None,
        10,
    )
    .await
    .expect("listing");
    assert!(pending.is_empty(), "its closed version is not listed");
    let gone: (Option<String>, Vec<String>) = sqlx::query_as(
        "SELECT to_regclass('claims_view')::text, \
                ARRAY(SELECT name FROM projection_checkpoints ORDER BY name)",
    )
    .fetch_one(&db.pool)
    .await
    .expect("catalog");
    assert_eq!(gone, (None, vec!["facts".to_owned(), "tree".to_owned()]));
}
