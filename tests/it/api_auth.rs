//! Who may call what: every endpoint × every role, no token, a bad token and
//! a revoked one. Authentication comes first (401), then the role (403).

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::support::{TestApp, send};

struct Endpoint {
    method: &'static str,
    path: String,
    body: Value,
    /// Roles allowed past the role check.
    allowed: &'static [&'static str],
}

const WRITERS: &[&str] = &["editor", "admin"];
const EVERYONE: &[&str] = &["reader", "editor", "auditor", "admin"];
const AUDITORS: &[&str] = &["auditor", "admin"];

async fn endpoints(app: &TestApp, editor: &str) -> Vec<Endpoint> {
    let (_, _, story) = app
        .post_json(
            "/v1/stories",
            editor,
            &json!({"title": "t", "publisher": "p", "published_at": "2020-01-01"}),
        )
        .await;
    let story = story["id"].as_str().expect("story").to_owned();
    let (_, _, claim) = app
        .post_json(
            "/v1/claims",
            editor,
            &json!({"story_id": story, "subject": "s", "property": "p",
                    "value": {"kind": "text", "text": "x"}, "quote": "q"}),
        )
        .await;
    let fact = claim["fact_id"].as_str().expect("fact").to_owned();
    let claim = claim["id"].as_str().expect("claim").to_owned();
    let post = |path: String, body: Value| Endpoint {
        method: "POST",
        path,
        body,
        allowed: WRITERS,
    };
    let get = |path: String| Endpoint {
        method: "GET",
        path,
        body: Value::Null,
        allowed: EVERYONE,
    };
    let audit = |path: String| Endpoint {
        method: "GET",
        path,
        body: Value::Null,
        allowed: AUDITORS,
    };
    vec![
        post(
            "/v1/stories".into(),
            json!({"title": "t", "publisher": "p", "published_at": "2020-01-01"}),
        ),
        post(
            "/v1/claims".into(),
            json!({"story_id": story, "subject": "s", "property": "p", "value": {"kind": "boolean", "value": false}, "quote": "q"}),
        ),
        post(format!("/v1/claims/{claim}/confirmations"), json!({})),
        post(
            format!("/v1/claims/{claim}/disputes"),
            json!({"reason": "r"}),
        ),
        post(
            format!("/v1/claims/{claim}/evidence"),
            json!({"url": "https://example.org"}),
        ),
        post(
            format!("/v1/claims/{claim}/amendments"),
            json!({"quote": "q"}),
        ),
        post(
            format!("/v1/claims/{claim}/retraction"),
            json!({"reason": "r"}),
        ),
        get(format!("/v1/claims/{claim}")),
        get(format!("/v1/stories/{story}")),
        // The read side.
        get("/v1/claims?status=pending".into()),
        get("/v1/facts".into()),
        get(format!("/v1/facts/{fact}")),
        get(format!("/v1/facts/{fact}/history")),
        audit("/v1/audit".into()),
        audit("/v1/events?after=0".into()),
        audit("/v1/integrity".into()),
        audit("/v1/events/stream?after=0".into()),
        Endpoint {
            method: "POST",
            path: "/v1/integrity/checks".into(),
            body: json!({}),
            allowed: AUDITORS,
        },
    ]
}

