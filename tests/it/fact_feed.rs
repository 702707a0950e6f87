//! The readers' change feed: every change to a fact's current state, in
//! log order, as pages and as a live stream that a client may leave and
//! rejoin anywhere without missing or repeating a change.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::fact_cache::{Desk, act, assert_claim, claim, desk};
use crate::read_audit::read_events;
use crate::support::TestApp;

/// Asserts a claim of `subject` in the desk's story: (claim, fact, position).
async fn assert_on(app: &TestApp, d: &Desk, subject: &str, amount: &str) -> (String, String, i64) {
    assert_claim(app, &d.ed[0], &claim(&d.story, subject, amount)).await
}

/// Every change after `after`, paging `limit` at a time, once the feed has
/// reached `until`.
async fn all_changes(app: &TestApp, token: &str, limit: i64, until: i64) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    'again: loop {
        let mut after = 0;
        let mut out = Vec::new();
        loop {
            let (s, _, page) = app
                .get_json(
                    &format!("/v1/facts/changes?after={after}&limit={limit}"),
                    token,
                )
                .await;
            assert_eq!(s, 200, "{page}");
            out.extend(page["items"].as_array().expect("items").iter().cloned());
            let next = page["next_after"].as_i64().expect("next_after");
            if next == after {
                break;
            }
            after = next;
        }
        if after >= until {
            return out;
        }
        assert!(Instant::now() < deadline, "the feed never reached {until}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        continue 'again;
    }
}

