//! Console benchmark (issue 25, item 5): the editors' console rendered by
//! `factlog serve` under a real backlog. A throw-away, fsync-on cluster;
//! stories, then one fact with 1,000 claims, then 10,000 pending claims,
//! all asserted through `POST /v1/claims` by several editors at once; an
//! editor signs in to the console as a browser does; then `GET
//! /console/queue` and `GET /console/facts/{id}` are timed, one connection
//! and several, against p95 < 50 ms; and the console's stylesheet and
//! script, as served, are gzipped against 100 KB. See bench/README.md.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod client;
#[allow(
    dead_code,
    reason = "pgbench, the paired-rounds table and the payload are the other benches'"
)]
mod common;
#[allow(
    dead_code,
    reason = "child commands, the projections' lag and the write-side helpers are the other benches'"
)]
mod harness;

use bytes::Bytes;
use factlog::db::EphemeralCluster;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, HOST, ORIGIN, SET_COOKIE};
use hyper::{Method, Request};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::AsyncWriteExt as _;

use common::{
    CpuSnapshot, checkpoint, database, machine_description, postmaster_pid, quantile, thousands,
};
use harness::{
    OnReply, Op, REQUEST_TIMEOUT, SETTLE_LIMIT, Server, VERIFY_DAILY, claim_text, closed_loop,
    create_token, editor_tokens, env_number, fetch_expecting, fetch_ok, goal_mark, goals_line,
    ms_fmt, rate, report_head, run_on_cluster, server_sentence, settle, status_counts,
    wait_until_verified, write_report, write_server_log,
};

const DB_NAME: &str = "console";
/// Connections asserting the backlog: enough to keep the server's writer
/// batching, as a busy newsroom would.
const FILL_CONNECTIONS: usize = 16;
/// Stories the backlog's claims are spread over, so that a queue page
/// names many (each title is a lookup).
const STORIES: usize = 100;
/// Connections of the concurrent measurement (the other is one).
const CONCURRENT: usize = 4;
/// Requests before each measurement, unmeasured: connections, statement
/// caches, the fact cache.
const WARM_UP: u64 = 50;

const PAGE_P95_GOAL: Duration = Duration::from_millis(50);
/// 100 KB, counted as 100,000 bytes (the stricter reading).
const ASSETS_GOAL_BYTES: u64 = 100_000;

/// Subjects of the backlog's claims (`queue subject N`, about a tenth as
/// many facts as claims) and of the one busy fact.
const QUEUE_SUBJECT: &str = "queue subject";
const BUSY_SUBJECT: &str = "busy subject";

struct Settings {
    pending: u64,
    fact_claims: u64,
    requests: u64,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            pending: env_number("FACTLOG_BENCH_CONSOLE_PENDING", 10_000),
            fact_claims: env_number("FACTLOG_BENCH_CONSOLE_FACT_CLAIMS", 1_000),
            requests: env_number("FACTLOG_BENCH_CONSOLE_REQUESTS", 500),
        }
    }
}

struct Bench {
    settings: Settings,
    bin: PathBuf,
    pool: PgPool,
    server: Server,
    postmaster: Option<u32>,
    editors: Arc<Vec<String>>,
    stories: Arc<Vec<String>>,
    /// The signed-in editor's `factlog_session=…` pair.
    cookie: Arc<str>,
}

fn main() {
    run_on_cluster(run);
}