async fn call(
    app: &TestApp,
    e: &Endpoint,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = match e.method {
        "GET" => app.client.get(app.url(&e.path)),
        _ => app.client.post(app.url(&e.path)).json(&e.body),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if e.path.starts_with("/v1/events/stream") {
        // A granted stream never ends: judge it by its status line alone.
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = if status == 200 {
            Value::Null
        } else {
            res.json().await.unwrap_or(Value::Null)
        };
        return (status, headers, body);
    }
    send(req).await
}

#[tokio::test]
async fn every_endpoint_by_every_role_and_by_no_bad_or_revoked_token() {
    let app = TestApp::start().await;
    let setup = app.token("setup", "editor").await;
    let revoked = app.token("gone", "admin").await;
    let mut tokens = Vec::new();
    for role in EVERYONE {
        tokens.push((*role, app.token(&format!("{role}-1"), role).await));
    }
    let list = endpoints(&app, &setup).await;
    factlog::auth::revoke(&app.db.pool, "gone")
        .await
        .expect("revoke");
    // Revocation reaches the cache within one refresh.
    tokio::time::sleep(factlog::auth::REFRESH + Duration::from_millis(500)).await;

    for e in &list {
        for (label, token) in [
            ("none", None),
            ("bad", Some("fl_not-a-token")),
            ("revoked", Some(revoked.as_str())),
        ] {
            let (s, h, b) = call(&app, e, token).await;
            assert_eq!(s, 401, "{} {} with {label} token: {b}", e.method, e.path);
            assert_eq!(
                h.get("www-authenticate").and_then(|v| v.to_str().ok()),
                Some("Bearer")
            );
            assert_eq!(
                h.get("content-type").and_then(|v| v.to_str().ok()),
                Some("application/problem+json")
            );
        }
        for (role, token) in &tokens {
            let (s, _, b) = call(&app, e, Some(token)).await;
            if e.allowed.contains(role) {
                let role_refused = s == 403 && b["type"] == "/problems/role-not-allowed";
                assert!(
                    s != 401 && !role_refused,
                    "{role} on {} {}: {s} {b}",
                    e.method,
                    e.path
                );
            } else {
                assert_eq!(s, 403, "{role} on {} {}: {b}", e.method, e.path);
                assert_eq!(b["type"], "/problems/role-not-allowed");
            }
        }
    }
    // A role check comes before the body is even read.
    let reader = &tokens[0].1;
    let (s, _, _) = send(
        app.post("/v1/claims", reader)
            .header("content-type", "text/plain")
            .body("nonsense"),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _, _) = send(app.client.post(app.url("/v1/claims")).body("nonsense")).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn token_commands_print_the_token_and_record_events() {
    let app = TestApp::start().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_factlog"))
        .args(["token", "create", "--name", "dana", "--role", "editor"])
        .env("DATABASE_URL", &app.db.url)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let token = stdout.trim();
    assert_eq!(stdout.lines().count(), 1, "the token alone on stdout");
    assert!(token.starts_with("fl_") && token.len() == 67);
    // Only the hash is stored.
    let dump: Vec<String> = sqlx::query_scalar("SELECT t::text FROM tokens t")
        .fetch_all(&app.db.pool)
        .await
        .expect("dump");
    assert!(dump.iter().all(|row| !row.contains(&token[3..])));
    let (s, _, _) = app
        .get_json("/v1/claims/00000000-0000-0000-0000-000000000000", token)
        .await;
    assert_eq!(s, 404, "the new token works at once");

    let dup = std::process::Command::new(env!("CARGO_BIN_EXE_factlog"))
        .args(["token", "create", "--name", "dana", "--role", "reader"])
        .env("DATABASE_URL", &app.db.url)
        .output()
        .expect("run");
    assert!(!dup.status.success());
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_factlog"))
        .args(["token", "create", "--name", "eve", "--role", "owner"])
        .env("DATABASE_URL", &app.db.url)
        .output()
        .expect("run");
    assert!(!bad.status.success());

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_factlog"))
        .args(["token", "revoke", "--name", "dana"])
        .env("DATABASE_URL", &app.db.url)
        .output()
        .expect("run");
    assert!(out.status.success());
    tokio::time::sleep(factlog::auth::REFRESH + Duration::from_millis(500)).await;
    let (s, _, _) = app
        .get_json("/v1/claims/00000000-0000-0000-0000-000000000000", token)
        .await;
    assert_eq!(s, 401, "revoked within seconds");

    let events: Vec<(String, String, Value)> = sqlx::query_as(
        "SELECT type, actor, data FROM events WHERE stream = 'principals' ORDER BY position",
    )
    .fetch_all(&app.db.pool)
    .await
    .expect("events");
    assert_eq!(events.len(), 2);
    assert_eq!(
        (events[0].0.as_str(), events[0].1.as_str()),
        ("TokenIssued", "cli")
    );
    assert_eq!(
        events[0].2,
        json!({"schema": 1, "name": "dana", "role": "editor"})
    );
    assert_eq!(events[1].0, "TokenRevoked");
}

#[tokio::test]
async fn a_token_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
    let app = TestApp::start_with(crate::support::AppOptions {
        rate: (1.0, 3.0),
        ..Default::default()
    })
    .await;
    let busy = app.token("busy", "reader").await;
    let calm = app.token("calm", "reader").await;
    let path = "/v1/claims/00000000-0000-0000-0000-000000000000";
    for _ in 0..3 {
        assert_eq!(app.get_json(path, &busy).await.0, 404);
    }
    let (s, h, b) = app.get_json(path, &busy).await;
    assert_eq!(s, 429, "{b}");
    assert_eq!(
        h.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_eq!(b["type"], "/problems/rate-limited");
    assert_eq!(
        app.get_json(path, &calm).await.0,
        404,
        "another token is unaffected"
    );
    // An unauthenticated flood is refused before it costs a bucket.
    assert_eq!(send(app.client.get(app.url(path))).await.0, 401);
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::start().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // Never finish the headers: the server must close the connection itself.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the server kept a header-trickling connection open"
    );
    // A normal client is served meanwhile and after.
    assert_eq!(send(app.client.get(app.url("/healthz"))).await.0, 200);
}

/// Transactions the database has run so far (committed and rolled back).
async fn transactions(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT (sum(xact_commit) + sum(xact_rollback))::bigint FROM pg_stat_database \
         WHERE datname = current_database()",
    )
    .fetch_one(conn)
    .await
    .expect("pg_stat_database")
}

