//! What auditors use: the audit trail by actor and time (paged), raw events,
//! the live SSE feed with resumption, and the integrity check.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::support::{TestApp, send};

async fn setup() -> (TestApp, String, String, String) {
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let bob = app.token("bob", "editor").await;
    let auditor = app.token("audrey", "auditor").await;
    (app, ann, bob, auditor)
}

async fn story(app: &TestApp, token: &str, i: usize) -> i64 {
    let (s, _, b) = app
        .post_json(
            "/v1/stories",
            token,
            &json!({"title": format!("t{i}"), "publisher": "p", "published_at": "2020-01-01"}),
        )
        .await;
    assert_eq!(s, 201);
    b["position"].as_i64().expect("position")
}

#[tokio::test]
async fn the_audit_trail_pages_add_up_to_the_whole() {
    let (app, ann, bob, auditor) = setup().await;
    let mut mid = None;
    for i in 0..9 {
        story(&app, if i % 3 == 0 { &bob } else { &ann }, i).await;
        if i == 4 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            mid = Some(chrono::Utc::now());
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    let (s, _, whole) = app
        .get_json("/v1/audit?actor=ann&limit=1000", &auditor)
        .await;
    assert_eq!(s, 200);
    let whole = whole["items"].as_array().expect("items").clone();
    assert_eq!(whole.len(), 6);
    assert!(
        whole
            .iter()
            .all(|e| e["actor"] == "ann" && e["hash"].as_str().map(str::len) == Some(64))
    );
    assert!(
        whole
            .windows(2)
            .all(|w| w[0]["position"].as_i64() < w[1]["position"].as_i64()),
        "oldest first"
    );

    let mut paged: Vec<Value> = Vec::new();
    let mut cursor = String::new();
    loop {
        let (_, _, page) = app
            .get_json(&format!("/v1/audit?actor=ann&limit=4{cursor}"), &auditor)
            .await;
        paged.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(paged, whole);

    let since = mid
        .expect("mid")
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        .replace('+', "%2B");
    let (_, _, later) = app
        .get_json(&format!("/v1/audit?since={since}"), &auditor)
        .await;
    let (_, _, earlier) = app
        .get_json(&format!("/v1/audit?until={since}"), &auditor)
        .await;
    let (_, _, all) = app.get_json("/v1/audit?limit=1000", &auditor).await;
    let count = |v: &Value| v["items"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(
        count(&later) + count(&earlier),
        count(&all),
        "since and until split the trail"
    );
    assert_eq!(count(&later), 4);
    // Editors and readers may not audit.
    assert_eq!(app.get_json("/v1/audit", &ann).await.0, 403);
    assert_eq!(
        app.get_json("/v1/audit?since=yesterday", &auditor).await.0,
        422
    );
}

#[tokio::test]
async fn events_page_by_position() {
    let (app, ann, _, auditor) = setup().await;
    for i in 0..3 {
        story(&app, &ann, i).await;
    }
    let (s, _, page) = app.get_json("/v1/events?after=2&limit=2", &auditor).await;
    assert_eq!(s, 200);
    let positions: Vec<i64> = page["events"]
        .as_array()
        .expect("e")
        .iter()
        .filter_map(|e| e["position"].as_i64())
        .collect();
    assert_eq!(positions, [3, 4]);
    assert_eq!(page["next_after"], 4);
    let e = &page["events"][0];
    for k in [
        "stream",
        "version",
        "type",
        "recorded_at",
        "actor",
        "data",
        "hash",
    ] {
        assert!(e.get(k).is_some(), "{k} missing: {e}");
    }
    let (_, _, empty) = app.get_json("/v1/events?after=100", &auditor).await;
    assert_eq!(
        (empty["events"].clone(), empty["next_after"].clone()),
        (json!([]), json!(100))
    );
}

/// Reads Server-Sent Events off a real socket until `n` have arrived.
pub(crate) async fn read_events(res: reqwest::Response, n: usize) -> Vec<(i64, Value)> {
    let mut stream = res.bytes_stream();
    let mut buf = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("an event in time")
            .expect("stream open")
            .expect("chunk");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let id = block
                .lines()
                .find_map(|l| l.strip_prefix("id:"))
                .map(|s| s.trim().parse::<i64>().expect("id"));
            let data = block
                .lines()
                .find_map(|l| l.strip_prefix("data:"))
                .map(|s| serde_json::from_str::<Value>(s.trim()).expect("json"));
            if let (Some(id), Some(data)) = (id, data) {
                out.push((id, data));
            }
        }
    }
    out
}

#[tokio::test]
async fn the_event_stream_is_live_and_resumes_from_last_event_id() {
    let (app, ann, _, auditor) = setup().await;
    story(&app, &ann, 0).await; // position 4 (three tokens first)
    let res = app
        .get("/v1/events/stream?after=3", &auditor)
        .send()
        .await
        .expect("stream");
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/event-stream")
    );
    let reader = tokio::spawn(read_events(res, 2));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let live = story(&app, &ann, 1).await;
    let got = reader.await.expect("reader");
    assert_eq!(got.iter().map(|e| e.0).collect::<Vec<_>>(), vec![4, live]);
    assert_eq!(got[1].1["type"], "StoryRegistered");
    assert_eq!(got[1].1["position"], live);

    // Reconnect with Last-Event-ID: exactly what came after it.
    story(&app, &ann, 2).await;
    let res = app
        .get("/v1/events/stream?after=0", &auditor)
        .header("Last-Event-ID", live.to_string())
        .send()
        .await
        .expect("stream");
    let got = read_events(res, 1).await;
    assert_eq!(got[0].0, live + 1);
    // Not for editors.
    assert_eq!(send(app.get("/v1/events/stream", &ann)).await.0, 403);
}

