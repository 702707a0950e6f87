//! The editors' write API over a real socket: the life cycle, status codes,
//! conditional and idempotent writes, and bad input that writes nothing.

use serde_json::{Value, json};

use crate::support::{AppOptions, TestApp, send};

const BODY: &str = "WASHINGTON — Some 5,200 U.S. soldiers are stationed in Iraq.\n\
    Parliament voted on 2020-01-05 to oust foreign troops. \u{201C}We will comply,\u{201D} the letter said.";

struct Newsroom {
    app: TestApp,
    ann: String,
    bob: String,
    cy: String,
    reader: String,
    admin: String,
}

async fn newsroom_with(opts: AppOptions) -> Newsroom {
    let app = TestApp::start_with(opts).await;
    Newsroom {
        ann: app.token("ann", "editor").await,
        bob: app.token("bob", "editor").await,
        cy: app.token("cy", "editor").await,
        reader: app.token("rita", "reader").await,
        admin: app.token("root", "admin").await,
        app,
    }
}

async fn newsroom() -> Newsroom {
    newsroom_with(AppOptions::default()).await
}

impl Newsroom {
    async fn story(&self) -> String {
        let (status, _, body) = self
            .app
            .post_json(
                "/v1/stories",
                &self.ann,
                &json!({"title": "Iraq votes to oust U.S. troops", "publisher": "Wire",
                        "published_at": "2020-01-06T10:00:00Z", "body": BODY}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }

    async fn claim_by(&self, token: &str, story: &str, extra: Value) -> Value {
        let mut body = json!({
            "story_id": story, "subject": "U.S. troops in Iraq", "property": "troop_count",
            "value": {"kind": "quantity", "amount": "5200", "unit": "soldier", "approximate": true},
            "quote": "Some 5,200 U.S. soldiers are stationed in Iraq."
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        let (status, _, body) = self.app.post_json("/v1/claims", token, &body).await;
        assert_eq!(status, 201, "{body}");
        body
    }

    async fn act(&self, token: &str, claim: &str, action: &str, body: Value) -> (u16, Value) {
        let (status, _, body) = self
            .app
            .post_json(&format!("/v1/claims/{claim}/{action}"), token, &body)
            .await;
        (status, body)
    }

    async fn claim(&self, id: &str) -> Value {
        let (status, _, body) = self
            .app
            .get_json(&format!("/v1/claims/{id}"), &self.reader)
            .await;
        assert_eq!(status, 200);
        body
    }
}

fn is_problem(headers: &reqwest::header::HeaderMap, body: &Value, status: u16) {
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    assert_eq!(body["status"], json!(status), "{body}");
    assert!(body["title"].is_string() && body["detail"].is_string() && body["type"].is_string());
}

#[tokio::test]
async fn register_assert_and_confirm_with_a_second_editor() {
    let n = newsroom().await;
    // Issuing the five tokens was recorded on the `principals` stream.
    let base = n.app.count_events().await;
    assert_eq!(base, 5);
    let (status, headers, story) = n
        .app
        .post_json(
            "/v1/stories",
            &n.ann,
            &json!({"title": "T", "publisher": "Wire", "published_at": "2020-01-06",
                    "url": "https://example.org/a", "body": BODY}),
        )
        .await;
    assert_eq!(status, 201);
    let story_id = story["id"].as_str().expect("id");
    assert_eq!(
        headers["location"],
        format!("/v1/stories/{story_id}").as_str()
    );
    assert_eq!(headers["etag"], "\"1\"");
    assert_eq!(
        (story["version"].as_u64(), story["position"].as_i64()),
        (Some(1), Some(base + 1))
    );
    assert_eq!(story["hash"].as_str().map(str::len), Some(64));
    assert_eq!(story["published_at"], "2020-01-06T00:00:00Z");

    let claim = n
        .claim_by(
            &n.ann,
            story_id,
            json!({"valid_at": "2020-01", "attributed_to": "the Pentagon"}),
        )
        .await;
    let id = claim["id"].as_str().expect("id").to_owned();
    assert_eq!(claim["status"], "pending");
    assert_eq!(claim["asserted_by"], "ann");
    assert_eq!(claim["value"]["amount"], "5200");
    assert_eq!(claim["valid_at"], "2020-01");
    assert_eq!(
        (claim["version"].as_u64(), claim["position"].as_i64()),
        (Some(1), Some(base + 2))
    );
    let fact_id = claim["fact_id"].as_str().expect("fact").to_owned();

    // The same subject and property written differently give the same fact.
    let other = n
        .claim_by(
            &n.bob,
            story_id,
            json!({"subject": "  u.s.\u{00A0}TROOPS in   iraq ", "property": "Troop_Count"}),
        )
        .await;
    assert_eq!(other["fact_id"], json!(fact_id));

    let (status, confirmed) = n
        .act(
            &n.bob,
            &id,
            "confirmations",
            json!({"note": "matches the DoD release"}),
        )
        .await;
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["status"], "verified");
    assert_eq!(confirmed["confirmed_by"], json!(["bob"]));
    assert_eq!(confirmed["version"], 2);

    let read = n.claim(&id).await;
    assert_eq!(read["status"], "verified");
    assert_eq!(read["confirmations"][0]["note"], "matches the DoD release");
    for k in ["position", "hash", "leaf_hash"] {
        assert!(read.get(k).is_none(), "reads carry no receipt");
    }
    let mut write_view = confirmed.clone();
    for k in ["position", "hash", "leaf_hash"] {
        write_view.as_object_mut().expect("object").remove(k);
    }
    assert_eq!(
        write_view, read,
        "the write's response is the claim as read back"
    );

    // A story's claims come from a projection: wait for the last write.
    let last = confirmed["position"].as_i64().expect("position");
    let (status, _, s) = n
        .app
        .get_json(
            &format!("/v1/stories/{story_id}?wait_for={last}"),
            &n.reader,
        )
        .await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["title"], "T");
    assert_eq!(s["claims"].as_array().map(Vec::len), Some(2));
    assert_eq!(s["claims"][0]["status"], "verified");

    // The event records that this confirmation verified the claim.
    let (data,): (Value,) = sqlx::query_as("SELECT data FROM events WHERE type = 'ClaimConfirmed'")
        .fetch_one(&n.app.db.pool)
        .await
        .expect("event");
    assert_eq!(data["verified"], json!(true));
    let actors: Vec<String> = sqlx::query_scalar("SELECT actor FROM events ORDER BY position")
        .fetch_all(&n.app.db.pool)
        .await
        .expect("actors");
    assert_eq!(&actors[actors.len() - 4..], ["ann", "ann", "bob", "bob"]);
}

#[tokio::test]
async fn the_asserter_cannot_confirm_and_the_claim_stays_pending() {
    let n = newsroom().await;
    let story = n.story().await;
    let id = n.claim_by(&n.ann, &story, json!({})).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let before = n.app.count_events().await;
    let (status, body) = n.act(&n.ann, &id, "confirmations", json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(n.claim(&id).await["status"], "pending");
    assert_eq!(n.app.count_events().await, before);
}

#[tokio::test]
async fn life_cycle_rules_and_their_status_codes() {
    let n = newsroom().await;
    let story = n.story().await;
    let id = n.claim_by(&n.ann, &story, json!({})).await["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // Only the asserter amends, only while pending; an amendment is a new version.
    let (s, b) = n
        .act(
            &n.bob,
            &id,
            "amendments",
            json!({"attributed_to": "a spokesman"}),
        )
        .await;
    assert_eq!(s, 403, "{b}");
    let (s, b) = n.act(&n.ann, &id, "amendments", json!({"value": {"kind": "quantity", "amount": 5000, "unit": "soldier"}, "valid_at": null})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["value"]["amount"].as_str(), b["version"].as_u64()),
        (Some("5000"), Some(2))
    );
    let (s, b) = n.act(&n.ann, &id, "amendments", json!({})).await;
    assert_eq!(s, 422, "an empty amendment says nothing: {b}");

    // Confirm once per round; after a dispute the same editor may confirm again.
    assert_eq!(n.act(&n.bob, &id, "confirmations", json!({})).await.0, 200);
    let (s, b) = n.act(&n.bob, &id, "confirmations", json!({})).await;
    assert_eq!(s, 409, "{b}");
    // A verified claim is not amendable, whoever asks: 409 before 403.
    assert_eq!(
        n.act(&n.ann, &id, "amendments", json!({"quote": "Some 5,200"}))
            .await
            .0,
        409
    );
    assert_eq!(
        n.act(&n.bob, &id, "amendments", json!({"quote": "Some 5,200"}))
            .await
            .0,
        409
    );

    let (s, b) = n
        .act(
            &n.cy,
            &id,
            "disputes",
            json!({"reason": "the Pentagon says 5,000"}),
        )
        .await;
    assert_eq!((s, b["status"].as_str()), (200, Some("disputed")));
    assert_eq!(b["confirmed_by"], json!([]));
    let (s, b) = n
        .act(&n.bob, &id, "disputes", json!({"reason": "me too"}))
        .await;
    assert_eq!(
        (s, b["disputes"].as_array().map(Vec::len)),
        (200, Some(2)),
        "several disputes are allowed"
    );
    let (s, b) = n.act(&n.bob, &id, "confirmations", json!({})).await;
    assert_eq!((s, b["status"].as_str()), (200, Some("verified")), "{b}");

    let (s, b) = n
        .act(
            &n.cy,
            &id,
            "evidence",
            json!({"url": "https://example.org/dod", "note": "release"}),
        )
        .await;
    assert_eq!((s, b["evidence"][0]["by"].as_str()), (200, Some("cy")));

    // Retraction: the asserter or an admin, with a reason; terminal.
    assert_eq!(
        n.act(&n.bob, &id, "retraction", json!({"reason": "wrong"}))
            .await
            .0,
        403
    );
    assert_eq!(n.act(&n.ann, &id, "retraction", json!({})).await.0, 422);
    let (s, b) = n
        .act(
            &n.ann,
            &id,
            "retraction",
            json!({"reason": "the story was wrong"}),
        )
        .await;
    assert_eq!((s, b["status"].as_str()), (200, Some("retracted")));
    let before = n.app.count_events().await;
    for (who, action, body) in [
        (&n.cy, "confirmations", json!({})),
        (&n.cy, "disputes", json!({"reason": "x"})),
        (&n.ann, "retraction", json!({"reason": "again"})),
        (
            &n.bob,
            "retraction",
            json!({"reason": "not mine, but 409 comes first"}),
        ),
        (&n.ann, "amendments", json!({"quote": "Some 5,200"})),
        (&n.cy, "evidence", json!({"url": "https://example.org"})),
    ] {
        let (s, b) = n.act(who, &id, action, body).await;
        assert_eq!(s, 409, "{action} on a retracted claim: {b}");
    }
    assert_eq!(n.app.count_events().await, before);

    // An admin may retract someone else's claim.
    let other = n.claim_by(&n.bob, &story, json!({})).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        n.act(&n.admin, &other, "retraction", json!({"reason": "legal"}))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn two_confirmations_when_the_setting_says_two() {
    let n = newsroom_with(AppOptions {
        required_confirmations: 2,
        ..AppOptions::default()
    })
    .await;
    let story = n.story().await;
    let id = n.claim_by(&n.ann, &story, json!({})).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (_, b) = n.act(&n.bob, &id, "confirmations", json!({})).await;
    assert_eq!(b["status"], "pending");
    // An amendment clears the confirmations so far.
    assert_eq!(
        n.act(
            &n.ann,
            &id,
            "amendments",
            json!({"attributed_to": "an official"})
        )
        .await
        .0,
        200
    );
    let (_, b) = n.act(&n.cy, &id, "confirmations", json!({})).await;
    assert_eq!(
        (b["status"].as_str(), b["confirmed_by"].clone()),
        (Some("pending"), json!(["cy"]))
    );
    let (_, b) = n.act(&n.bob, &id, "confirmations", json!({})).await;
    assert_eq!(b["status"], "verified");
}

#[tokio::test]
async fn a_verified_correction_supersedes_the_claim_it_corrects_in_one_transaction() {
    let n = newsroom().await;
    let story = n.story().await;
    let old = n.claim_by(&n.ann, &story, json!({})).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(n.act(&n.bob, &old, "confirmations", json!({})).await.0, 200);
    let new = n
        .claim_by(&n.ann, &story, json!({"corrects": old, "value": {"kind": "quantity", "amount": "5000", "unit": "soldier"}}))
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        n.claim(&old).await["status"],
        "verified",
        "not until the correction is verified"
    );
    let (s, b) = n.act(&n.cy, &new, "confirmations", json!({})).await;
    assert_eq!(
        (s, b["status"].as_str(), b["version"].as_u64()),
        (200, Some("verified"), Some(2)),
        "{b}"
    );
    let old_now = n.claim(&old).await;
    assert_eq!(old_now["status"], "superseded");
    assert_eq!(old_now["superseded_by"], json!(new));
    let rows: Vec<(i64, String, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT position, stream, type, recorded_at FROM events ORDER BY position DESC LIMIT 2",
    )
    .fetch_all(&n.app.db.pool)
    .await
    .expect("rows");
    assert_eq!(rows[1].2, "ClaimConfirmed");
    assert_eq!(rows[0].2, "ClaimSuperseded");
    assert_eq!(rows[0].1, format!("claim-{old}"));
    assert_eq!(rows[0].3, rows[1].3, "one transaction, one record time");
    assert_eq!(
        b["position"].as_i64(),
        Some(rows[0].0),
        "the receipt names the write's last event"
    );
    // Superseded is terminal.
    assert_eq!(
        n.act(&n.cy, &old, "disputes", json!({"reason": "x"}))
            .await
            .0,
        409
    );
}

#[tokio::test]
async fn a_quote_missing_from_the_story_body_is_422_and_writes_nothing() {
    let n = newsroom().await;
    let story = n.story().await;
    let before = n.app.count_events().await;
    for quote in [
        "Some 6,200 U.S. soldiers",
        "\"We will comply,\" the letter said.",
    ] {
        let (s, _, b) = n
            .app
            .post_json(
                "/v1/claims",
                &n.ann,
                &json!({"story_id": story, "subject": "s", "property": "p",
                        "value": {"kind": "boolean", "value": true}, "quote": quote}),
            )
            .await;
        assert_eq!((s, b["field"].as_str()), (422, Some("quote")), "{b}");
    }
    assert_eq!(n.app.count_events().await, before);
    // Curly quotes as in the body, and folded white space, do match.
    n.claim_by(
        &n.ann,
        &story,
        json!({"quote": "\u{201C}We will   comply,\u{201D}\n the letter said."}),
    )
    .await;
}

#[tokio::test]
async fn twenty_racing_conditional_writes_give_one_success() {
    let n = newsroom().await;
    let story = n.story().await;
    let id = n.claim_by(&n.ann, &story, json!({})).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let req = n
            .app
            .post(&format!("/v1/claims/{id}/disputes"), &n.bob)
            .header("If-Match", "\"1\"")
            .json(&json!({"reason": format!("doubt {i}")}));
        tasks.push(tokio::spawn(send(req)));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.expect("task").0);
    }
    codes.sort();
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 412).count(), 19, "{codes:?}");
    assert_eq!(n.claim(&id).await["version"], 2);
    let (s, h, b) = send(
        n.app
            .post(&format!("/v1/claims/{id}/disputes"), &n.bob)
            .header("If-Match", "\"1\"")
            .json(&json!({"reason": "late"})),
    )
    .await;
    assert_eq!(s, 412);
    is_problem(&h, &b, 412);
    assert_eq!(h["etag"], "\"2\"");
}