fn random_token() -> String {
    format!("fl_{}", uuid::Uuid::new_v4().simple())
}

/// A flood of made-up tokens costs the database a few reloads of the token
/// set, not a query each: the transactions the database runs do not grow
/// with the flood. (Before, each unknown token was one query: 729 requests a
/// second made 3,870 transactions in 6 s.)
#[tokio::test]
async fn unknown_tokens_cost_no_database_round_trip_each() {
    use sqlx::Connection;
    let app = TestApp::start_with(crate::support::AppOptions {
        workers: false,
        // Every request reaches the token look-up, none is turned away first.
        auth_failures: Some((0.0, 1.0)),
        ..Default::default()
    })
    .await;
    let ann = app.token("ann", "reader").await;
    let path = "/v1/claims/00000000-0000-0000-0000-000000000000";
    assert_eq!(app.get_json(path, &ann).await.0, 404);
    let mut stats = sqlx::PgConnection::connect(&app.db.url)
        .await
        .expect("connect");
    let before = transactions(&mut stats).await;
    let flood = 1_000;
    let started = std::time::Instant::now();
    let statuses: Vec<u16> = futures::stream::iter(0..flood)
        .map(|_| async { send(app.get(path, &random_token())).await.0 })
        .buffer_unordered(50)
        .collect()
        .await;
    let took = started.elapsed();
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    // A token created during the flood still works at once.
    let bob = app.token("bob", "reader").await;
    assert_eq!(app.get_json(path, &bob).await.0, 404);
    assert_eq!(app.get_json(path, &ann).await.0, 404);
    // Closing every connection of the service writes out the statistics
    // its sessions still hold.
    app.db.pool.close().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spent = transactions(&mut stats).await - before;
    eprintln!("{flood} unknown tokens in {took:?}: {spent} transactions");
    // A few reloads a second at most, and what the service does anyway.
    let allowed = 30 + (took.as_secs_f64() * 10.0) as i64;
    assert!(
        spent <= allowed.min(flood / 4),
        "{flood} unknown tokens in {took:?} cost {spent} transactions"
    );
}