async fn run(cluster: EphemeralCluster, bin: PathBuf) {
    let started = Instant::now();
    let settings = Settings::from_env();
    let (url, pool) = database(&cluster, DB_NAME, 4).await;
    let machine = machine_description(&pool).await;
    eprintln!("{machine}");
    let editors = Arc::new(editor_tokens(&bin, &url).await);
    let auditor = create_token(&bin, &url, "auditor", "auditor").await;
    let server = Server::start(&bin, &url, &[VERIFY_DAILY]).await;
    let stories = Arc::new(register_stories(&server, &editors[0]).await);
    let mut bench = Bench {
        settings,
        bin,
        pool,
        postmaster: postmaster_pid(cluster.dir()),
        editors,
        stories,
        cookie: "".into(),
        server,
    };

    // The busy fact first, so that the queue's first pages are the backlog's.
    let s = &bench.settings;
    let (fact_claims, pending) = (s.fact_claims, s.pending);
    let fill = Instant::now();
    let facts = assert_claims(&bench, fact_claims, BUSY_SUBJECT, 1).await;
    assert_eq!(facts.len(), 1, "the busy fact's claims went to {facts:?}");
    let fact = facts.into_iter().next().expect("one fact");
    assert_claims(&bench, pending, QUEUE_SUBJECT, (pending / 10).max(1)).await;
    let fill_secs = fill.elapsed().as_secs_f64();
    eprintln!("  asserted in {fill_secs:.0} s; waiting for the verifier and projections...");
    wait_until_verified(&bench.server, &auditor).await;
    // Planner statistics as autovacuum would leave them on a table this size.
    sqlx::raw_sql("VACUUM ANALYZE")
        .execute(&bench.pool)
        .await
        .expect("VACUUM ANALYZE");
    settle(&bench.pool, SETTLE_LIMIT).await;

    bench.cookie = sign_in(&bench.server, &bench.editors[0]).await.into();
    let queue = "/console/queue".to_owned();
    let fact_page = format!("/console/facts/{fact}");
    let shown = Shown {
        queue: look(&bench, &queue).await,
        fact: look(&bench, &fact_page).await,
    };
    eprintln!(
        "queue page: {} claims, {} bytes; fact page: {} claim links, {} bytes",
        shown.queue.claim_links,
        thousands(shown.queue.bytes as u64),
        shown.fact.claim_links,
        thousands(shown.fact.bytes as u64)
    );
    assert!(
        shown.fact.claim_links as u64 >= fact_claims,
        "the fact page links {} claims, not {fact_claims}",
        shown.fact.claim_links
    );
    let assets = measure_assets(&bench, &shown.queue.html).await;

    let mut pages = Vec::new();
    for (name, path) in [("queue", &queue), ("fact", &fact_page)] {
        for conns in [1, CONCURRENT] {
            pages.push(measure_page(&bench, name, path, conns).await);
        }
    }
    let server_log = bench.server.log_summary();
    let results = Results {
        fill_secs,
        shown,
        assets,
        pages,
        server_log,
    };
    let report = render(&bench, &machine, &results, started);
    write_report("console", &report);
    bench.pool.close().await;
}

// ---------------------------------------------------------------------------
// The backlog, through the API
// ---------------------------------------------------------------------------

async fn register_stories(server: &Server, editor: &str) -> Vec<String> {
    eprintln!("registering {STORIES} stories...");
    let mut ids = Vec::with_capacity(STORIES);
    for i in 0..STORIES {
        let body = json!({"title": format!("Console bench story {i}"), "publisher": "Bench wire",
                          "published_at": "2020-01-06T09:30:00Z"});
        let req = client::request(
            &server.authority,
            Method::POST,
            "/v1/stories",
            editor,
            Some(Bytes::from(body.to_string())),
        );
        let answer = fetch_expecting(&server.authority, req, 201).await;
        let v: Value = serde_json::from_slice(&answer).expect("a JSON answer");
        ids.push(v["id"].as_str().expect("a story id").to_owned());
    }
    ids
}

