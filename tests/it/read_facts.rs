//! The contract's fact rules, read through the HTTP API after the projections
//! have applied the writes (`wait_for`).

use serde_json::{Value, json};

use crate::support::{AppOptions, TestApp, send};

const BODY: &str = "Some 5,200 U.S. soldiers are stationed in Iraq. Officials said 5,000 troops. \
    Parliament voted on 2020-01-05 to oust foreign troops.";

struct Desk {
    app: TestApp,
    ed: [String; 4],
    reader: String,
    story: String,
}

async fn desk() -> Desk {
    let app = TestApp::start().await;
    let ed = [
        app.token("ann", "editor").await,
        app.token("bob", "editor").await,
        app.token("cy", "editor").await,
        app.token("dee", "editor").await,
    ];
    let reader = app.token("rita", "reader").await;
    let (_, _, s) = app
        .post_json(
            "/v1/stories",
            &ed[0],
            &json!({"title": "t", "publisher": "Wire", "published_at": "2020-01-06T10:00:00Z", "body": BODY}),
        )
        .await;
    let story = s["id"].as_str().expect("story").to_owned();
    Desk {
        app,
        ed,
        reader,
        story,
    }
}

fn troops(amount: &str, valid_at: Option<&str>) -> Value {
    let mut b = json!({"subject": "U.S. troops in Iraq", "property": "troop_count",
        "value": {"kind": "quantity", "amount": amount, "unit": "soldier"},
        "quote": "Some 5,200 U.S. soldiers are stationed in Iraq."});
    if let Some(v) = valid_at {
        b["valid_at"] = json!(v);
    }
    b
}

impl Desk {
    /// Asserts as editor `by`; returns (claim id, fact id, position).
    async fn assert(&self, by: usize, mut body: Value) -> (String, String, i64) {
        body["story_id"] = json!(self.story);
        let (s, _, b) = self.app.post_json("/v1/claims", &self.ed[by], &body).await;
        assert_eq!(s, 201, "{b}");
        (
            b["id"].as_str().expect("id").into(),
            b["fact_id"].as_str().expect("fact").into(),
            b["position"].as_i64().expect("position"),
        )
    }

    async fn act(&self, by: usize, claim: &str, action: &str, body: Value) -> i64 {
        let (s, _, b) = self
            .app
            .post_json(&format!("/v1/claims/{claim}/{action}"), &self.ed[by], &body)
            .await;
        assert_eq!(s, 200, "{b}");
        b["position"].as_i64().expect("position")
    }

    async fn fact(&self, fact: &str, wait_for: i64, query: &str) -> Value {
        let (s, _, b) = self
            .app
            .get_json(
                &format!("/v1/facts/{fact}?wait_for={wait_for}{query}"),
                &self.reader,
            )
            .await;
        assert_eq!(s, 200, "{b}");
        b
    }
}