/// Repeated failures from one address get 429 (problem+json, Retry-After);
/// a valid token from the same address is still served, and other addresses
/// keep their own budget.
#[tokio::test]
async fn repeated_authentication_failures_from_an_address_get_429() {
    use axum::http::Request;
    use tower::ServiceExt;
    let app = TestApp::start_with(crate::support::AppOptions {
        auth_failures: Some((0.01, 20.0)),
        ..Default::default()
    })
    .await;
    let ann = app.token("ann", "reader").await;
    let path = "/v1/claims/00000000-0000-0000-0000-000000000000";
    assert_eq!(app.get_json(path, &ann).await.0, 404);
    // Over the socket (one client, 127.0.0.1): a burst of bad tokens.
    let statuses: Vec<u16> = futures::stream::iter(0..40)
        .map(|_| async { send(app.get(path, &random_token())).await.0 })
        .buffer_unordered(40)
        .collect()
        .await;
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429) && refused >= 15,
        "{statuses:?}"
    );
    let (s, h, b) = send(app.get(path, &random_token())).await;
    assert_eq!(s, 429, "{b}");
    assert_eq!(b["type"], "/problems/rate-limited");
    assert_eq!(
        h.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let wait: u64 = h
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(wait >= 1);
    assert_eq!(
        app.get_json(path, &ann).await.0,
        404,
        "a valid token is still served"
    );

    // Through the router, as the server loop calls it, with the peer set.
    let call = |peer: Option<&str>, token: String| {
        let mut req = Request::get(path)
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .expect("request");
        if let Some(p) = peer {
            req.extensions_mut()
                .insert(factlog::api::PeerAddr(p.parse().expect("addr")));
        }
        let router = app.router.clone();
        async move {
            router
                .oneshot(req)
                .await
                .expect("response")
                .status()
                .as_u16()
        }
    };
    let a = "192.0.2.7:40000";
    for _ in 0..20 {
        assert_eq!(call(Some(a), "fl_wrong".into()).await, 401);
    }
    assert_eq!(call(Some(a), "fl_wrong".into()).await, 429);
    assert_eq!(
        call(Some("192.0.2.7:40001"), "fl_wrong".into()).await,
        429,
        "the address, whatever the port"
    );
    assert_eq!(
        call(Some(a), ann.clone()).await,
        404,
        "valid from there too"
    );
    assert_eq!(
        call(Some("198.51.100.1:5000"), "fl_wrong".into()).await,
        401,
        "another address has its own budget"
    );
    assert_eq!(
        call(Some("127.0.0.1:1"), "fl_wrong".into()).await,
        429,
        "the socket's client, whose budget the burst above spent"
    );
    for _ in 0..20 {
        assert_eq!(call(None, "fl_wrong".into()).await, 401);
    }
    assert_eq!(
        call(None, "fl_wrong".into()).await,
        429,
        "no known address: one bucket for all such requests"
    );
}

