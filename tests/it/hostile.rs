//! Hostile input: strings that look like SQL, control characters, very long
//! Unicode, mixed normalization forms. Each is stored and returned exactly,
//! and breaks nothing. Secrets never reach the database or the logs.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{TestApp, TestDb};

pub(crate) fn hostile() -> Vec<String> {
    vec![
        "'; DROP TABLE events; --".into(),
        "Robert'); DELETE FROM tokens WHERE ('1'='1".into(),
        "\u{1}\u{7}\u{1b}[31mred\u{1b}[0m\t\r\nend".into(),
        "e\u{301} vs \u{e9}: same letter, two forms".into(),
        "\u{FB01}ancé \u{2126} \u{212B} \u{FF21}".into(),
        "\u{202E}evil\u{202C} \u{200B}zero\u{200D}width \u{FEFF}bom".into(),
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀👩‍👩‍👧 \u{10FFFF}".into(),
        "\\\" \\u0000 %s %n {{}} ${x} <script>alert(1)</script>".into(),
        "ø".repeat(400),
        "long ".repeat(90),
    ]
}

#[tokio::test]
async fn hostile_strings_are_stored_and_returned_byte_for_byte() {
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let bob = app.token("bob", "editor").await;
    let audrey = app.token("audrey", "auditor").await;
    for s in hostile() {
        let body = format!("Lede. {s} Tail.");
        let (st, _, story) = app
            .post_json(
                "/v1/stories",
                &ann,
                &json!({"title": s, "publisher": s, "published_at": "2020-01-01", "body": body}),
            )
            .await;
        assert_eq!(st, 201, "{s:?}: {story}");
        assert_eq!(
            (story["title"].as_str(), story["body"].as_str()),
            (Some(s.as_str()), Some(body.as_str()))
        );
        let (st, _, claim) = app
            .post_json(
                "/v1/claims",
                &ann,
                &json!({"story_id": story["id"], "subject": s, "property": s,
                        "value": {"kind": "text", "text": s}, "quote": s, "attributed_to": s}),
            )
            .await;
        assert_eq!(st, 201, "{s:?}: {claim}");
        let id = claim["id"].as_str().expect("id");
        let (st, _, confirmed) = app
            .post_json(
                &format!("/v1/claims/{id}/confirmations"),
                &bob,
                &json!({"note": s}),
            )
            .await;
        assert_eq!(st, 200, "{confirmed}");
        let (_, _, read) = app.get_json(&format!("/v1/claims/{id}"), &bob).await;
        for field in ["subject", "property", "quote", "attributed_to"] {
            assert_eq!(read[field].as_str(), Some(s.as_str()), "{field} of {s:?}");
        }
        assert_eq!(read["value"]["text"].as_str(), Some(s.as_str()));
        assert_eq!(read["confirmations"][0]["note"].as_str(), Some(s.as_str()));
        // And through the log and the projections.
        let position = confirmed["position"].as_i64().expect("position");
        let (_, _, fact) = app
            .get_json(
                &format!(
                    "/v1/facts/{}?wait_for={position}",
                    read["fact_id"].as_str().expect("fact")
                ),
                &bob,
            )
            .await;
        assert_eq!(fact["subject"].as_str(), Some(s.as_str()));
        let (_, _, events) = app
            .get_json(&format!("/v1/events?after={}", position - 1), &audrey)
            .await;
        assert_eq!(
            events["events"][0]["data"]["note"].as_str(),
            Some(s.as_str())
        );
    }
    // Nothing was dropped or rewritten along the way.
    assert!(
        factlog::store::verify_chain(&app.db.pool, 0, |_| {})
            .await
            .expect("verify")
            .ok
    );
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('events', 'tokens')",
    )
    .fetch_one(&app.db.pool)
    .await
    .expect("tables");
    assert_eq!(tables, 2);
    // U+0000 is refused everywhere, with 422.
    let (st, _, b) = app
        .post_json(
            "/v1/stories",
            &ann,
            &json!({"title": "a\u{0}b", "publisher": "p", "published_at": "2020-01-01"}),
        )
        .await;
    assert_eq!((st, b["field"].as_str()), (422, Some("title")));
}