#[tokio::test]
async fn a_retried_write_with_the_same_idempotency_key_appends_nothing() {
    let n = newsroom().await;
    let story = n.story().await;
    let body = json!({"story_id": story, "subject": "parliament", "property": "vote",
        "value": {"kind": "outcome", "outcome": "passed", "for": 170}, "quote": "Parliament voted on 2020-01-05",
        "valid_at": "2020-01-05"});
    let first = send(
        n.app
            .post("/v1/claims", &n.ann)
            .header("Idempotency-Key", "abc-1")
            .json(&body),
    )
    .await;
    assert_eq!(first.0, 201);
    let count = n.app.count_events().await;
    // Same key and body (keys reordered): same status, same body, nothing written,
    // whatever If-Match the retry carries.
    let reordered: Value =
        serde_json::from_str(&serde_json::to_string(&body).expect("json")).expect("json");
    let again = send(
        n.app
            .post("/v1/claims", &n.ann)
            .header("Idempotency-Key", "abc-1")
            .header("If-Match", "\"99\"")
            .json(&reordered),
    )
    .await;
    assert_eq!((again.0, &again.2), (201, &first.2));
    assert_eq!(again.1["location"], first.1["location"]);
    assert_eq!(again.1["idempotent-replayed"], "true");
    assert_eq!(n.app.count_events().await, count);

    // Another body with the same key: 422, nothing written.
    let mut other = body.clone();
    other["subject"] = json!("senate");
    let (s, h, b) = send(
        n.app
            .post("/v1/claims", &n.ann)
            .header("Idempotency-Key", "abc-1")
            .json(&other),
    )
    .await;
    assert_eq!(s, 422);
    is_problem(&h, &b, 422);
    assert_eq!(n.app.count_events().await, count);

    // Keys are per token: another editor's same key is a new request.
    let bobs = send(
        n.app
            .post("/v1/claims", &n.bob)
            .header("Idempotency-Key", "abc-1")
            .json(&body),
    )
    .await;
    assert_eq!(bobs.0, 201);
    assert_ne!(bobs.2["id"], first.2["id"]);

    // A failed attempt is not kept: the same key may be retried.
    let id = first.2["id"].as_str().expect("id");
    let path = format!("/v1/claims/{id}/confirmations");
    assert_eq!(
        send(
            n.app
                .post(&path, &n.ann)
                .header("Idempotency-Key", "c-1")
                .json(&json!({}))
        )
        .await
        .0,
        403
    );
    let ok = send(
        n.app
            .post(&path, &n.ann)
            .header("Idempotency-Key", "c-1")
            .json(&json!({})),
    )
    .await;
    assert_eq!(ok.0, 403, "still the asserter");
    let ok = send(
        n.app
            .post(&path, &n.cy)
            .header("Idempotency-Key", "c-1")
            .json(&json!({})),
    )
    .await;
    assert_eq!(ok.0, 200);
    let replay = send(
        n.app
            .post(&path, &n.cy)
            .header("Idempotency-Key", "c-1")
            .json(&json!({})),
    )
    .await;
    assert_eq!(
        (replay.0, replay.2.clone()),
        (200, ok.2.clone()),
        "replayed, not 409"
    );
}