#[tokio::test]
async fn agreeing_claims_verify_a_fact_and_disagreeing_ones_contest_it() {
    let d = desk().await;
    let (a, fact, _) = d.assert(0, troops("5200", Some("2020-01"))).await;
    let (b, fact_b, _) = d.assert(1, troops("5200.0", Some("2020-01"))).await;
    assert_eq!(fact, fact_b);
    let p = d.act(1, &a, "confirmations", json!({})).await;
    let f = d.fact(&fact, p, "").await;
    assert_eq!(
        (f["status"].as_str(), f["valid_at"].as_str()),
        (Some("verified"), Some("2020-01"))
    );
    assert_eq!(f["value"]["amount"], "5200");
    assert_eq!(f["subject"], "U.S. troops in Iraq");
    assert_eq!(f["claims"].as_array().map(Vec::len), Some(2));

    // 5200 and 5200.0 agree: still verified, one value.
    let p = d.act(2, &b, "confirmations", json!({})).await;
    let f = d.fact(&fact, p, "").await;
    assert_eq!(f["status"], "verified");
    assert_eq!(f["timeline"][0]["values"].as_array().map(Vec::len), Some(1));

    // A different verified value at the same valid time: contested, both shown.
    let (c, _, _) = d.assert(3, troops("5000", Some("2020-01"))).await;
    let p = d.act(0, &c, "confirmations", json!({})).await;
    let f = d.fact(&fact, p, "").await;
    assert_eq!(f["status"], "contested");
    assert_eq!(f["value"], Value::Null);
    assert_eq!(f["valid_at"], "2020-01");
    let t = &f["timeline"][0];
    assert_eq!(t["status"], "contested");
    let amounts: Vec<&str> = t["values"]
        .as_array()
        .expect("values")
        .iter()
        .filter_map(|v| v["amount"].as_str())
        .collect();
    assert_eq!(amounts, ["5200", "5000"]);
    assert_eq!(t["claim_ids"].as_array().map(Vec::len), Some(3));

    // A dispute removes a claim's vote: back to verified on 5200.
    let p = d
        .act(
            1,
            &c,
            "disputes",
            json!({"reason": "the 5,000 figure is from 2019"}),
        )
        .await;
    let f = d.fact(&fact, p, "").await;
    assert_eq!(
        (f["status"].as_str(), f["value"]["amount"].as_str()),
        (Some("verified"), Some("5200"))
    );

    // Retracting both 5200 claims leaves nothing verified.
    d.act(0, &a, "retraction", json!({"reason": "r"})).await;
    let p = d.act(1, &b, "retraction", json!({"reason": "r"})).await;
    let f = d.fact(&fact, p, "").await;
    assert_eq!(
        (
            f["status"].as_str(),
            f["value"].clone(),
            f["valid_at"].clone()
        ),
        (Some("unverified"), Value::Null, Value::Null)
    );
    assert_eq!(f["timeline"][0]["status"], "unverified");

    // Listing by subject and property matches after normalization.
    let (s, _, list) = d
        .app
        .get_json(
            &format!(
                "/v1/facts?subject=u.s.%20TROOPS%20in%20iraq&property=Troop_Count&wait_for={p}"
            ),
            &d.reader,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["items"][0]["id"], json!(fact));
    let (_, _, none) = d
        .app
        .get_json(
            &format!("/v1/facts?status=verified&wait_for={p}"),
            &d.reader,
        )
        .await;
    assert_eq!(none["items"], json!([]));
}

#[tokio::test]
async fn a_fact_is_laid_out_along_valid_time() {
    let d = desk().await;
    // No valid_at: the claim holds at the story's publication time.
    let (now, fact, _) = d.assert(0, troops("5200", None)).await;
    let (y2019, _, _) = d.assert(0, troops("5000", Some("2019"))).await;
    let (month, _, _) = d.assert(0, troops("5100", Some("2019-12"))).await;
    d.act(1, &now, "confirmations", json!({})).await;
    d.act(1, &y2019, "confirmations", json!({})).await;
    let p = d.act(1, &month, "confirmations", json!({})).await;
    let f = d.fact(&fact, p, "").await;
    let times: Vec<&str> = f["timeline"]
        .as_array()
        .expect("t")
        .iter()
        .filter_map(|e| e["valid_at"].as_str())
        .collect();
    assert_eq!(times, ["2019", "2019-12", "2020-01-06T10:00:00Z"]);
    assert_eq!(
        (f["valid_at"].as_str(), f["value"]["amount"].as_str()),
        (Some("2020-01-06T10:00:00Z"), Some("5200"))
    );

    // valid_at: the latest valid time at or before the given one.
    let f = d.fact(&fact, p, "&valid_at=2019-12-31").await;
    assert_eq!(
        (f["valid_at"].as_str(), f["value"]["amount"].as_str()),
        (Some("2019-12"), Some("5100"))
    );
    let f = d.fact(&fact, p, "&valid_at=2019-06").await;
    assert_eq!(
        (f["valid_at"].as_str(), f["value"]["amount"].as_str()),
        (Some("2019"), Some("5000"))
    );
    let f = d.fact(&fact, p, "&valid_at=2018").await;
    assert_eq!(f["status"], "unverified");
    let (s, _, b) = d
        .app
        .get_json(&format!("/v1/facts/{fact}?valid_at=2019-02-30"), &d.reader)
        .await;
    assert_eq!((s, b["field"].as_str()), (422, Some("valid_at")));
}

