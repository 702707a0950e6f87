//! Listings as CSV and content negotiation: `Accept: text/csv` on the
//! claims and facts listings, read back by Python's `csv` module byte for
//! byte; an `Accept` no representation satisfies is 406 and writes nothing.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::hostile::hostile;
use crate::support::TestApp;

/// Parses CSV with Python's `csv` module (RFC 4180 dialect) into rows of
/// header → cell.
fn python_rows(csv: &str) -> Vec<serde_json::Map<String, Value>> {
    let script = "import csv, io, json, sys\n\
                  text = sys.stdin.buffer.read().decode('utf-8')\n\
                  rows = list(csv.DictReader(io.StringIO(text, newline=''), strict=True))\n\
                  json.dump(rows, sys.stdout)\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(csv.as_bytes())
        .expect("write csv");
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("rows as JSON")
}

/// GETs `path` as text/csv: (status, content type, `Link`, body).
async fn csv_page(app: &TestApp, path: &str, token: &str) -> (u16, String, Option<String>, String) {
    app.get_accepting(path, token, "text/csv").await
}

/// The path inside a `Link: <path>; rel="next"` header.
fn next_path(link: &str) -> String {
    let (target, rel) = link.split_once(';').expect("a Link with a rel");
    assert_eq!(rel.trim(), "rel=\"next\"");
    target
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_owned()
}

#[tokio::test]
async fn hostile_strings_survive_a_round_trip_through_pythons_csv_page_by_page() {
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let reader = app.token("rita", "reader").await;
    let strings = hostile();
    let body = strings.join(" | ");
    let (s, _, story) = app
        .post_json(
            "/v1/stories",
            &ann,
            &json!({"title": "Hostile", "publisher": "P", "published_at": "2020-01-01", "body": body}),
        )
        .await;
    assert_eq!(s, 201, "{story}");
    let story_id = story["id"].as_str().expect("id");
    let mut last = 0;
    for s in &strings {
        let (st, _, claim) = app
            .post_json(
                "/v1/claims",
                &ann,
                &json!({"story_id": story_id, "subject": s, "property": "said",
                        "value": {"kind": "text", "text": s}, "quote": s, "attributed_to": s}),
            )
            .await;
        assert_eq!(st, 201, "{s:?}: {claim}");
        last = claim["position"].as_i64().expect("position");
    }

    // The JSON listing is the reference; the CSV pages must say the same.
    let (s, _, listed) = app
        .get_json(
            &format!("/v1/claims?story_id={story_id}&limit=1000&wait_for={last}"),
            &reader,
        )
        .await;
    assert_eq!(s, 200, "{listed}");
    let expected = listed["items"].as_array().expect("items").clone();
    assert_eq!(expected.len(), strings.len());

    let mut path = format!("/v1/claims?story_id={story_id}&limit=3");
    let mut rows = Vec::new();
    let mut pages = 0;
    loop {
        let (status, content_type, link, text) = csv_page(&app, &path, &reader).await;
        assert_eq!(status, 200, "{text}");
        assert!(content_type.starts_with("text/csv"), "{content_type}");
        assert!(
            text.starts_with("id,story_id,fact_id,subject,property,status,"),
            "{text}"
        );
        assert!(text.ends_with("\r\n"), "every record ends with CRLF");
        rows.extend(python_rows(&text));
        pages += 1;
        match link {
            Some(link) => path = next_path(&link),
            None => break,
        }
    }
    assert_eq!(pages, strings.len().div_ceil(3), "three claims a page");
    assert_eq!(rows.len(), expected.len());
    for (row, claim) in rows.iter().zip(&expected) {
        assert_eq!(row["id"], claim["id"]);
        for field in ["subject", "quote", "attributed_to", "status", "asserted_by"] {
            assert_eq!(row[field], claim[field], "{field} of {}", claim["id"]);
        }
        assert_eq!(row["value"], claim["value"]["text"]);
        assert_eq!(row["value_kind"], "text");
        let value: Value = serde_json::from_str(row["value_json"].as_str().expect("text"))
            .expect("value_json is JSON");
        assert_eq!(value, claim["value"]);
        assert_eq!(row["version"], claim["version"].to_string());
        assert_eq!(row["corrects"], "", "nothing is an empty cell");
    }
}