/// `n` claims about `facts` facts named `<subject> N` through `POST
/// /v1/claims` at [`FILL_CONNECTIONS`] connections, the editors and the
/// stories taking turns; the ids of the facts they went to.
async fn assert_claims(
    bench: &Bench,
    n: u64,
    subject: &'static str,
    facts: u64,
) -> BTreeSet<String> {
    eprintln!(
        "asserting {} claims about {} fact(s) named {subject} N...",
        thousands(n),
        thousands(facts)
    );
    let authority: Arc<str> = bench.server.authority.clone().into();
    let to = authority.clone();
    let (editors, stories) = (bench.editors.clone(), bench.stories.clone());
    let seen: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let into = seen.clone();
    let op = Op::with_replies(authority, move |i| {
        let editor = &editors[(i % editors.len() as u64) as usize];
        let story = &stories[(i % stories.len() as u64) as usize];
        let body = claim_text(story, subject, 0xc0de, facts);
        let req = client::request(&to, Method::POST, "/v1/claims", editor, Some(body.into()));
        let into = into.clone();
        let on_reply: OnReply = Box::new(move |status, body| {
            if status == 201
                && let Ok(v) = serde_json::from_slice::<Value>(body)
                && let Some(fact) = v["fact_id"].as_str()
                && let Ok(mut set) = into.lock()
            {
                set.insert(fact.to_owned());
            }
        });
        Some((req, Some(on_reply)))
    });
    let load = closed_loop(FILL_CONNECTIONS, SETTLE_LIMIT, n, op).await;
    assert!(
        load.ok == n && load.errors.is_empty(),
        "asserted {} of {n} claims; other answers: {}",
        load.ok,
        status_counts(&load.errors)
    );
    std::mem::take(&mut *seen.lock().expect("the fact ids"))
}

// ---------------------------------------------------------------------------
// The console, as a browser asks for it
// ---------------------------------------------------------------------------

/// Signs `token` in as the sign-in form does (same-origin POST) and returns
/// the `name=value` pair to send as `Cookie`.
async fn sign_in(server: &Server, token: &str) -> String {
    let form = serde_urlencoded::to_string([("token", token)]).expect("a form");
    let req = Request::builder()
        .method(Method::POST)
        .uri("/console/sign-in")
        .header(HOST, &server.authority)
        .header(ORIGIN, format!("http://{}", server.authority))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .expect("a well-formed request");
    let mut conn = client::Conn::new(&server.authority, REQUEST_TIMEOUT);
    let res = conn.send_full(req).await;
    assert_eq!(
        res.status,
        303,
        "sign in: {}",
        String::from_utf8_lossy(&res.body)
    );
    let set = res
        .headers
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie");
    set.split(';').next().expect("name=value").to_owned()
}

/// A GET of a console page with the session's cookie and no bearer token.
fn page_request(authority: &str, path: &str, cookie: &str) -> Request<client::Body> {
    let mut req = client::request(authority, Method::GET, path, "", None);
    let h = req.headers_mut();
    h.remove(AUTHORIZATION);
    h.insert(
        COOKIE,
        cookie.parse().expect("a session cookie is a header value"),
    );
    req
}

async fn get(bench: &Bench, path: &str) -> Bytes {
    let authority = &bench.server.authority;
    fetch_ok(authority, page_request(authority, path, &bench.cookie)).await
}

/// What a page showed once, before it is timed.
struct Page {
    html: String,
    bytes: usize,
    /// Links to claim pages: one per claim in the queue; one per claim and
    /// one per timeline mention on a fact's page.
    claim_links: usize,
}

async fn look(bench: &Bench, path: &str) -> Page {
    let html = String::from_utf8(get(bench, path).await.to_vec()).expect("an HTML page");
    Page {
        bytes: html.len(),
        claim_links: html.matches("href=\"/console/claims/").count(),
        html,
    }
}

struct Shown {
    queue: Page,
    fact: Page,
}

// ---------------------------------------------------------------------------
// The stylesheet and the script, compressed
// ---------------------------------------------------------------------------

struct Asset {
    path: String,
    raw: u64,
    gzipped: u64,
}

/// Every `/console/assets/…` file `html` loads, as served, through `gzip -9`.
async fn measure_assets(bench: &Bench, html: &str) -> Vec<Asset> {
    let mut paths: Vec<String> = html
        .match_indices("/console/assets/")
        .filter_map(|(at, _)| html[at..].split('"').next().map(str::to_owned))
        .collect();
    paths.sort();
    paths.dedup();
    assert!(!paths.is_empty(), "the page loads no asset");
    let mut out = Vec::new();
    for path in paths {
        let body = get(bench, &path).await;
        out.push(Asset {
            raw: body.len() as u64,
            gzipped: gzip_size(&body).await,
            path,
        });
    }
    out
}