#[tokio::test]
async fn the_feed_lists_each_change_of_a_facts_state_in_log_order() {
    let app = TestApp::start().await;
    let d = desk(&app).await;
    let (ann, bob, rita) = (d.ed[0].clone(), d.ed[1].clone(), d.reader.clone());
    let (a, troops, p1) = assert_on(&app, &d, "troops", "5200").await;
    // A second pending claim changes nothing a reader of the fact sees.
    assert_on(&app, &d, "troops", "5000").await;
    let p3 = act(&app, &bob, &a, "confirmations", json!({})).await;
    // Evidence neither: the fact's status, value and valid time stay.
    act(
        &app,
        &ann,
        &a,
        "evidence",
        json!({"url": "https://example.org/x"}),
    )
    .await;
    let (_, votes, p5) = assert_on(&app, &d, "votes", "170").await;
    let p6 = act(&app, &bob, &a, "disputes", json!({"reason": "no"})).await;

    let changes = all_changes(&app, &rita, 100, p6).await;
    let seen: Vec<(i64, &str, &str)> = changes
        .iter()
        .map(|c| {
            (
                c["position"].as_i64().expect("position"),
                c["fact_id"].as_str().expect("fact"),
                c["status"].as_str().expect("status"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (p1, troops.as_str(), "unverified"),
            (p3, troops.as_str(), "verified"),
            (p5, votes.as_str(), "unverified"),
            (p6, troops.as_str(), "unverified"),
        ]
    );
    assert_eq!(changes[1]["value"]["amount"], "5200");
    assert_eq!(changes[0]["value"], Value::Null);
    // One claim version a page: the same changes.
    assert_eq!(all_changes(&app, &rita, 1, p6).await, changes);

    // Bad input is refused by name.
    for (path, field) in [
        ("/v1/facts/changes?after=-1", "after"),
        ("/v1/facts/changes?limit=0", "limit"),
    ] {
        let (s, _, problem) = app.get_json(path, &rita).await;
        assert_eq!(
            (s, problem["field"].as_str()),
            (422, Some(field)),
            "{problem}"
        );
    }
    let res = app
        .client
        .get(app.url("/v1/facts/changes"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 401);
}

#[tokio::test]
async fn a_stream_left_and_rejoined_anywhere_under_writes_misses_and_repeats_nothing() {
    let app = TestApp::start().await;
    let d = desk(&app).await;
    let (ann, bob, rita, s) = (
        d.ed[0].clone(),
        d.ed[1].clone(),
        d.reader.clone(),
        d.story.clone(),
    );

    // Writers: claims on twelve facts, each confirmed, some disputed.
    let writers = {
        let (app_base, ann, bob, s) = (app.base.clone(), ann.clone(), bob.clone(), s.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let post = |path: String, token: String, body: Value| {
                let client = client.clone();
                let url = format!("{app_base}{path}");
                async move {
                    let res = client
                        .post(url)
                        .bearer_auth(token)
                        .json(&body)
                        .send()
                        .await
                        .expect("post");
                    assert!(res.status().is_success(), "{}", res.status());
                    res.json::<Value>().await.expect("json")
                }
            };
            let mut last = 0;
            for i in 0..12 {
                let c = post(
                    "/v1/claims".into(),
                    ann.clone(),
                    json!({"story_id": s, "subject": format!("fact {i}"), "property": "count",
                           "quote": "Some 5,200 soldiers", "value": {"kind": "quantity", "amount": "1", "unit": "soldier"}}),
                )
                .await;
                let id = c["id"].as_str().expect("id").to_owned();
                let r = post(
                    format!("/v1/claims/{id}/confirmations"),
                    bob.clone(),
                    json!({}),
                )
                .await;
                last = r["position"].as_i64().expect("position");
                if i % 3 == 0 {
                    let r = post(
                        format!("/v1/claims/{id}/disputes"),
                        bob.clone(),
                        json!({"reason": "no"}),
                    )
                    .await;
                    last = r["position"].as_i64().expect("position");
                }
            }
            last
        })
    };

    // The reader: leaves after 1 to 4 changes each time, and rejoins with
    // the last id it saw, until it has seen every change (12 facts created,
    // 12 confirmed, 4 disputed).
    let expected_count = 12 + 12 + 4;
    let mut seen: Vec<(i64, Value)> = Vec::new();
    let mut round = 0u64;
    while seen.len() < expected_count {
        round += 1;
        let mut req = app.get("/v1/facts/stream", &rita);
        if let Some((last, _)) = seen.last() {
            req = req.header("Last-Event-ID", last.to_string());
        }
        let res = req.send().await.expect("stream");
        assert_eq!(res.status(), 200);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .expect("ascii")
                .starts_with("text/event-stream")
        );
        let take = (1 + (round * 7919) % 4) as usize;
        let take = take.min(expected_count - seen.len());
        seen.extend(read_events(res, take).await);
    }
    let last = writers.await.expect("writers");

    let positions: Vec<i64> = seen.iter().map(|(p, _)| *p).collect();
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(positions, sorted, "in log order, none twice");
    let paged = all_changes(&app, &rita, 100, last).await;
    let streamed: Vec<Value> = seen.into_iter().map(|(_, c)| c).collect();
    assert_eq!(streamed, paged, "the stream says what the pages say");
}

/// Browsers' `EventSource` cannot send a bearer token: both event streams
/// take the console's session cookie instead, hold it to its role, and end
/// once the session does. Other API routes ignore the cookie.
#[tokio::test]
async fn both_event_streams_take_the_console_session_and_end_with_it() {
    use crate::console::{get, hidden, post_form, sign_in};
    let app = TestApp::start().await;
    let d = desk(&app).await;
    let ann = d.ed[0].clone();
    let audrey = app.token("audrey", "auditor").await;
    let (_, fact, p) = assert_on(&app, &d, "troops", "5200").await;

    let open = |path: &'static str, cookie: String| {
        let app = &app;
        async move {
            app.client
                .get(app.url(path))
                .header("Cookie", cookie)
                .send()
                .await
                .expect("stream")
        }
    };
    let anns = sign_in(&app, &ann).await;
    let res = open("/v1/facts/stream", anns.clone()).await;
    assert_eq!(res.status(), 200);
    let changes = read_events(res, 1).await;
    assert_eq!(
        (changes[0].0, changes[0].1["fact_id"].as_str()),
        (p, Some(fact.as_str()))
    );
    // An editor's session may not read the log's events; an auditor's may.
    let res = open("/v1/events/stream", anns.clone()).await;
    assert_eq!(res.status(), 403);
    let audreys = sign_in(&app, &audrey).await;
    let res = open("/v1/events/stream", audreys.clone()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(read_events(res, 1).await[0].0, 1, "the log from its start");
    // Elsewhere in the API the cookie is no credential.
    let res = open("/v1/facts", anns.clone()).await;
    assert_eq!(res.status(), 401);
    let res = open("/v1/facts/stream", "factlog_session=forged".into()).await;
    assert_eq!(res.status(), 401);

    // Signing out ends an open stream within the token cache's reload.
    let res = open("/v1/facts/stream", anns.clone()).await;
    assert_eq!(res.status(), 200);
    let page = get(&app, "/console/queue", Some(&anns)).await;
    let csrf = hidden(&page.html, "csrf");
    let out = post_form(
        &app,
        "/console/sign-out",
        Some(&anns),
        Some(&app.base),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(out.status, 303);
    let mut body = res.bytes_stream();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        use futures::StreamExt;
        while let Some(chunk) = body.next().await {
            if chunk.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its session");
}
