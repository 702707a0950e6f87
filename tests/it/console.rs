//! The editors' console through a real socket: sessions (cookie, expiry by
//! revocation and sign-out), forged writes refused before anything is
//! written, hostile text shown escaped, and the headers of every page.

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::hostile::hostile;
use crate::support::TestApp;

/// A browser without cookies or redirects of its own: each test says what
/// it sends.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub(crate) struct Page {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) html: String,
}

pub(crate) async fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> Page {
    let mut req = browser().get(app.url(path));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    read(req).await
}

pub(crate) async fn read(req: reqwest::RequestBuilder) -> Page {
    let res = req.send().await.expect("request");
    Page {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        html: res.text().await.expect("body"),
    }
}

/// A form POST as the console's own page sends it (Origin: the app), with
/// `extra` headers on top; `origin: None` sends none.
pub(crate) async fn post_form(
    app: &TestApp,
    path: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
    fields: &[(&str, &str)],
) -> Page {
    let body = serde_urlencoded::to_string(fields).expect("form");
    let mut req = browser()
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    read(req).await
}

pub(crate) fn location(p: &Page) -> &str {
    p.headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Signs in and returns the `name=value` pair to send as `Cookie`.
pub(crate) async fn sign_in(app: &TestApp, token: &str) -> String {
    let p = post_form(
        app,
        "/console/sign-in",
        None,
        Some(&app.base),
        &[("token", token)],
    )
    .await;
    assert_eq!(p.status, 303, "{}", p.html);
    let set = p.headers[SET_COOKIE].to_str().expect("ascii");
    set.split(';').next().expect("pair").to_owned()
}

/// The value of the first hidden field `name` on the page.
pub(crate) fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} on the page: {html}"))
        + marker.len();
    html[start..].split('"').next().expect("value").to_owned()
}

/// HTML-escaped as the templates escape text.
pub(crate) fn escaped(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn story_fields<'a>(
    csrf: &'a str,
    key: &'a str,
    title: &'a str,
    body: &'a str,
) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("idempotency_key", key),
        ("title", title),
        ("publisher", "Example Times"),
        ("published_at", "2020-01-06"),
        ("url", ""),
        ("body", body),
    ]
}

/// A story form as a forger would send it, with `csrf` when given.
fn forged(csrf: Option<&str>) -> Vec<(&'static str, &str)> {
    let mut fields = vec![
        ("title", "Forged"),
        ("publisher", "Nobody"),
        ("published_at", "2020-01-06"),
    ];
    if let Some(token) = csrf {
        fields.push(("csrf", token));
    }
    fields
}

pub(crate) fn assert_page_headers(p: &Page, what: &str) {
    let h = |name: &str| {
        p.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{what} lacks {name}"))
            .to_owned()
    };
    assert_eq!(
        h("content-security-policy"),
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        "{what}"
    );
    assert_eq!(h("x-frame-options"), "DENY", "{what}");
    assert_eq!(h("referrer-policy"), "same-origin", "{what}");
    assert_eq!(h("cache-control"), "no-store", "{what}");
    // No inline script or style: the policy would block them.
    assert!(!p.html.contains("<style"), "{what}: inline style");
    assert!(!p.html.contains(" style="), "{what}: inline style");
    assert!(!p.html.contains("<script>"), "{what}: inline script");
    for script in p.html.split("<script").skip(1) {
        assert!(
            script.trim_start().starts_with("src=\""),
            "{what}: {script}"
        );
    }
}