/// The key's rule is the one its error states: 1-255 visible ASCII
/// characters, so a key with a space or a tab inside is refused, not kept.
#[tokio::test]
async fn idempotency_keys_with_spaces_or_tabs_are_refused() {
    let n = newsroom().await;
    let story = n.story().await;
    let body = json!({"story_id": story, "subject": "s", "property": "p",
        "value": {"kind": "boolean", "value": true}, "quote": "Some 5,200 U.S. soldiers"});
    let count = n.app.count_events().await;
    for key in ["two words", "tab\there", "a  b"] {
        let (s, h, b) = send(
            n.app
                .post("/v1/claims", &n.ann)
                .header("Idempotency-Key", key)
                .json(&body),
        )
        .await;
        assert_eq!(s, 422, "{key:?}: {b}");
        is_problem(&h, &b, 422);
        assert_eq!(b["field"], "Idempotency-Key");
        assert!(
            b["detail"]
                .as_str()
                .is_some_and(|d| d.contains("visible ASCII")),
            "{b}"
        );
    }
    assert_eq!(n.app.count_events().await, count, "nothing written");
    let longest = "~".repeat(255);
    let (s, _, b) = send(
        n.app
            .post("/v1/claims", &n.ann)
            .header("Idempotency-Key", longest.as_str())
            .json(&body),
    )
    .await;
    assert_eq!(s, 201, "{b}");
}

