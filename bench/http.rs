//! HTTP benchmarks: the release `factlog serve` binary as a real subprocess,
//! driven over loopback by a small load generator, next to pgbench doing the
//! comparable database work on the same throw-away, fsync-on cluster.
//! Scenarios: `writes`, `reads`, `visible`, `rebuild`, `soak`. See bench/README.md.
//!
//! As in `append`, absolute rates drift between runs on shared machines, so
//! every HTTP measurement that has a database counterpart is paired with a
//! pgbench run back to back, pairs are interleaved round by round, and the
//! goals are checked against the ratio within each pair.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod client;
#[allow(
    dead_code,
    reason = "PostgreSQL's CPU seconds are reported by scale only"
)]
mod common;
#[allow(
    dead_code,
    reason = "child commands, the verifier's catch-up, the generator's asserts and the goal summaries are scale's and tree's"
)]
mod harness;

use bytes::Bytes;
use factlog::db::{self, EphemeralCluster};
use factlog::projections::{self, AnyProjection};
use factlog::store::{EventStore, StoreConfig};
use futures::StreamExt as _;
use futures::future::BoxFuture;
use hyper::Method;
use serde_json::{Value, json};
use sqlx::PgPool;

use common::{
    CpuSnapshot, CpuSplit, PAYLOAD, PGBENCH_SCHEMA, Pgbench, Sample, checkpoint, cpu_count,
    init_logging, machine_description, median, percentiles, postmaster_pid, single_insert_script,
    thousands, write_medians,
};
use harness::{
    EDITORS, Memory, NO_LIMIT, OnReply, Op, REQUEST_TIMEOUT, Server, binary_description,
    claim_text, closed_loop, create_token, date_u, drain_projections, editor_tokens, env_number,
    find_server_binary, mix, ms_fmt, ms_secs, projection_lag, rate, settle, status_counts,
    status_name, write_report, write_server_log,
};

const SCENARIOS: [&str; 5] = ["writes", "reads", "visible", "rebuild", "soak"];

const WRITE_CONNECTIONS: [usize; 2] = [1, 32];
const READ_CONNECTIONS: usize = 32;
/// Connections used for unmeasured set-up work (seeding, topping up).
const SETUP_CONNECTIONS: usize = 32;
/// How long a visibility probe keeps polling before it counts as a timeout.
const PROBE_LIMIT: Duration = Duration::from_secs(10);
/// Visibility probes in flight at once; an assert arriving when all are busy
/// is counted as skipped rather than let the probes snowball.
const MAX_PROBES: usize = 256;
/// An open-loop request sent this much after its slot counts as late.
const LATE: Duration = Duration::from_millis(10);
/// Soak slots more than this late are dropped (counted as missed) rather
/// than sent in a burst that would not be the steady rate asked for.
const MISSED: Duration = Duration::from_secs(1);
const SOAK_SEED_CLAIMS: u64 = 500;
/// The newest facts the soak's reads leave alone (about half a second of
/// asserts at the default rate), so a 404 there means real projection lag.
const SOAK_FRESH_FACTS: usize = 50;
const PENDING_CAP: usize = 2_000_000;
const RING_CAP: usize = 20_000;
/// Longest wait for the projections to reach the head between measurements.
const SETTLE_LIMIT: Duration = Duration::from_secs(300);
/// The goal's "MB" is decimal.
const MB: f64 = 1e6;

struct Settings {
    secs: u64,
    rounds: usize,
    facts: u64,
    read_claims: u64,
    visible_rate: u64,
    visible_secs: u64,
    visible_conns: usize,
    visible_sample: u64,
    poll_ms: u64,
    rebuild_events: u64,
    rebuild_rounds: usize,
    soak_secs: u64,
    soak_writes: u64,
    soak_reads: u64,
    soak_sample_secs: u64,
    soak_conns: usize,
    soak_scrape_secs: Option<u64>,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            secs: env_number("FACTLOG_BENCH_SECS", 10),
            rounds: env_number("FACTLOG_BENCH_ROUNDS", 4) as usize,
            facts: env_number("FACTLOG_BENCH_FACTS", 10_000),
            read_claims: env_number("FACTLOG_BENCH_READ_CLAIMS", 20_000),
            visible_rate: env_number("FACTLOG_BENCH_VISIBLE_RATE", 500),
            visible_secs: env_number("FACTLOG_BENCH_VISIBLE_SECS", 60),
            visible_conns: env_number("FACTLOG_BENCH_VISIBLE_CONNS", 16) as usize,
            visible_sample: env_number("FACTLOG_BENCH_VISIBLE_SAMPLE", 5),
            poll_ms: env_number("FACTLOG_BENCH_POLL_MS", 2),
            rebuild_events: env_number("FACTLOG_BENCH_REBUILD_EVENTS", 1_000_000),
            rebuild_rounds: env_number("FACTLOG_BENCH_REBUILD_ROUNDS", 1) as usize,
            soak_secs: env_number("FACTLOG_BENCH_SOAK_SECS", 600),
            soak_writes: env_number("FACTLOG_BENCH_SOAK_WRITES", 200),
            soak_reads: env_number("FACTLOG_BENCH_SOAK_READS", 400),
            soak_sample_secs: env_number("FACTLOG_BENCH_SOAK_SAMPLE_SECS", 10),
            soak_conns: env_number("FACTLOG_BENCH_SOAK_CONNS", 8) as usize,
            soak_scrape_secs: std::env::var_os("FACTLOG_BENCH_SOAK_SCRAPE_SECS")
                .map(|_| env_number("FACTLOG_BENCH_SOAK_SCRAPE_SECS", 15)),
        }
    }

    fn duration(&self) -> Duration {
        Duration::from_secs(self.secs)
    }
}

struct Bench {
    cluster: EphemeralCluster,
    settings: Settings,
    server_bin: Option<PathBuf>,
    /// pgbench scripts and logs; gone with the run.
    scripts: tempfile::TempDir,
    postmaster: Option<u32>,
}

fn main() {
    init_logging();
    // cargo passes `--bench` (and libtest-style flags) to harness-less benches.
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    for w in &wanted {
        assert!(
            SCENARIOS.contains(&w.as_str()),
            "unknown scenario {w:?}; choose from {SCENARIOS:?}"
        );
    }
    let scenarios: Vec<&str> = SCENARIOS
        .iter()
        .copied()
        .filter(|s| wanted.is_empty() || wanted.iter().any(|w| w == s))
        .collect();
    let settings = Settings::from_env();
    let server_bin = scenarios
        .iter()
        .any(|s| *s != "rebuild")
        .then(find_server_binary);

    eprintln!("starting a throw-away PostgreSQL cluster (fsync on)...");
    // fsync stays on: every commit on both sides is one a newsroom could rely on.
    let cluster = EphemeralCluster::start(false).expect("start the ephemeral PostgreSQL cluster");
    let postmaster = postmaster_pid(cluster.dir());
    let bench = Bench {
        cluster,
        settings,
        server_bin,
        scripts: tempfile::tempdir().expect("temporary directory for pgbench scripts"),
        postmaster,
    };
    for scenario in scenarios {
        eprintln!("== {scenario} ==");
        // A runtime per scenario: ending it stops every in-process task
        // (the rebuild scenario's event store included) before its database
        // is dropped.
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        let report = runtime.block_on(run_scenario(&bench, scenario));
        drop(runtime);
        write_report(scenario, &report);
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        runtime.block_on(drop_database(&bench.cluster, &db_name(scenario)));
    }
}

async fn run_scenario(bench: &Bench, scenario: &str) -> String {
    match scenario {
        "writes" => writes(bench).await,
        "reads" => reads(bench).await,
        "visible" => visible(bench).await,
        "rebuild" => rebuild(bench).await,
        "soak" => soak(bench).await,
        other => unreachable!("scenario {other} was checked"),
    }
}

fn db_name(scenario: &str) -> String {
    format!("http_{scenario}")
}

// ---------------------------------------------------------------------------
// The server under test, its database and its clients
// ---------------------------------------------------------------------------

struct Db {
    name: String,
    url: String,
    pool: PgPool,
}

async fn database(cluster: &EphemeralCluster, name: &str, pool_size: u32) -> Db {
    let (url, pool) = common::database(cluster, name, pool_size).await;
    Db {
        name: name.to_owned(),
        url,
        pool,
    }
}

/// Scenarios leave gigabytes behind (the rebuild log especially); the next
/// one should not share the disk and page cache with them.
async fn drop_database(cluster: &EphemeralCluster, name: &str) {
    let Ok(pool) = db::pool(&cluster.admin_url(), 1).await else {
        return;
    };
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&pool)
    .await;
    pool.close().await;
}

/// One client per simulated connection: with `max_idle` 1 and requests sent
/// one after another, each client holds exactly one keep-alive connection.
fn http_client(max_idle: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(max_idle)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("HTTP client")
}

/// The status (0 when no HTTP answer came), the body read and discarded.
async fn call_status(req: reqwest::RequestBuilder) -> u16 {
    match req.send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            match res.bytes().await {
                Ok(_) => status,
                Err(_) => 0,
            }
        }
        Err(_) => 0,
    }
}

/// The status (0 when no HTTP answer came) and the JSON body (null if none).
async fn call_json(req: reqwest::RequestBuilder) -> (u16, Value) {
    match req.send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            match res.bytes().await {
                Ok(b) => (status, serde_json::from_slice(&b).unwrap_or(Value::Null)),
                Err(_) => (0, Value::Null),
            }
        }
        Err(_) => (0, Value::Null),
    }
}

/// Everything a scenario needs from a running server.
struct Live<'a> {
    bench: &'a Bench,
    /// pgbench against the scenario's database.
    pgbench: Pgbench,
    db: Db,
    server: Server,
    base: Arc<str>,
    editors: Arc<Vec<String>>,
    reader: Arc<str>,
    story: Arc<str>,
    known: Arc<Known>,
}