#[tokio::test]
async fn as_of_shows_what_was_known_then() {
    let d = desk().await;
    let (a, fact, asserted) = d.assert(0, troops("5200", Some("2020"))).await;
    let _ = d.fact(&fact, asserted, "").await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let before_confirm = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let p = d.act(1, &a, "confirmations", json!({})).await;

    let now = d.fact(&fact, p, "").await;
    assert_eq!(now["status"], "verified");
    let then = d
        .fact(
            &fact,
            p,
            &format!(
                "&as_of={}",
                before_confirm
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                    .replace('+', "%2B")
            ),
        )
        .await;
    assert_eq!(then["status"], "unverified");
    assert_eq!(then["claims"][0]["status"], "pending");
    // as_of and valid_at together.
    let then_at = d
        .fact(
            &fact,
            p,
            &format!(
                "&valid_at=2021&as_of={}",
                before_confirm
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                    .replace('+', "%2B")
            ),
        )
        .await;
    assert_eq!(then_at["status"], "unverified");
    // Before the fact existed: 404.
    let (s, _, _) = d
        .app
        .get_json(
            &format!("/v1/facts/{fact}?wait_for={p}&as_of=2000-01-01T00:00:00Z"),
            &d.reader,
        )
        .await;
    assert_eq!(s, 404);

    // History: every event of every claim of the fact, in position order.
    let (s, _, h) = d
        .app
        .get_json(&format!("/v1/facts/{fact}/history?wait_for={p}"), &d.reader)
        .await;
    assert_eq!(s, 200);
    let types: Vec<&str> = h["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["type"].as_str())
        .collect();
    assert_eq!(types, ["ClaimAsserted", "ClaimConfirmed"]);
    assert_eq!(h["items"][1]["actor"], "bob");
    assert_eq!(h["items"][1]["claim_id"], json!(a));
}

#[tokio::test]
async fn a_verified_correction_supersedes_in_the_fact() {
    let d = desk().await;
    let (old, fact, _) = d.assert(0, troops("5200", Some("2020"))).await;
    d.act(1, &old, "confirmations", json!({})).await;
    let mut fix = troops("5000", Some("2020"));
    fix["corrects"] = json!(old);
    let (new, _, _) = d.assert(0, fix).await;
    let p = d.act(2, &new, "confirmations", json!({})).await;
    let f = d.fact(&fact, p, "").await;
    assert_eq!(
        (f["status"].as_str(), f["value"]["amount"].as_str()),
        (Some("verified"), Some("5000"))
    );
    let statuses: Vec<(&str, &str)> = f["claims"]
        .as_array()
        .expect("claims")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or(""),
                c["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        statuses.contains(&(old.as_str(), "superseded")),
        "{statuses:?}"
    );
    // The claims list and the story show it too.
    let (_, _, list) = d
        .app
        .get_json(
            &format!("/v1/claims?status=superseded&wait_for={p}"),
            &d.reader,
        )
        .await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["items"][0]["superseded_by"], json!(new));
}

#[tokio::test]
async fn lists_page_by_cursor_and_wait_for_times_out_with_503() {
    let d = desk().await;
    let mut last = 0;
    for i in 0..7 {
        let (_, _, p) = d
            .assert(i % 2, troops(&format!("{}", 5000 + i), Some("2020")))
            .await;
        last = p;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor
            .as_ref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let (s, _, page) = d
            .app
            .get_json(&format!("/v1/claims?limit=3&wait_for={last}{q}"), &d.reader)
            .await;
        assert_eq!(s, 200, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(|c| c["id"].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    let (_, _, all) = d.app.get_json("/v1/claims?limit=1000", &d.reader).await;
    assert_eq!(
        all["items"]
            .as_array()
            .map(|a| a.iter().map(|c| c["id"].clone()).collect::<Vec<_>>()),
        Some(seen)
    );
    let (_, _, bob) = d
        .app
        .get_json("/v1/claims?asserted_by=bob&status=pending", &d.reader)
        .await;
    assert_eq!(bob["items"].as_array().map(Vec::len), Some(3));
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "status=sleeping",
        "cursor=zz",
        "story_id=1",
    ] {
        let (s, _, b) = d
            .app
            .get_json(&format!("/v1/claims?{bad}"), &d.reader)
            .await;
        assert_eq!(s, 422, "{bad}: {b}");
    }

    // A position no projection will reach: 503 with Retry-After, after the 5 s limit.
    let app = TestApp::start_with(AppOptions {
        workers: false,
        ..AppOptions::default()
    })
    .await;
    let t = app.token("r", "reader").await;
    let started = std::time::Instant::now();
    let (s, h, b) = send(app.get("/v1/facts?wait_for=1", &t)).await;
    assert_eq!(s, 503, "{b}");
    assert!(h.get("retry-after").is_some());
    assert_eq!(b["status"], 503);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(5),
        "it waited its 5 s"
    );
    // A position past the log's head was never handed to anyone: 422 at
    // once, naming wait_for.
    let started = std::time::Instant::now();
    let (s, _, b) = send(app.get("/v1/facts?wait_for=999999", &t)).await;
    assert_eq!(s, 422, "{b}");
    assert!(b.to_string().contains("wait_for"), "{b}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}