/// No table in the database holds a token, and a server's logs hold
/// neither the token nor a request body.
#[tokio::test]
async fn tokens_and_bodies_stay_out_of_the_database_and_the_logs() {
    let db = TestDb::new().await;
    let token = factlog::auth::create(&db.pool, "ann", "editor")
        .await
        .expect("token");
    let secret = &token[3..];
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&db.pool)
    .await
    .expect("tables");
    for t in &tables {
        let hits: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{t}\" x WHERE x::text LIKE '%' || $1 || '%'"
        )))
        .bind(secret)
        .fetch_one(&db.pool)
        .await
        .expect("scan");
        assert_eq!(hits, 0, "table {t} holds the token");
    }

    let port = crate::support::free_port();
    let mut server = crate::support::serve_command(&db, port)
        .env("RUST_LOG", "trace")
        .env("FACTLOG_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let output = crate::support::OutputDrain::start(&mut server);
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while reqwest::get(format!("{base}/readyz"))
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(started.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let marker = "body-marker-7f3a9";
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{base}/v1/stories"))
        .bearer_auth(&token)
        .json(&json!({"title": marker, "publisher": "p", "published_at": "2020-01-01"}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 201);
    let res = client
        .get(format!("{base}/v1/claims/nope"))
        .bearer_auth(format!("{token}x"))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 401);
    // SAFETY: plain signal to our own child.
    unsafe {
        libc::kill(server.id() as i32, libc::SIGTERM);
    }
    let _ = server.wait();
    let logs = output.finish();
    assert!(
        logs.contains("\"status\":201"),
        "the request was logged:\n{}",
        &logs[..logs.len().min(2000)]
    );
    assert!(!logs.contains(secret), "a token reached the logs");
    assert!(!logs.contains(marker), "a request body reached the logs");
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        !lines.is_empty(),
        "FACTLOG_LOG_FORMAT=json gives JSON lines"
    );
}

/// `n` CJK ideographs (3 bytes each in UTF-8, unchanged by normalization),
/// drawn at random so that PostgreSQL cannot compress them below the index
/// limit: the worst case for an index entry.
fn ideographs(n: usize, seed: u64) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from_u32(0x4E00 + (x % 20_900) as u32).expect("ideograph")
        })
        .collect()
}