impl<'a> Live<'a> {
    /// host:port of the server, for the closed-loop client.
    fn authority(&self) -> Arc<str> {
        self.base.trim_start_matches("http://").into()
    }

    async fn start(bench: &'a Bench, scenario: &str) -> Live<'a> {
        let db = database(&bench.cluster, &db_name(scenario), 8).await;
        let bin = bench
            .server_bin
            .as_deref()
            .expect("the server binary was found");
        let editors = editor_tokens(bin, &db.url).await;
        let reader = create_token(bin, &db.url, "reader", "reader").await;
        let server = Server::start(bin, &db.url, &[]).await;
        let base: Arc<str> = format!("http://{}", server.authority).into();
        // No body: quotes need not match, and claims are all about this story.
        let (status, story) = call_json(
            http_client(1)
                .post(format!("{base}/v1/stories"))
                .bearer_auth(&editors[0])
                .json(&json!({"title": "Bench story", "publisher": "Bench wire",
                              "published_at": "2020-01-06T09:30:00Z"})),
        )
        .await;
        assert_eq!(status, 201, "register the story: {story}");
        let story = story["id"].as_str().expect("story id").into();
        Live {
            bench,
            pgbench: Pgbench {
                scripts: bench.scripts.path().to_owned(),
                port: bench.cluster.port(),
                db: db.name.clone(),
            },
            db,
            server,
            base,
            editors: Arc::new(editors),
            reader: reader.into(),
            story,
            known: Arc::new(Known::default()),
        }
    }

    fn cpu(&self) -> CpuSnapshot {
        CpuSnapshot::take(self.bench.postmaster, Some(self.server.pid()))
    }

    /// What the server logged, and which tables the run scanned end to end.
    async fn diagnostics(&self, out: &mut String) {
        let _ = writeln!(out, "\n{}", seq_scans(&self.db.pool).await);
        let _ = writeln!(out, "\n{}", fact_row_writes(&self.db.pool).await);
        if let Some(top) = top_statements(&self.db.pool).await {
            let _ = writeln!(out, "\n{top}");
        }
        let log = self.server.log_summary();
        if log.0 > 0 {
            eprintln!("the server logged {} warning/error line(s); first:", log.0);
            for l in &log.1 {
                eprintln!("  {l}");
            }
        }
        write_server_log(out, "Server log", &log);
    }
}

/// Where PostgreSQL spent its time, when the cluster was started with
/// `FACTLOG_EPHEMERAL_PG_SETTINGS=shared_preload_libraries=pg_stat_statements`.
async fn top_statements(pool: &PgPool) -> Option<String> {
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(pool)
        .await
        .ok()?;
    // Planning time is 0 unless `pg_stat_statements.track_planning=on`.
    let rows: Vec<(String, i64, f64, f64, i64)> = sqlx::query_as(
        "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 140), calls, total_exec_time, \
                total_plan_time, rows \
         FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
         WHERE d.datname = current_database() \
         ORDER BY total_exec_time + total_plan_time DESC LIMIT 15",
    )
    .fetch_all(pool)
    .await
    .ok()?;
    let mut out = String::from(
        "PostgreSQL statements by total execution and planning time (pg_stat_statements; \
         planning is counted only with `pg_stat_statements.track_planning=on`):\n\n\
         | statement | calls | total ms | ms per call | planning ms per call | rows per call |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for (q, calls, total, plan, rows) in rows {
        let calls_f = calls.max(1) as f64;
        let _ = writeln!(
            out,
            "| `{}` | {calls} | {total:.0} | {:.3} | {:.3} | {:.1} |",
            q.replace('|', "\\|"),
            total / calls_f,
            plan / calls_f,
            rows as f64 / calls_f
        );
    }
    Some(out)
}

/// The tables read most by sequential scans during the scenario. A fresh
/// database has no planner statistics until autovacuum's first ANALYZE
/// (a minute or more), and a plan that scans a growing table on every
/// request or batch shows here before it shows anywhere else.
async fn seq_scans(pool: &PgPool) -> String {
    let rows: Vec<(String, i64, i64, i64, bool)> = sqlx::query_as(
        "SELECT relname::text, seq_scan, seq_tup_read, n_live_tup, \
                (last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL) \
         FROM pg_stat_user_tables \
         WHERE seq_tup_read >= 100000 AND relname NOT LIKE 'bench\\_%' \
         ORDER BY seq_tup_read DESC LIMIT 4",
    )
    .fetch_all(pool)
    .await
    .expect("table statistics");
    if rows.is_empty() {
        return "Sequential scans: no table was read end to end more than trivially.".into();
    }
    let list: Vec<String> = rows
        .iter()
        .map(|(t, scans, read, live, analyzed)| {
            format!(
                "`{t}` {} scans reading {} rows ({} rows now{})",
                thousands(*scans as u64),
                thousands(*read as u64),
                thousands((*live).max(0) as u64),
                if *analyzed { "" } else { ", never analyzed" }
            )
        })
        .collect();
    format!(
        "Sequential scans during the scenario (pg_stat_user_tables; the bench's own tables \
         left out): {}.",
        list.join("; ")
    )
}

/// How often the facts projection wrote a fact's row (migrations/0014: only
/// when a fact is new or its summary changes), and how many of the updates
/// PostgreSQL could make HOT. Counters a backend has not flushed yet (at most
/// a second's worth) are missing from the figures.
async fn fact_row_writes(pool: &PgPool) -> String {
    let row: Option<(i64, i64, i64)> = sqlx::query_as(
        "SELECT n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables \
         WHERE relname = 'facts_view'",
    )
    .fetch_optional(pool)
    .await
    .expect("facts_view statistics");
    match row {
        Some((inserts, updates, hot)) => format!(
            "Fact rows (`facts_view`): {} inserted, {} updated ({} of the updates HOT).",
            thousands(inserts as u64),
            thousands(updates as u64),
            thousands(hot as u64),
        ),
        None => "Fact rows (`facts_view`): none counted.".into(),
    }
}

#[derive(Debug, Clone)]
struct Pending {
    id: String,
    asserter: usize,
}

/// Claims and facts the load has created, for later requests to address.
#[derive(Default)]
struct Known {
    /// Pending claims nobody has confirmed yet, oldest first.
    pending: Mutex<VecDeque<Pending>>,
    claims: Mutex<VecDeque<String>>,
    facts: Mutex<VecDeque<String>>,
}

impl Known {
    fn asserted(&self, id: &str, fact: &str, asserter: usize) {
        push_capped(
            &self.pending,
            Pending {
                id: id.to_owned(),
                asserter,
            },
            PENDING_CAP,
        );
        push_capped(&self.claims, id.to_owned(), RING_CAP);
        push_capped(&self.facts, fact.to_owned(), RING_CAP);
    }

    fn take_pending(&self) -> Option<Pending> {
        self.pending.lock().expect("pending queue").pop_front()
    }

    fn pending_len(&self) -> usize {
        self.pending.lock().expect("pending queue").len()
    }

    fn any(list: &Mutex<VecDeque<String>>, r: u64) -> Option<String> {
        Known::older(list, r, 0)
    }

    /// One of the entries but the `skip` newest: reads without `wait_for`
    /// may not see a fact whose first claim was asserted a moment ago, and
    /// that 404 is the contract, not an error worth counting.
    fn older(list: &Mutex<VecDeque<String>>, r: u64, skip: usize) -> Option<String> {
        let l = list.lock().expect("known list");
        let n = l.len().checked_sub(skip).filter(|n| *n > 0)?;
        l.get((r % n as u64) as usize).cloned()
    }
}

fn push_capped<T>(list: &Mutex<VecDeque<T>>, item: T, cap: usize) {
    let mut l = list.lock().expect("known list");
    if l.len() >= cap {
        l.pop_front();
    }
    l.push_back(item);
}

/// A claim about one of `facts` (subject, property) pairs, at one of twelve
/// valid times, with one of a few values, so facts hold a handful of claims
/// and some valid times are contested, as in a real log.
fn claim_body(story: &str, facts: u64) -> Value {
    serde_json::from_str(&claim_body_text(story, facts)).expect("a claim body is JSON")
}

/// [`claim_body`] as the text sent, about `bench subject N`.
fn claim_body_text(story: &str, facts: u64) -> String {
    claim_text(story, "bench subject", 0, facts)
}

/// What the load generator keeps of a created claim.
#[derive(serde::Deserialize)]
struct Created {
    id: String,
    fact_id: String,
}

fn fact_has_claim(doc: &Value, claim: &str) -> bool {
    doc["claims"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["id"].as_str() == Some(claim)))
}

// ---------------------------------------------------------------------------
// Closed-loop load
// ---------------------------------------------------------------------------

fn assert_op(live: &Live) -> Op {
    let authority = live.authority();
    let editors = live.editors.clone();
    let story = live.story.clone();
    let known = live.known.clone();
    let facts = live.bench.settings.facts;
    Op::with_replies(live.authority(), move |i| {
        let e = (i % editors.len() as u64) as usize;
        let req = client::request(
            &authority,
            Method::POST,
            "/v1/claims",
            &editors[e],
            Some(Bytes::from(claim_body_text(&story, facts))),
        );
        let known = known.clone();
        let on_reply: OnReply = Box::new(move |status, body| {
            if status == 201 {
                // Only the two ids: the reply is not built into a `Value`.
                if let Ok(c) = serde_json::from_slice::<Created>(body) {
                    known.asserted(&c.id, &c.fact_id, e);
                }
            }
        });
        Some((req, Some(on_reply)))
    })
}