#[tokio::test]
async fn facts_as_csv_keep_the_filters_and_the_next_page() {
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let bob = app.token("bob", "editor").await;
    let reader = app.token("rita", "reader").await;
    let (_, _, story) = app
        .post_json(
            "/v1/stories",
            &ann,
            &json!({"title": "T", "publisher": "P", "published_at": "2020-01-01"}),
        )
        .await;
    let mut last = 0;
    for (i, amount) in ["5200", "61", "7,5"].iter().enumerate() {
        let (s, _, claim) = app
            .post_json(
                "/v1/claims",
                &ann,
                &json!({"story_id": story["id"], "subject": format!("Troops, \"unit\" {i}"),
                        "property": "count", "quote": "q", "value": {"kind": "text", "text": amount}}),
            )
            .await;
        assert_eq!(s, 201, "{claim}");
        let (s, _, confirmed) = app
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
        last = confirmed["position"].as_i64().expect("position");
    }
    let (status, _, link, text) = csv_page(
        &app,
        &format!("/v1/facts?status=verified&property=count&limit=2&wait_for={last}"),
        &reader,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let first = python_rows(&text);
    assert_eq!(first.len(), 2);
    let next = next_path(&link.expect("a next page"));
    assert!(
        next.starts_with("/v1/facts?")
            && next.contains("status=verified")
            && next.contains("property=count"),
        "the next page keeps the filters: {next}"
    );
    let (status, _, link, text) = csv_page(&app, &next, &reader).await;
    assert_eq!(status, 200, "{text}");
    assert!(link.is_none(), "the last page has no next");
    let rows: Vec<_> = first.into_iter().chain(python_rows(&text)).collect();
    let mut seen: Vec<&str> = rows
        .iter()
        .map(|r| r["value"].as_str().expect("value"))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, ["5200", "61", "7,5"]);
    for r in &rows {
        assert_eq!(r["status"], "verified");
        assert_eq!(r["claims"], "1");
        assert!(
            r["subject"]
                .as_str()
                .expect("subject")
                .starts_with("Troops, \"unit\" ")
        );
    }

    // A filter the JSON listing refuses is refused the same way, as problem+json.
    let (status, content_type, _, text) = csv_page(&app, "/v1/facts?status=maybe", &reader).await;
    assert_eq!(
        (status, content_type.as_str()),
        (422, "application/problem+json"),
        "{text}"
    );
}

#[tokio::test]
async fn an_accept_header_nothing_satisfies_is_406_and_writes_nothing() {
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let reader = app.token("rita", "reader").await;
    let problem = |res: reqwest::Response| async move {
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().expect("ascii").to_owned());
        let body: Value = serde_json::from_str(&res.text().await.expect("body")).expect("json");
        (status, content_type, body)
    };

    for path in ["/v1/facts", "/v1/claims"] {
        let res = app
            .get(path, &reader)
            .header("Accept", "image/png, text/csv;q=0")
            .send()
            .await
            .expect("request");
        let (status, content_type, body) = problem(res).await;
        assert_eq!(status, 406, "{body}");
        assert_eq!(content_type.as_deref(), Some("application/problem+json"));
        assert_eq!(body["type"], "/problems/not-acceptable");
        let detail = body["detail"].as_str().expect("detail");
        assert!(
            detail.contains("application/json") && detail.contains("text/csv"),
            "{detail}"
        );
    }

    // A resource with one representation is held to it too.
    let res = app
        .get("/v1/integrity", &app.token("audrey", "auditor").await)
        .header("Accept", "text/csv")
        .send()
        .await
        .expect("request");
    let (status, _, body) = problem(res).await;
    assert_eq!(status, 406, "{body}");

    // A write that could only answer JSON is refused before it runs.
    let before = app.count_events().await;
    let res = app
        .post("/v1/stories", &ann)
        .header("Accept", "text/csv")
        .json(&json!({"title": "T", "publisher": "P", "published_at": "2020-01-01"}))
        .send()
        .await
        .expect("request");
    let (status, _, body) = problem(res).await;
    assert_eq!(status, 406, "{body}");
    assert_eq!(app.count_events().await, before, "nothing was written");

    // What clients usually send still gets JSON.
    for accept in [
        "*/*",
        "application/json",
        "application/*;q=0.9, text/csv;q=0.1",
        "text/html,*/*;q=0.8",
    ] {
        let res = app
            .get("/v1/facts", &reader)
            .header("Accept", accept)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status().as_u16(), 200, "{accept}");
        let content_type = res.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            content_type.starts_with("application/json"),
            "{accept}: {content_type}"
        );
    }
}