/// A retry that spells the claim id differently (upper case, no hyphens) is
/// the same request: it is replayed, not refused as another one.
#[tokio::test]
async fn a_retry_spelling_the_id_in_upper_case_is_replayed() {
    let n = newsroom().await;
    let story = n.story().await;
    let id = n.claim_by(&n.ann, &story, json!({})).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let upper = id.to_uppercase();
    let simple = id.replace('-', "");
    let dispute = |spelling: String| {
        send(
            n.app
                .post(&format!("/v1/claims/{spelling}/disputes"), &n.bob)
                .header("Idempotency-Key", "d-1")
                .json(&json!({"reason": "the figure is 5,000"})),
        )
    };
    let first = dispute(upper).await;
    assert_eq!(first.0, 200, "{}", first.2);
    let count = n.app.count_events().await;
    for spelling in [id.clone(), simple] {
        let again = dispute(spelling.clone()).await;
        assert_eq!((again.0, &again.2), (200, &first.2), "{spelling}");
        assert_eq!(again.1["idempotent-replayed"], "true", "{spelling}");
    }
    assert_eq!(n.app.count_events().await, count, "nothing written twice");
}

#[tokio::test]
async fn bad_input_gets_its_problem_and_writes_nothing() {
    let n = newsroom_with(AppOptions {
        max_body_bytes: 4096,
        ..AppOptions::default()
    })
    .await;
    let story = n.story().await;
    let before = n.app.count_events().await;
    let good = json!({"story_id": story, "subject": "s", "property": "p",
        "value": {"kind": "date", "date": "2020-01-06"}, "quote": "Parliament voted"});
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };

    // 400: not JSON.
    let (s, h, b) = send(
        n.app
            .post("/v1/claims", &n.ann)
            .header("content-type", "application/json")
            .body("{\"story_id\": "),
    )
    .await;
    assert_eq!(s, 400);
    is_problem(&h, &b, 400);
    // 415: not declared as JSON.
    let (s, h, b) = send(
        n.app
            .post("/v1/claims", &n.ann)
            .header("content-type", "text/plain")
            .body(good.to_string()),
    )
    .await;
    assert_eq!(s, 415);
    is_problem(&h, &b, 415);
    let (s, _, _) = send(n.app.post("/v1/claims", &n.ann).body(good.to_string())).await;
    assert_eq!(s, 415);
    // 413: over the body limit.
    let (s, h, b) = n
        .app
        .post_json(
            "/v1/claims",
            &n.ann,
            &with("quote", json!("x".repeat(5000))),
        )
        .await;
    assert_eq!(s, 413);
    is_problem(&h, &b, 413);

    // 422: each names its field.
    let cases = [
        (with("subject", json!("")), "subject"),
        (with("subject", json!("   ")), "subject"),
        (with("subject", json!(42)), "subject"),
        (with("quote", json!(null)), "quote"),
        (with("story_id", json!("not-a-uuid")), "story_id"),
        (with("story_id", json!(uuid::Uuid::new_v4())), "story_id"),
        (with("corrects", json!(uuid::Uuid::new_v4())), "corrects"),
        (
            with("value", json!({"kind": "date", "date": "2021-02-29"})),
            "value.date",
        ),
        (
            with("value", json!({"kind": "date", "date": "2020-13"})),
            "value.date",
        ),
        (
            with("value", json!({"kind": "colour", "text": "red"})),
            "value.kind",
        ),
        (
            with(
                "value",
                json!({"kind": "quantity", "amount": "lots", "unit": "soldier"}),
            ),
            "value.amount",
        ),
        (
            with(
                "value",
                json!({"kind": "quantity", "amount": "5200", "unit": ""}),
            ),
            "value.unit",
        ),
        (with("value", json!("5200")), "value"),
        (with("valid_at", json!("2020-02-30")), "valid_at"),
        (with("valid_at", json!("yesterday")), "valid_at"),
        (with("subject", json!("a\u{0}b")), "subject"),
        (with("unexpected", json!(1)), "unexpected"),
        (json!([1, 2]), "body"),
    ];
    for (body, field) in cases {
        let (s, h, b) = n.app.post_json("/v1/claims", &n.ann, &body).await;
        assert_eq!(s, 422, "{body}: {b}");
        is_problem(&h, &b, 422);
        assert!(
            b["field"].as_str().is_some_and(|f| f.starts_with(field)),
            "{body}: expected {field}, got {b}"
        );
    }
    let (s, _, b) = n
        .app
        .post_json(
            "/v1/stories",
            &n.ann,
            &json!({"title": "t", "publisher": "p", "published_at": "2020-02-30"}),
        )
        .await;
    assert_eq!((s, b["field"].as_str()), (422, Some("published_at")));
    let (s, _, b) = n.app.post_json("/v1/stories", &n.ann, &json!({"title": "t", "publisher": "p", "published_at": "2020-02-03", "url": "ftp://x"})).await;
    assert_eq!((s, b["field"].as_str()), (422, Some("url")));
    assert_eq!(n.app.count_events().await, before, "nothing was written");

    // 404 comes before 422; a malformed id is 404 too.
    let (s, h, b) = n
        .app
        .post_json(
            &format!("/v1/claims/{}/disputes", uuid::Uuid::new_v4()),
            &n.bob,
            &json!({}),
        )
        .await;
    assert_eq!(s, 404);
    is_problem(&h, &b, 404);
    assert_eq!(
        n.app
            .post_json("/v1/claims/42/disputes", &n.bob, &json!({"reason": "r"}))
            .await
            .0,
        404
    );
    assert_eq!(n.app.get_json("/v1/claims/nope", &n.bob).await.0, 404);
    assert_eq!(
        n.app
            .get_json(&format!("/v1/stories/{}", uuid::Uuid::new_v4()), &n.bob)
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn a_story_url_is_registered_once() {
    let n = newsroom().await;
    let body = json!({"title": "t", "publisher": "p", "published_at": "2020-01-06T00:00:00+01:00", "url": "https://example.org/x"});
    let (s, _, first) = n.app.post_json("/v1/stories", &n.ann, &body).await;
    assert_eq!(s, 201);
    let (s, h, b) = n.app.post_json("/v1/stories", &n.bob, &body).await;
    assert_eq!(s, 409);
    is_problem(&h, &b, 409);
    assert_eq!(b["existing_story_id"], first["id"]);
    assert!(
        b["detail"]
            .as_str()
            .is_some_and(|d| d.contains(first["id"].as_str().unwrap_or("?")))
    );

    // Racing registrations of one url: exactly one lands.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let b = json!({"title": format!("t{i}"), "publisher": "p", "published_at": "2020-01-06", "url": "https://example.org/race"});
        tasks.push(tokio::spawn(send(
            n.app.post("/v1/stories", &n.ann).json(&b),
        )));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.expect("task").0);
    }
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 9, "{codes:?}");
}