#[tokio::test]
async fn signing_in_with_a_bad_token_says_so_and_sets_no_cookie() {
    let app = TestApp::start().await;
    let page = get(&app, "/console", None).await;
    assert_eq!(page.status, 200);
    assert!(page.html.contains(">Token</label>"), "{}", page.html);
    assert!(page.html.contains(">Sign in</button>"), "{}", page.html);
    assert_page_headers(&page, "the sign-in page");

    for bad in ["fl_nothing", "", "   "] {
        let p = post_form(
            &app,
            "/console/sign-in",
            None,
            Some(&app.base),
            &[("token", bad)],
        )
        .await;
        assert!(p.status == 401 || p.status == 422, "{bad:?}: {}", p.status);
        assert!(p.headers.get(SET_COOKIE).is_none(), "{bad:?}");
        assert!(p.html.contains("class=\"message\""), "{}", p.html);
        assert!(!p.html.trim_start().starts_with('{'), "JSON: {}", p.html);
    }
    let p = post_form(
        &app,
        "/console/sign-in",
        None,
        Some(&app.base),
        &[("token", "fl_nothing")],
    )
    .await;
    assert!(p.html.contains("unknown or has been revoked"), "{}", p.html);
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_cookie_of_at_most_twelve_hours() {
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let p = post_form(
        &app,
        "/console/sign-in",
        None,
        Some(&app.base),
        &[("token", &ann)],
    )
    .await;
    assert_eq!(p.status, 303);
    assert_eq!(location(&p), "/console/queue");
    let set = p.headers[SET_COOKIE].to_str().expect("ascii").to_owned();
    let attrs: Vec<&str> = set.split(';').map(str::trim).collect();
    assert!(attrs[0].starts_with("factlog_session="), "{set}");
    assert!(attrs[0].len() > "factlog_session=".len() + 32, "{set}");
    assert!(attrs.contains(&"HttpOnly"), "{set}");
    assert!(attrs.contains(&"SameSite=Strict"), "{set}");
    // The whole site: the API's event streams take it too (EventSource
    // cannot send a bearer token).
    assert!(attrs.contains(&"Path=/"), "{set}");
    let max_age: u64 = attrs
        .iter()
        .find_map(|a| a.strip_prefix("Max-Age="))
        .expect("Max-Age")
        .parse()
        .expect("seconds");
    assert!(max_age > 0 && max_age <= 43_200, "{set}");
    assert!(!attrs.contains(&"Secure"), "plain http on loopback: {set}");
    // The id is not what the database keeps.
    let id = attrs[0].trim_start_matches("factlog_session=");
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM console_sessions WHERE id_hash = sha256(convert_to($1, 'UTF8'))",
    )
    .bind(id)
    .fetch_one(&app.db.pool)
    .await
    .expect("count");
    assert_eq!(stored, 1);
    let raw: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM console_sessions WHERE encode(id_hash, 'hex') = $1",
    )
    .bind(id)
    .fetch_one(&app.db.pool)
    .await
    .expect("count");
    assert_eq!(raw, 0);

    // Behind a proxy that speaks https, the cookie is Secure.
    let body = serde_urlencoded::to_string([("token", &ann)]).expect("form");
    let host = app.base.trim_start_matches("http://").to_owned();
    let p = read(
        browser()
            .post(app.url("/console/sign-in"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-forwarded-proto", "https")
            .header("origin", format!("https://{host}"))
            .body(body),
    )
    .await;
    assert_eq!(p.status, 303, "{}", p.html);
    let set = p.headers[SET_COOKIE].to_str().expect("ascii");
    assert!(set.split(';').any(|a| a.trim() == "Secure"), "{set}");

    // The layout: navigation, who is signed in, sign out.
    let cookie = attrs[0];
    let page = get(&app, "/console/queue", Some(cookie)).await;
    assert_eq!(page.status, 200, "{}", page.html);
    for words in [
        ">Queue</a>",
        ">Stories</a>",
        ">Facts</a>",
        "<strong>ann</strong> (editor)",
        ">Sign out</button>",
    ] {
        assert!(page.html.contains(words), "{words}: {}", page.html);
    }
    assert!(!page.html.contains(">Audit</a>"), "editors do not audit");
    let audrey = app.token("audrey", "auditor").await;
    let auditor = sign_in(&app, &audrey).await;
    let page = get(&app, "/console/queue", Some(&auditor)).await;
    assert!(page.html.contains(">Audit</a>"), "{}", page.html);
}

#[tokio::test]
async fn pages_without_a_session_redirect_to_sign_in() {
    let app = TestApp::start().await;
    let id = uuid::Uuid::now_v7();
    for path in [
        "/console/queue".to_owned(),
        "/console/stories".to_owned(),
        format!("/console/stories/{id}"),
        format!("/console/claims/{id}"),
        "/console/facts".to_owned(),
    ] {
        for cookie in [None, Some("factlog_session=0123456789abcdef")] {
            let p = get(&app, &path, cookie).await;
            assert_eq!(p.status, 303, "{path} {cookie:?}");
            assert_eq!(location(&p), "/console/sign-in", "{path}");
        }
    }
}

#[tokio::test]
async fn a_revoked_tokens_session_stops_working_within_three_seconds() {
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let cookie = sign_in(&app, &ann).await;
    assert_eq!(
        get(&app, "/console/stories", Some(&cookie)).await.status,
        200
    );
    factlog::auth::revoke(&app.db.pool, "ann")
        .await
        .expect("revoke");
    let revoked = Instant::now();
    loop {
        let p = get(&app, "/console/stories", Some(&cookie)).await;
        if p.status == 303 {
            assert_eq!(location(&p), "/console/sign-in");
            break;
        }
        assert_eq!(p.status, 200);
        assert!(
            revoked.elapsed() < Duration::from_secs(3),
            "the session outlived its token"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And it is gone from the database, not only refused.
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM console_sessions")
        .fetch_one(&app.db.pool)
        .await
        .expect("count");
    assert_eq!(left, 0);
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let cookie = sign_in(&app, &ann).await;
    let page = get(&app, "/console/queue", Some(&cookie)).await;
    let csrf = hidden(&page.html, "csrf");
    let p = post_form(
        &app,
        "/console/sign-out",
        Some(&cookie),
        Some(&app.base),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(p.status, 303, "{}", p.html);
    assert_eq!(location(&p), "/console/sign-in");
    let set = p.headers[SET_COOKIE].to_str().expect("ascii");
    assert!(set.contains("Max-Age=0"), "{set}");
    // The old cookie no longer opens anything.
    let p = get(&app, "/console/queue", Some(&cookie)).await;
    assert_eq!(p.status, 303);
    assert_eq!(location(&p), "/console/sign-in");
}

#[tokio::test]
async fn forged_posts_are_refused_and_write_nothing() {
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let bob = app.token("bob", "editor").await;
    let cookie = sign_in(&app, &ann).await;
    let other = sign_in(&app, &bob).await;
    let page = get(&app, "/console/stories", Some(&cookie)).await;
    let csrf = hidden(&page.html, "csrf");
    let key = hidden(&page.html, "idempotency_key");
    let bobs_csrf = hidden(
        &get(&app, "/console/stories", Some(&other)).await.html,
        "csrf",
    );
    assert_ne!(csrf, bobs_csrf);
    let port: u16 = app
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let other_port = format!("http://127.0.0.1:{}", port.wrapping_add(1).max(1));
    let before = app.count_events().await;

    let wrong = "0".repeat(64);
    let other_referer = format!("{other_port}/console/stories");
    // What, the form, its Origin, its Referer.
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        Option<&'a str>,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        ("no CSRF token", forged(None), Some(&app.base), None),
        ("a wrong token", forged(Some(&wrong)), Some(&app.base), None),
        (
            "another session's token",
            forged(Some(&bobs_csrf)),
            Some(&app.base),
            None,
        ),
        ("another port", forged(Some(&csrf)), Some(&other_port), None),
        ("Origin: null", forged(Some(&csrf)), Some("null"), None),
        ("no Origin, no Referer", forged(Some(&csrf)), None, None),
        (
            "a Referer from another port",
            forged(Some(&csrf)),
            None,
            Some(&other_referer),
        ),
    ];
    for (what, fields, origin, referer) in cases {
        let body = serde_urlencoded::to_string(&fields).expect("form");
        let mut req = browser()
            .post(app.url("/console/stories"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", &cookie)
            .body(body);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(r) = referer {
            req = req.header("referer", r);
        }
        let p = read(req).await;
        assert_eq!(p.status, 403, "{what}: {}", p.html);
        assert!(p.html.contains("nothing was saved"), "{what}: {}", p.html);
        assert_page_headers(&p, what);
        assert_eq!(app.count_events().await, before, "{what} wrote");
    }
    // Sign-out is a writing form too.
    let p = post_form(
        &app,
        "/console/sign-out",
        Some(&cookie),
        Some(&other_port),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(p.status, 403);
    assert_eq!(get(&app, "/console/queue", Some(&cookie)).await.status, 200);

    // The same form from the console itself is saved, once however often
    // it is sent.
    let fields = story_fields(&csrf, &key, "Real", "Some 5,200 U.S. troops remain.");
    let first = post_form(
        &app,
        "/console/stories",
        Some(&cookie),
        Some(&app.base),
        &fields,
    )
    .await;
    assert_eq!(first.status, 303, "{}", first.html);
    assert!(location(&first).starts_with("/console/stories/"));
    let again = post_form(
        &app,
        "/console/stories",
        Some(&cookie),
        Some(&app.base),
        &fields,
    )
    .await;
    assert_eq!(again.status, 303, "{}", again.html);
    assert_eq!(location(&again), location(&first));
    assert_eq!(app.count_events().await, before + 1);
    // A Referer from the console stands for a missing Origin.
    let key2 = hidden(
        &get(&app, "/console/stories", Some(&cookie)).await.html,
        "idempotency_key",
    );
    assert_ne!(key, key2);
    let body = serde_urlencoded::to_string(story_fields(&csrf, &key2, "Second", "")).expect("form");
    let p = read(
        browser()
            .post(app.url("/console/stories"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", &cookie)
            .header("referer", app.url("/console/stories"))
            .body(body),
    )
    .await;
    assert_eq!(p.status, 303, "{}", p.html);
    assert_eq!(app.count_events().await, before + 2);
}

#[tokio::test]
async fn a_refused_story_is_explained_beside_the_form_with_what_was_typed() {
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let cookie = sign_in(&app, &ann).await;
    let page = get(&app, "/console/stories", Some(&cookie)).await;
    let (csrf, key) = (
        hidden(&page.html, "csrf"),
        hidden(&page.html, "idempotency_key"),
    );
    let before = app.count_events().await;
    let mut fields = story_fields(&csrf, &key, "Kept <title>", "Kept body");
    fields[4] = ("published_at", "last Tuesday");
    let p = post_form(
        &app,
        "/console/stories",
        Some(&cookie),
        Some(&app.base),
        &fields,
    )
    .await;
    assert_eq!(p.status, 422, "{}", p.html);
    assert!(p.html.contains("Published at: must be"), "{}", p.html);
    assert!(
        p.html.contains("value=\"Kept &lt;title&gt;\""),
        "{}",
        p.html
    );
    assert!(p.html.contains(">Kept body</textarea>"), "{}", p.html);
    assert!(p.html.contains("value=\"last Tuesday\""), "{}", p.html);
    assert_eq!(app.count_events().await, before);
}

#[tokio::test]
async fn hostile_text_is_shown_escaped_and_every_page_has_the_policy() {
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let cookie = sign_in(&app, &ann).await;
    for s in hostile() {
        let page = get(&app, "/console/stories", Some(&cookie)).await;
        let (csrf, key) = (
            hidden(&page.html, "csrf"),
            hidden(&page.html, "idempotency_key"),
        );
        let body = format!("Lede. {s} Tail.");
        let p = post_form(
            &app,
            "/console/stories",
            Some(&cookie),
            Some(&app.base),
            &story_fields(&csrf, &key, &s, &body),
        )
        .await;
        assert_eq!(p.status, 303, "{s:?}: {}", p.html);
        let path = location(&p).to_owned();
        let id = path.trim_start_matches("/console/stories/").to_owned();
        // Stored exactly as typed.
        let (_, _, story) = app.get_json(&format!("/v1/stories/{id}"), &ann).await;
        assert_eq!(story["title"].as_str(), Some(s.as_str()));
        assert_eq!(story["body"].as_str(), Some(body.as_str()));

        let page = get(&app, &path, Some(&cookie)).await;
        assert_eq!(page.status, 200);
        assert!(
            page.html.contains(&format!("<h1>{}</h1>", escaped(&s))),
            "{s:?}: {}",
            page.html
        );
        assert!(page.html.contains(&escaped(&body)), "{s:?}");
        assert!(!page.html.contains("<script>alert"), "{s:?}");
        assert_page_headers(&page, "a story page");

        // A claim quoting it: highlighted, still escaped.
        let (st, _, claim) = app
            .post_json(
                "/v1/claims",
                &ann,
                &json!({"story_id": id, "subject": s, "property": "p",
                        "value": {"kind": "text", "text": s}, "quote": s}),
            )
            .await;
        assert_eq!(st, 201, "{claim}");
        let position = claim["position"].as_i64().expect("position");
        app.get_json(&format!("/v1/stories/{id}?wait_for={position}"), &ann)
            .await;
        let page = get(&app, &path, Some(&cookie)).await;
        assert!(
            page.html
                .contains(&format!("<mark>{}</mark>", escaped(s.trim()))),
            "{s:?}: {}",
            page.html
        );
        assert!(!page.html.contains("<script>alert"), "{s:?}");
        let claim_page = get(
            &app,
            &format!("/console/claims/{}", claim["id"].as_str().expect("id")),
            Some(&cookie),
        )
        .await;
        assert_eq!(claim_page.status, 200);
        assert!(claim_page.html.contains(&escaped(&s)), "{s:?}");
        assert!(!claim_page.html.contains("<script>alert"), "{s:?}");
        assert_page_headers(&claim_page, "a claim page");
    }
    let list = get(&app, "/console/stories", Some(&cookie)).await;
    assert!(!list.html.contains("<script>alert"));
    for (what, path) in [
        ("the sign-in page", "/console/sign-in"),
        ("the queue", "/console/queue"),
        ("the stories", "/console/stories"),
        ("the facts", "/console/facts"),
        ("a missing page", "/console/nowhere"),
        ("a missing story", "/console/stories/not-an-id"),
    ] {
        let p = get(&app, path, Some(&cookie)).await;
        assert_page_headers(&p, what);
    }
    // The stylesheet and the script come from the service, cached long.
    let page = get(&app, "/console/stories", Some(&cookie)).await;
    for (attr, kind) in [("href=\"", ".css"), ("src=\"", ".js")] {
        let src = page
            .html
            .split(attr)
            .filter_map(|rest| rest.split('"').next())
            .find(|s| s.starts_with("/console/assets/") && s.ends_with(kind))
            .unwrap_or_else(|| panic!("no {kind} on the page"));
        let res = browser().get(app.url(src)).send().await.expect("asset");
        assert_eq!(res.status().as_u16(), 200, "{src}");
        let cache = res.headers()["cache-control"].to_str().expect("ascii");
        assert!(cache.contains("max-age=31536000"), "{cache}");
    }
}

#[tokio::test]
async fn a_reader_sees_no_story_form_and_a_readers_post_is_refused_in_words() {
    let app = TestApp::start().await;
    let rita = app.token("rita", "reader").await;
    let cookie = sign_in(&app, &rita).await;
    let page = get(&app, "/console/stories", Some(&cookie)).await;
    assert_eq!(page.status, 200);
    assert!(!page.html.contains("New story"), "{}", page.html);
    assert!(!page.html.contains("name=\"title\""), "{}", page.html);
    // The layout still has a form (Sign out) with the session's token.
    let csrf = hidden(&page.html, "csrf");
    let before = app.count_events().await;
    let p = post_form(
        &app,
        "/console/stories",
        Some(&cookie),
        Some(&app.base),
        &story_fields(&csrf, "k1", "By a reader", ""),
    )
    .await;
    assert_eq!(p.status, 403, "{}", p.html);
    assert!(
        p.html.contains("The reader role may not write"),
        "{}",
        p.html
    );
    assert!(
        p.headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    assert_eq!(app.count_events().await, before);
}

#[tokio::test]
async fn the_queue_lists_others_pending_claims_newest_first() {
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let bob = app.token("bob", "editor").await;
    let (_, _, story) = app
        .post_json(
            "/v1/stories",
            &ann,
            &json!({"title": "Troops", "publisher": "Example Times",
                    "published_at": "2020-01-06",
                    "body": "Some 5,200 U.S. troops remain. The vote passed."}),
        )
        .await;
    let mut last = 0;
    for (subject, quote) in [
        ("first", "Some 5,200 U.S. troops remain."),
        ("second", "The vote passed."),
    ] {
        let (st, _, claim) = app
            .post_json(
                "/v1/claims",
                &ann,
                &json!({"story_id": story["id"], "subject": subject, "property": "count",
                        "value": {"kind": "quantity", "amount": "5200", "unit": "soldier"},
                        "quote": quote}),
            )
            .await;
        assert_eq!(st, 201, "{claim}");
        last = claim["position"].as_i64().expect("position");
    }
    app.get_json(&format!("/v1/claims?wait_for={last}"), &ann)
        .await;
    let bobs = sign_in(&app, &bob).await;
    let page = get(&app, "/console/queue", Some(&bobs)).await;
    assert_eq!(page.status, 200);
    let first = page.html.find(">first — count<").expect("first listed");
    let second = page.html.find(">second — count<").expect("second listed");
    assert!(second < first, "newest first");
    assert!(page.html.contains(">Troops</a>"), "{}", page.html);
    assert!(page.html.contains("5200 soldier"), "{}", page.html);
    // Not to the one who asserted them.
    let anns = sign_in(&app, &ann).await;
    let page = get(&app, "/console/queue", Some(&anns)).await;
    assert!(!page.html.contains("— count<"), "{}", page.html);
    assert!(page.html.contains("Nothing is waiting for you."));
    // The story's page marks both quotes.
    let page = get(
        &app,
        &format!("/console/stories/{}", story["id"].as_str().expect("id")),
        Some(&anns),
    )
    .await;
    assert!(
        page.html
            .contains("<mark>Some 5,200 U.S. troops remain.</mark>")
    );
    assert!(page.html.contains("<mark>The vote passed.</mark>"));
}

/// Reads the stream until `want` shows up in what it sent, or panics after
/// `within`; returns all it read.
async fn read_until(res: &mut reqwest::Response, want: &str, within: Duration) -> String {
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = String::new();
    while !seen.contains(want) {
        match tokio::time::timeout_at(deadline, res.chunk()).await {
            Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            Ok(Ok(None)) => panic!("the stream ended before {want:?}; it sent {seen:?}"),
            Ok(Err(e)) => panic!("the stream failed before {want:?}: {e}; it sent {seen:?}"),
            Err(_) => panic!("no {want:?} within {within:?}; the stream sent {seen:?}"),
        }
    }
    seen
}

/// Asserts a claim through the API and returns its position.
async fn assert_claim(app: &TestApp, token: &str, story: &str, subject: &str) -> i64 {
    let (st, _, claim) = app
        .post_json(
            "/v1/claims",
            token,
            &json!({"story_id": story, "subject": subject, "property": "count",
                    "value": {"kind": "quantity", "amount": "5200", "unit": "soldier"},
                    "quote": "Some 5,200 U.S. troops remain."}),
        )
        .await;
    assert_eq!(st, 201, "{claim}");
    claim["position"].as_i64().expect("position")
}

#[tokio::test]
async fn the_queue_stream_tells_of_claims_once_listed_and_ends_with_the_session() {
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let bob = app.token("bob", "editor").await;
    let (_, _, story) = app
        .post_json(
            "/v1/stories",
            &ann,
            &json!({"title": "Troops", "publisher": "Example Times",
                    "published_at": "2020-01-06",
                    "body": "Some 5,200 U.S. troops remain."}),
        )
        .await;
    let story = story["id"].as_str().expect("id").to_owned();
    let bobs = sign_in(&app, &bob).await;

    // No session: 204, which tells an EventSource to stop reconnecting.
    assert_eq!(get(&app, "/console/queue/stream", None).await.status, 204);

    // The page names the stream, from where its list was read.
    let page = get(&app, "/console/queue", Some(&bobs)).await;
    let marker = "data-live=\"/console/queue/stream?after=";
    let at = page.html.find(marker).expect("a live list") + marker.len();
    let after: i64 = page.html[at..]
        .split('"')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("a position");
    assert!(
        page.html
            .contains("data-fragment=\"/console/queue?fragment=1\"")
    );

    let mut stream = browser()
        .get(app.url(&format!("/console/queue/stream?after={after}")))
        .header("cookie", &bobs)
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream.headers()["content-type"].to_str().expect("ascii"),
        "text/event-stream"
    );
    let position = assert_claim(&app, &ann, &story, "hostile <b>&amp;</b>").await;
    let sent = read_until(
        &mut stream,
        &format!("event: claim\nid: {position}\ndata: {position}\n"),
        Duration::from_secs(2),
    )
    .await;
    // Only the position: nothing of the event itself.
    assert!(!sent.contains("hostile"), "{sent}");

    // Once told, the list shows it: only the list, escaped.
    let fragment = get(&app, "/console/queue?fragment=1", Some(&bobs)).await;
    assert_eq!(fragment.status, 200);
    assert!(
        fragment.html.starts_with("<ul class=\"items\">"),
        "{}",
        fragment.html
    );
    assert!(!fragment.html.contains("<html"), "{}", fragment.html);
    assert!(
        fragment
            .html
            .contains(&escaped("hostile <b>&amp;</b> — count")),
        "{}",
        fragment.html
    );
    assert_page_headers(&fragment, "the queue's list");

    // Signing out ends the stream within the token cache's reload.
    let csrf = hidden(&page.html, "csrf");
    let out = post_form(
        &app,
        "/console/sign-out",
        Some(&bobs),
        Some(&app.base),
        &[("csrf", &csrf)],
    )
    .await;
    assert_eq!(out.status, 303);
    let ended = tokio::time::timeout(Duration::from_secs(3), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its session");
}

#[tokio::test]
async fn the_queue_stream_shares_the_event_streams_caps() {
    let app = TestApp::start_with(crate::support::AppOptions {
        streams: factlog::api::StreamCaps {
            per_token: 1,
            total: 10,
        },
        ..Default::default()
    })
    .await;
    let audrey = app.token("audrey", "auditor").await;
    let cookie = sign_in(&app, &audrey).await;
    let api = app
        .get("/v1/events/stream?after=0", &audrey)
        .send()
        .await
        .expect("stream");
    assert_eq!(api.status(), 200);
    let p = get(&app, "/console/queue/stream", Some(&cookie)).await;
    assert_eq!(p.status, 429, "{}", p.html);
    assert!(p.headers.contains_key("retry-after"));
    drop(api);
}