/// Indexed text has a limit in bytes as well as in characters: just under
/// it is 201, just over it 422 naming the field, never a 500 or a write the
/// index (or the projection that builds it) cannot take.
#[tokio::test]
async fn indexed_text_is_limited_in_bytes_at_the_index_boundary() {
    use factlog::domain::text::{MAX_KEY_BYTES, MAX_URL_BYTES};
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let story = |url: String| json!({"title": "t", "publisher": "p", "published_at": "2020-01-01", "url": url});
    let prefix = "https://example.org/";
    // The finding: 2,030 characters, 7,119 bytes, within the character
    // limit, overflowed the url index's entry and was a 500.
    let far = format!("{prefix}{}", ideographs(2_030 - prefix.len(), 1));
    let (s, _, b) = app.post_json("/v1/stories", &ann, &story(far)).await;
    assert_eq!((s, b["field"].as_str()), (422, Some("url")), "{b}");
    assert!(
        b["detail"]
            .as_str()
            .is_some_and(|d| d.contains("2600 bytes")),
        "{b}"
    );
    // At the limit, and one byte over.
    let at = format!(
        "{prefix}{}",
        ideographs((MAX_URL_BYTES - prefix.len()) / 3, 2)
    );
    assert_eq!(at.len(), MAX_URL_BYTES);
    let (s, _, b) = app.post_json("/v1/stories", &ann, &story(at.clone())).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["url"].as_str(), Some(at.as_str()));
    let over = format!("{at}x");
    let (s, _, b) = app.post_json("/v1/stories", &ann, &story(over)).await;
    assert_eq!((s, b["field"].as_str()), (422, Some("url")), "{b}");
    // The character limit still holds for ASCII, which reaches it first.
    let ascii = |n: usize| format!("{prefix}{}", "a".repeat(n - prefix.len()));
    assert_eq!(
        app.post_json("/v1/stories", &ann, &story(ascii(2_048)))
            .await
            .0,
        201
    );
    assert_eq!(
        app.post_json("/v1/stories", &ann, &story(ascii(2_049)))
            .await
            .2["field"],
        "url"
    );
    let (_, _, host) = app
        .post_json(
            "/v1/stories",
            &ann,
            &json!({"title": "t", "publisher": "p", "published_at": "2020-01-01",
                    "body": format!("Lede. {} Tail.", "x")}),
        )
        .await;
    let host = host["id"].as_str().expect("story").to_owned();

    // Subject and property: their normalized keys share one index entry.
    let claim = |subject: String, property: String| {
        json!({"story_id": host, "subject": subject, "property": property,
               "value": {"kind": "boolean", "value": true}, "quote": "x"})
    };
    let key_at = ideographs(MAX_KEY_BYTES / 3, 3);
    let other_at = ideographs(MAX_KEY_BYTES / 3, 4);
    let (s, _, c) = app
        .post_json("/v1/claims", &ann, &claim(key_at.clone(), other_at.clone()))
        .await;
    assert_eq!(s, 201, "{c}");
    // The projection indexed it: the fact reads back.
    let (s, _, fact) = app
        .get_json(
            &format!(
                "/v1/facts/{}?wait_for={}",
                c["fact_id"].as_str().expect("fact"),
                c["position"]
            ),
            &ann,
        )
        .await;
    assert_eq!(s, 200, "{fact}");
    assert_eq!(fact["subject"].as_str(), Some(key_at.as_str()));
    for (subject, property, field) in [
        (format!("{key_at}x"), "p".to_owned(), "subject"),
        ("s".to_owned(), format!("{other_at}x"), "property"),
        // Before: 500 characters each, 1,500 bytes each, went in and stopped
        // the projection at that event.
        (ideographs(500, 5), ideographs(500, 6), "subject"),
        // Normalization multiplies: 100 characters, 3,300 bytes of key.
        ("\u{fdfa}".repeat(100), "p".to_owned(), "subject"),
    ] {
        let (s, _, b) = app
            .post_json("/v1/claims", &ann, &claim(subject, property))
            .await;
        assert_eq!((s, b["field"].as_str()), (422, Some(field)), "{b}");
        assert!(
            b["detail"]
                .as_str()
                .is_some_and(|d| d.contains("1200 bytes")),
            "{b}"
        );
    }
    // Evidence urls follow the same rule as a story's.
    let claim_id = c["id"].as_str().expect("claim");
    let (s, _, b) = app
        .post_json(
            &format!("/v1/claims/{claim_id}/evidence"),
            &ann,
            &json!({"url": format!("{prefix}{}", ideographs(900, 7))}),
        )
        .await;
    assert_eq!((s, b["field"].as_str()), (422, Some("url")), "{b}");
    // Looking a long key up is no write: an answer, not an error.
    let long = "\u{fdfa}".repeat(1_000);
    let (s, _, b) = app
        .get_json(&format!("/v1/facts?subject={long}&property={long}"), &ann)
        .await;
    assert_eq!(s, 200, "{b}");
    // And the projection is not stuck: everything applied.
    let head: i64 = sqlx::query_scalar("SELECT max(position) FROM events")
        .fetch_one(&app.db.pool)
        .await
        .expect("head");
    let (s, _, b) = app
        .get_json(&format!("/v1/facts?wait_for={head}"), &ann)
        .await;
    assert_eq!(s, 200, "{b}");
}

