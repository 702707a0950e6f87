//! Erasure (API.md, "Erasure"): an admin removes personal values from
//! everything factlog keeps, and no hash, proof or projection moves.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::{TestApp, TestDb, send};

const BODY: &str =
    "Full text, erasure-marker-body-4b1. Some 5,200 U.S. soldiers are stationed in Iraq.";
const QUOTE: &str = "Some 5,200 U.S. soldiers are stationed in Iraq";
const SOURCE: &str = "erasure-marker-source-7c2";
const NOTE: &str = "phoned erasure-marker-note-9d3";
const REASON: &str = "doubts from erasure-marker-dispute-2e8";
const MARKERS: [&str; 4] = [
    "erasure-marker-body-4b1",
    "erasure-marker-source-7c2",
    "erasure-marker-note-9d3",
    "erasure-marker-dispute-2e8",
];

struct Written {
    story: Value,
    claim: Value,
    /// The last write's receipt.
    last: Value,
    ann: String,
    admin: String,
}

/// A story, a claim attributed to a source, a confirmation with a note, a
/// dispute with a reason and evidence with a note; the claim's assertion
/// with an Idempotency-Key (`assert-1`).
async fn write_some(app: &TestApp) -> Written {
    let ann = app.token("ann", "editor").await;
    let bob = app.token("bob", "editor").await;
    let admin = app.token("root", "admin").await;
    let (s, _, story) = app
        .post_json(
            "/v1/stories",
            &ann,
            &json!({"title": "Troops", "publisher": "Wire", "published_at": "2020-01-05", "body": BODY}),
        )
        .await;
    assert_eq!(s, 201, "{story}");
    let (s, _, claim) = send(
        app.post("/v1/claims", &ann)
            .header("Idempotency-Key", "assert-1")
            .json(&assert_body(&story)),
    )
    .await;
    assert_eq!(s, 201, "{claim}");
    let id = claim["id"].as_str().expect("id").to_owned();
    let mut last = Value::Null;
    for (who, path, body) in [
        (&bob, "confirmations", json!({"note": NOTE})),
        (&bob, "disputes", json!({"reason": REASON})),
        (
            &ann,
            "evidence",
            json!({"url": "https://example.org/letter", "note": NOTE}),
        ),
    ] {
        let (s, _, r) = app
            .post_json(&format!("/v1/claims/{id}/{path}"), who, &body)
            .await;
        assert_eq!(s, 200, "{path}: {r}");
        last = r;
    }
    Written {
        story,
        claim,
        last,
        ann,
        admin,
    }
}

fn assert_body(story: &Value) -> Value {
    json!({"story_id": story["id"], "subject": "U.S. troops in Iraq", "property": "troop_count",
           "value": {"kind": "quantity", "amount": "5200", "unit": "soldier"},
           "quote": QUOTE, "attributed_to": SOURCE, "valid_at": "2020-01"})
}

async fn erase(app: &TestApp, token: &str, key: &str, body: &Value) -> (u16, Value) {
    let (s, _, r) = send(
        app.post("/v1/erasures", token)
            .header("Idempotency-Key", key)
            .json(body),
    )
    .await;
    (s, r)
}

/// [`erase`], which must succeed: its receipt.
async fn erased(app: &TestApp, admin: &str, key: &str, body: &Value) -> Value {
    let (s, r) = erase(app, admin, key, body).await;
    assert_eq!(s, 200, "{r}");
    r
}

impl Written {
    /// Erases `fields` of the claim written, as the admin (key `e`).
    async fn erase_claim(&self, app: &TestApp, fields: &[&str]) -> Value {
        let id = self.claim["id"].as_str().expect("id");
        erased(
            app,
            &self.admin,
            "e",
            &json!({"claim_id": id, "fields": fields, "reason": "asked"}),
        )
        .await
    }
}

/// Every table's rows as text, for looking for a value anywhere.
async fn everything(db: &TestDb) -> String {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .expect("tables");
    let mut all = String::new();
    for t in tables {
        let rows: Vec<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT t::text FROM {t} t")))
                .fetch_all(&db.pool)
                .await
                .expect("rows");
        all.push_str(&rows.join("\n"));
    }
    all
}