#[tokio::test]
async fn integrity_is_ok_then_names_the_tampered_position() {
    let (app, ann, _, auditor) = setup().await;
    for i in 0..4 {
        story(&app, &ann, i).await;
    }
    let (s, _, r) = app.get_json("/v1/integrity", &auditor).await;
    assert_eq!(s, 200);
    assert_eq!(r["ok"], true);
    assert_eq!(r["checked"], 7);
    assert_eq!(r["first_bad_position"], Value::Null);
    assert_eq!(r["head"]["position"], 7);
    let head_hash = r["head"]["hash"].clone();

    let mut conn = sqlx::PgConnection::connect(&app.db.url)
        .await
        .expect("connect");
    use sqlx::Connection;
    sqlx::query("ALTER TABLE events DISABLE TRIGGER events_no_update_delete")
        .execute(&mut conn)
        .await
        .expect("disable");
    sqlx::query(
        "UPDATE events SET data = jsonb_set(data, '{title}', '\"rewritten\"') WHERE position = 5",
    )
    .execute(&mut conn)
    .await
    .expect("tamper");
    // The stored hashes are untouched: only re-hashing event 5 shows the
    // edit, which the next full pass does; an auditor can ask for one.
    let (s, _, asked) = app
        .post_json("/v1/integrity/checks", &auditor, &json!({}))
        .await;
    assert_eq!(s, 202, "{asked}");
    assert_eq!(asked["full_check"]["requested_by"], "audrey");
    assert_eq!(
        app.post_json("/v1/integrity/checks", &ann, &json!({}))
            .await
            .0,
        403,
        "editors may not"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let r = loop {
        let (_, _, r) = app.get_json("/v1/integrity", &auditor).await;
        if r["ok"] == false || std::time::Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        (
            r["ok"].clone(),
            r["first_bad_position"].clone(),
            r["checked"].clone(),
            r["full_check"]["ok"].clone(),
        ),
        (json!(false), json!(5), json!(4), json!(false)),
        "{r}"
    );
    // The head is the log's real head, beside the break.
    assert_eq!(r["head"]["position"], 7);
    assert_eq!(r["head"]["hash"], head_hash);
    let (_, _, ready) = crate::support::send(app.client.get(app.url("/readyz"))).await;
    assert_eq!(
        (
            ready["status"].clone(),
            ready["integrity"]["first_bad_position"].clone()
        ),
        (json!("degraded"), json!(5))
    );
}

#[tokio::test]
async fn metrics_and_readiness_report_the_projections() {
    let (app, ann, _, _) = setup().await;
    let p = story(&app, &ann, 0).await;
    let (_, _, _) = app
        .get_json(&format!("/v1/claims?wait_for={p}"), &ann)
        .await;
    let res = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/plain")
    );
    let text = res.text().await.expect("text");
    for needle in [
        "factlog_projection_checkpoint{projection=\"facts\"}",
        "factlog_projection_lag_events{projection=\"facts\"}",
        "factlog_projection_lag_seconds",
        "factlog_http_requests_total",
        "factlog_http_request_duration_seconds",
        "factlog_events_appended_total",
        "factlog_group_commit_seconds",
        "factlog_group_commit_batch_commands",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    let (s, _, ready) = crate::support::send(app.client.get(app.url("/readyz"))).await;
    assert_eq!(s, 200);
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["projections"]["facts"]["position"], json!(p));
    assert_eq!(ready["projections"]["facts"]["lag_events"], 0);
}

