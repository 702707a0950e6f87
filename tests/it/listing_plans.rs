//! Filtered listings stay on the filter's index, whatever the filtered rows'
//! place in the key order. The claims editors list most (`status=pending`)
//! are the newest; a plan that walks the primary key and filters row by row
//! reads every older claim first, on every page.

use factlog::projections::read::{ClaimFilter, explain_claims, explain_claims_changed_after};
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

/// Generic plans over a large log cost more than `jit_above_cost`; the
/// service's pooled connections never pay for compiling them.
#[tokio::test]
async fn the_services_connections_never_jit_compile() {
    let db = TestDb::new().await;
    let jit: String = sqlx::query_scalar("SHOW jit")
        .fetch_one(&db.pool)
        .await
        .expect("show");
    assert_eq!(jit, "off");
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

/// The ClaimReview feed pages through the open versions by the time they
/// were recorded, from `claim_versions_open_recorded`: no sort of every
/// claim changed since `since`.
#[tokio::test]
async fn the_claim_review_feed_reads_its_page_from_an_index() {
    let db = TestDb::new().await;
    sqlx::query(
        "INSERT INTO claim_versions (claim_id, fact_id, from_position, recorded_from, state, \
             story_id, status, asserted_by) \
         SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, \
                gen_random_uuid(), i, timestamptz '2026-01-01' + i * interval '1 second', '{}', \
                gen_random_uuid(), 'verified', 'ann' \
         FROM generate_series(1, 20000) AS i",
    )
    .execute(&db.pool)
    .await
    .expect("claims");
    sqlx::query("ANALYZE claim_versions")
        .execute(&db.pool)
        .await
        .expect("analyze");
    let mut conn = generic_plans(&db).await;
    for at in ["2026-01-01T00:00:00Z", "2026-01-01T05:00:00Z"] {
        let plan =
            explain_claims_changed_after(&mut conn, at.parse().expect("time"), Uuid::nil(), 101)
                .await
                .expect("explain")
                .join("\n");
        assert!(
            plan.contains("claim_versions_open_recorded") && !plan.contains("Sort"),
            "the feed should read claim_versions_open_recorded in order:\n{plan}"
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

/// 100,000 events, a tenth of them the streams of 10,000 claims, and the
/// open versions of those claims spread over 500 facts: enough rows that a
/// plan walking the log shows, few enough to insert in a second.
async fn a_log_to_tempt_the_planner(db: &TestDb, analyze: bool) {
    sqlx::raw_sql(
        "INSERT INTO events (position, event_id, stream, version, type, data, metadata, actor, \
             recorded_at, hash) \
         SELECT i, gen_random_uuid(), \
                CASE WHEN i % 10 = 0 \
                     THEN 'claim-00000000-0000-7000-8000-' || lpad(to_hex(i / 10 % 10000), 12, '0') \
                     ELSE 'story-' || i END, \
                CASE WHEN i % 10 = 0 THEN i / 100000 + 1 ELSE 1 END, \
                'ClaimAsserted', '{}', '{}', (ARRAY['ann','bob','cy'])[i % 3 + 1], \
                timestamptz '2026-01-01' + i * interval '1 second', \
                decode(repeat('00', 32), 'hex') \
         FROM generate_series(1, 100000) AS i; \
         INSERT INTO claim_versions (claim_id, fact_id, from_position, recorded_from, state, \
             story_id, status, asserted_by) \
         SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(c), 12, '0'))::uuid, \
                ('00000000-0000-5000-8000-' || lpad(to_hex(c % 500), 12, '0'))::uuid, \
                c * 10, now(), '{}', gen_random_uuid(), 'pending', 'ann' \
         FROM generate_series(0, 9999) AS c; \
         INSERT INTO event_secrets (position, secrets) \
         SELECT i, '{\"quote\": {\"salt\": \"00\", \"value\": \"x\"}}' \
         FROM generate_series(2, 100000, 2) AS i; \
         UPDATE projection_checkpoints SET position = 100000 WHERE name = 'facts';",
    )
    .execute(&db.pool)
    .await
    .expect("a log");
    if analyze {
        sqlx::raw_sql("ANALYZE events; ANALYZE claim_versions; ANALYZE event_secrets;")
            .execute(&db.pool)
            .await
            .expect("analyze");
    }
}

/// A fact's history page reads its claims' streams through the log's
/// `(stream, version)` index, never the log by position: with or without
/// planner statistics (a fresh log has none until autovacuum's ANALYZE).
#[tokio::test]
async fn a_fact_history_page_reads_its_claims_streams_not_the_log() {
    for analyze in [false, true] {
        let db = TestDb::new().await;
        a_log_to_tempt_the_planner(&db, analyze).await;
        let mut conn = generic_plans(&db).await;
        let fact: Uuid = "00000000-0000-5000-8000-000000000007"
            .parse()
            .expect("uuid");
        for after in [0, 50_000] {
            let plan =
                factlog::projections::read::explain_fact_history(&mut conn, fact, after, 101)
                    .await
                    .expect("explain")
                    .join("\n");
            assert!(
                plan.contains("Index Scan using events_stream_version")
                    && !plan.contains("events_pkey")
                    && !plan.contains("Seq Scan on events"),
                "analyzed: {analyze}, after {after}: the history should read each claim's \
                 stream by its index:\n{plan}"
            );
        }
    }
}

/// Every audit filter reads its page in order from its own index: by actor,
/// by record time, or (no filter) by position; never a sort of the log.
/// (With statistics, as autovacuum leaves a log: before its first ANALYZE
/// the planner expects a handful of rows per actor and may sort them.)
#[tokio::test]
async fn every_audit_filter_reads_its_page_from_an_index() {
    use chrono::TimeZone;
    use factlog::store::{AuditFilter, explain_audit};
    let since = chrono::Utc
        .with_ymd_and_hms(2026, 1, 1, 12, 0, 0)
        .single()
        .expect("time");
    let cases = [
        (AuditFilter::default(), "events_pkey"),
        (
            AuditFilter {
                actor: Some("bob".into()),
                ..AuditFilter::default()
            },
            "events_actor_recorded_at",
        ),
        (
            AuditFilter {
                actor: Some("bob".into()),
                since: Some(since),
                until: Some(since + chrono::Duration::hours(5)),
            },
            "events_actor_recorded_at",
        ),
        (
            AuditFilter {
                since: Some(since),
                ..AuditFilter::default()
            },
            "events_recorded_at",
        ),
        (
            AuditFilter {
                until: Some(since),
                ..AuditFilter::default()
            },
            "events_recorded_at",
        ),
    ];
    let analyze = true;
    let db = TestDb::new().await;
    a_log_to_tempt_the_planner(&db, analyze).await;
    let mut conn = generic_plans(&db).await;
    for (filter, index) in &cases {
        for after in [0, 60_000] {
            let plan = explain_audit(&mut conn, filter, after, 101)
                .await
                .expect("explain")
                .join("\n");
            let main = plan
                .lines()
                .find(|l| l.contains("Scan") && !l.contains("on events events_"))
                .unwrap_or_default();
            assert!(
                main.contains(&format!("Index Scan using {index} on events"))
                    && !plan.contains("Sort")
                    && !plan.contains("Seq Scan"),
                "analyzed: {analyze}, {filter:?} after {after}: expected {index}:\n{plan}"
            );
            // Each event's sealed values by key, never a merge join that
            // walks `event_secrets` from its first row up to the page.
            assert!(
                plan.contains("Index Scan using event_secrets_pkey") && !plan.contains("Merge"),
                "{filter:?} after {after}: secrets not looked up by key:\n{plan}"
            );
        }
    }
}

/// A proof's tiles are each read by key, however many tiles the tree has:
/// a join of the wanted list with `tree_tiles` may be planned as a hash of
/// the whole table, which costs what the log costs.
#[tokio::test]
async fn a_proofs_tiles_are_read_by_key() {
    use factlog::merkle::TileId;
    for analyze in [false, true] {
        let db = TestDb::new().await;
        // 60,000 one-hash leaf tiles and their 235 upper tiles: a tree of
        // some 15M events, as far as the planner can tell.
        sqlx::raw_sql(
            "INSERT INTO tree_tiles (level, idx, width, hashes) \
             SELECT 0, i, 1, decode(repeat('00', 32), 'hex') FROM generate_series(0, 59999) AS i; \
             INSERT INTO tree_tiles (level, idx, width, hashes) \
             SELECT 1, i, 1, decode(repeat('00', 32), 'hex') FROM generate_series(0, 234) AS i;",
        )
        .execute(&db.pool)
        .await
        .expect("tiles");
        if analyze {
            sqlx::query("ANALYZE tree_tiles")
                .execute(&db.pool)
                .await
                .expect("analyze");
        }
        let mut conn = generic_plans(&db).await;
        let wanted: Vec<TileId> = (0..3)
            .map(|i| TileId {
                level: 0,
                index: 20_000 * i,
            })
            .chain([TileId { level: 1, index: 7 }])
            .collect();
        let plan = factlog::store::tree::explain_read_tiles(&mut conn, &wanted)
            .await
            .expect("explain")
            .join("\n");
        assert!(
            plan.contains("tree_tiles_pkey")
                && !plan.contains("Seq Scan on tree_tiles")
                && !plan.contains("Hash"),
            "analyzed: {analyze}: each tile should be looked up by key:\n{plan}"
        );
    }
}

/// A fact's stories (its ClaimReview names them) are read by the log's
/// `(stream, version)` index, one probe per story.
#[tokio::test]
async fn a_facts_stories_are_read_by_key() {
    for analyze in [false, true] {
        let db = TestDb::new().await;
        a_log_to_tempt_the_planner(&db, analyze).await;
        let mut conn = generic_plans(&db).await;
        let streams: Vec<String> = (1..=20).map(|i| format!("story-{}", i * 4001)).collect();
        for plan in factlog::store::explain_read_stream_openings(&mut conn, &streams)
            .await
            .expect("explain")
        {
            let plan = plan.join("\n");
            assert!(
                plan.contains("events_stream_version")
                    && !plan.contains("events_pkey")
                    && !plan.contains("Seq Scan on events"),
                "analyzed: {analyze}: each story should be read by its stream:\n{plan}"
            );
        }
    }
}

/// The change feed looks a page's facts up by key: their verified versions
/// from `claim_versions_fact_verified`, and when each began from
/// `claim_versions_fact`; never a scan of every claim version.
#[tokio::test]
async fn the_change_feed_looks_its_facts_up_by_key() {
    for analyze in [false, true] {
        let db = TestDb::new().await;
        a_log_to_tempt_the_planner(&db, false).await;
        for step in [
            "UPDATE claim_versions SET status = 'verified' WHERE from_position % 30 = 0",
            "VACUUM claim_versions",
        ] {
            sqlx::raw_sql(step)
                .execute(&db.pool)
                .await
                .expect("verified claims");
        }
        if analyze {
            sqlx::query("ANALYZE claim_versions")
                .execute(&db.pool)
                .await
                .expect("analyze");
        }
        let mut conn = generic_plans(&db).await;
        let facts: Vec<Uuid> = (0..100)
            .map(|i| {
                format!("00000000-0000-5000-8000-{:012x}", i * 5)
                    .parse()
                    .expect("uuid")
            })
            .collect();
        let plans = factlog::projections::read::explain_fact_feed_lookups(&mut conn, &facts)
            .await
            .expect("explain");
        let (spanning, first) = (plans[0].join("\n"), plans[1].join("\n"));
        assert!(
            spanning.contains("claim_versions_fact_verified") && !spanning.contains("Seq Scan"),
            "analyzed: {analyze}: the verified versions should come from their index:\n{spanning}"
        );
        assert!(
            first.contains("using claim_versions_fact on")
                && !first.contains("Sort")
                && !first.contains("Seq Scan on claim_versions"),
            "analyzed: {analyze}: each fact's start should be one probe:\n{first}"
        );
    }
}

/// A fact's document reads its claims' open versions from
/// `claim_versions_open_fact`: no closed version is read.
#[tokio::test]
async fn a_facts_document_reads_only_its_open_versions() {
    for analyze in [false, true] {
        let db = TestDb::new().await;
        a_log_to_tempt_the_planner(&db, false).await;
        // Every claim a closed version too, and the facts' rows.
        for step in [
            "INSERT INTO claim_versions (claim_id, fact_id, from_position, to_position, \
                 recorded_from, recorded_to, state, story_id, status, asserted_by) \
             SELECT claim_id, fact_id, from_position - 5, from_position, recorded_from, \
                    recorded_from, state, story_id, status, asserted_by FROM claim_versions",
            "INSERT INTO facts_view (fact_id, subject_key, property_key, status, summary) \
             SELECT f, f::text, 'count', 'unverified', '{}'::json \
             FROM (SELECT DISTINCT fact_id FROM claim_versions) d(f)",
        ] {
            sqlx::raw_sql(step).execute(&db.pool).await.expect("rows");
        }
        if analyze {
            sqlx::raw_sql("ANALYZE claim_versions; ANALYZE facts_view;")
                .execute(&db.pool)
                .await
                .expect("analyze");
        }
        let mut conn = generic_plans(&db).await;
        let fact: Uuid = "00000000-0000-5000-8000-000000000007"
            .parse()
            .expect("uuid");
        let plan = factlog::projections::read::explain_fact_claims(&mut conn, &[fact])
            .await
            .expect("explain")
            .join("\n");
        assert!(
            plan.contains("claim_versions_open_fact")
                && !plan.contains("claim_versions_fact ")
                && !plan.contains("Seq Scan on claim_versions"),
            "analyzed: {analyze}: the open versions should come from their index:\n{plan}"
        );
    }
}