#[tokio::test]
async fn erasure_removes_the_values_everywhere_and_moves_no_hash() {
    let app = TestApp::start().await;
    let w = write_some(&app).await;
    let id = w.claim["id"].as_str().expect("id");
    let fact = w.claim["fact_id"].as_str().expect("fact");
    let auditor = app.token("audrey", "auditor").await;
    let reader = app.token("rita", "reader").await;
    let (_, _, fact_before) = app
        .get_json(
            &format!("/v1/facts/{fact}?wait_for={}", w.last["position"]),
            &reader,
        )
        .await;
    let (_, _, events_before) = app.get_json("/v1/events?limit=1000", &auditor).await;
    let root_before = app.get_json("/v1/checkpoint", &reader).await;
    let _ = root_before;

    let request = json!({"claim_id": id, "fields": ["quote", "attributed_to", "notes"],
                         "reason": "the source asked, ticket 4411"});
    let (s, receipt) = erase(&app, &w.admin, "erase-1", &request).await;
    assert_eq!(s, 200, "{receipt}");
    assert_eq!(receipt["claim_id"], id);
    assert_eq!(
        receipt["fields"],
        json!(["attributed_to", "notes", "quote"])
    );
    assert_eq!(receipt["reason"], "the source asked, ticket 4411");
    assert_eq!(receipt["erased_by"], "root");
    assert_eq!(
        receipt["positions"].as_array().expect("positions").len(),
        4,
        "the assertion, the confirmation, the dispute and the evidence: {receipt}"
    );
    let erased_at = receipt["position"].clone();
    let wait = format!("wait_for={erased_at}");

    // The claim, folded from its stream.
    let (s, _, claim) = app.get_json(&format!("/v1/claims/{id}"), &reader).await;
    assert_eq!(s, 200, "{claim}");
    assert_eq!(claim["quote"], Value::Null);
    assert_eq!(claim["attributed_to"], Value::Null);
    assert_eq!(claim["disputes"][0]["reason"], Value::Null);
    assert!(claim["confirmations"][0].get("note").is_none(), "{claim}");
    assert!(claim["evidence"][0].get("note").is_none(), "{claim}");
    assert_eq!(
        claim["erased"],
        json!({"fields": ["attributed_to", "notes", "quote"], "position": erased_at})
    );
    assert_eq!(
        claim["version"], w.last["version"],
        "an erasure is not a change of the claim"
    );
    // Through the projection: the story's claims and the claims listing.
    let story_id = w.story["id"].as_str().expect("story");
    let (_, _, story) = app
        .get_json(&format!("/v1/stories/{story_id}?{wait}"), &reader)
        .await;
    assert_eq!(story["claims"][0]["quote"], Value::Null, "{story}");
    assert_eq!(story["claims"][0]["erased"], claim["erased"]);
    assert_eq!(story["body"], BODY, "only the claim's fields were named");
    let (_, _, listed) = app
        .get_json(&format!("/v1/claims?story_id={story_id}&{wait}"), &reader)
        .await;
    assert_eq!(listed["items"][0]["attributed_to"], Value::Null, "{listed}");
    // The fact: status and value unchanged.
    let (_, _, fact_after) = app
        .get_json(&format!("/v1/facts/{fact}?{wait}"), &reader)
        .await;
    assert_eq!(fact_after, fact_before);
    // History, audit and the log: each erased event's data says so.
    let (_, _, history) = app
        .get_json(&format!("/v1/facts/{fact}/history?{wait}"), &reader)
        .await;
    let asserted = &history["items"][0];
    assert_eq!(asserted["type"], "ClaimAsserted");
    assert_eq!(asserted["data"]["quote"], Value::Null);
    assert_eq!(
        asserted["data"]["erased"]["fields"],
        json!(["attributed_to", "quote"])
    );
    assert_eq!(asserted["data"]["erased"]["position"], erased_at);
    let (_, _, audit) = app.get_json("/v1/audit?limit=1000", &auditor).await;
    let (_, _, events) = app.get_json("/v1/events?limit=1000", &auditor).await;
    for page in [&audit["items"], &events["events"], &history["items"]] {
        assert!(
            !MARKERS[1..].iter().any(|m| page.to_string().contains(m)),
            "{page}"
        );
    }
    // Nothing hashed moved: the same chain and leaf hashes, the erased
    // fields' salts gone, and each erased value's commitment shown.
    let before = events_before["events"].as_array().expect("events");
    let after = events["events"].as_array().expect("events");
    for (b, a) in before.iter().zip(after) {
        assert_eq!((&b["hash"], &b["leaf_hash"]), (&a["hash"], &a["leaf_hash"]));
        if a["data"].get("erased").is_some() {
            assert!(a["salts"].as_object().expect("salts").is_empty(), "{a}");
            let leaf = factlog::audit::published_leaf(
                &serde_json::from_value(a.clone()).expect("an event"),
            )
            .expect("a leaf");
            assert_eq!(hex::encode(leaf), a["leaf_hash"].as_str().expect("leaf"));
        }
    }
    let report = factlog::store::verify_chain(&app.db.pool, 1000, |_| {})
        .await
        .expect("verify");
    assert!(report.ok, "{report:?}");
    // An outsider recomputes the erased events' leaves with AUDITING.md's Python.
    let erased_events: Vec<&Value> = after
        .iter()
        .filter(|e| e["data"].get("erased").is_some())
        .collect();
    assert_eq!(
        outsiders_leaves(&erased_events),
        erased_events
            .iter()
            .map(|e| e["leaf_hash"].as_str().expect("leaf").to_owned())
            .collect::<Vec<_>>()
    );

    // The stored response of the assertion: replayed with the fields null.
    let (s, h, replay) = send(
        app.post("/v1/claims", &w.ann)
            .header("Idempotency-Key", "assert-1")
            .json(&assert_body(&w.story)),
    )
    .await;
    assert_eq!(s, 201, "{replay}");
    assert_eq!(h["idempotent-replayed"], "true");
    assert_eq!(replay["quote"], Value::Null);
    assert_eq!(replay["id"], id);
    // The erasure's own key replays its receipt.
    let (s, again) = erase(&app, &w.admin, "erase-1", &request).await;
    assert_eq!((s, &again), (200, &receipt));

    // Nowhere in the database but the story's body (not erased).
    let all = everything(&app.db).await;
    for marker in &MARKERS[1..] {
        assert!(!all.contains(marker), "{marker} is still stored");
    }

    // Then the story's body; the story cache forgets it.
    erased(
        &app,
        &w.admin,
        "erase-2",
        &json!({"story_id": story_id, "fields": ["body"], "reason": "court order"}),
    )
    .await;
    let (_, _, story) = app
        .get_json(&format!("/v1/stories/{story_id}"), &reader)
        .await;
    assert_eq!(story["body"], Value::Null, "{story}");
    assert_eq!(story["erased"]["fields"], json!(["body"]));
    assert!(!everything(&app.db).await.contains(MARKERS[0]));
    // The console says what was erased.
    let cookie = crate::console::sign_in(&app, &w.ann).await;
    let page = crate::console::get(&app, &format!("/console/claims/{id}"), Some(&cookie)).await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains(">erased</span>"), "{}", page.html);
    assert!(
        page.html.contains("attributed_to, notes, quote"),
        "{}",
        page.html
    );
    let page =
        crate::console::get(&app, &format!("/console/stories/{story_id}"), Some(&cookie)).await;
    assert!(page.html.contains("body was erased"), "{}", page.html);
    for marker in MARKERS {
        assert!(!page.html.contains(marker));
    }
    // Erasing again names nothing more.
    let r = erased(
        &app,
        &w.admin,
        "erase-3",
        &json!({"story_id": story_id, "fields": ["body"], "reason": "again"}),
    )
    .await;
    assert_eq!(r["positions"], json!([]));
}

