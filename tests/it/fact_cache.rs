//! The fact document cache: read-your-writes through it with `wait_for`,
//! across API processes, after a rebuild, under racing writes, and the same
//! answers with it turned off.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{AppOptions, NO_FACT_CACHE, TestApp};

const QUOTE: &str = "Some 5,200 U.S. soldiers are stationed in Iraq.";

pub(crate) fn claim(story: &str, subject: &str, amount: &str) -> Value {
    json!({"story_id": story, "subject": subject, "property": "troop_count",
        "value": {"kind": "quantity", "amount": amount, "unit": "soldier"},
        "quote": QUOTE, "valid_at": "2020-01"})
}

pub(crate) struct Desk {
    /// Editors' tokens: ann, bob, cy, dee.
    pub ed: Vec<String>,
    pub reader: String,
    pub story: String,
}

/// Tokens and a story, created through `app` (tokens live in the database,
/// so every app on it accepts them).
pub(crate) async fn desk(app: &TestApp) -> Desk {
    let mut ed = Vec::new();
    for name in ["ann", "bob", "cy", "dee"] {
        ed.push(app.token(name, "editor").await);
    }
    let reader = app.token("rita", "reader").await;
    let (s, _, b) = app
        .post_json(
            "/v1/stories",
            &ed[0],
            &json!({"title": "t", "publisher": "Wire", "published_at": "2020-01-06T10:00:00Z"}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    Desk {
        ed,
        reader,
        story: b["id"].as_str().expect("story").to_owned(),
    }
}

/// Asserts; returns (claim id, fact id, position).
pub(crate) async fn assert_claim(
    app: &TestApp,
    token: &str,
    body: &Value,
) -> (String, String, i64) {
    let (s, _, b) = app.post_json("/v1/claims", token, body).await;
    assert_eq!(s, 201, "{b}");
    (
        b["id"].as_str().expect("id").to_owned(),
        b["fact_id"].as_str().expect("fact").to_owned(),
        b["position"].as_i64().expect("position"),
    )
}

pub(crate) async fn act(app: &TestApp, token: &str, claim: &str, action: &str, body: Value) -> i64 {
    let (s, _, b) = app
        .post_json(&format!("/v1/claims/{claim}/{action}"), token, &body)
        .await;
    assert_eq!(s, 200, "{b}");
    b["position"].as_i64().expect("position")
}

/// The fact's body exactly as served, with `wait_for`.
async fn fact_text(app: &TestApp, token: &str, fact: &str, wait_for: i64) -> String {
    let res = app
        .get(&format!("/v1/facts/{fact}?wait_for={wait_for}"), token)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    res.text().await.expect("body")
}

/// Who asserted the first claim of fact `f_id` as `GET /v1/facts` lists it.
async fn listed_first_claim_by(app: &TestApp, token: &str, f_id: &str, wait_for: i64) -> String {
    let (s, _, b) = app
        .get_json(&format!("/v1/facts?limit=100&wait_for={wait_for}"), token)
        .await;
    assert_eq!(s, 200, "{b}");
    let items = b["items"].as_array().expect("items");
    let f = items
        .iter()
        .find(|f| f["id"] == f_id)
        .expect("the fact is listed");
    f["claims"][0]["asserted_by"]
        .as_str()
        .expect("asserted_by")
        .to_owned()
}

/// A fact's current document laid out straight from the tables (its claims'
/// open versions), past every cache; `None` when the projection has no row.
pub(crate) async fn fact_in_tables(pool: &sqlx::PgPool, fact_id: uuid::Uuid) -> Option<Value> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM facts_view WHERE fact_id = $1)")
            .bind(fact_id)
            .fetch_one(pool)
            .await
            .expect("fact row");
    if !exists {
        return None;
    }
    let states: Vec<String> = sqlx::query_scalar(
        "SELECT state::text FROM claim_versions WHERE fact_id = $1 AND to_position IS NULL",
    )
    .bind(fact_id)
    .fetch_all(pool)
    .await
    .expect("open versions");
    let claims: Vec<factlog::domain::claim::Claim> = states
        .iter()
        .map(|s| serde_json::from_str(s).expect("a claim state"))
        .collect();
    let doc = factlog::domain::fact::compute(fact_id, &claims).expect("a fact with claims");
    Some(serde_json::to_value(doc).expect("document"))
}