async fn gzip_size(data: &[u8]) -> u64 {
    let mut child = tokio::process::Command::new("gzip")
        .args(["-9", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run gzip (is it on PATH?)");
    let mut stdin = child.stdin.take().expect("gzip's stdin");
    stdin.write_all(data).await.expect("write to gzip");
    drop(stdin);
    let out = child.wait_with_output().await.expect("gzip's output");
    assert!(out.status.success(), "gzip failed");
    out.stdout.len() as u64
}

// ---------------------------------------------------------------------------
// The pages, timed
// ---------------------------------------------------------------------------

struct Measured {
    page: &'static str,
    conns: usize,
    /// Sorted.
    latencies: Vec<Duration>,
    rate: f64,
    errors: std::collections::BTreeMap<u16, u64>,
    /// CPU milliseconds per page: the server's, PostgreSQL's.
    server_ms: f64,
    postgres_ms: f64,
    others_share: f64,
}

impl Measured {
    fn p(&self, q: f64) -> Duration {
        quantile(&self.latencies, q)
    }

    fn met(&self) -> bool {
        self.errors.is_empty() && self.p(0.95) < PAGE_P95_GOAL
    }
}

async fn measure_page(bench: &Bench, page: &'static str, path: &str, conns: usize) -> Measured {
    let authority: Arc<str> = bench.server.authority.clone().into();
    let (to, path_owned, cookie) = (authority.clone(), path.to_owned(), bench.cookie.clone());
    let op = Op::new(authority, move |_| {
        Some(page_request(&to, &path_owned, &cookie))
    });
    closed_loop(conns, SETTLE_LIMIT, WARM_UP, op.clone()).await;
    checkpoint(&bench.pool).await;
    let requests = bench.settings.requests;
    let before = CpuSnapshot::take(bench.postmaster, Some(bench.server.pid()));
    let mut load = closed_loop(conns, SETTLE_LIMIT, requests, op).await;
    let cpu = CpuSnapshot::take(bench.postmaster, Some(bench.server.pid())).since(&before);
    let rate_per_sec = load.sample().rate;
    let per = |secs: f64| secs * 1e3 / load.ok.max(1) as f64;
    let m = Measured {
        page,
        conns,
        rate: rate_per_sec,
        server_ms: per(cpu.server_secs),
        postgres_ms: per(cpu.postgres_secs),
        others_share: cpu.others_share,
        errors: std::mem::take(&mut load.errors),
        latencies: load.latencies,
    };
    eprintln!(
        "GET {path}, {conns} connection(s): p50 {} p95 {} p99 {}, {}/s",
        ms_fmt(m.p(0.5)),
        ms_fmt(m.p(0.95)),
        ms_fmt(m.p(0.99)),
        rate(m.rate)
    );
    m
}

// ---------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------

struct Results {
    fill_secs: f64,
    shown: Shown,
    assets: Vec<Asset>,
    pages: Vec<Measured>,
    server_log: (usize, Vec<String>),
}

fn page_name(bench: &Bench, m: &Measured) -> String {
    let s = &bench.settings;
    match m.page {
        "queue" => format!(
            "`GET /console/queue`, {} pending claims",
            thousands(s.pending + s.fact_claims)
        ),
        _ => format!(
            "`GET /console/facts/{{id}}`, a fact with {} claims",
            thousands(s.fact_claims)
        ),
    }
}

fn kb(bytes: u64) -> String {
    format!("{:.1} KB", bytes as f64 / 1e3)
}

fn render(bench: &Bench, machine: &str, r: &Results, started: Instant) -> String {
    let s = &bench.settings;
    let mut out = report_head(
        "console",
        &format!(
            "factlog console benchmark ({} claims for the queue, a fact with {} claims)",
            thousands(s.pending),
            thousands(s.fact_claims)
        ),
        machine,
        &format!("{:.1} min", started.elapsed().as_secs_f64() / 60.0),
    );
    out.push_str(&server_sentence(&bench.bin, ""));
    out.push('\n');
    let _ = writeln!(
        out,
        "Method: {STORIES} stories registered, then `POST /v1/claims` by {} editors taking \
         turns at {FILL_CONNECTIONS} connections: {} claims about one fact (one subject and \
         property, twelve valid times, three values, over all the stories), then {} claims \
         about {} other facts ({:.0} s for both); every claim stays pending, so the queue \
         holds {} of them. Once the verifier and the projections reached the head, `VACUUM \
         ANALYZE`, `CHECKPOINT`; `editor0` signs in through `POST /console/sign-in` (same \
         Origin) and the pages are requested with its session cookie: {WARM_UP} unmeasured \
         requests, `CHECKPOINT`, then {} requests, closed loop, on 1 and on {CONCURRENT} \
         connections. Latency is from sending the request to the last byte of the page. The \
         assets are the files the Queue page links under `/console/assets/`, fetched as served \
         and compressed with `gzip -9`; KB = 1,000 bytes.\n",
        harness::EDITORS,
        thousands(s.fact_claims),
        thousands(s.pending),
        thousands((s.pending / 10).max(1)),
        r.fill_secs,
        thousands(s.pending + s.fact_claims),
        thousands(s.requests),
    );
    let _ = writeln!(out, "| measurement | p50 | p95 | p99 | goal | met? |");
    let _ = writeln!(out, "|---|---:|---:|---:|---|---|");
    let mut missed = Vec::new();
    for m in &r.pages {
        let name = format!("{}, {} connection(s)", page_name(bench, m), m.conns);
        if !m.met() {
            missed.push(name.clone());
        }
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | p95 < 50 ms | {} |",
            ms_fmt(m.p(0.5)),
            ms_fmt(m.p(0.95)),
            ms_fmt(m.p(0.99)),
            goal_mark(Some(m.met()))
        );
    }
    let gzipped: u64 = r.assets.iter().map(|a| a.gzipped).sum();
    let raw: u64 = r.assets.iter().map(|a| a.raw).sum();
    let assets_met = gzipped < ASSETS_GOAL_BYTES;
    if !assets_met {
        missed.push("the console's JavaScript and CSS, gzipped".into());
    }
    let _ = writeln!(
        out,
        "| the console's JavaScript and CSS, gzipped ({} raw) | {} | — | — | < 100 KB | {} |",
        kb(raw),
        kb(gzipped),
        goal_mark(Some(assets_met))
    );
    let _ = writeln!(out, "\n{}", goals_line(&missed));
    render_details(&mut out, bench, r);
    out
}

fn render_details(out: &mut String, bench: &Bench, r: &Results) {
    let _ = writeln!(
        out,
        "\n### Details\n\n| page | connections | pages/s | p50 | p95 | p99 | max | non-2xx | \
         server CPU per page | PostgreSQL CPU per page | others' CPU |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"
    );
    for m in &r.pages {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} ms | {:.2} ms | {:.0}% |",
            page_name(bench, m),
            m.conns,
            rate(m.rate),
            ms_fmt(m.p(0.5)),
            ms_fmt(m.p(0.95)),
            ms_fmt(m.p(0.99)),
            ms_fmt(m.latencies.last().copied().unwrap_or_default()),
            status_counts(&m.errors),
            m.server_ms,
            m.postgres_ms,
            m.others_share * 100.0
        );
    }
    let (q, f) = (&r.shown.queue, &r.shown.fact);
    let _ = writeln!(
        out,
        "\nThe Queue page: {} bytes, {} claims listed. The fact's page: {} bytes, {} links to \
         its claims (the claims and the timeline's mentions of them).\n",
        thousands(q.bytes as u64),
        q.claim_links,
        thousands(f.bytes as u64),
        f.claim_links
    );
    let _ = writeln!(out, "| asset | raw | gzip -9 |");
    let _ = writeln!(out, "|---|---:|---:|");
    for a in &r.assets {
        let _ = writeln!(out, "| `{}` | {} | {} |", a.path, kb(a.raw), kb(a.gzipped));
    }
    write_server_log(out, "Server log", &r.server_log);
}