/// Confirms the oldest pending claim, as an editor other than its asserter.
fn confirm_op(live: &Live) -> Op {
    let authority = live.authority();
    let editors = live.editors.clone();
    let known = live.known.clone();
    let note = Bytes::from_static(br#"{"note":"matches the agency figure"}"#);
    Op::with_replies(live.authority(), move |_| {
        let p = known.take_pending()?;
        let confirmer = &editors[(p.asserter + 1) % editors.len()];
        let req = client::request(
            &authority,
            Method::POST,
            &format!("/v1/claims/{}/confirmations", p.id),
            confirmer,
            Some(note.clone()),
        );
        Some((req, None))
    })
}

fn read_fact_op(live: &Live, facts: Arc<Vec<String>>) -> Op {
    let authority = live.authority();
    let reader = live.reader.clone();
    Op::with_replies(live.authority(), move |i| {
        let id = &facts[(mix(i ^ 0x5eed) % facts.len() as u64) as usize];
        let req = client::request(
            &authority,
            Method::GET,
            &format!("/v1/facts/{id}"),
            &reader,
            None,
        );
        Some((req, None))
    })
}

/// Asserts until `pending` claims are waiting (unmeasured set-up work).
async fn top_up_pending(live: &Live<'_>, want: usize) {
    let have = live.known.pending_len();
    if have >= want {
        return;
    }
    let n = (want - have) as u64;
    eprintln!("  preparing {n} pending claims...");
    let load = closed_loop(
        SETUP_CONNECTIONS,
        Duration::from_secs(600),
        n,
        assert_op(live),
    )
    .await;
    if !load.errors.is_empty() {
        eprintln!(
            "WARNING: preparing claims got non-2xx answers: {}",
            status_counts(&load.errors)
        );
    }
}

// ---------------------------------------------------------------------------
// Projections, checkpoints, pgbench
// ---------------------------------------------------------------------------

fn write_script(bench: &Bench, name: &str, text: &str) {
    std::fs::write(bench.scripts.path().join(name), text).expect("write a pgbench script");
}

fn write_single_insert_script(bench: &Bench) {
    write_script(bench, "single.sql", &single_insert_script());
}

// ---------------------------------------------------------------------------
// Paired measurements (writes, reads)
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pair {
    Assert(usize),
    Confirm(usize),
    Read(usize),
}

impl Pair {
    fn label(self) -> String {
        let conns = |c: usize| format!("{c} connection{}", if c == 1 { "" } else { "s" });
        match self {
            Pair::Assert(c) => format!("POST /v1/claims, {}", conns(c)),
            Pair::Confirm(c) => format!("POST /v1/claims/{{id}}/confirmations, {}", conns(c)),
            Pair::Read(c) => format!("GET /v1/facts/{{id}}, {}", conns(c)),
        }
    }

    fn connections(self) -> usize {
        match self {
            Pair::Assert(c) | Pair::Confirm(c) | Pair::Read(c) => c,
        }
    }

    fn pgbench_label(self) -> &'static str {
        match self {
            Pair::Assert(_) | Pair::Confirm(_) => "single-row INSERT per transaction",
            Pair::Read(_) => "primary-key SELECT of a fact document",
        }
    }

    /// The issue's goal for this pair: minimum ratio and largest p99.
    fn goal(self) -> Option<(f64, Duration)> {
        match self {
            Pair::Assert(32) => Some((1.0, Duration::from_millis(20))),
            Pair::Read(_) => Some((0.5, Duration::from_millis(10))),
            _ => None,
        }
    }
}

/// The HTTP side of one pair.
struct HttpSide {
    sample: Sample,
    ok: u64,
    errors: BTreeMap<u16, u64>,
    ran_out: bool,
    lag_at_stop: i64,
    catch_up: Duration,
    memory: Memory,
    cpu: CpuSplit,
    /// PostgreSQL transactions that wrote (appends, projection batches), per
    /// successful request.
    xacts_per_request: f64,
}

struct Measured {
    pair: Pair,
    round: usize,
    http: HttpSide,
    pgbench: Sample,
    others_cpu: f64,
}

impl Measured {
    fn ratio(&self) -> f64 {
        self.http.sample.rate / self.pgbench.rate
    }
}

async fn measure_http(live: &Live<'_>, conns: usize, d: Duration, op: Op) -> HttpSide {
    settle(&live.db.pool, SETTLE_LIMIT).await;
    let xacts_before = committed(&live.db.pool).await;
    let before = live.cpu();
    let mut load = closed_loop(conns, d, NO_LIMIT, op).await;
    let cpu = live.cpu().since(&before);
    let memory = live.server.memory();
    let lag_at_stop = projection_lag(&live.db.pool).await;
    let catch_up = drain_projections(&live.db.pool, SETTLE_LIMIT).await;
    let xacts = committed(&live.db.pool).await - xacts_before;
    HttpSide {
        sample: load.sample(),
        ok: load.ok,
        errors: load.errors,
        ran_out: load.ran_out,
        lag_at_stop,
        catch_up,
        memory,
        cpu,
        xacts_per_request: xacts as f64 / load.ok.max(1) as f64,
    }
}

/// Transaction ids handed out so far in the cluster: every transaction that
/// wrote (appends, projection batches) takes one, at once and exactly, where
/// pg_stat_database's commit counts arrive up to seconds late.
async fn committed(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(pool)
        .await
        .expect("pg_current_xact_id")
}

async fn measure_pgbench(
    live: &Live<'_>,
    script: &str,
    clients: usize,
    d: Duration,
    extra: &[&str],
) -> Sample {
    settle(&live.db.pool, SETTLE_LIMIT).await;
    live.pgbench.run(script, clients, d, extra).await
}

async fn writes(bench: &Bench) -> String {
    let started = Instant::now();
    let s = &bench.settings;
    let live = Live::start(bench, "writes").await;
    sqlx::raw_sql(PGBENCH_SCHEMA)
        .execute(&live.db.pool)
        .await
        .expect("create the pgbench table");
    write_single_insert_script(bench);
    let machine = machine_description(&live.db.pool).await;
    eprintln!("{machine}");

    // The first seconds on a fresh cluster and server pay for cold caches,
    // relation extension and connection set-up on both sides.
    eprintln!("warming up...");
    let warm = Duration::from_secs(1);
    closed_loop(8, warm, NO_LIMIT, assert_op(&live)).await;
    live.pgbench.run("single.sql", 8, warm, &[]).await;

    let pairs: Vec<Pair> = WRITE_CONNECTIONS
        .iter()
        .map(|&c| Pair::Assert(c))
        .chain(WRITE_CONNECTIONS.iter().map(|&c| Pair::Confirm(c)))
        .collect();
    let mut results: Vec<Measured> = Vec::new();
    for round in 0..s.rounds {
        for &pair in &pairs {
            if let Pair::Confirm(c) = pair {
                // Enough distinct pending claims for the fastest rate seen so
                // far, with room to spare; running out is reported, not hidden.
                let best = results
                    .iter()
                    .filter(|m| matches!(m.pair, Pair::Confirm(x) | Pair::Assert(x) if x == c))
                    .map(|m| m.http.sample.rate)
                    .fold(0.0, f64::max);
                let confirmed = results.iter().any(|m| m.pair == pair);
                // Until a confirmation rate has been measured, assume it may
                // be well above the assert rate (its event is smaller).
                let rate = if confirmed {
                    best
                } else {
                    (best * 2.0).max(2_000.0)
                };
                let want = (rate * s.secs as f64 * 1.5) as usize + 200;
                top_up_pending(&live, want).await;
            }
            let m = measure_pair(&live, pair, round, "single.sql", &[]).await;
            results.push(m);
        }
    }
    let events = event_sizes(&live.db.pool).await;

    let mut out = header("writes", &machine, bench, started);
    let _ = writeln!(
        out,
        "Parameters: {} s per measurement, {} round(s), claims spread over {} facts, \
         {EDITORS} editor tokens; the server with `FACTLOG_RATE_LIMIT=0 RUST_LOG=warn` and \
         defaults otherwise (16 database connections).\n",
        s.secs, s.rounds, s.facts
    );
    let _ = writeln!(
        out,
        "pgbench: bench/append.rs's single-row INSERT (same columns and indexes as `events`, \
         {} bytes of jsonb) per transaction, N clients (`-j 2`). factlog's events: {events}. \
         Each confirmation is by an editor other than the asserter, on a distinct pending claim \
         asserted beforehand.\n",
        PAYLOAD.len()
    );
    render_pairs(&mut out, &results);
    let peak = results
        .iter()
        .map(|m| m.http.memory.hwm_mb())
        .fold(live.server.memory().hwm_mb(), f64::max);
    let _ = writeln!(
        out,
        "\nServer memory: peak RSS (VmHWM) {peak:.1} MB over the run; goal < 100 MB: {}.",
        met(peak < 100.0)
    );
    live.diagnostics(&mut out).await;
    out
}

