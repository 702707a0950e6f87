//! The verifiable log's leaf design: erasable values leave the log's hashed
//! bytes (only salted commitments stay), readers see the values, and every
//! event's `leaf_hash` is recomputable by an outsider from `/v1/events`
//! with AUDITING.md's own Python.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::TestApp;

const QUOTE: &str = "Some 5,200 U.S. soldiers — «marker-q7» — are stationed in Iraq.";
const SOURCE: &str = "a colonel, marker-s3";
const NOTE: &str = "checked with the ministry, marker-n9";

fn body() -> String {
    format!(
        "Full text of the story, marker-b1\nsecond line \"quoted\" \u{1F600} {QUOTE} (amended)."
    )
}

/// Writes a story, a claim, a confirmation and an amendment; returns the
/// write responses.
async fn write_some(app: &TestApp) -> Vec<Value> {
    let ann = app.token("ann", "editor").await;
    let bob = app.token("bob", "editor").await;
    let (s, _, story) = app
        .post_json(
            "/v1/stories",
            &ann,
            &json!({"title": "Troops", "publisher": "Wire", "published_at": "2020-01-05",
                    "body": body()}),
        )
        .await;
    assert_eq!(s, 201, "{story}");
    let (s, _, claim) = app
        .post_json(
            "/v1/claims",
            &ann,
            &json!({"story_id": story["id"], "subject": "U.S. troops in Iraq",
                    "property": "troop_count", "value": {"kind": "quantity", "amount": "5200",
                    "unit": "soldier", "approximate": true}, "quote": QUOTE,
                    "attributed_to": SOURCE, "valid_at": "2020-01"}),
        )
        .await;
    assert_eq!(s, 201, "{claim}");
    let id = claim["id"].as_str().expect("id").to_owned();
    let (s, _, amended) = app
        .post_json(
            &format!("/v1/claims/{id}/amendments"),
            &ann,
            &json!({"quote": format!("{QUOTE} (amended)")}),
        )
        .await;
    assert_eq!(s, 200, "{amended}");
    let (s, _, confirmed) = app
        .post_json(
            &format!("/v1/claims/{id}/confirmations"),
            &bob,
            &json!({"note": NOTE}),
        )
        .await;
    assert_eq!(s, 200, "{confirmed}");
    vec![story, claim, amended, confirmed]
}

#[tokio::test]
async fn erasable_values_stay_out_of_the_hashed_log_and_readers_see_them() {
    let app = TestApp::start().await;
    let writes = write_some(&app).await;

    let stored: Vec<String> = sqlx::query_scalar("SELECT data::text FROM events ORDER BY position")
        .fetch_all(&app.db.pool)
        .await
        .expect("events");
    let all = stored.join("\n");
    for marker in ["marker-q7", "marker-s3", "marker-n9", "marker-b1"] {
        assert!(!all.contains(marker), "{marker} is in the log: {all}");
    }
    let kept: Vec<String> = sqlx::query_scalar("SELECT secrets::text FROM event_secrets")
        .fetch_all(&app.db.pool)
        .await
        .expect("secrets");
    let kept = kept.join("\n");
    for marker in ["marker-q7", "marker-s3", "marker-n9", "marker-b1"] {
        assert!(kept.contains(marker), "{marker} is not kept beside the log");
    }

    let auditor = app.token("audrey", "auditor").await;
    let (s, _, page) = app.get_json("/v1/events?limit=100", &auditor).await;
    assert_eq!(s, 200);
    let events = page["events"].as_array().expect("events");
    let asserted = events
        .iter()
        .find(|e| e["type"] == "ClaimAsserted")
        .expect("asserted");
    assert_eq!(asserted["data"]["quote"], QUOTE);
    assert_eq!(asserted["data"]["attributed_to"], SOURCE);
    let salts = asserted["salts"].as_object().expect("salts");
    assert_eq!(salts.len(), 2, "{salts:?}");
    let amended = events
        .iter()
        .find(|e| e["type"] == "ClaimAmended")
        .expect("amended");
    assert!(amended["salts"].get("changes.quote").is_some(), "{amended}");
    let story = events
        .iter()
        .find(|e| e["type"] == "StoryRegistered")
        .expect("story");
    assert_eq!(story["data"]["body"], body());

    // Reads through the projections and the claim's own stream.
    let id = writes[1]["id"].as_str().expect("id");
    let (s, _, claim) = app
        .get_json(
            &format!("/v1/claims/{id}?wait_for={}", writes[3]["position"]),
            &auditor,
        )
        .await;
    assert_eq!(s, 200, "{claim}");
    assert_eq!(claim["quote"], format!("{QUOTE} (amended)"));
    assert_eq!(claim["attributed_to"], SOURCE);
    assert_eq!(claim["confirmations"][0]["note"], NOTE);
    let fact = claim["fact_id"].as_str().expect("fact");
    let (s, _, history) = app
        .get_json(&format!("/v1/facts/{fact}/history"), &auditor)
        .await;
    assert_eq!(s, 200, "{history}");
    assert_eq!(history["items"][0]["data"]["quote"], QUOTE);

    // The chain covers what is stored, commitments included.
    let report = factlog::store::verify_chain(&app.db.pool, 1000, |_| {})
        .await
        .expect("verify");
    assert!(report.ok, "{report:?}");
}

/// The Python of AUDITING.md, "The leaf", as the document shows it.
pub(crate) fn documented_python() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/AUDITING.md"))
        .expect("AUDITING.md");
    let start = doc.find("```python\n").expect("a python block") + "```python\n".len();
    let end = start + doc[start..].find("```").expect("its end");
    doc[start..end].to_owned()
}

#[tokio::test]
async fn an_outsider_recomputes_every_leaf_hash_with_the_documented_python() {
    let app = TestApp::start().await;
    let writes = write_some(&app).await;
    let auditor = app.token("audrey", "auditor").await;
    let (s, _, page) = app.get_json("/v1/events?limit=100", &auditor).await;
    assert_eq!(s, 200);
    let events = page["events"].as_array().expect("events").clone();
    assert!(
        events.len() >= 6,
        "tokens, story, claim, amendment, confirmation"
    );

    let program = format!(
        "{}\nimport sys\nfor e in json.load(sys.stdin):\n    print(leaf_hash(e))\n",
        documented_python()
    );
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(&program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs (AUDITING.md's verifier is Python)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(serde_json::to_string(&events).expect("json").as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let computed: Vec<String> = String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .map(str::to_owned)
        .collect();
    let served: Vec<String> = events
        .iter()
        .map(|e| e["leaf_hash"].as_str().expect("leaf_hash").to_owned())
        .collect();
    assert_eq!(computed, served);

    // A write's receipt names the same leaf as the log does.
    for w in &writes {
        let at = events
            .iter()
            .find(|e| e["position"] == w["position"])
            .expect("the write's event");
        assert_eq!(w["leaf_hash"], at["leaf_hash"], "{w}");
    }

    // A changed value no longer matches its leaf: the salts bind it.
    let mut forged = events
        .iter()
        .find(|e| e["type"] == "ClaimAsserted")
        .expect("asserted")
        .clone();
    forged["data"]["quote"] = json!("Some 9,000 U.S. soldiers are stationed in Iraq.");
    let program = format!(
        "{}\nimport sys\nprint(leaf_hash(json.load(sys.stdin)))\n",
        documented_python()
    );
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(&program)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(forged.to_string().as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python3");
    assert_ne!(
        String::from_utf8_lossy(&out.stdout).trim(),
        forged["leaf_hash"].as_str().expect("leaf")
    );
}