pub(crate) async fn fact(app: &TestApp, token: &str, fact: &str, wait_for: i64) -> Value {
    serde_json::from_str(&fact_text(app, token, fact, wait_for).await).expect("json")
}

fn claim_status<'a>(f: &'a Value, id: &str) -> Option<&'a str> {
    f["claims"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == id)?
        .get("status")?
        .as_str()
}

/// Reads `fact` a few times without `wait_for`, so the cache holds it.
async fn warm(app: &TestApp, token: &str, fact: &str) {
    for _ in 0..3 {
        let (s, _, _) = app.get_json(&format!("/v1/facts/{fact}"), token).await;
        assert_eq!(s, 200);
    }
}

fn entries(app: &TestApp) -> usize {
    app.services.fact_cache().map_or(0, |c| c.size().0)
}

/// Reads served from the cache so far: unlike `entries`, a later write's
/// eviction cannot take it back.
fn served(app: &TestApp) -> u64 {
    app.services.fact_cache().map_or(0, |c| c.hits())
}

#[tokio::test]
async fn confirmed_disputed_and_corrected_facts_are_fresh_through_the_cache() {
    let app = TestApp::start().await;
    let d = desk(&app).await;
    let (a, f_id, p) = assert_claim(&app, &d.ed[0], &claim(&d.story, "troops", "5200")).await;
    let f = fact(&app, &d.reader, &f_id, p).await;
    assert_eq!(f["status"], "unverified");
    warm(&app, &d.reader, &f_id).await;
    assert!(entries(&app) >= 1, "the document is cached");

    let p = act(&app, &d.ed[1], &a, "confirmations", json!({})).await;
    let f = fact(&app, &d.reader, &f_id, p).await;
    assert_eq!(
        (f["status"].as_str(), claim_status(&f, &a)),
        (Some("verified"), Some("verified"))
    );
    warm(&app, &d.reader, &f_id).await;

    let (b, _, _) = assert_claim(&app, &d.ed[2], &claim(&d.story, "troops", "5000")).await;
    let p = act(&app, &d.ed[3], &b, "confirmations", json!({})).await;
    let f = fact(&app, &d.reader, &f_id, p).await;
    assert_eq!(f["status"], "contested");
    warm(&app, &d.reader, &f_id).await;

    let p = act(
        &app,
        &d.ed[0],
        &b,
        "disputes",
        json!({"reason": "old figure"}),
    )
    .await;
    let f = fact(&app, &d.reader, &f_id, p).await;
    assert_eq!(
        (f["status"].as_str(), f["value"]["amount"].as_str()),
        (Some("verified"), Some("5200"))
    );
    warm(&app, &d.reader, &f_id).await;

    let mut fix = claim(&d.story, "troops", "5100");
    fix["corrects"] = json!(a);
    let (c, _, _) = assert_claim(&app, &d.ed[0], &fix).await;
    let p = act(&app, &d.ed[1], &c, "confirmations", json!({})).await;
    let f = fact(&app, &d.reader, &f_id, p).await;
    assert_eq!(claim_status(&f, &a), Some("superseded"), "{f}");
    assert_eq!(f["value"]["amount"], "5100");

    // valid_at is laid out from the same (cached) document.
    let (s, _, at) = app
        .get_json(
            &format!("/v1/facts/{f_id}?valid_at=2020-02&wait_for={p}"),
            &d.reader,
        )
        .await;
    assert_eq!(s, 200, "{at}");
    assert_eq!(at["value"]["amount"], "5100");

    // A fact that does not exist is 404, cached or not.
    let (s, _, _) = app
        .get_json(&format!("/v1/facts/{}", uuid::Uuid::new_v4()), &d.reader)
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn two_api_processes_see_each_others_writes_after_wait_for() {
    let one = TestApp::start().await;
    // The second process runs no workers: the first one's apply the log.
    let two = TestApp::start_on(
        one.db.same_database().await,
        AppOptions {
            workers: false,
            ..AppOptions::default()
        },
    )
    .await;
    let d = desk(&one).await;
    let (a, f_id, p) = assert_claim(&one, &d.ed[0], &claim(&d.story, "troops", "5200")).await;
    for app in [&one, &two] {
        assert_eq!(fact(app, &d.reader, &f_id, p).await["status"], "unverified");
        warm(app, &d.reader, &f_id).await;
    }
    // Written through the second, read through the first, and back.
    let p = act(&two, &d.ed[1], &a, "confirmations", json!({})).await;
    assert_eq!(fact(&one, &d.reader, &f_id, p).await["status"], "verified");
    assert_eq!(fact(&two, &d.reader, &f_id, p).await["status"], "verified");
    warm(&one, &d.reader, &f_id).await;
    warm(&two, &d.reader, &f_id).await;
    let p = act(&one, &d.ed[2], &a, "disputes", json!({"reason": "no"})).await;
    for app in [&two, &one] {
        let f = fact(app, &d.reader, &f_id, p).await;
        assert_eq!(f["status"], "unverified", "{f}");
        assert_eq!(claim_status(&f, &a), Some("disputed"));
    }
    assert!(
        served(&one) >= 1 && served(&two) >= 1,
        "both processes served reads from their caches"
    );
}

#[tokio::test]
async fn a_rebuild_replaces_what_the_cache_holds() {
    let app = TestApp::start().await;
    let d = desk(&app).await;
    let (_, f_id, p) = assert_claim(&app, &d.ed[0], &claim(&d.story, "troops", "5200")).await;
    // Applied, but not read through the API yet.
    let deadline = Instant::now() + Duration::from_secs(10);
    while factlog::projections::lowest_checkpoint(&app.db.pool, &["facts"])
        .await
        .expect("checkpoint")
        < p
    {
        assert!(
            Instant::now() < deadline,
            "the projection never applied the assert"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A claim state no rebuild would produce, written behind the
    // projection's back (no event, so no pass evicts the fact):
    // only a flush can.
    sqlx::query(
        "UPDATE claim_versions SET state = (state::jsonb || '{\"asserted_by\": \"tampered\"}')::json \
         WHERE fact_id = $1::uuid AND to_position IS NULL",
    )
    .bind(&f_id)
    .execute(&app.db.pool)
    .await
    .expect("tamper");
    for _ in 0..3 {
        let f = fact(&app, &d.reader, &f_id, p).await;
        assert_eq!(
            f["claims"][0]["asserted_by"], "tampered",
            "filled from the table, then cached"
        );
    }
    assert!(entries(&app) >= 1);
    // A listing serves the same cached document as the single read.
    let listed = listed_first_claim_by(&app, &d.reader, &f_id, p).await;
    assert_eq!(
        listed, "tampered",
        "the listing goes through the fact cache"
    );

    factlog::projections::rebuild(&app.db.pool, factlog::projections::FACTS, |_| {})
        .await
        .expect("rebuild");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let f = fact(&app, &d.reader, &f_id, p).await;
        if f["claims"][0]["asserted_by"] != "tampered" {
            assert_eq!(f["status"], "unverified");
            assert_eq!(f["claims"][0]["asserted_by"], "ann");
            assert_eq!(
                listed_first_claim_by(&app, &d.reader, &f_id, p).await,
                "ann"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cache kept a pre-rebuild document"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn with_the_cache_off_the_answers_are_the_same() {
    let on = TestApp::start().await;
    let off = TestApp::start_on(
        on.db.same_database().await,
        AppOptions {
            workers: false,
            fact_cache: NO_FACT_CACHE,
            ..AppOptions::default()
        },
    )
    .await;
    assert!(off.services.fact_cache().is_none());
    let d = desk(&on).await;
    let (a, f_id, _) = assert_claim(&off, &d.ed[0], &claim(&d.story, "troops", "5200")).await;
    let (b, g_id, _) = assert_claim(&on, &d.ed[1], &claim(&d.story, "letter", "1")).await;
    let mut p = act(&off, &d.ed[1], &a, "confirmations", json!({})).await;
    for f in [&f_id, &g_id] {
        fact(&on, &d.reader, f, p).await;
        warm(&on, &d.reader, f).await;
    }
    for (token, claim, action, body) in [
        (&d.ed[2], &b, "confirmations", json!({})),
        (&d.ed[3], &a, "disputes", json!({"reason": "r"})),
        (&d.ed[1], &b, "disputes", json!({"reason": "r"})),
    ] {
        for f in [&f_id, &g_id] {
            assert_eq!(
                fact_text(&on, &d.reader, f, p).await,
                fact_text(&off, &d.reader, f, p).await,
                "byte for byte"
            );
        }
        p = act(&on, token, claim, action, body).await;
    }
    let f = fact(&off, &d.reader, &f_id, p).await;
    assert_eq!(claim_status(&f, &a), Some("disputed"));
    let (s, _, _) = off
        .get_json(&format!("/v1/facts/{}", uuid::Uuid::new_v4()), &d.reader)
        .await;
    assert_eq!(s, 404);
}

/// Writers and readers hammer a few facts at once (so evictions race with
/// fills of the same documents); every read with `wait_for` of the reader's
/// own write must show that write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_writes_and_reads_never_hide_an_acknowledged_write() {
    let app = Arc::new(TestApp::start().await);
    let other = Arc::new(
        TestApp::start_on(
            app.db.same_database().await,
            AppOptions {
                workers: false,
                ..AppOptions::default()
            },
        )
        .await,
    );
    let d = Arc::new(desk(&app).await);
    let subjects = ["alpha", "beta", "gamma"];
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));

    // Readers without wait_for keep refilling the cache of both processes.
    let mut noise = Vec::new();
    let (_, first, _) = assert_claim(&app, &d.ed[0], &claim(&d.story, "alpha", "1")).await;
    let mut facts = vec![first];
    for s in &subjects[1..] {
        facts.push(
            assert_claim(&app, &d.ed[0], &claim(&d.story, s, "1"))
                .await
                .1,
        );
    }
    for a in [app.clone(), other.clone()] {
        for _ in 0..2 {
            let (a, d, facts, stop) = (a.clone(), d.clone(), facts.clone(), stop.clone());
            noise.push(tokio::spawn(async move {
                let mut i = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let f = &facts[i % facts.len()];
                    let _ = a.get_json(&format!("/v1/facts/{f}"), &d.reader).await;
                    i += 1;
                }
            }));
        }
    }

    let mut writers = Vec::new();
    for w in 0..4usize {
        let (app, other, d) = (app.clone(), other.clone(), d.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..15usize {
                let subject = subjects[(w + i) % subjects.len()];
                let (through, read) = if i % 2 == 0 {
                    (&app, &other)
                } else {
                    (&other, &app)
                };
                let (id, f_id, p) = assert_claim(
                    through,
                    &d.ed[w],
                    &claim(&d.story, subject, &(w * 100 + i).to_string()),
                )
                .await;
                let f = fact(read, &d.reader, &f_id, p).await;
                assert_eq!(
                    claim_status(&f, &id),
                    Some("pending"),
                    "own assert missing: {f}"
                );
                let p = act(through, &d.ed[(w + 1) % 4], &id, "confirmations", json!({})).await;
                let f = fact(read, &d.reader, &f_id, p).await;
                assert_eq!(
                    claim_status(&f, &id),
                    Some("verified"),
                    "own confirmation missing"
                );
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for n in noise {
        n.await.expect("reader");
    }
    // At rest, both caches agree with the table.
    let head = factlog::store::read_head(&app.db.pool)
        .await
        .expect("head")
        .position;
    for f in &facts {
        let id = f.parse().expect("a fact id");
        let table = fact_in_tables(&app.db.pool, id).await.expect("the fact");
        for a in [&app, &other] {
            assert_eq!(fact(a, &d.reader, f, head).await, table);
        }
    }
}
