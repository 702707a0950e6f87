//! Event streams are exempt from the request timeout, so they are bounded
//! otherwise: per token and server-wide caps (429), and a revoked token's
//! streams end within the window that refuses its new requests.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{AppOptions, TestApp};

async fn open(app: &TestApp, token: &str) -> reqwest::Response {
    app.get("/v1/events/stream?after=0", token)
        .send()
        .await
        .expect("stream request")
}

async fn story(app: &TestApp, token: &str, i: usize) {
    let (s, _, b) = app
        .post_json(
            "/v1/stories",
            token,
            &json!({"title": format!("t{i}"), "publisher": "p", "published_at": "2020-01-01"}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
}

async fn problem(res: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_token_holds_at_most_its_cap_of_streams_and_gets_a_slot_back_when_one_closes() {
    let app = TestApp::start_with(AppOptions {
        streams: factlog::api::StreamCaps {
            per_token: 2,
            total: 10,
        },
        ..AppOptions::default()
    })
    .await;
    let audrey = app.token("audrey", "auditor").await;
    let other = app.token("otto", "auditor").await;
    let ann = app.token("ann", "editor").await;

    let first = open(&app, &audrey).await;
    let second = open(&app, &audrey).await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let (status, retry, body) = problem(open(&app, &audrey).await).await;
    assert_eq!(status, 429, "{body}");
    assert!(retry.is_some(), "Retry-After");
    assert!(
        body["type"]
            .as_str()
            .unwrap_or("")
            .ends_with("too-many-streams"),
        "{body}"
    );
    // Another token is not held back by this one's streams.
    assert_eq!(open(&app, &other).await.status(), 200);

    // Closing one gives its slot back (noticed at the latest when the
    // server next writes to it).
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut i = 0;
    let reopened = loop {
        story(&app, &ann, i).await;
        i += 1;
        let res = open(&app, &audrey).await;
        if res.status() == 200 || Instant::now() > deadline {
            break res;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(reopened.status(), 200);
    drop(second);
}

#[tokio::test]
async fn the_server_wide_cap_holds_whoever_asks() {
    let app = TestApp::start_with(AppOptions {
        streams: factlog::api::StreamCaps {
            per_token: 10,
            total: 2,
        },
        ..AppOptions::default()
    })
    .await;
    let a = app.token("audrey", "auditor").await;
    let b = app.token("otto", "admin").await;
    let held = [open(&app, &a).await, open(&app, &a).await];
    assert!(held.iter().all(|r| r.status() == 200));
    let (status, _, body) = problem(open(&app, &b).await).await;
    assert_eq!(status, 429, "{body}");
}

#[tokio::test]
async fn a_revoked_tokens_stream_ends_within_the_revocation_window() {
    let app = TestApp::start().await;
    let audrey = app.token("audrey", "auditor").await;
    let ann = app.token("ann", "editor").await;
    let mut stream = open(&app, &audrey).await;
    assert_eq!(stream.status(), 200);
    story(&app, &ann, 0).await;

    factlog::auth::revoke(&app.db.pool, "audrey")
        .await
        .expect("revoke");
    let revoked = Instant::now();
    // Writes keep coming: the stream must end, not carry them on.
    let writer = {
        let (base, client, ann) = (app.base.clone(), app.client.clone(), ann.clone());
        tokio::spawn(async move {
            for i in 1..200 {
                let _ = client
                    .post(format!("{base}/v1/stories"))
                    .bearer_auth(&ann)
                    .json(&json!({"title": format!("t{i}"), "publisher": "p", "published_at": "2020-01-01"}))
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let ended = tokio::time::timeout(Duration::from_secs(8), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    writer.abort();
    assert!(ended.is_ok(), "the stream still runs 8 s after revocation");
    let window = factlog::auth::REFRESH * 2;
    assert!(
        revoked.elapsed() <= window + Duration::from_secs(1),
        "ended {:?} after revocation; new requests are refused within {window:?}",
        revoked.elapsed()
    );
    // And a new one is refused.
    assert_eq!(open(&app, &audrey).await.status(), 401);
}