async fn event_sizes(pool: &PgPool) -> String {
    let rows: Vec<(String, i64, f64)> = sqlx::query_as(
        "SELECT type, count(*), avg(octet_length(data::text))::float8 FROM events \
         WHERE type IN ('ClaimAsserted', 'ClaimConfirmed') GROUP BY type ORDER BY type",
    )
    .fetch_all(pool)
    .await
    .expect("event sizes");
    rows.iter()
        .map(|(t, n, avg)| {
            format!(
                "{} `{t}` of {avg:.0} bytes of jsonb on average",
                thousands(*n as u64)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn measure_pair(
    live: &Live<'_>,
    pair: Pair,
    round: usize,
    script: &str,
    extra: &[&str],
) -> Measured {
    let d = live.bench.settings.duration();
    // Alternating who goes first spreads drift within a pair (checkpoints,
    // autovacuum, a noisy neighbour) over both sides.
    let http_first = round.is_multiple_of(2);
    let cpu_before = live.cpu();
    let mut http = None;
    let mut pgbench = None;
    for side in 0..2 {
        if (side == 0) == http_first {
            let op = match pair {
                Pair::Assert(_) => assert_op(live),
                Pair::Confirm(_) => confirm_op(live),
                Pair::Read(_) => read_fact_op(live, live_facts(live).await),
            };
            http = Some(measure_http(live, pair.connections(), d, op).await);
        } else {
            pgbench = Some(measure_pgbench(live, script, pair.connections(), d, extra).await);
        }
    }
    let m = Measured {
        pair,
        round,
        http: http.expect("the HTTP side ran"),
        pgbench: pgbench.expect("the pgbench side ran"),
        others_cpu: live.cpu().since(&cpu_before).others_share,
    };
    eprintln!(
        "round {} | {:<48} | factlog {:>7} req/s p99 {} | pgbench {:>7} tps | ratio {:.2} | RSS {:.1} MB | others' CPU {:.0}%{}",
        round + 1,
        pair.label(),
        rate(m.http.sample.rate),
        ms_fmt(m.http.sample.p99),
        rate(m.pgbench.rate),
        m.ratio(),
        m.http.memory.rss_mb(),
        m.others_cpu * 100.0,
        if m.http.ran_out {
            " | RAN OUT of prepared claims"
        } else {
            ""
        }
    );
    m
}

/// Fact ids the reads address: every fact in the projection.
async fn live_facts(live: &Live<'_>) -> Arc<Vec<String>> {
    let ids: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT fact_id FROM facts_view ORDER BY fact_id")
            .fetch_all(&live.db.pool)
            .await
            .expect("fact ids");
    assert!(!ids.is_empty(), "no facts to read");
    Arc::new(ids.iter().map(|u| u.to_string()).collect())
}

fn render_pairs(out: &mut String, results: &[Measured]) {
    write_medians(
        out,
        "| measurement | factlog req/s | p50 | p99 | pgbench | pgbench tps | pgbench p50 | pgbench p99 | ratio | goal |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---|",
        results,
        |m| m.pair,
        |pair, med| {
            let ratio = med(&|m| m.ratio());
            let p99 = med(&|m| m.http.sample.p99.as_secs_f64());
            let goal = match pair.goal() {
                Some((min_ratio, max_p99)) => format!(
                    "≥ {min_ratio}x and p99 < {} ms: {}",
                    max_p99.as_millis(),
                    met(ratio >= min_ratio && p99 < max_p99.as_secs_f64())
                ),
                None => "—".into(),
            };
            format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} |",
                pair.label(),
                rate(med(&|m| m.http.sample.rate)),
                ms_secs(med(&|m| m.http.sample.p50.as_secs_f64())),
                ms_secs(p99),
                pair.pgbench_label(),
                rate(med(&|m| m.pgbench.rate)),
                ms_secs(med(&|m| m.pgbench.p50.as_secs_f64())),
                ms_secs(med(&|m| m.pgbench.p99.as_secs_f64())),
                ratio,
                goal
            )
        },
    );
    let _ = writeln!(
        out,
        "\nPer round. \"Lag\" is how far the slowest projection was behind the log when the \
         load stopped, \"catch-up\" how long it then took to reach the head. CPU is in cores \
         (of {}) during the factlog side: load generator / server / PostgreSQL / anything else; \
         \"PG write xacts\" counts the transactions that wrote (group commits of appends, \
         projection batches) per request. \
         \"Others' CPU\" is the share of the machine used by anything but the benchmark during \
         the pair; pairs where it is high are less trustworthy.\n",
        cpu_count()
    );
    let _ = writeln!(
        out,
        "| round | measurement | factlog req/s | p99 | pgbench tps | ratio | non-2xx | lag | catch-up | server RSS / peak | CPU client/server/pg/other | server CPU per req | PG write xacts per req | others' CPU |"
    );
    let _ = writeln!(
        out,
        "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---|---:|---:|---:|"
    );
    for m in results {
        let h = &m.http;
        let mut errors = status_counts(&h.errors);
        if h.ran_out {
            errors.push_str(" (ran out of prepared claims)");
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.2} | {} | {} | {:.2} s | {:.1} / {:.1} MB | {:.2}/{:.2}/{:.2}/{:.2} | {:.0} µs | {:.2} | {:.0}% |",
            m.round + 1,
            m.pair.label(),
            rate(h.sample.rate),
            ms_fmt(h.sample.p99),
            rate(m.pgbench.rate),
            m.ratio(),
            errors,
            thousands(h.lag_at_stop.max(0) as u64),
            h.catch_up.as_secs_f64(),
            h.memory.rss_mb(),
            h.memory.hwm_mb(),
            h.cpu.client,
            h.cpu.server,
            h.cpu.postgres,
            h.cpu.others,
            h.cpu.server_secs / h.ok.max(1) as f64 * 1e6,
            h.xacts_per_request,
            m.others_cpu * 100.0
        );
    }
}

async fn reads(bench: &Bench) -> String {
    let started = Instant::now();
    let s = &bench.settings;
    let live = Live::start(bench, "reads").await;
    let machine = machine_description(&live.db.pool).await;
    eprintln!("{machine}");

    eprintln!(
        "writing {} claims (and confirming two thirds) to read...",
        s.read_claims
    );
    let seed = closed_loop(
        SETUP_CONNECTIONS,
        Duration::from_secs(1800),
        s.read_claims,
        assert_op(&live),
    )
    .await;
    let confirm = closed_loop(
        SETUP_CONNECTIONS,
        Duration::from_secs(1800),
        s.read_claims * 2 / 3,
        confirm_op(&live),
    )
    .await;
    for (what, load) in [("asserts", &seed), ("confirmations", &confirm)] {
        if !load.errors.is_empty() {
            eprintln!(
                "WARNING: seeding {what} got non-2xx answers: {}",
                status_counts(&load.errors)
            );
        }
    }
    drain_projections(&live.db.pool, SETTLE_LIMIT).await;

    // pgbench's counterpart: the same documents under an integer key it can
    // draw at random, fetched by primary key with a prepared statement. The
    // documents are laid out when read, so they are taken from the API.
    let ids: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT fact_id FROM facts_view ORDER BY fact_id")
            .fetch_all(&live.db.pool)
            .await
            .expect("fact ids");
    let client = http_client(SETUP_CONNECTIONS);
    let docs: Vec<String> = futures::stream::iter(ids.iter().map(|id| {
        let req = client
            .get(format!("{}/v1/facts/{id}", live.base))
            .bearer_auth(&*live.reader);
        async move {
            let (status, doc) = call_json(req).await;
            assert_eq!(status, 200, "GET a fact to copy for pgbench");
            doc.to_string()
        }
    }))
    .buffered(SETUP_CONNECTIONS)
    .collect()
    .await;
    sqlx::raw_sql(
        "DROP TABLE IF EXISTS bench_facts; \
         CREATE TABLE bench_facts (n integer PRIMARY KEY, doc jsonb NOT NULL);",
    )
    .execute(&live.db.pool)
    .await
    .expect("create the pgbench read table");
    sqlx::query(
        "INSERT INTO bench_facts SELECT n, d::jsonb FROM unnest($1::text[]) WITH ORDINALITY AS u(d, n)",
    )
    .bind(&docs)
    .execute(&live.db.pool)
    .await
    .expect("fill the pgbench read table");
    // Separately: several statements in one simple query share a transaction,
    // and VACUUM refuses to run in one.
    for table in ["bench_facts", "facts_view"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
            .execute(&live.db.pool)
            .await
            .expect("vacuum a read table");
    }
    let (facts, avg_doc): (i64, f64) = sqlx::query_as(
        "SELECT count(*), coalesce(avg(octet_length(doc::text)), 0)::float8 FROM bench_facts",
    )
    .fetch_one(&live.db.pool)
    .await
    .expect("fact count");
    write_script(
        bench,
        "read.sql",
        &format!("\\set n random(1, {facts})\nSELECT doc FROM bench_facts WHERE n = :n;\n"),
    );
    let prepared: &[&str] = &["-M", "prepared"];

    eprintln!("warming up...");
    let warm = Duration::from_secs(1);
    closed_loop(
        8,
        warm,
        NO_LIMIT,
        read_fact_op(&live, live_facts(&live).await),
    )
    .await;
    live.pgbench.run("read.sql", 8, warm, prepared).await;

    let mut results = Vec::new();
    for round in 0..s.rounds {
        results.push(
            measure_pair(
                &live,
                Pair::Read(READ_CONNECTIONS),
                round,
                "read.sql",
                prepared,
            )
            .await,
        );
    }

    let mut out = header("reads", &machine, bench, started);
    let _ = writeln!(
        out,
        "Parameters: {} s per measurement, {} round(s). Before the reads, over HTTP at \
         {SETUP_CONNECTIONS} connections: {} claims asserted over {} facts ({} /s) and {} of \
         them confirmed ({} /s); then {} facts in the projection, documents of {avg_doc:.0} \
         bytes on average. Each GET picks a fact at random (reader token).\n",
        s.secs,
        s.rounds,
        thousands(seed.ok),
        s.facts,
        rate(seed.ok as f64 / seed.elapsed.as_secs_f64()),
        thousands(confirm.ok),
        rate(confirm.ok as f64 / confirm.elapsed.as_secs_f64()),
        thousands(facts as u64)
    );
    let _ = writeln!(
        out,
        "pgbench: `SELECT doc FROM bench_facts WHERE n = :n` with `n` random, `-M prepared`, \
         on a copy of the documents the API serves, keyed by an integer primary key, {READ_CONNECTIONS} \
         clients (`-j 2`).\n"
    );
    render_pairs(&mut out, &results);
    let peak = live.server.memory().hwm_mb();
    let _ = writeln!(
        out,
        "\nServer memory: peak RSS (VmHWM) {peak:.1} MB over the run; goal < 100 MB: {}.",
        met(peak < 100.0)
    );
    live.diagnostics(&mut out).await;
    out
}

// ---------------------------------------------------------------------------
// visible: append-to-visible latency under a steady assert rate
// ---------------------------------------------------------------------------

#[derive(Default)]
struct VisibleStats {
    sent: u64,
    assert_latencies: Vec<Duration>,
    assert_errors: BTreeMap<u16, u64>,
    late: u64,
    polled: Vec<Duration>,
    poll_timeouts: u64,
    poll_errors: BTreeMap<u16, u64>,
    waited: Vec<Duration>,
    wait_errors: BTreeMap<u16, u64>,
    /// `wait_for` answered 200 without the claim: read-your-writes broken.
    wait_missing: u64,
    skipped: u64,
}

/// Shared by the visibility probes.
struct Probe {
    client: reqwest::Client,
    base: Arc<str>,
    reader: Arc<str>,
    poll: Duration,
    stats: Arc<Mutex<VisibleStats>>,
}

impl Probe {
    /// Polls the fact until it lists the claim; the time counts from the 201.
    async fn poll(&self, fact: &str, claim: &str, acked: Instant) {
        let url = format!("{}/v1/facts/{fact}", self.base);
        loop {
            let (status, doc) = call_json(self.client.get(&url).bearer_auth(&*self.reader)).await;
            if status == 200 && fact_has_claim(&doc, claim) {
                let took = acked.elapsed();
                self.stats.lock().expect("stats").polled.push(took);
                return;
            }
            // 404: the fact's first claim is not projected yet; keep polling.
            if status != 200 && status != 404 {
                *self
                    .stats
                    .lock()
                    .expect("stats")
                    .poll_errors
                    .entry(status)
                    .or_default() += 1;
            }
            if acked.elapsed() > PROBE_LIMIT {
                self.stats.lock().expect("stats").poll_timeouts += 1;
                return;
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// One read with `wait_for`; the time counts from the 201.
    async fn wait_for(&self, fact: &str, claim: &str, position: i64, acked: Instant) {
        let url = format!("{}/v1/facts/{fact}?wait_for={position}", self.base);
        let (status, doc) = call_json(self.client.get(&url).bearer_auth(&*self.reader)).await;
        let took = acked.elapsed();
        let mut stats = self.stats.lock().expect("stats");
        match status {
            200 if fact_has_claim(&doc, claim) => stats.waited.push(took),
            200 => stats.wait_missing += 1,
            s => *stats.wait_errors.entry(s).or_default() += 1,
        }
    }
}

async fn visible(bench: &Bench) -> String {
    let started = Instant::now();
    let s = &bench.settings;
    let live = Live::start(bench, "visible").await;
    let machine = machine_description(&live.db.pool).await;
    eprintln!("{machine}");
    let total = s.visible_rate * s.visible_secs;
    let conns = s.visible_conns.max(1);
    eprintln!(
        "{} asserts/s for {} s over {conns} connections; every {}th measured...",
        s.visible_rate, s.visible_secs, s.visible_sample
    );
    // A little traffic first, so the measured asserts do not pay for the
    // first connections and a cold cache.
    closed_loop(4, Duration::from_secs(1), 200, assert_op(&live)).await;
    settle(&live.db.pool, SETTLE_LIMIT).await;

    let stats = Arc::new(Mutex::new(VisibleStats::default()));
    let probe = Arc::new(Probe {
        client: http_client(MAX_PROBES),
        base: live.base.clone(),
        reader: live.reader.clone(),
        poll: Duration::from_millis(s.poll_ms),
        stats: stats.clone(),
    });
    let probes = Arc::new(tokio::sync::Semaphore::new(MAX_PROBES));
    let before = live.cpu();
    let start = Instant::now() + Duration::from_millis(100);
    let interval = 1.0 / s.visible_rate as f64;
    let workers: Vec<_> = (0..conns)
        .map(|k| {
            let url = format!("{}/v1/claims", live.base);
            let editors = live.editors.clone();
            let story = live.story.clone();
            let stats = stats.clone();
            let probe = probe.clone();
            let probes = probes.clone();
            let (facts, sample) = (s.facts, s.visible_sample);
            tokio::spawn(async move {
                let client = http_client(1);
                let mut i = k as u64;
                while i < total {
                    let due = start + Duration::from_secs_f64(i as f64 * interval);
                    tokio::time::sleep_until(due.into()).await;
                    let sent = Instant::now();
                    let e = (i % editors.len() as u64) as usize;
                    let (status, reply) = call_json(
                        client
                            .post(&url)
                            .bearer_auth(&editors[e])
                            .json(&claim_body(&story, facts)),
                    )
                    .await;
                    let acked = Instant::now();
                    {
                        let mut st = stats.lock().expect("stats");
                        st.sent += 1;
                        if sent.duration_since(due) > LATE {
                            st.late += 1;
                        }
                        if status == 201 {
                            st.assert_latencies.push(acked - sent);
                        } else {
                            *st.assert_errors.entry(status).or_default() += 1;
                        }
                    }
                    if status == 201 && i.is_multiple_of(sample) {
                        let claim = reply["id"].as_str().unwrap_or_default().to_owned();
                        let fact = reply["fact_id"].as_str().unwrap_or_default().to_owned();
                        let position = reply["position"].as_i64().unwrap_or_default();
                        match probes.clone().try_acquire_owned() {
                            Ok(permit) => {
                                let probe = probe.clone();
                                // Alternate the two ways of waiting, so both
                                // see the same load at the same moments.
                                let poll = (i / sample).is_multiple_of(2);
                                tokio::spawn(async move {
                                    let _permit = permit;
                                    if poll {
                                        probe.poll(&fact, &claim, acked).await;
                                    } else {
                                        probe.wait_for(&fact, &claim, position, acked).await;
                                    }
                                });
                            }
                            Err(_) => stats.lock().expect("stats").skipped += 1,
                        }
                    }
                    i += conns as u64;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("assert worker");
    }
    let elapsed = start.elapsed();
    // The last probes finish within PROBE_LIMIT plus one request.
    let _ = tokio::time::timeout(
        PROBE_LIMIT + REQUEST_TIMEOUT,
        probes.acquire_many(MAX_PROBES as u32),
    )
    .await;
    let cpu = live.cpu().since(&before);
    let memory = live.server.memory();

    let mut st = std::mem::take(&mut *stats.lock().expect("stats"));
    let (assert_p50, assert_p99) = percentiles(&mut st.assert_latencies);
    let achieved = st.assert_latencies.len() as f64 / elapsed.as_secs_f64();
    let mut out = header("visible", &machine, bench, started);
    let _ = writeln!(
        out,
        "Parameters: open loop, {} asserts/s for {} s ({} scheduled) over {conns} connections, \
         claims spread over {} facts; every {}th acknowledged assert is measured, alternately \
         by polling `GET /v1/facts/{{fact_id}}` every {} ms (no `wait_for`) until its `claims` \
         list the new claim, and by one `GET /v1/facts/{{fact_id}}?wait_for=<position>`. Times \
         count from the 201 arriving at the client.\n",
        s.visible_rate,
        s.visible_secs,
        thousands(total),
        s.facts,
        s.visible_sample,
        s.poll_ms
    );
    let _ = writeln!(
        out,
        "Asserts: {} sent, {} acknowledged ({} /s achieved), p50 {}, p99 {}; non-2xx {}; \
         {} sent more than {} ms after their slot; {} measurements skipped ({MAX_PROBES} probes \
         already in flight). Server RSS {:.1} MB, peak {:.1} MB. CPU (cores of {}): load \
         generator {:.2}, server {:.2}, PostgreSQL {:.2}, others {:.2}.\n",
        thousands(st.sent),
        thousands(st.assert_latencies.len() as u64),
        rate(achieved),
        ms_fmt(assert_p50),
        ms_fmt(assert_p99),
        status_counts(&st.assert_errors),
        thousands(st.late),
        LATE.as_millis(),
        thousands(st.skipped),
        memory.rss_mb(),
        memory.hwm_mb(),
        cpu_count(),
        cpu.client,
        cpu.server,
        cpu.postgres,
        cpu.others
    );
    let _ = writeln!(
        out,
        "| append → visible | measured | p50 | p99 | max | not visible / errors | goal p99 < 50 ms |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|---|");
    for (label, lat, failures) in [
        (
            format!("polling every {} ms", s.poll_ms),
            &mut st.polled,
            format!(
                "{} timed out ({} s); errors {}",
                st.poll_timeouts,
                PROBE_LIMIT.as_secs(),
                status_counts(&st.poll_errors)
            ),
        ),
        (
            "one request with `?wait_for=<position>`".to_owned(),
            &mut st.waited,
            format!(
                "{} answered 200 without the claim; errors {}",
                st.wait_missing,
                status_counts(&st.wait_errors)
            ),
        ),
    ] {
        let (p50, p99) = percentiles(lat);
        let max = lat.last().copied().unwrap_or_default();
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {failures} | {} |",
            thousands(lat.len() as u64),
            ms_fmt(p50),
            ms_fmt(p99),
            ms_fmt(max),
            met(!lat.is_empty() && p99 < Duration::from_millis(50))
        );
    }
    live.diagnostics(&mut out).await;
    out
}

// ---------------------------------------------------------------------------
// rebuild: projections from the whole log, against COPY
// ---------------------------------------------------------------------------

struct ProjectionRun {
    events: u64,
    secs: f64,
    rows: i64,
    bytes: i64,
    /// Per table: name, rows, bytes with indexes.
    tables: Vec<(&'static str, i64, i64)>,
    /// The rebuild runs in this process: `client` is factlog's own code.
    cpu: CpuSplit,
    /// Where the bulk pass spent its time.
    bulk: projections::BulkTimings,
    catch_up_secs: f64,
}

struct RebuildRound {
    projections: Vec<ProjectionRun>,
    /// Every projection in one pass over the log (what `factlog rebuild` does).
    together: Option<ProjectionRun>,
    /// Rows, seconds, bytes streamed.
    copy: (u64, f64, u64),
    insert_select: (u64, f64),
}

async fn rebuild(bench: &Bench) -> String {
    let started = Instant::now();
    let s = &bench.settings;
    let db = database(&bench.cluster, &db_name("rebuild"), 8).await;
    let machine = machine_description(&db.pool).await;
    eprintln!("{machine}");
    let store = EventStore::open(db.pool.clone(), StoreConfig::default())
        .await
        .expect("open the event store");

    eprintln!(
        "filling the log with {} events of generated newsroom work...",
        s.rebuild_events
    );
    let fill_start = Instant::now();
    let step = (s.rebuild_events / 10).max(1);
    let mut shown = 0;
    let filled = factlog::commands::fill_log(&store, s.rebuild_events, 1, |n| {
        if n / step > shown {
            shown = n / step;
            eprintln!(
                "  {n} events, {:.0}/s",
                n as f64 / fill_start.elapsed().as_secs_f64()
            );
        }
    })
    .await
    .expect("fill the log");
    let fill = fill_start.elapsed();
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.pool)
        .await
        .expect("count events");
    // Set hint bits and statistics now, so that neither side pays for the
    // first read of freshly written pages.
    sqlx::raw_sql("VACUUM ANALYZE events")
        .execute(&db.pool)
        .await
        .expect("vacuum events");
    let (events_bytes, types, facts, claims): (i64, String, i64, i64) = sqlx::query_as(
        "SELECT pg_total_relation_size('events'), \
         (SELECT string_agg(type || ' ' || n, ', ' ORDER BY n DESC) \
          FROM (SELECT type, count(*) AS n FROM events GROUP BY type) t), \
         (SELECT count(DISTINCT data ->> 'fact_id') FROM events WHERE type = 'ClaimAsserted'), \
         (SELECT count(*) FROM events WHERE type = 'ClaimAsserted')",
    )
    .fetch_one(&db.pool)
    .await
    .expect("describe the log");

    let mut rounds = Vec::new();
    for round in 0..s.rebuild_rounds {
        eprintln!("round {}:", round + 1);
        let mut r = RebuildRound {
            projections: Vec::new(),
            together: None,
            copy: (0, 0.0, 0),
            insert_select: (0, 0.0),
        };
        // Alternate which goes first, as the paired benches do.
        let rebuild_first = round.is_multiple_of(2);
        for side in 0..2 {
            if (side == 0) == rebuild_first {
                for &p in projections::ALL {
                    r.projections
                        .push(rebuild_run(&db.pool, &[p], bench.postmaster).await);
                }
                r.together = Some(rebuild_run(&db.pool, projections::ALL, bench.postmaster).await);
            } else {
                r.copy = copy_events(&db.pool).await;
                r.insert_select = insert_select_events(&db.pool).await;
            }
        }
        rounds.push(r);
    }

    let mut out = header("rebuild", &machine, bench, started);
    let _ = writeln!(
        out,
        "Parameters: a log of {} events ({}; {} claims on {} facts) written in-process by \
         `factlog::commands::fill_log` (seed 1) through the event store; `events` is {:.0} MB \
         with its indexes. {} round(s); medians. Each step starts from a checkpoint. Rebuild: \
         `factlog::projections::rebuild_many` in this process (one pass over the log into shadow \
         tables, indexes, then the swap), for each projection alone and for all of them in one \
         pass, which is what `factlog rebuild` does. COPY: \
         `COPY events TO STDOUT (FORMAT binary)` streamed in 1 MiB pieces into `COPY … FROM \
         STDIN` of a fresh table `LIKE events INCLUDING ALL` (same columns and indexes), i.e. \
         reading and writing every row once.\n",
        thousands(logged as u64),
        types,
        thousands(claims as u64),
        thousands(facts as u64),
        events_bytes as f64 / MB,
        s.rebuild_rounds
    );
    let _ = writeln!(
        out,
        "| step | events | seconds | events/s | rows written | MB written | CPU factlog / PostgreSQL / others (cores) | goal |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---|---|");
    let _ = writeln!(
        out,
        "| fill (`fill_log`, 1-event appends, 64 stories at a time) | {} | {:.1} | {} | {} | {:.0} | — | — |",
        thousands(filled),
        fill.as_secs_f64(),
        rate(filled as f64 / fill.as_secs_f64()),
        thousands(logged as u64),
        events_bytes as f64 / MB
    );
    for (i, p) in projections::ALL.iter().enumerate() {
        let runs: Vec<&ProjectionRun> = rounds.iter().map(|r| &r.projections[i]).collect();
        let secs = median(runs.iter().map(|r| r.secs).collect());
        let first = runs[0];
        let per_sec = first.events as f64 / secs;
        let _ = writeln!(
            out,
            "| rebuild `{}` alone | {} | {:.2} | {} | {} | {:.0} | {:.2} / {:.2} / {:.2} | ≥ 50k/s: {} |",
            p.name(),
            thousands(first.events),
            secs,
            rate(per_sec),
            thousands(first.rows as u64),
            first.bytes as f64 / MB,
            median(runs.iter().map(|r| r.cpu.client).collect()),
            median(runs.iter().map(|r| r.cpu.postgres).collect()),
            median(runs.iter().map(|r| r.cpu.others).collect()),
            met(per_sec >= 50_000.0)
        );
    }
    let together: Vec<&ProjectionRun> = rounds.iter().filter_map(|r| r.together.as_ref()).collect();
    let together_secs = median(together.iter().map(|r| r.secs).collect());
    let together_rate = together.first().map_or(0, |r| r.events) as f64 / together_secs;
    if let Some(first) = together.first() {
        let _ = writeln!(
            out,
            "| **rebuild, all projections in one pass (`factlog rebuild`)** | {} | {:.2} | **{}** | {} | {:.0} | {:.2} / {:.2} / {:.2} | ≥ 50k/s: {} |",
            thousands(first.events),
            together_secs,
            rate(together_rate),
            thousands(first.rows as u64),
            first.bytes as f64 / MB,
            median(together.iter().map(|r| r.cpu.client).collect()),
            median(together.iter().map(|r| r.cpu.postgres).collect()),
            median(together.iter().map(|r| r.cpu.others).collect()),
            met(together_rate >= 50_000.0)
        );
    }
    let total = median(
        rounds
            .iter()
            .map(|r| r.projections.iter().map(|p| p.secs).sum::<f64>())
            .collect(),
    );
    let all_rate = logged as f64 / total;
    let _ = writeln!(
        out,
        "| rebuild, all projections one after the other | {} | {:.2} | {} | — | — | — | ≥ 50k/s: {} |",
        thousands(logged as u64),
        total,
        rate(all_rate),
        met(all_rate >= 50_000.0)
    );
    let copy_secs = median(rounds.iter().map(|r| r.copy.1).collect());
    let copy_rate = rounds[0].copy.0 as f64 / copy_secs;
    let _ = writeln!(
        out,
        "| COPY out → COPY in, fresh table like `events` | {} | {:.2} | {} | {} | {:.0} (stream) | — | — |",
        thousands(rounds[0].copy.0),
        copy_secs,
        rate(copy_rate),
        thousands(rounds[0].copy.0),
        rounds[0].copy.2 as f64 / MB
    );
    let is_secs = median(rounds.iter().map(|r| r.insert_select.1).collect());
    let is_rate = rounds[0].insert_select.0 as f64 / is_secs;
    let _ = writeln!(
        out,
        "| `INSERT INTO copy SELECT * FROM events` | {} | {:.2} | {} | {} | — | — | — |",
        thousands(rounds[0].insert_select.0),
        is_secs,
        rate(is_rate),
        thousands(rounds[0].insert_select.0)
    );
    let _ = writeln!(
        out,
        "\nRatios: rebuild of all projections in one pass / COPY = {:.2}; / INSERT … SELECT = {:.2}; \
         one after the other / COPY = {:.2}. Per projection alone / COPY: {}. The goal (≥ 50k \
         events/s) is checked per projection and for all of them.",
        together_rate / copy_rate,
        together_rate / is_rate,
        all_rate / copy_rate,
        projections::ALL
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let secs = median(rounds.iter().map(|r| r.projections[i].secs).collect());
                format!(
                    "`{}` {:.2}",
                    p.name(),
                    rounds[0].projections[i].events as f64 / secs / copy_rate
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "\nWhere the time went (seconds, round 1; stages overlap: the reader, the fold and a \
         writer per table run side by side; \"waits\" are the fold blocked on the other side):\n"
    );
    let _ = writeln!(
        out,
        "| rebuild | total | bulk pass | reader busy | fold busy | fold waits for reader | end states laid out | fold waits for writers | COPY tail after fold | indexes + ANALYZE | catch-up + swap |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let first_round = rounds.first();
    let staged = first_round
        .into_iter()
        .flat_map(|r| {
            r.projections
                .iter()
                .zip(
                    projections::ALL
                        .iter()
                        .map(|p| format!("`{}` alone", p.name())),
                )
                .chain(r.together.iter().map(|t| (t, "all in one pass".to_owned())))
        })
        .collect::<Vec<_>>();
    for (run, name) in staged {
        let b = &run.bulk;
        let _ = writeln!(
            out,
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            run.secs,
            b.total,
            b.reading,
            b.folding,
            b.fold_waiting_for_reader,
            b.laying_out,
            b.fold_waiting_for_writers,
            b.loading_tail,
            b.indexing,
            run.catch_up_secs
        );
    }
    let _ = writeln!(
        out,
        "\nWhat the rebuilds wrote, per table (rows, MB with indexes): {}.",
        rounds[0]
            .projections
            .iter()
            .flat_map(|p| &p.tables)
            .map(|(t, n, b)| format!(
                "`{t}` {} rows {:.0} MB",
                thousands(*n as u64),
                *b as f64 / MB
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if rounds.len() > 1 {
        let names: Vec<String> = projections::ALL
            .iter()
            .map(|p| format!("{} s", p.name()))
            .collect();
        let _ = writeln!(
            out,
            "\n| round | {} | one pass s | COPY s | INSERT … SELECT s |",
            names.join(" | ")
        );
        let _ = writeln!(out, "|---:|{}---:|---:|---:|", "---:|".repeat(names.len()));
        for (i, r) in rounds.iter().enumerate() {
            let secs: Vec<String> = r
                .projections
                .iter()
                .map(|p| format!("{:.2}", p.secs))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} | {:.2} | {:.2} |",
                i + 1,
                secs.join(" | "),
                r.together.as_ref().map_or(0.0, |t| t.secs),
                r.copy.1,
                r.insert_select.1
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{} (The COPY and INSERT … SELECT comparisons read `events` twice per round.)",
        seq_scans(&db.pool).await
    );
    drop(store);
    out
}

async fn rebuild_run(
    pool: &PgPool,
    list: &[&'static dyn AnyProjection],
    postmaster: Option<u32>,
) -> ProjectionRun {
    checkpoint(pool).await;
    let before = CpuSnapshot::take(postmaster, None);
    let start = Instant::now();
    let reports = projections::rebuild_many(pool, list, |_| {})
        .await
        .expect("rebuild projections");
    let secs = start.elapsed().as_secs_f64();
    let cpu = CpuSnapshot::take(postmaster, None).since(&before);
    let report = reports.last().expect("a report per projection");
    let name = list
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(" + ");
    let mut rows = 0i64;
    let mut bytes = 0i64;
    let mut tables = Vec::new();
    for &t in list.iter().flat_map(|p| p.tables()) {
        let (n, b): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*), pg_total_relation_size('{t}') FROM {t}"
        )))
        .fetch_one(pool)
        .await
        .expect("projection table size");
        rows += n;
        bytes += b;
        tables.push((t, n, b));
    }
    let b = &report.bulk;
    eprintln!(
        "  rebuild {name}: {} events in {secs:.2} s ({}/s); CPU factlog {:.2}, PostgreSQL {:.2}, \
         others {:.2} cores\n    bulk {:.2} s: reader {:.2}, fold {:.2} (+{:.2} waiting for the \
         reader, +{:.2} for the writers), end states {:.2}, COPY tail {:.2}, indexes {:.2}; \
         catch-up and swap {:.2}",
        report.events,
        rate(report.events as f64 / secs),
        cpu.client,
        cpu.postgres,
        cpu.others,
        b.total,
        b.reading,
        b.folding,
        b.fold_waiting_for_reader,
        b.fold_waiting_for_writers,
        b.laying_out,
        b.loading_tail,
        b.indexing,
        report.catch_up_seconds
    );
    ProjectionRun {
        events: report.events,
        secs,
        rows,
        bytes,
        tables,
        cpu,
        bulk: report.bulk.clone(),
        catch_up_secs: report.catch_up_seconds,
    }
}

async fn fresh_copy_table(pool: &PgPool) {
    sqlx::raw_sql(
        "DROP TABLE IF EXISTS events_copy; CREATE TABLE events_copy (LIKE events INCLUDING ALL)",
    )
    .execute(pool)
    .await
    .expect("create the copy table");
    checkpoint(pool).await;
}

/// Rows, seconds and bytes streamed.
async fn copy_events(pool: &PgPool) -> (u64, f64, u64) {
    fresh_copy_table(pool).await;
    let mut src = pool.acquire().await.expect("COPY source connection");
    let mut dst = pool.acquire().await.expect("COPY target connection");
    let start = Instant::now();
    let mut sink = dst
        .copy_in_raw("COPY events_copy FROM STDIN (FORMAT binary)")
        .await
        .expect("COPY FROM STDIN");
    let mut rows_out = src
        .copy_out_raw("COPY events TO STDOUT (FORMAT binary)")
        .await
        .expect("COPY TO STDOUT");
    // Binary COPY data may be split anywhere; sending it a message at a time
    // would flush the socket once per row.
    let mut buf: Vec<u8> = Vec::with_capacity(2 << 20);
    let mut bytes = 0u64;
    while let Some(chunk) = rows_out.next().await {
        let chunk = chunk.expect("COPY data");
        bytes += chunk.len() as u64;
        buf.extend_from_slice(&chunk);
        if buf.len() >= 1 << 20 {
            sink.send(buf.as_slice()).await.expect("send COPY data");
            buf.clear();
        }
    }
    drop(rows_out);
    if !buf.is_empty() {
        sink.send(buf.as_slice()).await.expect("send COPY data");
    }
    let rows = sink.finish().await.expect("finish COPY");
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "  COPY: {rows} rows in {secs:.2} s ({}/s)",
        rate(rows as f64 / secs)
    );
    (rows, secs, bytes)
}

async fn insert_select_events(pool: &PgPool) -> (u64, f64) {
    fresh_copy_table(pool).await;
    let start = Instant::now();
    let rows = sqlx::query("INSERT INTO events_copy SELECT * FROM events")
        .execute(pool)
        .await
        .expect("INSERT … SELECT")
        .rows_affected();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "  INSERT … SELECT: {rows} rows in {secs:.2} s ({}/s)",
        rate(rows as f64 / secs)
    );
    sqlx::raw_sql("DROP TABLE events_copy")
        .execute(pool)
        .await
        .expect("drop the copy table");
    (rows, secs)
}

// ---------------------------------------------------------------------------
// soak: a steady mixed load for a long time
// ---------------------------------------------------------------------------

#[derive(Default)]
struct SoakInterval {
    writes: Vec<Duration>,
    reads: Vec<Duration>,
    non_2xx: BTreeMap<(&'static str, u16), u64>,
    missed: u64,
}

#[derive(Default)]
struct SoakShared {
    interval: SoakInterval,
    /// The whole run, per request kind.
    by_kind: BTreeMap<&'static str, Vec<Duration>>,
    totals: BTreeMap<(&'static str, u16), u64>,
    missed: u64,
}

struct SoakRow {
    at: Duration,
    writes: f64,
    reads: f64,
    write_p99: Duration,
    read_p99: Duration,
    read_p50: Duration,
    write_p50: Duration,
    errors: String,
    missed: u64,
    lag: i64,
    memory: Memory,
}

type SoakOp =
    Arc<dyn Fn(reqwest::Client, u64) -> BoxFuture<'static, (&'static str, u16)> + Send + Sync>;

fn soak_write_op(live: &Live) -> SoakOp {
    let base = live.base.clone();
    let editors = live.editors.clone();
    let story = live.story.clone();
    let known = live.known.clone();
    let facts = live.bench.settings.facts;
    Arc::new(move |client, i| {
        let n = editors.len();
        let e = (i % n as u64) as usize;
        // 50% asserts, 35% confirmations, 15% disputes; when there is
        // nothing to confirm or dispute yet, an assert instead.
        let slot = i % 20;
        if (10..17).contains(&slot)
            && let Some(p) = known.take_pending()
        {
            let req = client
                .post(format!("{base}/v1/claims/{}/confirmations", p.id))
                .bearer_auth(&editors[(p.asserter + 1) % n])
                .header("Idempotency-Key", format!("soak-{i}"))
                .json(&json!({"note": "checked"}));
            return Box::pin(async move { ("confirm", call_status(req).await) });
        }
        if slot >= 17
            && let Some(id) = Known::any(&known.claims, mix(i))
        {
            let req = client
                .post(format!("{base}/v1/claims/{id}/disputes"))
                .bearer_auth(&editors[e])
                .header("Idempotency-Key", format!("soak-{i}"))
                .json(&json!({"reason": "the agency revised its figure"}));
            return Box::pin(async move { ("dispute", call_status(req).await) });
        }
        let req = client
            .post(format!("{base}/v1/claims"))
            .bearer_auth(&editors[e])
            .header("Idempotency-Key", format!("soak-{i}"))
            .json(&claim_body(&story, facts));
        let known = known.clone();
        Box::pin(async move {
            let (status, reply) = call_json(req).await;
            if status == 201
                && let (Some(id), Some(fact)) = (reply["id"].as_str(), reply["fact_id"].as_str())
            {
                known.asserted(id, fact, e);
            }
            ("assert", status)
        })
    })
}

fn soak_read_op(live: &Live) -> SoakOp {
    let base = live.base.clone();
    let reader = live.reader.clone();
    let known = live.known.clone();
    Arc::new(move |client, i| {
        let r = mix(i ^ 0xfeed);
        // 50% one fact, 30% one claim, 20% lists.
        let (kind, path) = match i % 10 {
            0..=4 => (
                "GET fact",
                Known::older(&known.facts, r, SOAK_FRESH_FACTS).map(|id| format!("/v1/facts/{id}")),
            ),
            5..=7 => (
                "GET claim",
                Known::any(&known.claims, r).map(|id| format!("/v1/claims/{id}")),
            ),
            8 => (
                "GET pending claims",
                Some("/v1/claims?status=pending&limit=20".to_owned()),
            ),
            _ => (
                "GET facts list",
                Some("/v1/facts?property=count&limit=20".to_owned()),
            ),
        };
        let path = path.unwrap_or_else(|| "/v1/facts?limit=20".to_owned());
        let req = client.get(format!("{base}{path}")).bearer_auth(&*reader);
        Box::pin(async move { (kind, call_status(req).await) })
    })
}

/// Paced workers: slot `i` of `total` is due at `start + i / rate`, and
/// worker `k` of `conns` takes slots k, k + conns, … on its own connection.
fn spawn_paced(
    conns: usize,
    total: u64,
    per_sec: u64,
    start: Instant,
    op: SoakOp,
    shared: Arc<Mutex<SoakShared>>,
    writes: bool,
) -> Vec<tokio::task::JoinHandle<()>> {
    let interval = 1.0 / per_sec as f64;
    (0..conns)
        .map(|k| {
            let op = op.clone();
            let shared = shared.clone();
            tokio::spawn(async move {
                let client = http_client(1);
                let mut i = k as u64;
                while i < total {
                    let due = start + Duration::from_secs_f64(i as f64 * interval);
                    if Instant::now() > due + MISSED {
                        let mut sh = shared.lock().expect("soak stats");
                        sh.interval.missed += 1;
                        sh.missed += 1;
                    } else {
                        tokio::time::sleep_until(due.into()).await;
                        let t = Instant::now();
                        let (kind, status) = op(client.clone(), i).await;
                        let took = t.elapsed();
                        let mut sh = shared.lock().expect("soak stats");
                        *sh.totals.entry((kind, status)).or_default() += 1;
                        if (200..300).contains(&status) {
                            if writes {
                                sh.interval.writes.push(took);
                            } else {
                                sh.interval.reads.push(took);
                            }
                            sh.by_kind.entry(kind).or_default().push(took);
                        } else {
                            *sh.interval.non_2xx.entry((kind, status)).or_default() += 1;
                        }
                    }
                    i += conns as u64;
                }
            })
        })
        .collect()
}

async fn soak(bench: &Bench) -> String {
    let started = Instant::now();
    let s = &bench.settings;
    let live = Live::start(bench, "soak").await;
    let machine = machine_description(&live.db.pool).await;
    eprintln!("{machine}");
    // Something to read, confirm and dispute from the first second.
    closed_loop(
        8,
        Duration::from_secs(120),
        SOAK_SEED_CLAIMS,
        assert_op(&live),
    )
    .await;
    settle(&live.db.pool, SETTLE_LIMIT).await;

    eprintln!(
        "soak: {} writes/s and {} reads/s for {} s, {} connections each, sampled every {} s",
        s.soak_writes, s.soak_reads, s.soak_secs, s.soak_conns, s.soak_sample_secs
    );
    let shared = Arc::new(Mutex::new(SoakShared::default()));
    let start = Instant::now() + Duration::from_millis(100);
    let mut workers = spawn_paced(
        s.soak_conns,
        s.soak_writes * s.soak_secs,
        s.soak_writes,
        start,
        soak_write_op(&live),
        shared.clone(),
        true,
    );
    workers.extend(spawn_paced(
        s.soak_conns,
        s.soak_reads * s.soak_secs,
        s.soak_reads,
        start,
        soak_read_op(&live),
        shared.clone(),
        false,
    ));

    // The server keeps every histogram sample until /metrics is rendered, so
    // whether anything scrapes it changes the memory curve; off by default,
    // as in a deployment without Prometheus.
    let scraper = s.soak_scrape_secs.map(|every| {
        let url = format!("{}/metrics", live.base);
        let end = start + Duration::from_secs(s.soak_secs);
        tokio::spawn(async move {
            let client = http_client(1);
            let mut at = start;
            while at < end {
                at += Duration::from_secs(every);
                tokio::time::sleep_until(at.into()).await;
                call_status(client.get(&url)).await;
            }
        })
    });
    let step = Duration::from_secs(s.soak_sample_secs);
    let samples = s.soak_secs.div_ceil(s.soak_sample_secs);
    let mut rows = Vec::new();
    let mut last = start;
    for k in 1..=samples {
        let at = start + step * k as u32;
        tokio::time::sleep_until(at.into()).await;
        let now = Instant::now();
        let mut iv = std::mem::take(&mut shared.lock().expect("soak stats").interval);
        let secs = now.duration_since(last).as_secs_f64();
        last = now;
        let (write_p50, write_p99) = percentiles(&mut iv.writes);
        let (read_p50, read_p99) = percentiles(&mut iv.reads);
        let mut errors: BTreeMap<String, u64> = BTreeMap::new();
        for ((kind, status), n) in &iv.non_2xx {
            *errors
                .entry(format!("{kind} {}", status_name(*status)))
                .or_default() += n;
        }
        let row = SoakRow {
            at: now.duration_since(start),
            writes: iv.writes.len() as f64 / secs,
            reads: iv.reads.len() as f64 / secs,
            write_p50,
            write_p99,
            read_p50,
            read_p99,
            errors: if errors.is_empty() {
                "none".into()
            } else {
                errors
                    .iter()
                    .map(|(k, n)| format!("{k} ×{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            missed: iv.missed,
            lag: projection_lag(&live.db.pool).await,
            memory: live.server.memory(),
        };
        eprintln!(
            "  {:>5.0} s | writes {:>5.0}/s p99 {} | reads {:>5.0}/s p99 {} | errors {} | missed {} | lag {} | RSS {:.1} MB",
            row.at.as_secs_f64(),
            row.writes,
            ms_fmt(row.write_p99),
            row.reads,
            ms_fmt(row.read_p99),
            row.errors,
            row.missed,
            row.lag,
            row.memory.rss_mb()
        );
        rows.push(row);
    }
    for w in workers {
        // Every slot is due by now; the last requests end within their timeout.
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, w).await;
    }
    if let Some(t) = scraper {
        t.abort();
    }
    let mut sh = std::mem::take(&mut *shared.lock().expect("soak stats"));

    let mut out = header("soak", &machine, bench, started);
    let _ = writeln!(
        out,
        "Parameters: {} s of open-loop, paced load: {} writes/s (50% asserts, 35% confirmations \
         by another editor, 15% disputes; every write with an `Idempotency-Key`) and {} reads/s \
         (50% `GET /v1/facts/{{id}}`, 30% `GET /v1/claims/{{id}}`, 10% \
         `GET /v1/claims?status=pending&limit=20`, 10% `GET /v1/facts?property=count&limit=20`), \
         each over {} connections; claims spread over {} facts; {SOAK_SEED_CLAIMS} claims \
         asserted first. Sampled every {} s. Slots more than {} s late are dropped and counted \
         as missed. `/metrics` scraped: {}.\n",
        s.soak_secs,
        s.soak_writes,
        s.soak_reads,
        s.soak_conns,
        s.facts,
        s.soak_sample_secs,
        MISSED.as_secs(),
        s.soak_scrape_secs
            .map_or_else(|| "never".to_owned(), |e| format!("every {e} s"))
    );
    let _ = writeln!(
        out,
        "| t | writes/s | write p50 | write p99 | reads/s | read p50 | read p99 | non-2xx | missed | projection lag | RSS | peak RSS |"
    );
    let _ = writeln!(
        out,
        "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "| {:.0} s | {:.0} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {:.1} MB | {:.1} MB |",
            r.at.as_secs_f64(),
            r.writes,
            ms_fmt(r.write_p50),
            ms_fmt(r.write_p99),
            r.reads,
            ms_fmt(r.read_p50),
            ms_fmt(r.read_p99),
            r.errors,
            r.missed,
            r.lag,
            r.memory.rss_mb(),
            r.memory.hwm_mb()
        );
    }

    let _ = writeln!(out, "\nWhole run, by request kind:\n");
    let _ = writeln!(out, "| request | 2xx | p50 | p99 | max | non-2xx |");
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
    let kinds: Vec<&'static str> = sh
        .totals
        .keys()
        .map(|(k, _)| *k)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for kind in kinds {
        let lat = sh.by_kind.entry(kind).or_default();
        let (p50, p99) = percentiles(lat);
        let non_2xx: BTreeMap<u16, u64> = sh
            .totals
            .iter()
            .filter(|((k, st), _)| *k == kind && !(200..300).contains(st))
            .map(|((_, st), n)| (*st, *n))
            .collect();
        let _ = writeln!(
            out,
            "| {kind} | {} | {} | {} | {} | {} |",
            thousands(lat.len() as u64),
            ms_fmt(p50),
            ms_fmt(p99),
            ms_fmt(lat.last().copied().unwrap_or_default()),
            status_counts(&non_2xx)
        );
    }
    let _ = writeln!(out, "\nMissed slots over the run: {}.", sh.missed);

    // Growth is judged from the second half: the first minutes include
    // allocator warm-up, caches filling and connection set-up.
    let points: Vec<(f64, f64)> = rows
        .iter()
        .map(|r| (r.at.as_secs_f64() / 60.0, r.memory.rss_mb()))
        .collect();
    let half: Vec<(f64, f64)> = points[points.len() / 2..].to_vec();
    let whole = slope(&points);
    let late = slope(&half);
    let first = rows.first().map(|r| r.memory).unwrap_or_default();
    let last_mem = rows.last().map(|r| r.memory).unwrap_or_default();
    let peak = rows.iter().map(|r| r.memory.hwm_mb()).fold(0.0, f64::max);
    let judged = half.len() >= 5;
    let flat = late <= 0.2;
    let _ = writeln!(
        out,
        "\nServer RSS: first sample {:.1} MB, last {:.1} MB, peak (VmHWM) {peak:.1} MB; slope \
         {whole:+.2} MB/min over the run, {late:+.2} MB/min over the second half ({} samples). \
         Verdict: {}; goal peak < 100 MB: {}.",
        first.rss_mb(),
        last_mem.rss_mb(),
        half.len(),
        if !judged {
            "too few samples to judge growth"
        } else if flat {
            "no sustained growth (second-half slope ≤ 0.2 MB/min)"
        } else {
            "**still growing** in the second half"
        },
        met(peak < 100.0)
    );
    live.diagnostics(&mut out).await;
    out
}

/// Least-squares slope of y over x.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

// ---------------------------------------------------------------------------
// Machine, CPU accounting, reports
// ---------------------------------------------------------------------------

fn header(scenario: &str, machine: &str, bench: &Bench, started: Instant) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## factlog HTTP benchmark `{scenario}`, {}\n",
        date_u()
    );
    let _ = writeln!(
        out,
        "Machine: {machine}. Whole scenario {:.0} s.\n",
        started.elapsed().as_secs_f64()
    );
    if let Some(bin) = &bench.server_bin
        && scenario != "rebuild"
    {
        let _ = writeln!(
            out,
            "Server: {}, a subprocess on 127.0.0.1 with its own database on the same cluster; \
             the load generator (hyper's HTTP/1.1 connection API, one keep-alive connection per \
             simulated client; reqwest for the visible and soak scenarios) runs in the bench \
             process on the same machine.\n",
            binary_description(bin)
        );
    }
    out
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}
