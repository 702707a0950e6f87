//! Faults: the database restarting or dropping connections under write load,
//! and the server killed with -9. Writes answer 503 (never 500, never a hang)
//! while the database is away, everything recovers without a restart, and
//! every acknowledged write is in the log exactly once.

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use factlog::db::EphemeralCluster;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::support::{AppOptions, TestApp, TestDb};

/// What a writer saw for each idempotency key: the statuses, and the story
/// id once acknowledged.
type Outcomes = Arc<Mutex<HashMap<String, (Vec<u16>, Option<String>)>>>;

async fn write_load(
    client: reqwest::Client,
    base: String,
    token: String,
    writer: usize,
    stop: Arc<AtomicBool>,
    outcomes: Outcomes,
) {
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        let key = format!("w{writer}-{i}");
        i += 1;
        let started = Instant::now();
        let res = client
            .post(format!("{base}/v1/stories"))
            .bearer_auth(&token)
            .header("Idempotency-Key", &key)
            .json(&json!({"title": key, "publisher": "p", "published_at": "2020-01-01"}))
            .timeout(Duration::from_secs(15))
            .send()
            .await;
        let (status, id) = match res {
            Ok(r) => {
                let status = r.status().as_u16();
                if status == 503 {
                    assert!(
                        r.headers().get("retry-after").is_some(),
                        "503 without Retry-After"
                    );
                }
                let body: Value = r.json().await.unwrap_or(Value::Null);
                (status, body["id"].as_str().map(str::to_owned))
            }
            // The server itself being killed shows as a transport error.
            Err(_) => (0, None),
        };
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "a write hung past the request timeout"
        );
        let mut o = outcomes.lock().await;
        let entry = o.entry(key).or_default();
        entry.0.push(status);
        if status == 201 {
            entry.1 = id;
        }
        if status != 201 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Retries every unacknowledged key with the same Idempotency-Key until it