/// What a scraper needs: HELP and TYPE for every metric (as `promtool
/// check metrics` demands, and it runs too when installed), and HTTP
/// metrics labelled by method and route template, never the raw path.
#[tokio::test]
async fn metrics_have_help_and_http_metrics_name_the_route_not_the_path() {
    let (app, ann, _, auditor) = setup().await;
    story(&app, &ann, 0).await;
    let fact = uuid::Uuid::new_v4();
    let _ = app
        .get_json(&format!("/v1/facts/{fact}/history"), &ann)
        .await;
    let _ = app.get_json("/v1/integrity", &auditor).await;
    let _ = crate::support::send(app.client.get(app.url("/no/such/page/12345"))).await;
    let text = metrics_text(&app).await;

    lint_metrics(&text);
    for needle in [
        "factlog_http_requests_total{method=\"POST\",route=\"/v1/stories\",status=\"201\"}",
        "route=\"/v1/facts/{fact_id}/history\"",
        "route=\"unmatched\"",
        "factlog_chain_verified_position",
        "factlog_chain_broken 0",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(
        !text.contains(&fact.to_string()),
        "a raw path leaked into a label"
    );
    assert!(!text.contains("12345"), "a raw path leaked into a label");
}

/// HELP and TYPE on every metric, and `promtool check metrics` happy
/// where the machine has it.
pub(crate) fn lint_metrics(text: &str) {
    let mut helped = std::collections::HashSet::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("#"), Some("HELP"), Some(name)) => {
                helped.insert(name.to_owned());
            }
            (Some("#"), Some("TYPE"), Some(name)) => {
                typed.insert(name.to_owned());
            }
            _ => {}
        }
    }
    assert!(!typed.is_empty());
    for name in &typed {
        assert!(helped.contains(name), "{name} has no HELP:\n{text}");
    }
    // The real linter, where the machine has it (Debian: prometheus).
    if let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("promtool");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.trim().is_empty(),
            "promtool: {said}"
        );
    }
}

pub(crate) async fn metrics_text(app: &TestApp) -> String {
    app.client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

/// What `/readyz` says, and `factlog_chain_broken` in `/metrics`.
async fn chain_reports(app: &TestApp) -> (Value, Option<String>) {
    let (_, _, ready) = send(app.client.get(app.url("/readyz"))).await;
    let broken = metrics_text(app)
        .await
        .lines()
        .find_map(|l| l.strip_prefix("factlog_chain_broken "))
        .map(str::to_owned);
    (ready, broken)
}

/// Polls until `/readyz` has this status and `/metrics` this
/// `factlog_chain_broken`, failing once they lag longer than a cached state
/// may. (Polled: metrics are process-wide, and other tests' servers scrape
/// too.)
async fn until_chain_reports(app: &TestApp, status: &str, broken: &str) -> Value {
    let bound = factlog::store::chain_status::MAX_AGE + Duration::from_secs(3);
    let started = std::time::Instant::now();
    loop {
        let (ready, b) = chain_reports(app).await;
        if ready["status"] == status && b.as_deref() == Some(broken) {
            return ready;
        }
        assert!(
            started.elapsed() < bound,
            "still {ready} / factlog_chain_broken {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `/readyz` and `/metrics` answer from the chain state this process last
/// saw, not from the table each time. A process that runs no verifier
/// (`serve --no-workers`) must still report a break another process
/// recorded, and its repair, within `chain_status::MAX_AGE`.
#[tokio::test]
async fn readiness_and_metrics_follow_a_break_recorded_by_another_process() {
    let app = TestApp::start_with(crate::support::AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let r = until_chain_reports(&app, "ready", "0").await;
    assert_eq!(r["integrity"]["ok"], true);

    // Another process's verifier finds a break.
    sqlx::query("UPDATE chain_verification SET first_bad_position = 1, found_bad_at = now()")
        .execute(&app.db.pool)
        .await
        .expect("break");
    let r = until_chain_reports(&app, "degraded", "1").await;
    assert_eq!(
        (
            r["integrity"]["ok"].clone(),
            r["integrity"]["first_bad_position"].clone()
        ),
        (json!(false), json!(1))
    );

    // A later full pass there finds the log put back.
    sqlx::query("UPDATE chain_verification SET first_bad_position = NULL, found_bad_at = NULL")
        .execute(&app.db.pool)
        .await
        .expect("repair");
    let r = until_chain_reports(&app, "ready", "0").await;
    assert_eq!(r["integrity"]["ok"], true);
}

/// With a verifier in the process, what `/readyz` reports of the chain
/// keeps up with the log: the verified prefix reaches the head.
#[tokio::test]
async fn readiness_reports_the_verified_prefix_reaching_the_head() {
    let (app, ann, _, _) = setup().await;
    let mut last = 0;
    for i in 0..3 {
        last = story(&app, &ann, i).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (s, _, r) = send(app.client.get(app.url("/readyz"))).await;
        assert_eq!(s, 200);
        if r["integrity"]["verified_position"] == last {
            assert_eq!(r["head"], last);
            assert_eq!(r["integrity"]["unverified_events"], 0);
            assert_eq!(r["integrity"]["ok"], true);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