/// Odd headers do not jump the contract's order of checks: the resource
/// (404) and the fields (422) come before idempotency (422) and If-Match (412).
#[tokio::test]
async fn malformed_conditional_and_idempotency_headers_wait_their_turn() {
    let n = newsroom().await;
    let story = n.story().await;
    let id = n.claim_by(&n.ann, &story, json!({})).await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let missing = uuid::Uuid::new_v4();
    let post = |path: String, body: Value, header: (&'static str, &'static str)| {
        send(
            n.app
                .post(&path, &n.bob)
                .header(header.0, header.1)
                .json(&body),
        )
    };
    let bad_if = ("If-Match", "not-a-version");
    let bad_key = ("Idempotency-Key", " ");
    assert_eq!(
        post(
            format!("/v1/claims/{missing}/disputes"),
            json!({"reason": "r"}),
            bad_if
        )
        .await
        .0,
        404
    );
    assert_eq!(
        post(
            format!("/v1/claims/{id}/disputes"),
            json!({"reason": 5}),
            bad_if
        )
        .await
        .0,
        422
    );
    assert_eq!(
        post(
            format!("/v1/claims/{id}/disputes"),
            json!({"reason": "r"}),
            bad_if
        )
        .await
        .0,
        412
    );
    assert_eq!(
        post(
            format!("/v1/claims/{missing}/disputes"),
            json!({"reason": "r"}),
            bad_key
        )
        .await
        .0,
        404
    );
    let (s, _, b) = post(
        format!("/v1/claims/{id}/disputes"),
        json!({"reason": "r"}),
        bad_key,
    )
    .await;
    assert_eq!((s, b["field"].as_str()), (422, Some("Idempotency-Key")));
    // If-Match means nothing to a create: it is ignored there.
    let (s, _, _) = send(
        n.app
            .post("/v1/stories", &n.ann)
            .header("If-Match", "\"7\"")
            .json(&json!({"title": "t", "publisher": "p", "published_at": "2020-01-01"})),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(n.claim(&id).await["version"], 1, "nothing was written");
}