#[tokio::test]
async fn only_an_admin_erases_and_a_bad_request_writes_nothing() {
    let app = TestApp::start().await;
    let w = write_some(&app).await;
    let id = w.claim["id"].as_str().expect("id");
    let story_id = w.story["id"].as_str().expect("story");
    let good = json!({"claim_id": id, "fields": ["quote"], "reason": "asked"});
    for role in ["reader", "editor", "auditor"] {
        let token = app.token(&format!("t-{role}"), role).await;
        let (s, r) = erase(&app, &token, &format!("k-{role}"), &good).await;
        assert_eq!(s, 403, "{role}: {r}");
    }
    let before = app.count_events().await;
    let missing = uuid::Uuid::now_v7();
    for (body, field) in [
        (
            json!({"claim_id": missing, "fields": ["quote"], "reason": "r"}),
            "claim_id",
        ),
        (
            json!({"story_id": missing, "fields": ["body"], "reason": "r"}),
            "story_id",
        ),
        (
            json!({"claim_id": id, "fields": ["subject"], "reason": "r"}),
            "fields[0]",
        ),
        (
            json!({"claim_id": id, "fields": ["body"], "reason": "r"}),
            "fields[0]",
        ),
        (
            json!({"story_id": story_id, "fields": ["quote"], "reason": "r"}),
            "fields[0]",
        ),
        (
            json!({"claim_id": id, "fields": [], "reason": "r"}),
            "fields",
        ),
        (json!({"claim_id": id, "fields": ["quote"]}), "reason"),
        (
            json!({"claim_id": id, "fields": ["quote"], "reason": ""}),
            "reason",
        ),
        (json!({"fields": ["quote"], "reason": "r"}), "claim_id"),
        (
            json!({"claim_id": id, "story_id": story_id, "fields": ["quote"], "reason": "r"}),
            "story_id",
        ),
        (
            json!({"claim_id": id, "fields": "quote", "reason": "r"}),
            "fields",
        ),
    ] {
        let (s, r) = erase(&app, &w.admin, &format!("bad-{body}"), &body).await;
        assert_eq!(s, 422, "{body}: {r}");
        assert_eq!(r["errors"][0]["field"], field, "{body}: {r}");
    }
    assert_eq!(app.count_events().await, before, "nothing was written");
    let (_, _, claim) = app.get_json(&format!("/v1/claims/{id}"), &w.ann).await;
    assert_eq!(claim["quote"], QUOTE);

    // A value the log itself holds (as before migration 0018): refused.
    sqlx::query(
        "DELETE FROM event_secrets WHERE position = (SELECT position FROM events \
         WHERE stream = $1 AND version = 1)",
    )
    .bind(format!("claim-{id}"))
    .execute(&app.db.pool)
    .await
    .expect("make the assertion look older than 0018");
    let (s, r) = erase(&app, &w.admin, "old", &good).await;
    assert_eq!(s, 409, "{r}");
    assert!(r["detail"].as_str().unwrap_or("").contains("0018"), "{r}");
    assert_eq!(app.count_events().await, before);
}