/// RFC 9110 allows one Authorization header: two are 400, whichever they
/// hold, before anything else is looked at.
#[tokio::test]
async fn two_authorization_headers_are_400() {
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let count = app.count_events().await;
    let story = json!({"title": "t", "publisher": "p", "published_at": "2020-01-01"});
    for (first, second) in [
        (ann.clone(), ann.clone()),
        (ann.clone(), "fl_other".to_owned()),
        ("fl_other".to_owned(), ann.clone()),
    ] {
        let (s, h, b) = send(
            app.client
                .post(app.url("/v1/stories"))
                .header("authorization", format!("Bearer {first}"))
                .header("authorization", format!("Bearer {second}"))
                .json(&story),
        )
        .await;
        assert_eq!(s, 400, "{b}");
        assert_eq!(
            h.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/problem+json")
        );
        assert_eq!(b["status"], 400);
        assert!(
            b["detail"]
                .as_str()
                .is_some_and(|d| d.contains("Authorization"))
        );
    }
    let (s, _, _) = send(
        app.client
            .get(app.url("/v1/facts"))
            .header("authorization", format!("Bearer {ann}"))
            .header("authorization", format!("Bearer {ann}")),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(app.count_events().await, count, "nothing written");
    assert_eq!(app.post_json("/v1/stories", &ann, &story).await.0, 201);
}

/// Every response says `X-Content-Type-Options: nosniff`; every response
/// under /v1 (success or error, authenticated or not) `Cache-Control:
/// no-store`.
#[tokio::test]
async fn every_response_says_nosniff_and_v1_responses_no_store() {
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let rita = app.token("rita", "reader").await;
    let (_, _, story) = app
        .post_json(
            "/v1/stories",
            &ann,
            &json!({"title": "t", "publisher": "p", "published_at": "2020-01-01"}),
        )
        .await;
    let story = story["id"].as_str().expect("id").to_owned();
    let c = &app.client;
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        ("healthz", c.get(app.url("/healthz")), 200),
        ("readyz", c.get(app.url("/readyz")), 200),
        ("metrics", c.get(app.url("/metrics")), 200),
        ("openapi", c.get(app.url("/openapi.json")), 200),
        ("docs", c.get(app.url("/docs")), 200),
        ("docs script", c.get(app.url("/docs/rapidoc-min.js")), 200),
        ("unknown path", c.get(app.url("/nope")), 404),
        ("wrong method", c.delete(app.url("/healthz")), 405),
        ("v1 unknown path", app.get("/v1/nope", &rita), 404),
        (
            "story",
            app.get(&format!("/v1/stories/{story}"), &rita),
            200,
        ),
        ("facts", app.get("/v1/facts", &rita), 200),
        (
            "claim 404",
            app.get("/v1/claims/00000000-0000-0000-0000-000000000000", &rita),
            404,
        ),
        ("bad query", app.get("/v1/facts?limit=0", &rita), 422),
        ("role", app.get("/v1/audit", &rita), 403),
        ("no token", c.get(app.url("/v1/facts")), 401),
        ("bad token", app.get("/v1/facts", "fl_nope"), 401),
        (
            "create",
            app.post("/v1/stories", &ann)
                .json(&json!({"title": "u", "publisher": "p", "published_at": "2020-01-01"})),
            201,
        ),
        (
            "not JSON",
            app.post("/v1/stories", &ann)
                .header("content-type", "application/json")
                .body("{"),
            400,
        ),
        (
            "not JSON at all",
            app.post("/v1/stories", &ann).body("x"),
            415,
        ),
        (
            "invalid field",
            app.post("/v1/stories", &ann).json(&json!({"title": 1})),
            422,
        ),
    ];
    for (label, req, status) in cases {
        let (s, h, b) = send(req).await;
        assert_eq!(s, status, "{label}: {b}");
        assert_eq!(
            h.get("x-content-type-options")
                .and_then(|v| v.to_str().ok()),
            Some("nosniff"),
            "{label}"
        );
        let v1 = label == "no token"
            || label == "bad token"
            || ![
                "healthz",
                "readyz",
                "metrics",
                "openapi",
                "docs",
                "docs script",
                "unknown path",
                "wrong method",
            ]
            .contains(&label);
        if v1 {
            assert_eq!(
                h.get("cache-control").and_then(|v| v.to_str().ok()),
                Some("no-store"),
                "{label}"
            );
        }
    }
    // The live stream too (judged by its head: it never ends).
    let audrey = app.token("audrey", "auditor").await;
    let res = app
        .get("/v1/events/stream?after=0", &audrey)
        .send()
        .await
        .expect("stream");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert_eq!(res.headers()["cache-control"], "no-store");
}
