//! Several API processes and a worker on one database behave as one
//! service: the per-token rate limit holds across them, and what one
//! process writes the others read, through projections and fact caches.

use std::time::Duration;

use serde_json::json;

use crate::support::{AppOptions, TestApp, TestDb};

#[tokio::test]
async fn two_api_processes_and_a_worker_keep_one_limit_and_one_truth() {
    let db = TestDb::new().await;
    // The worker: the projections, in a "process" of their own.
    let store = db.store().await;
    let (stop, rx) = tokio::sync::watch::channel(false);
    factlog::projections::spawn_all(&db.pool, &store, &rx, factlog::projections::DEFAULT_LINGER);
    let api = || AppOptions {
        workers: false,
        rate: (2.0, 20.0),
        ..AppOptions::default()
    };
    let one = TestApp::start_on(db.same_database().await, api()).await;
    let two = TestApp::start_on(db.same_database().await, api()).await;
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM api_processes")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(live, 2, "each API process says it is there");
    // The first process counts the second at its next heartbeat.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // One token, spread over both: together they let through the burst
    // (20) and what refills meanwhile (2/s), not twice that.
    let busy = one.token("busy", "reader").await;
    let path = "/v1/claims/00000000-0000-0000-0000-000000000000";
    let started = std::time::Instant::now();
    let mut allowed = 0;
    for i in 0..80 {
        let app = if i % 2 == 0 { &one } else { &two };
        match app.get_json(path, &busy).await.0 {
            404 => allowed += 1,
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    let ceiling = 20 + (2.0 * started.elapsed().as_secs_f64()).ceil() as usize + 1;
    assert!(
        (18..=ceiling).contains(&allowed),
        "{allowed} requests let through; the limit allows at most {ceiling} across both processes"
    );

    // Written through one, read through the other: exact, through the
    // worker's projections and each process's fact cache.
    let ann = one.token("ann", "editor").await;
    let bob = one.token("bob", "editor").await;
    let reader = one.token("rita", "reader").await;
    let (_, _, story) = one
        .post_json(
            "/v1/stories",
            &ann,
            &json!({"title": "T", "publisher": "P", "published_at": "2020-01-01", "body": "Some 5,200 soldiers."}),
        )
        .await;
    let (s, _, claim) = two
        .post_json(
            "/v1/claims",
            &ann,
            &json!({"story_id": story["id"], "subject": "troops", "property": "count", "quote": "Some 5,200 soldiers",
                    "value": {"kind": "quantity", "amount": "5200", "unit": "soldier"}}),
        )
        .await;
    assert_eq!(s, 201, "{claim}");
    let fact = claim["fact_id"].as_str().expect("fact");
    for app in [&one, &two] {
        let (s, _, f) = app
            .get_json(
                &format!("/v1/facts/{fact}?wait_for={}", claim["position"]),
                &reader,
            )
            .await;
        assert_eq!((s, f["status"].as_str()), (200, Some("unverified")), "{f}");
        // Cached now, in each process.
        app.get_json(&format!("/v1/facts/{fact}"), &reader).await;
    }
    let (s, _, confirmed) = one
        .post_json(
            &format!(
                "/v1/claims/{}/confirmations",
                claim["id"].as_str().expect("id")
            ),
            &bob,
            &json!({}),
        )
        .await;
    assert_eq!(s, 200, "{confirmed}");
    for app in [&two, &one] {
        let (s, _, f) = app
            .get_json(
                &format!("/v1/facts/{fact}?wait_for={}", confirmed["position"]),
                &reader,
            )
            .await;
        assert_eq!((s, f["status"].as_str()), (200, Some("verified")), "{f}");
    }
    drop(stop);
}