#[tokio::test]
async fn a_rebuild_after_an_erasure_gives_the_same_versions() {
    let app = TestApp::start().await;
    let w = write_some(&app).await;
    let id = w.claim["id"].as_str().expect("id");
    // More history after the erasure: the claim goes on.
    w.erase_claim(&app, &["notes"]).await;
    let cy = app.token("cy", "editor").await;
    let (s, _, last) = app
        .post_json(
            &format!("/v1/claims/{id}/confirmations"),
            &cy,
            &json!({"note": "a note after the erasure"}),
        )
        .await;
    assert_eq!(s, 200, "{last}");
    let (_, _, _) = app
        .get_json(
            &format!("/v1/claims/{id}?wait_for={}", last["position"]),
            &w.ann,
        )
        .await;
    let versions = |pool: sqlx::PgPool| async move {
        sqlx::query_as::<_, (i64, Option<i64>, String)>(
            "SELECT from_position, to_position, state::text FROM claim_versions \
             ORDER BY claim_id, from_position",
        )
        .fetch_all(&pool)
        .await
        .expect("versions")
    };
    // Wait until the worker has applied everything.
    let reader = app.token("rita", "reader").await;
    let story_id = w.story["id"].as_str().expect("story");
    app.get_json(
        &format!("/v1/stories/{story_id}?wait_for={}", last["position"]),
        &reader,
    )
    .await;
    let live = versions(app.db.pool.clone()).await;
    let facts = |pool: sqlx::PgPool| async move {
        sqlx::query_as::<_, (uuid::Uuid, String, String)>(
            "SELECT fact_id, status, summary::text FROM facts_view ORDER BY fact_id",
        )
        .fetch_all(&pool)
        .await
        .expect("facts")
    };
    let live_facts = facts(app.db.pool.clone()).await;
    assert!(
        !format!("{live:?}").contains("erasure-marker-note"),
        "{live:?}"
    );
    assert!(format!("{live:?}").contains("a note after the erasure"));
    factlog::projections::rebuild_many(&app.db.pool, factlog::projections::ALL, |_| {})
        .await
        .expect("rebuild");
    assert_eq!(versions(app.db.pool.clone()).await, live);
    assert_eq!(facts(app.db.pool.clone()).await, live_facts);
}