/// A JSON number beyond a double's range is JSON: an exact decimal takes it
/// digit for digit (as it takes the same digits in a string), an idempotent
/// retry compares it by value, and anywhere else it is 422 naming the field.
#[tokio::test]
async fn numbers_beyond_double_range_are_exact_or_422_never_400() {
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let (_, _, story) = app
        .post_json(
            "/v1/stories",
            &ann,
            &json!({"title": "t", "publisher": "p", "published_at": "2020-01-01"}),
        )
        .await;
    let story = story["id"].as_str().expect("story").to_owned();
    let raw = |value: &str, key: Option<&str>| {
        let body = format!(
            r#"{{"story_id": "{story}", "subject": "s", "property": "p", "quote": "q", "value": {value}}}"#
        );
        let mut req = app
            .post("/v1/claims", &ann)
            .header("content-type", "application/json")
            .body(body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        crate::support::send(req)
    };
    let (s, _, first) = raw(
        r#"{"kind": "quantity", "amount": 1e400, "unit": "m", "upper": -2.5E+999}"#,
        Some("big-1"),
    )
    .await;
    assert_eq!(s, 422, "upper below amount: {first}");
    assert_eq!(first["field"], "value.amount");
    let (s, _, first) = raw(
        r#"{"kind": "quantity", "amount": 1e400, "unit": "m", "lower": -2.5E+999}"#,
        Some("big-1"),
    )
    .await;
    assert_eq!(s, 201, "{first}");
    assert_eq!(first["value"]["amount"], "1e400");
    assert_eq!(first["value"]["lower"], "-2.5E+999");
    let count = app.count_events().await;
    // The same value spelt otherwise is the same request: replayed.
    let (s, h, again) = raw(
        r#"{"kind": "quantity", "amount": 10.0e399, "unit": "m", "lower": -25e998}"#,
        Some("big-1"),
    )
    .await;
    assert_eq!((s, &again), (201, &first));
    assert_eq!(h["idempotent-replayed"], "true");
    // Another value with the same key is another request.
    let (s, _, b) = raw(
        r#"{"kind": "quantity", "amount": 2e400, "unit": "m", "lower": -2.5E+999}"#,
        Some("big-1"),
    )
    .await;
    assert_eq!((s, b["field"].as_str()), (422, Some("Idempotency-Key")));
    assert_eq!(app.count_events().await, count);
    for (value, field) in [
        // Beyond the decimal's own exponent range.
        (
            r#"{"kind": "quantity", "amount": 1e2000, "unit": "m"}"#,
            "value.amount",
        ),
        (
            r#"{"kind": "outcome", "outcome": "passed", "for": 1e400}"#,
            "value.for",
        ),
        (r#"{"kind": "boolean", "value": -1e400}"#, "value.value"),
    ] {
        let (s, _, b) = raw(value, None).await;
        assert_eq!((s, b["field"].as_str()), (422, Some(field)), "{value}: {b}");
    }
    let (s, _, b) = crate::support::send(
        app.post("/v1/stories", &ann)
            .header("content-type", "application/json")
            .body(r#"{"title": 1e400, "publisher": "p", "published_at": "2020-01-01"}"#),
    )
    .await;
    assert_eq!((s, b["field"].as_str()), (422, Some("title")), "{b}");
    // Still 400: what is not JSON, and nesting past serde_json's limit.
    let deep = format!("{}1e400{}", "[".repeat(200), "]".repeat(200));
    for body in ["{\"title\": 1e400", deep.as_str()] {
        let (s, _, b) = crate::support::send(
            app.post("/v1/stories", &ann)
                .header("content-type", "application/json")
                .body(body.to_owned()),
        )
        .await;
        assert_eq!(s, 400, "{b}");
    }
    assert_eq!(app.count_events().await, count, "nothing else written");
}