/// is, then checks every acknowledged story is in the log exactly once.
async fn settle_and_check(base: &str, token: &str, pool: &sqlx::PgPool, outcomes: &Outcomes) {
    let client = reqwest::Client::new();
    let mut o = outcomes.lock().await;
    for (key, (statuses, id)) in o.iter_mut() {
        for s in statuses.iter() {
            assert!(matches!(*s, 0 | 201 | 503), "{key}: unexpected status {s}");
        }
        if id.is_none() {
            let r = client
                .post(format!("{base}/v1/stories"))
                .bearer_auth(token)
                .header("Idempotency-Key", key.as_str())
                .json(&json!({"title": key, "publisher": "p", "published_at": "2020-01-01"}))
                .send()
                .await
                .expect("retry");
            assert_eq!(r.status().as_u16(), 201, "{key}: retry after recovery");
            let body: Value = r.json().await.expect("json");
            *id = body["id"].as_str().map(str::to_owned);
        }
    }
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT data->>'title', count(*) FROM events WHERE type = 'StoryRegistered' GROUP BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("counts");
    let counts: HashMap<String, i64> = counts.into_iter().collect();
    for (key, (_, id)) in o.iter() {
        assert_eq!(
            counts.get(key),
            Some(&1),
            "{key} must be in the log exactly once"
        );
        let stored: Option<String> = sqlx::query_scalar(
            "SELECT data->>'story_id' FROM events WHERE type = 'StoryRegistered' AND data->>'title' = $1",
        )
        .bind(key)
        .fetch_optional(pool)
        .await
        .expect("stored");
        assert_eq!(&stored, id, "{key}: the acknowledged id is the stored one");
    }
    assert_eq!(counts.len(), o.len(), "nothing unasked-for was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_restart_under_load_gives_503s_then_recovers_with_nothing_lost() {
    let cluster = EphemeralCluster::start(false).expect("own cluster");
    let db = TestDb::create_on(&cluster.url("faults")).await;
    let app = TestApp::start_on(db, AppOptions::default()).await;
    let token = app.token("ann", "editor").await;
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes: Outcomes = Arc::default();
    let writers: Vec<_> = (0..6)
        .map(|w| {
            tokio::spawn(write_load(
                app.client.clone(),
                app.base.clone(),
                token.clone(),
                w,
                stop.clone(),
                outcomes.clone(),
            ))
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(800)).await;
    let _cluster = crash_and_restart(cluster, Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.expect("writer");
    }
    let o = outcomes.lock().await;
    let all: Vec<u16> = o.values().flat_map(|v| v.0.iter().copied()).collect();
    assert!(all.contains(&503), "the outage was seen as 503");
    assert!(!all.contains(&500));
    drop(o);
    // Recovered without a restart: new writes succeed.
    let last = outcomes
        .lock()
        .await
        .values()
        .filter(|v| v.0.last() == Some(&201))
        .count();
    assert!(last > 0, "writes succeeded after the restart");
    settle_and_check(&app.base, &token, &app.db.pool, &outcomes).await;
    assert!(
        factlog::store::verify_chain(&app.db.pool, 0, |_| {})
            .await
            .expect("verify")
            .ok
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn terminated_connections_under_load_lose_nothing() {
    let cluster = EphemeralCluster::start(false).expect("own cluster");
    let db = TestDb::create_on(&cluster.url("terminate")).await;
    let admin = factlog::db::pool(&cluster.url("postgres"), 2)
        .await
        .expect("admin");
    let app = TestApp::start_on(db, AppOptions::default()).await;
    let token = app.token("ann", "editor").await;
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes: Outcomes = Arc::default();
    let writers: Vec<_> = (0..6)
        .map(|w| {
            tokio::spawn(write_load(
                app.client.clone(),
                app.base.clone(),
                token.clone(),
                w,
                stop.clone(),
                outcomes.clone(),
            ))
        })
        .collect();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'terminate' AND pid <> pg_backend_pid()")
            .execute(&admin)
            .await
            .expect("terminate");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.expect("writer");
    }
    settle_and_check(&app.base, &token, &app.db.pool, &outcomes).await;
    assert!(
        factlog::store::verify_chain(&app.db.pool, 0, |_| {})
            .await
            .expect("verify")
            .ok
    );
}

fn serve(db: &TestDb, port: u16) -> Child {
    crate::support::serve_command(db, port)
        .env("RUST_LOG", "warn")
        .env("FACTLOG_RATE_LIMIT", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve")
}

pub(crate) async fn ready(base: &str) {
    let started = Instant::now();
    while reqwest::get(format!("{base}/readyz"))
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "serve did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_killed_under_load_loses_no_acknowledged_write() {
    let db = TestDb::new().await;
    let token = factlog::auth::create(&db.pool, "ann", "editor")
        .await
        .expect("token");
    let port = crate::support::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = serve(&db, port);
    ready(&base).await;
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes: Outcomes = Arc::default();
    let client = reqwest::Client::new();
    let writers: Vec<_> = (0..6)
        .map(|w| {
            tokio::spawn(write_load(
                client.clone(),
                base.clone(),
                token.clone(),
                w,
                stop.clone(),
                outcomes.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill().expect("kill -9");
    server.wait().expect("reap");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut server = serve(&db, port);
    ready(&base).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.expect("writer");
    }
    settle_and_check(&base, &token, &db.pool, &outcomes).await;

    // The projections converge to what a rebuild gives.
    let head = factlog::store::read_head(&db.pool)
        .await
        .expect("head")
        .position;
    let started = Instant::now();
    while factlog::projections::lowest_checkpoint(&db.pool, &["facts"])
        .await
        .expect("cp")
        < head
    {
        assert!(started.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill().expect("stop");
    server.wait().expect("reap");
    let live = crate::projection_runs::dump(&db).await;
    for &p in factlog::projections::ALL {
        factlog::projections::rebuild(&db.pool, p, |_| {})
            .await
            .expect("rebuild");
    }
    assert_eq!(live, crate::projection_runs::dump(&db).await);
}

/// Asserts claims and confirms every other one, ignoring failures (the
/// database is away for part of the run).
async fn claim_load(app: Arc<TestApp>, editors: [String; 2], story: String, stop: Arc<AtomicBool>) {
    let mut i = 0u32;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let body = json!({
            "story_id": story, "subject": format!("s{}", i % 20), "property": "p",
            "value": {"kind": "quantity", "amount": i.to_string(), "unit": "soldier"},
            "quote": "q"
        });
        let sent = app
            .post("/v1/claims", &editors[0])
            .json(&body)
            .timeout(Duration::from_secs(15))
            .send()
            .await;
        // The server stays up throughout: only the database goes away.
        let res = sent.expect("the server answers within its request timeout");
        let status = res.status().as_u16();
        assert!(matches!(status, 201 | 503), "assert answered {status}");
        if status != 201 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let claim: Value = res.json().await.unwrap_or(Value::Null);
        if let (Some(id), true) = (claim["id"].as_str(), i.is_multiple_of(2)) {
            let _ = app
                .post(&format!("/v1/claims/{id}/confirmations"), &editors[1])
                .json(&json!({}))
                .timeout(Duration::from_secs(15))
                .send()
                .await;
        }
    }
}

/// Stops the cluster as a crash would (immediate shutdown: no checkpoint, no
/// WAL flush), leaves it down for `down`, then starts it again.
async fn crash_and_restart(mut cluster: EphemeralCluster, down: Duration) -> EphemeralCluster {
    tokio::task::spawn_blocking(move || {
        cluster.halt(true);
        std::thread::sleep(down);
        cluster.resume().expect("restart");
        cluster
    })
    .await
    .expect("restart")
}

/// Projection batches commit without waiting for the disk; a crash of the
/// database mid-projection may lose the last of them, and the workers must
/// then apply those events again: nothing skipped, nothing applied twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_crash_mid_projection_neither_skips_nor_double_applies() {
    let cluster = EphemeralCluster::start(false).expect("own cluster");
    let db = TestDb::create_on(&cluster.url("crash_projection")).await;
    let app = Arc::new(TestApp::start_on(db, AppOptions::default()).await);
    let desk = crate::fact_cache::desk(&app).await;
    let editors = [desk.ed[0].clone(), desk.ed[1].clone()];
    let story = desk.story;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(claim_load(
                app.clone(),
                editors.clone(),
                story.clone(),
                stop.clone(),
            ))
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM claim_versions")
        .fetch_one(&app.db.pool)
        .await
        .expect("projected before the crash");
    assert!(
        before > 0,
        "the projections were at work when the crash came"
    );
    let cluster = crash_and_restart(cluster, Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.await.expect("writer");
    }

    // Again the moment the projections catch up: with no append committing
    // after them, their last batches are likely still only in memory.
    crate::projection_runs::caught_up(&app.db, Duration::from_secs(60)).await;
    let checkpoints = "SELECT sum(position)::bigint FROM projection_checkpoints";
    let done: i64 = sqlx::query_scalar(checkpoints)
        .fetch_one(&app.db.pool)
        .await
        .expect("checkpoints");
    let _cluster = crash_and_restart(cluster, Duration::from_secs(1)).await;
    if let Ok(after) = sqlx::query_scalar::<_, i64>(checkpoints)
        .fetch_one(&app.db.pool)
        .await
    {
        // Informative only: whether anything was lost is up to the WAL writer.
        eprintln!("the crash took the checkpoints (summed) from {done} back to {after}");
    }
    crate::projection_runs::caught_up(&app.db, Duration::from_secs(60)).await;

    // The API's fact cache saw the checkpoint go back and serves what the
    // table holds.
    let reader = desk.reader;
    let head = factlog::store::read_head(&app.db.pool)
        .await
        .expect("head")
        .position;
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT fact_id FROM facts_view")
        .fetch_all(&app.db.pool)
        .await
        .expect("facts");
    for id in ids {
        let doc = crate::fact_cache::fact_in_tables(&app.db.pool, id).await;
        let served = crate::fact_cache::fact(&app, &reader, &id.to_string(), head).await;
        assert_eq!(Some(served), doc, "fact {id}");
    }

    crate::projection_runs::caught_up(&app.db, Duration::from_secs(60)).await;
    let live = crate::projection_runs::dump(&app.db).await;
    assert!(
        live.iter().all(|(_, rows)| !rows.is_empty()),
        "every projection table has rows"
    );
    for &p in factlog::projections::ALL {
        factlog::projections::rebuild(&app.db.pool, p, |_| {})
            .await
            .expect("rebuild");
    }
    assert_eq!(live, crate::projection_runs::dump(&app.db).await);
}