#[tokio::test]
async fn another_process_forgets_an_erased_story_within_two_seconds() {
    let db = TestDb::new().await;
    let one = TestApp::start_on(db.same_database().await, Default::default()).await;
    let two = TestApp::start_on(
        db.same_database().await,
        crate::support::AppOptions {
            workers: false,
            ..Default::default()
        },
    )
    .await;
    let w = write_some(&one).await;
    let story_id = w.story["id"].as_str().expect("story");
    let path = format!("/v1/stories/{story_id}");
    // The second process has the story, body and all, in its cache.
    let (_, _, story) = two.get_json(&path, &w.ann).await;
    assert_eq!(story["body"], BODY);
    let r = erased(
        &one,
        &w.admin,
        "e",
        &json!({"story_id": story_id, "fields": ["body"], "reason": "asked"}),
    )
    .await;
    let erased = std::time::Instant::now();
    loop {
        let (_, _, story) = two.get_json(&path, &w.ann).await;
        if story["body"].is_null() {
            assert_eq!(story["erased"]["position"], r["position"]);
            break;
        }
        assert!(
            erased.elapsed() < std::time::Duration::from_secs(2),
            "the other process still serves the body"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A PostgreSQL client program: beside the server's, else on the PATH.
fn pg_program(name: &str) -> std::path::PathBuf {
    factlog::db::cluster::Server::find(std::path::Path::new("."))
        .map(|s| s.bindir.join(name))
        .ok()
        .filter(|p| p.exists())
        .unwrap_or_else(|| name.into())
}

#[tokio::test]
async fn erased_text_is_in_no_dump_after_vacuum_full() {
    let app = TestApp::start().await;
    let w = write_some(&app).await;
    let id = w.claim["id"].as_str().expect("id");
    let story_id = w.story["id"].as_str().expect("story");
    for (key, body) in [
        (
            "a",
            json!({"claim_id": id, "fields": ["quote", "attributed_to", "notes"], "reason": "asked"}),
        ),
        (
            "b",
            json!({"story_id": story_id, "fields": ["body"], "reason": "asked"}),
        ),
    ] {
        let (s, r) = erase(&app, &w.admin, key, &body).await;
        assert_eq!(s, 200, "{r}");
    }
    let reader = app.token("rita", "reader").await;
    let (_, _, head) = app.get_json("/v1/checkpoint", &reader).await;
    let _ = head;
    // Let the worker pass the erasures before vacuuming.
    let (_, _, _) = app
        .get_json(
            &format!(
                "/v1/stories/{story_id}?wait_for={}",
                app.count_events().await
            ),
            &reader,
        )
        .await;
    sqlx::query("VACUUM FULL")
        .execute(&app.db.pool)
        .await
        .expect("vacuum full");
    let out = Command::new(pg_program("pg_dump"))
        .arg("--dbname")
        .arg(&app.db.url)
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(dump.contains("claim_versions"), "a real dump");
    for marker in MARKERS {
        assert!(!dump.contains(marker), "{marker} is in the dump");
    }
}

/// The leaf hashes AUDITING.md's Python computes for `events`.
fn outsiders_leaves(events: &[&Value]) -> Vec<String> {
    use std::io::Write;
    let program = format!(
        "{}\nimport sys\nfor e in json.load(sys.stdin):\n    print(leaf_hash(e))\n",
        crate::sealed_values::documented_python()
    );
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(&program)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(serde_json::to_string(events).expect("json").as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// What a server at `base` answers: (status, body).
async fn call(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let req = match body {
        Some(b) => client.post(format!("{base}{path}")).json(&b),
        None => client.get(format!("{base}{path}")),
    };
    let (s, _, v) = send(req.bearer_auth(token)).await;
    (s, v)
}

#[tokio::test]
async fn the_service_logs_no_erasable_value_even_at_trace() {
    let db = TestDb::new().await;
    let ann = factlog::auth::create(&db.pool, "ann", "editor")
        .await
        .expect("token");
    let bob = factlog::auth::create(&db.pool, "bob", "editor")
        .await
        .expect("token");
    let root = factlog::auth::create(&db.pool, "root", "admin")
        .await
        .expect("token");
    let port = crate::support::free_port();
    let mut server = crate::support::serve_command(&db, port)
        .env("RUST_LOG", "trace")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve");
    let output = crate::support::OutputDrain::start(&mut server);
    let base = format!("http://127.0.0.1:{port}");
    crate::faults::ready(&base).await;
    let c = reqwest::Client::new();
    let story_body = json!({"title": "Troops", "publisher": "Wire",
                            "published_at": "2020-01-05", "body": BODY});
    let (s, story) = call(&c, &base, &ann, "/v1/stories", Some(story_body)).await;
    assert_eq!(s, 201, "{story}");
    let (s, claim) = call(&c, &base, &ann, "/v1/claims", Some(assert_body(&story))).await;
    assert_eq!(s, 201, "{claim}");
    let id = claim["id"].as_str().expect("id");
    let (s, r) = call(
        &c,
        &base,
        &bob,
        &format!("/v1/claims/{id}/disputes"),
        Some(json!({"reason": REASON})),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    for body in [
        json!({"claim_id": id, "fields": ["quote", "attributed_to", "notes"], "reason": "asked"}),
        json!({"story_id": story["id"], "fields": ["body"], "reason": "asked"}),
    ] {
        let (s, r) = call(&c, &base, &root, "/v1/erasures", Some(body)).await;
        assert_eq!(s, 200, "{r}");
    }
    let (s, read) = call(&c, &base, &bob, &format!("/v1/claims/{id}"), None).await;
    assert_eq!((s, &read["quote"]), (200, &Value::Null), "{read}");
    // SAFETY: a plain signal to our own child.
    unsafe {
        libc::kill(server.id() as i32, libc::SIGTERM);
    }
    let _ = server.wait();
    let logs = output.finish();
    assert!(
        logs.contains("Erased") || logs.len() > 1000,
        "the server logged at trace"
    );
    for marker in MARKERS {
        assert!(!logs.contains(marker), "{marker} is in the server's logs");
    }
}

#[tokio::test]
async fn an_erased_log_exports_and_imports_still_erased_with_the_same_head() {
    use crate::exchange::{export, head, import, summary};
    let app = TestApp::start().await;
    let w = write_some(&app).await;
    w.erase_claim(&app, &["quote", "attributed_to", "notes"])
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("log.ndjson");
    export(&app.db, 0, &file).await;
    let text = std::fs::read_to_string(&file).expect("export");
    for marker in &MARKERS[1..] {
        assert!(!text.contains(marker), "{marker} is in the export");
    }
    assert!(
        text.contains("\"erased\":{"),
        "the export says what was erased"
    );
    let target = TestDb::new().await;
    summary(&import(&target.url, &file, None).await);
    assert_eq!(head(&target).await, head(&app.db).await);
    let kept: Vec<String> = sqlx::query_scalar("SELECT secrets::text FROM event_secrets")
        .fetch_all(&target.pool)
        .await
        .expect("secrets");
    assert!(kept.iter().any(|s| s.contains("$erased")), "{kept:?}");
    for marker in &MARKERS[1..] {
        assert!(!kept.join("").contains(marker));
    }
    let report = factlog::store::verify_chain(&target.pool, 1000, |_| {})
        .await
        .expect("verify");
    assert!(report.ok, "{report:?}");
}
