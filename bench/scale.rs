//! Scale benchmark: does every read stay fast as the log grows? One
//! database on a throw-away, fsync-on cluster is filled with generated
//! newsroom work to the first size (`factlog generate`), measured, grown to
//! the next size, measured again, and so on. At each size: `factlog
//! rebuild` and `factlog verify` (rate, peak RSS), then `factlog serve` as a
//! subprocess and, once its chain verifier has caught up, every read the
//! API offers at a fixed concurrency, and HTTP asserts at 32 connections
//! against pgbench's single-row insert in the same run. The report compares
//! each figure at the largest size with the smallest. See bench/README.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod client;
#[allow(
    dead_code,
    reason = "the table of paired rounds is append's and http's"
)]
mod common;
#[allow(dead_code, reason = "the server's current RSS is bench/http.rs's")]
mod harness;

use chrono::{DateTime, Utc};
use factlog::db::EphemeralCluster;
use hyper::Method;
use sqlx::PgPool;
use uuid::Uuid;

use common::{
    CpuSnapshot, CpuSplit, PAYLOAD, PGBENCH_SCHEMA, Pgbench, Sample, checkpoint, cpu_count,
    database, init_logging, machine_description, median, percentiles, postmaster_pid,
    single_insert_script, thousands,
};
use harness::{
    Load, NO_LIMIT, Op, SETTLE_LIMIT, Server, VERIFY_DAILY, VERIFY_EVERY_MINUTES,
    binary_description, closed_loop, create_token, drain_projections, editor_tokens, env_number,
    find_server_binary, goal_mark, goals_line, kib_mb, log_head, mix, ms_fmt, rate, report_head,
    run_waited, set_synchronous_commit, settle, status_counts, wait_until_verified, write_report,
    write_server_log,
};

const DB_NAME: &str = "scale";
/// The asserts are measured where the write goal is set (bench/http.rs).
const WRITE_CONNECTIONS: usize = 32;
/// The generator's editors (src/commands/generate.rs): the audit's actors
/// and the claims' `asserted_by`.
const GENERATED_ACTORS: [&str; 6] = ["ann", "bob", "cy", "dee", "eli", "fay"];
/// Facts with the most claims whose history is read.
const BUSY_FACTS: i64 = 50;
/// Stories whose claims are listed by `story_id`.
const STORY_SAMPLE: i64 = 5_000;
/// Rows of the fixed-size table pgbench reads as a control of the machine's
/// speed between sizes.
const CONTROL_ROWS: u64 = 100_000;
const PAGE: u32 = 100;
/// Per-request figures at the largest size within this factor of the smallest.
const REQUEST_GOAL: f64 = 1.3;
/// Verify and rebuild rates at the largest size at least this share of the smallest.
const RATE_GOAL: f64 = 0.8;
const MB: f64 = 1e6;
/// A machine is quiet when anything but the benchmark used less than this
/// share of it over [`QUIET_SAMPLE`].
const QUIET_SHARE: f64 = 0.15;
const QUIET_SAMPLE: Duration = Duration::from_secs(2);

struct Settings {
    sizes: Vec<u64>,
    secs: u64,
    conns: usize,
    write_secs: u64,
    rounds: usize,
    hold_secs: u64,
    /// Longest wait for a quiet machine before each measurement (0: none).
    quiet_secs: u64,
    /// PostgreSQL's buffer cache: by default as the private cluster gets it
    /// (a quarter of the RAM, at most 8 GiB).
    shared_buffers_mb: u64,
}

impl Settings {
    fn from_env() -> Settings {
        let sizes: Vec<u64> = std::env::var("FACTLOG_BENCH_SCALE_SIZES")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map_or_else(
                || vec![1_000_000, 10_000_000],
                |v| {
                    v.split(',')
                        .map(|s| {
                            s.trim().replace('_', "").parse::<u64>().unwrap_or_else(|_| {
                                panic!("FACTLOG_BENCH_SCALE_SIZES must list event counts, got {v:?}")
                            })
                        })
                        .collect()
                },
            );
        assert!(
            !sizes.is_empty() && sizes.windows(2).all(|w| w[0] < w[1]) && sizes[0] > 0,
            "FACTLOG_BENCH_SCALE_SIZES must be increasing positive event counts, got {sizes:?}"
        );
        Settings {
            sizes,
            secs: env_number("FACTLOG_BENCH_SCALE_SECS", 10),
            conns: env_number("FACTLOG_BENCH_SCALE_CONNS", 8) as usize,
            write_secs: env_number("FACTLOG_BENCH_SCALE_WRITE_SECS", 10),
            rounds: env_number("FACTLOG_BENCH_SCALE_ROUNDS", 2) as usize,
            hold_secs: std::env::var("FACTLOG_BENCH_SCALE_HOLD_SECS")
                .ok()
                .map_or(0, |_| env_number("FACTLOG_BENCH_SCALE_HOLD_SECS", 600)),
            quiet_secs: match std::env::var("FACTLOG_BENCH_SCALE_QUIET_SECS") {
                Ok(v) if v.trim() == "0" => 0,
                _ => env_number("FACTLOG_BENCH_SCALE_QUIET_SECS", 60),
            },
            shared_buffers_mb: env_number(
                "FACTLOG_BENCH_SCALE_SHARED_BUFFERS_MB",
                factlog::db::production_shared_buffers_mb(),
            ),
        }
    }
}

/// The `factlog` binary run (a copy) and what it was built from.
struct Binary {
    path: PathBuf,
    description: String,
}

struct Bench {
    settings: Settings,
    /// The throw-away cluster, stopped when the bench ends.
    _cluster: EphemeralCluster,
    bin: PathBuf,
    bin_description: String,
    url: String,
    pool: PgPool,
    postmaster: Option<u32>,
    /// pgbench scripts and logs, child logs; gone with the run.
    scratch: tempfile::TempDir,
    pgbench: Pgbench,
    tokens: Tokens,
}

struct Tokens {
    reader: Arc<str>,
    auditor: Arc<str>,
    editors: Arc<Vec<String>>,
}

fn main() {
    init_logging();
    let settings = Settings::from_env();
    let built = find_server_binary();
    // A private copy: the target directory is shared, and a build made
    // while the bench runs must not change the binary between sizes.
    let bin_dir = tempfile::tempdir().expect("directory for the binary");
    let bin = bin_dir.path().join("factlog");
    std::fs::copy(&built, &bin).expect("copy the factlog binary");
    let bin = Binary {
        description: binary_description(&built),
        path: bin,
    };
    eprintln!(
        "starting a throw-away PostgreSQL cluster (fsync on, shared_buffers {} MB)...",
        settings.shared_buffers_mb
    );
    let cluster = EphemeralCluster::start_with(
        false,
        &[format!("shared_buffers={}MB", settings.shared_buffers_mb)],
    )
    .expect("start the ephemeral PostgreSQL cluster");
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    // Everything below runs in this future on the main thread: the children
    // it spawns (server, generator, rebuild, verify) get PR_SET_PDEATHSIG
    // from it, which is tied to the spawning thread.
    runtime.block_on(run(settings, cluster, bin));
}

/// Measures every size, then prints the report and writes it to
/// bench/results/ (before holding the cluster, when asked to).
async fn run(settings: Settings, cluster: EphemeralCluster, binary: Binary) {
    let bin = binary.path;
    let started = Instant::now();
    let (url, pool) = database(&cluster, DB_NAME, 8).await;
    sqlx::raw_sql(PGBENCH_SCHEMA)
        .execute(&pool)
        .await
        .expect("create the pgbench table");
    let control = format!(
        "CREATE TABLE bench_control (n integer PRIMARY KEY, doc jsonb NOT NULL); \
         INSERT INTO bench_control SELECT n, '{}'::jsonb FROM generate_series(1, {CONTROL_ROWS}) n; \
         ANALYZE bench_control;",
        PAYLOAD.replace('\'', "''")
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(control))
        .execute(&pool)
        .await
        .expect("create the control table");
    let scratch = tempfile::tempdir().expect("scratch directory");
    std::fs::write(scratch.path().join("single.sql"), single_insert_script())
        .expect("write a pgbench script");
    std::fs::write(
        scratch.path().join("control.sql"),
        format!("\\set n random(1, {CONTROL_ROWS})\nSELECT doc FROM bench_control WHERE n = :n;\n"),
    )
    .expect("write a pgbench script");
    let editors = editor_tokens(&bin, &url).await;
    let tokens = Tokens {
        reader: create_token(&bin, &url, "reader", "reader").await.into(),
        auditor: create_token(&bin, &url, "auditor", "auditor").await.into(),
        editors: Arc::new(editors),
    };
    let machine = machine_description(&pool).await;
    eprintln!("{machine}");
    let bench = Bench {
        postmaster: postmaster_pid(cluster.dir()),
        pgbench: Pgbench {
            scripts: scratch.path().to_owned(),
            port: cluster.port(),
            db: DB_NAME.into(),
        },
        settings,
        _cluster: cluster,
        bin,
        bin_description: binary.description,
        url,
        pool,
        scratch,
        tokens,
    };
    let mut results: Vec<SizeResult> = Vec::new();
    for (i, &size) in bench.settings.sizes.iter().enumerate() {
        let shape = results.first().map(|r| r.shape);
        results.push(measure_size(&bench, size, i as u64 + 1, shape).await);
    }
    let report = render(&bench, &machine, &results, started);
    write_report("scale", &report);
    if bench.settings.hold_secs > 0 {
        eprintln!(
            "holding the cluster for {} s (FACTLOG_BENCH_SCALE_HOLD_SECS): psql '{}'",
            bench.settings.hold_secs, bench.url
        );
        tokio::time::sleep(Duration::from_secs(bench.settings.hold_secs)).await;
    }
    bench.pool.close().await;
}

// ---------------------------------------------------------------------------
// One size: fill, maintenance commands, serve, reads, writes
// ---------------------------------------------------------------------------

struct ChildRun {
    secs: f64,
    peak_rss_kib: u64,
    cpu_secs: f64,
    /// Cores: this process with the command / PostgreSQL / anything else.
    cpu: CpuSplit,
    stdout: String,
    /// Seconds spent waiting for a quiet machine before it started.
    quiet_wait: f64,
}

impl ChildRun {
    /// Events per CPU second of the command and PostgreSQL together.
    fn per_cpu_sec(&self, events: i64) -> f64 {
        events as f64 / (self.cpu_secs + self.cpu.postgres_secs)
    }
}

struct ReadResult {
    name: String,
    goal: bool,
    load: Load,
    cpu: CpuSplit,
    quiet_wait: f64,
}

impl ReadResult {
    fn p50_p99(&self) -> (Duration, Duration) {
        let mut l = self.load.latencies.clone();
        percentiles(&mut l)
    }

    fn rate(&self) -> f64 {
        self.load.ok as f64 / self.load.elapsed.as_secs_f64().max(1e-9)
    }

    /// CPU time of the server and PostgreSQL per successful request:
    /// what a request costs, less sensitive to a busy machine than its
    /// latency.
    fn cpu_per_request(&self) -> f64 {
        (self.cpu.server_secs + self.cpu.postgres_secs) / self.load.ok.max(1) as f64
    }
}

struct AssertRound {
    http: Sample,
    http_errors: BTreeMap<u16, u64>,
    pgbench: Sample,
    others_share: f64,
}

struct SizeResult {
    target: u64,
    events: i64,
    fill_events: i64,
    fill: ChildRun,
    vacuum_secs: f64,
    rebuild: ChildRun,
    verify: ChildRun,
    verify_line: String,
    /// Seconds from the server's start until its verifier and projections
    /// had caught up.
    ready_secs: f64,
    facts: usize,
    /// What the first size set for every size to answer alike.
    shape: Shape,
    /// Contested facts at this size.
    contested: i64,
    /// Least and most claims of the busiest facts at this size.
    busiest_claims: (i64, i64),
    db_bytes: i64,
    events_bytes: i64,
    reads: Vec<ReadResult>,
    control: Sample,
    asserts: Vec<AssertRound>,
    server_peak_kib: u64,
    server_log: (usize, Vec<String>),
    /// A full pass of the chain verifier started during the measurements.
    full_pass_during: bool,
}

impl SizeResult {
    fn assert_ratio(&self) -> f64 {
        median(
            self.asserts
                .iter()
                .map(|r| r.http.rate / r.pgbench.rate)
                .collect(),
        )
    }

    fn assert_p99(&self) -> f64 {
        median(
            self.asserts
                .iter()
                .map(|r| r.http.p99.as_secs_f64())
                .collect(),
        )
    }
}

async fn measure_size(bench: &Bench, size: u64, seed: u64, shape: Option<Shape>) -> SizeResult {
    let pool = &bench.pool;
    let before = log_head(pool).await;
    let want = (size as i64 - before).max(1) as u64;
    eprintln!(
        "== {} events: appending {} with `factlog generate` (synchronous_commit off for the fill) ==",
        thousands(size),
        thousands(want)
    );
    set_synchronous_commit(pool, DB_NAME, false).await;
    let fill = run_child(
        bench,
        &[
            "generate",
            "--events",
            &want.to_string(),
            "--seed",
            &seed.to_string(),
        ],
        "info",
    )
    .await;
    set_synchronous_commit(pool, DB_NAME, true).await;
    let events = log_head(pool).await;
    let fill_events = events - before;
    eprintln!(
        "  {} events in {:.0} s ({}/s); log now {}",
        thousands(fill_events as u64),
        fill.secs,
        rate(fill_events as f64 / fill.secs),
        thousands(events as u64)
    );

    // Statistics and hint bits now, so that neither rebuild nor the reads
    // pay for the first visit to freshly written pages, and autovacuum has
    // nothing large left to do during the measurements.
    eprintln!("  VACUUM ANALYZE...");
    let t = Instant::now();
    sqlx::raw_sql("VACUUM ANALYZE")
        .execute(pool)
        .await
        .expect("VACUUM ANALYZE");
    let vacuum_secs = t.elapsed().as_secs_f64();
    checkpoint(pool).await;

    eprintln!("  factlog rebuild...");
    let rebuild = run_child(bench, &["rebuild"], "info").await;
    eprintln!(
        "  rebuild: {:.1} s ({}/s), peak RSS {:.0} MB",
        rebuild.secs,
        rate(events as f64 / rebuild.secs),
        kib_mb(rebuild.peak_rss_kib)
    );
    checkpoint(pool).await;
    eprintln!("  factlog verify...");
    let verify = run_child(bench, &["verify"], "warn").await;
    let verify_line = verify.stdout.trim().to_owned();
    assert!(
        verify_line.starts_with("ok:"),
        "factlog verify did not find the chain intact: {verify_line}"
    );
    eprintln!(
        "  verify: {:.1} s ({}/s), peak RSS {:.0} MB",
        verify.secs,
        rate(events as f64 / verify.secs),
        kib_mb(verify.peak_rss_kib)
    );
    let (db_bytes, events_bytes): (i64, i64) = sqlx::query_as(
        "SELECT pg_database_size(current_database()), pg_total_relation_size('events')",
    )
    .fetch_one(pool)
    .await
    .expect("database size");

    let server = Server::start(&bench.bin, &bench.url, &[VERIFY_DAILY]).await;
    let t = Instant::now();
    wait_until_verified(&server, &bench.tokens.auditor).await;
    drain_projections(pool, SETTLE_LIMIT).await;
    let ready_secs = t.elapsed().as_secs_f64();
    eprintln!("  server ready, verifier caught up after {ready_secs:.1} s");
    let targets = Targets::load(pool, shape).await;
    let live = Live {
        bench,
        server: &server,
        authority: server.authority.clone().into(),
        targets: Arc::new(targets),
    };

    let passes_before = full_passes_started(pool).await;
    let mut reads = Vec::new();
    for spec in read_specs() {
        reads.push(measure_read(&live, &spec).await);
    }
    eprintln!("  control: pgbench primary-key SELECT on a fixed {CONTROL_ROWS}-row table");
    settle(pool, SETTLE_LIMIT).await;
    wait_for_quiet(bench, Some(server.pid())).await;
    let control = bench
        .pgbench
        .run(
            "control.sql",
            bench.settings.conns,
            Duration::from_secs(bench.settings.secs),
            &["-M", "prepared"],
        )
        .await;
    eprintln!(
        "  control: {} tps, p99 {}",
        rate(control.rate),
        ms_fmt(control.p99)
    );
    let asserts = measure_asserts(&live).await;
    let full_pass_during = full_passes_started(pool).await != passes_before;
    let server_peak_kib = server.memory().hwm_kib;
    let server_log = server.log_summary();
    let facts = live.targets.facts.len();
    let shape = live.targets.shape();
    let contested = live.targets.contested;
    let busiest_claims = claim_range(&live.targets.busiest);
    drop(live);
    drop(server);
    SizeResult {
        target: size,
        events,
        fill_events,
        fill,
        vacuum_secs,
        rebuild,
        verify,
        verify_line,
        ready_secs,
        facts,
        shape,
        contested,
        busiest_claims,
        db_bytes,
        events_bytes,
        reads,
        control,
        asserts,
        server_peak_kib,
        server_log,
        full_pass_during,
    }
}

/// When the chain verifier's latest full pass started.
async fn full_passes_started(pool: &PgPool) -> Option<DateTime<Utc>> {
    sqlx::query_scalar("SELECT full_started_at FROM chain_verification")
        .fetch_one(pool)
        .await
        .expect("the verifier's state")
}

/// Runs `factlog <args>` against the bench database and waits for it with
/// `wait4`, which gives its peak RSS and CPU time. Its log goes to stderr.
async fn run_child(bench: &Bench, args: &[&str], log_level: &str) -> ChildRun {
    let out_path = bench.scratch.path().join("child.out");
    let out = std::fs::File::create(&out_path).expect("child output file");
    let mut cmd = std::process::Command::new(&bench.bin);
    cmd.args(args)
        .env("DATABASE_URL", &bench.url)
        .env("RUST_LOG", log_level)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::inherit());
    // The fill is not measured against anything: no need to wait for it.
    let quiet_wait = if args.first() == Some(&"generate") {
        0.0
    } else {
        wait_for_quiet(bench, None).await
    };
    let cpu_before = CpuSnapshot::take(bench.postmaster, None);
    let run = run_waited(cmd).await;
    let cpu = CpuSnapshot::take(bench.postmaster, None).since(&cpu_before);
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(
        run.success(),
        "factlog {} failed (wait status {}):\n{stdout}",
        args.join(" "),
        run.status
    );
    ChildRun {
        secs: run.secs,
        peak_rss_kib: run.peak_rss_kib,
        cpu_secs: run.cpu_secs,
        cpu,
        stdout,
        quiet_wait,
    }
}

/// Waits until anything but the benchmark uses less than [`QUIET_SHARE`] of
/// the machine over [`QUIET_SAMPLE`], or `FACTLOG_BENCH_SCALE_QUIET_SECS`
/// have passed; returns the seconds waited. Others' builds and tests come
/// and go on a shared machine; a measurement made in a quiet spell says
/// more about the code.
async fn wait_for_quiet(bench: &Bench, server: Option<u32>) -> f64 {
    let limit = bench.settings.quiet_secs;
    if limit == 0 {
        return 0.0;
    }
    let start = Instant::now();
    loop {
        let before = CpuSnapshot::take(bench.postmaster, server);
        tokio::time::sleep(QUIET_SAMPLE).await;
        let share = CpuSnapshot::take(bench.postmaster, server)
            .since(&before)
            .others_share;
        if share < QUIET_SHARE || start.elapsed() >= Duration::from_secs(limit) {
            return start.elapsed().as_secs_f64();
        }
    }
}

// ---------------------------------------------------------------------------
// What the reads address, taken from the database
// ---------------------------------------------------------------------------

struct BusyFact {
    id: Uuid,
    claims: i64,
    /// The position half-way through its history: a cursor for a later page.
    middle: i64,
}

/// A range of positions and the record times at its ends.
#[derive(Clone, Copy)]
struct Window {
    from: i64,
    to: i64,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
}

/// What the first size sets so that every later size answers requests of
/// the same size: a read compared between sizes must differ only in the
/// log it searches, not in the answer it returns.
#[derive(Clone, Copy)]
struct Shape {
    /// Least and most claims of the facts whose history is compared.
    history_claims: (i64, i64),
    /// The contested listing's page: full at every size (the first size
    /// may have fewer contested facts than [`PAGE`]).
    contested_page: i64,
}

struct Targets {
    head: i64,
    /// Contested facts at this size.
    contested: i64,
    contested_page: i64,
    facts: Vec<Uuid>,
    /// Facts with as many claims as the first size's busiest (the same
    /// range of claim counts at every size), whose history pages are
    /// compared between sizes.
    matched: Vec<BusyFact>,
    /// The facts with the most claims at this size.
    busiest: Vec<BusyFact>,
    stories: Vec<Uuid>,
    /// Claims read by id.
    claims: Vec<Uuid>,
    /// `subject=…&property=…` of facts, their keys as stored.
    subjects: Vec<String>,
    /// The latest checkpoint's tree size: what proofs are asked within.
    tree_size: i64,
    /// From a recent time to the head.
    recent: Window,
    /// From near the log's start to the head.
    old: Window,
    /// The middle half of the log.
    middle: Window,
}

impl Targets {
    /// `shape`: `None` at the first size, which sets it.
    async fn load(pool: &PgPool, shape: Option<Shape>) -> Targets {
        let head = log_head(pool).await;
        let facts: Vec<Uuid> = sqlx::query_scalar("SELECT fact_id FROM facts_view")
            .fetch_all(pool)
            .await
            .expect("fact ids");
        assert!(!facts.is_empty(), "no facts to read");
        let busiest = busy_facts(pool, ANY_COUNT).await;
        let matched = match shape {
            None => busy_facts(pool, ANY_COUNT).await,
            Some(s) => busy_facts(pool, s.history_claims).await,
        };
        let contested: i64 =
            sqlx::query_scalar("SELECT count(*) FROM facts_view WHERE status = 'contested'")
                .fetch_one(pool)
                .await
                .expect("contested facts");
        let contested_page =
            shape.map_or_else(|| contested.clamp(1, i64::from(PAGE)), |s| s.contested_page);
        let stories: Vec<Uuid> = sqlx::query_scalar(
            "SELECT story_id FROM (SELECT DISTINCT story_id FROM claim_versions \
             WHERE recorded_to IS NULL) s ORDER BY random() LIMIT $1",
        )
        .bind(STORY_SAMPLE)
        .fetch_all(pool)
        .await
        .expect("story ids");
        let claims: Vec<Uuid> = sqlx::query_scalar(
            "SELECT claim_id FROM claim_versions WHERE to_position IS NULL \
             ORDER BY random() LIMIT $1",
        )
        .bind(STORY_SAMPLE)
        .fetch_all(pool)
        .await
        .expect("claim ids");
        let keys: Vec<(String, String)> = sqlx::query_as(
            "SELECT subject_key, property_key FROM facts_view ORDER BY random() LIMIT $1",
        )
        .bind(STORY_SAMPLE)
        .fetch_all(pool)
        .await
        .expect("fact keys");
        let subjects = keys
            .iter()
            .map(|(s, p)| {
                serde_urlencoded::to_string([("subject", s), ("property", p)])
                    .expect("a query string")
            })
            .collect();
        let tree_size = latest_checkpoint(pool).await;
        let recent_from = (head - 20_000).max(head / 2).max(1);
        let recent = Window::between(pool, recent_from, head).await;
        let old = Window::between(pool, 1_000.min(head / 100).max(1), head).await;
        let middle = Window::between(pool, head / 4, head * 3 / 4).await;
        Targets {
            head,
            contested,
            contested_page,
            facts,
            matched,
            busiest,
            stories,
            claims,
            subjects,
            tree_size,
            recent,
            old,
            middle,
        }
    }
}

/// The latest checkpoint's size, waiting for the server's signer to sign
/// one over the log it found (within a few seconds of its start).
async fn latest_checkpoint(pool: &PgPool) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let size: Option<i64> = sqlx::query_scalar("SELECT max(size) FROM checkpoints")
            .fetch_one(pool)
            .await
            .expect("the latest checkpoint");
        match size {
            Some(n) if n > 0 => return n,
            _ if Instant::now() > deadline => panic!("no checkpoint signed within 60 s"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Every claim count (bounded, so that the ordering's arithmetic cannot overflow).
const ANY_COUNT: (i64, i64) = (1, 1 << 40);

/// The [`BUSY_FACTS`] facts with the most claims within `claims` (a range
/// of counts), or when too few are, those nearest it, each with a cursor
/// half-way through its history.
async fn busy_facts(pool: &PgPool, claims: (i64, i64)) -> Vec<BusyFact> {
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT fact_id, count(*) FROM claim_versions WHERE to_position IS NULL \
         GROUP BY fact_id \
         ORDER BY CASE WHEN count(*) BETWEEN $1 AND $2 THEN -count(*) \
                       ELSE greatest($1 - count(*), count(*) - $2) + $2 END, fact_id \
         LIMIT $3",
    )
    .bind(claims.0)
    .bind(claims.1)
    .bind(BUSY_FACTS)
    .fetch_all(pool)
    .await
    .expect("facts with the most claims");
    let mut out = Vec::new();
    for (id, claims) in rows {
        let positions: Vec<i64> = sqlx::query_scalar(
            "SELECT e.position FROM claim_versions v \
             JOIN events e ON e.stream = 'claim-' || v.claim_id::text \
             WHERE v.fact_id = $1 AND v.to_position IS NULL ORDER BY e.position",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .expect("a fact's history");
        out.push(BusyFact {
            id,
            claims,
            middle: positions.get(positions.len() / 2).copied().unwrap_or(0),
        });
    }
    out
}

impl Targets {
    /// A position at least a page before the head: where a page starts.
    fn random_after(&self, r: u64) -> u64 {
        r % (self.head - PAGE as i64).max(1) as u64
    }

    fn shape(&self) -> Shape {
        Shape {
            history_claims: claim_range(&self.matched),
            contested_page: self.contested_page,
        }
    }
}

fn claim_range(facts: &[BusyFact]) -> (i64, i64) {
    (
        facts.iter().map(|f| f.claims).min().unwrap_or(0),
        facts.iter().map(|f| f.claims).max().unwrap_or(0),
    )
}

impl Window {
    async fn between(pool: &PgPool, from: i64, to: i64) -> Window {
        let at = |p: i64| async move {
            sqlx::query_scalar::<_, DateTime<Utc>>(
                "SELECT recorded_at FROM events WHERE position = $1",
            )
            .bind(p)
            .fetch_one(pool)
            .await
            .expect("an event's record time")
        };
        Window {
            from,
            to,
            since: at(from).await,
            until: at(to).await,
        }
    }

    /// A position in the later half of the window, at least a page before
    /// its end: a deep cursor.
    fn deep(&self, r: u64) -> i64 {
        let lo = self.from + (self.to - self.from) / 2;
        let hi = (self.to - 2 * PAGE as i64).max(lo + 1);
        lo + (r % (hi - lo) as u64) as i64
    }
}

fn time_param(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn pick<T>(list: &[T], r: u64) -> &T {
    &list[(r % list.len() as u64) as usize]
}

// ---------------------------------------------------------------------------
// The reads
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Role {
    Reader,
    Auditor,
}

type PathFn = fn(&Targets, u64) -> String;

struct ReadSpec {
    name: &'static str,
    role: Role,
    path: PathFn,
    /// Whether the goal applies (the busiest facts' history does not: at
    /// a larger size they have more claims, which is not the log's size).
    goal: bool,
    /// The `Accept` header, when not JSON.
    accept: Option<&'static str>,
}

fn audit_path(filter: &str, cursor: Option<i64>) -> String {
    let mut p = format!("/v1/audit?limit={PAGE}");
    if !filter.is_empty() {
        p.push('&');
        p.push_str(filter);
    }
    if let Some(c) = cursor {
        let _ = write!(p, "&cursor={c}");
    }
    p
}

fn actor(r: u64) -> &'static str {
    GENERATED_ACTORS[((r >> 7) % GENERATED_ACTORS.len() as u64) as usize]
}

/// Every read measured, in order. Each request draws its own ids, actors
/// and cursors at random from [`Targets`].
fn read_specs() -> Vec<ReadSpec> {
    use Role::{Auditor, Reader};
    vec![
        ReadSpec {
            name: "GET /v1/facts/{id}",
            role: Reader,
            path: |t, r| format!("/v1/facts/{}", pick(&t.facts, r)),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/facts/{id}/history, first page",
            role: Reader,
            path: |t, r| format!("/v1/facts/{}/history?limit={PAGE}", pick(&t.matched, r).id),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/facts/{id}/history, cursor half-way",
            role: Reader,
            path: |t, r| {
                let f = pick(&t.matched, r);
                format!(
                    "/v1/facts/{}/history?limit={PAGE}&cursor={}",
                    f.id, f.middle
                )
            },
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/facts/{id}/history, busiest facts at this size, first page",
            role: Reader,
            path: |t, r| format!("/v1/facts/{}/history?limit={PAGE}", pick(&t.busiest, r).id),
            goal: false,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/claims (no filter)",
            role: Reader,
            path: |_, _| format!("/v1/claims?limit={PAGE}"),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/claims?status=pending",
            role: Reader,
            path: |_, _| format!("/v1/claims?status=pending&limit={PAGE}"),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/claims?status=verified",
            role: Reader,
            path: |_, _| format!("/v1/claims?status=verified&limit={PAGE}"),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/claims?story_id=",
            role: Reader,
            path: |t, r| format!("/v1/claims?story_id={}&limit={PAGE}", pick(&t.stories, r)),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/claims?asserted_by=",
            role: Reader,
            path: |_, r| format!("/v1/claims?asserted_by={}&limit={PAGE}", actor(r)),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/audit (no filter)",
            role: Auditor,
            path: |_, _| audit_path("", None),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/audit (no filter), deep cursor",
            role: Auditor,
            path: |t, r| audit_path("", Some(t.old.deep(r))),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/audit?actor=",
            role: Auditor,
            path: |_, r| audit_path(&format!("actor={}", actor(r)), None),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/audit?actor=, deep cursor",
            role: Auditor,
            path: |t, r| audit_path(&format!("actor={}", actor(r)), Some(t.old.deep(r))),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/audit?since= (recent)",
            role: Auditor,
            path: |t, _| audit_path(&format!("since={}", time_param(t.recent.since)), None),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/audit?since= (recent), deep cursor",
            role: Auditor,
            path: |t, r| {
                audit_path(
                    &format!("since={}", time_param(t.recent.since)),
                    Some(t.recent.deep(r)),
                )
            },
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/audit?since= (old)",
            role: Auditor,
            path: |t, _| audit_path(&format!("since={}", time_param(t.old.since)), None),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/audit?since= (old), deep cursor",
            role: Auditor,
            path: |t, r| {
                audit_path(
                    &format!("since={}", time_param(t.old.since)),
                    Some(t.old.deep(r)),
                )
            },
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/audit?actor=&since=&until=",
            role: Auditor,
            path: |t, r| {
                audit_path(
                    &format!(
                        "actor={}&since={}&until={}",
                        actor(r),
                        time_param(t.middle.since),
                        time_param(t.middle.until)
                    ),
                    None,
                )
            },
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/audit?actor=&since=&until=, deep cursor",
            role: Auditor,
            path: |t, r| {
                audit_path(
                    &format!(
                        "actor={}&since={}&until={}",
                        actor(r),
                        time_param(t.middle.since),
                        time_param(t.middle.until)
                    ),
                    Some(t.middle.deep(r)),
                )
            },
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/events?after=<random>",
            role: Auditor,
            path: |t, r| format!("/v1/events?after={}&limit={PAGE}", t.random_after(r)),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/facts?status=contested",
            role: Reader,
            path: |t, _| format!("/v1/facts?status=contested&limit={}", t.contested_page),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/facts?subject=&property=",
            role: Reader,
            path: |t, r| format!("/v1/facts?{}&limit={PAGE}", pick(&t.subjects, r)),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/facts/{id}?as_of= (recent)",
            role: Reader,
            path: |t, r| {
                format!(
                    "/v1/facts/{}?as_of={}",
                    pick(&t.facts, r),
                    time_param(t.recent.since)
                )
            },
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/facts/{id}?valid_at=2018-06-30",
            role: Reader,
            path: |t, r| format!("/v1/facts/{}?valid_at=2018-06-30", pick(&t.facts, r)),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/facts/{id}, Accept: application/ld+json (ClaimReview)",
            role: Reader,
            path: |t, r| format!("/v1/facts/{}", pick(&t.facts, r)),
            goal: true,
            accept: Some("application/ld+json"),
        },
        ReadSpec {
            name: "GET /v1/facts?status=contested, Accept: text/csv",
            role: Reader,
            path: |t, _| format!("/v1/facts?status=contested&limit={}", t.contested_page),
            goal: true,
            accept: Some("text/csv"),
        },
        ReadSpec {
            name: "GET /v1/claims/{id}",
            role: Reader,
            path: |t, r| format!("/v1/claims/{}", pick(&t.claims, r)),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/claims?status=pending, Accept: text/csv",
            role: Reader,
            path: |_, _| format!("/v1/claims?status=pending&limit={PAGE}"),
            goal: true,
            accept: Some("text/csv"),
        },
        ReadSpec {
            name: "GET /v1/stories/{id}",
            role: Reader,
            path: |t, r| format!("/v1/stories/{}", pick(&t.stories, r)),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/stories/{id}/claimreview",
            role: Reader,
            path: |t, r| format!("/v1/stories/{}/claimreview", pick(&t.stories, r)),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/claimreview?since= (recent)",
            role: Reader,
            path: |t, _| format!("/v1/claimreview?since={}", time_param(t.recent.since)),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/facts/changes?after=<random>",
            role: Reader,
            path: |t, r| format!("/v1/facts/changes?after={}&limit={PAGE}", t.random_after(r)),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/checkpoint",
            role: Reader,
            path: |_, _| "/v1/checkpoint".into(),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/checkpoints?size=<random>",
            role: Reader,
            path: |t, r| format!("/v1/checkpoints?size={}", 1 + r % t.tree_size as u64),
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/proofs/inclusion?position=<random>",
            role: Reader,
            path: |t, r| {
                format!(
                    "/v1/proofs/inclusion?position={}",
                    1 + r % t.tree_size as u64
                )
            },
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/proofs/consistency?from=<random>&to=<latest>",
            role: Reader,
            path: |t, r| {
                format!(
                    "/v1/proofs/consistency?from={}&to={}",
                    1 + r % t.tree_size as u64,
                    t.tree_size
                )
            },
            goal: true,
            accept: None,
        },
        ReadSpec {
            name: "GET /v1/integrity",
            role: Auditor,
            path: |_, _| "/v1/integrity".into(),
            goal: true,
            accept: None,
        },
    ]
}

struct Live<'a> {
    bench: &'a Bench,
    server: &'a Server,
    authority: Arc<str>,
    targets: Arc<Targets>,
}

impl Live<'_> {
    fn cpu(&self) -> CpuSnapshot {
        CpuSnapshot::take(self.bench.postmaster, Some(self.server.pid()))
    }
}

async fn measure_read(live: &Live<'_>, spec: &ReadSpec) -> ReadResult {
    let token: Arc<str> = match spec.role {
        Role::Reader => live.bench.tokens.reader.clone(),
        Role::Auditor => live.bench.tokens.auditor.clone(),
    };
    let targets = live.targets.clone();
    let authority = live.authority.clone();
    let path = spec.path;
    let accept = spec.accept;
    let op = Op::new(live.authority.clone(), move |i| {
        let p = path(&targets, mix(i ^ 0x5ca1e));
        let mut request = client::request(&authority, Method::GET, &p, &token, None);
        if let Some(a) = accept {
            request.headers_mut().insert(
                hyper::header::ACCEPT,
                hyper::header::HeaderValue::from_static(a),
            );
        }
        Some(request)
    });
    let s = &live.bench.settings;
    settle(&live.bench.pool, SETTLE_LIMIT).await;
    let quiet_wait = wait_for_quiet(live.bench, Some(live.server.pid())).await;
    // Warm-up: connections, the server's statement cache, the pages read.
    closed_loop(s.conns, Duration::from_secs(1), NO_LIMIT, op.clone()).await;
    let before = live.cpu();
    let mut load = closed_loop(s.conns, Duration::from_secs(s.secs), NO_LIMIT, op).await;
    let cpu = live.cpu().since(&before);
    let sample = load.sample();
    eprintln!(
        "  {:<52} {:>7} req/s  p50 {}  p99 {}{}  others' CPU {:.0}%",
        spec.name,
        rate(sample.rate),
        ms_fmt(sample.p50),
        ms_fmt(sample.p99),
        if load.errors.is_empty() {
            String::new()
        } else {
            format!("  non-2xx {}", status_counts(&load.errors))
        },
        cpu.others_share * 100.0
    );
    ReadResult {
        name: spec.name.to_owned(),
        goal: spec.goal,
        load,
        cpu,
        quiet_wait,
    }
}

// ---------------------------------------------------------------------------
// Asserts against pgbench
// ---------------------------------------------------------------------------

fn assert_op(live: &Live<'_>) -> Op {
    harness::assert_op(
        live.authority.clone(),
        live.bench.tokens.editors.clone(),
        live.targets.stories[0].to_string().into(),
        live.targets.facts.len() as u64,
    )
}

async fn measure_asserts(live: &Live<'_>) -> Vec<AssertRound> {
    let s = &live.bench.settings;
    let d = Duration::from_secs(s.write_secs);
    let pool = &live.bench.pool;
    eprintln!("  warming up the asserts...");
    closed_loop(8, Duration::from_secs(1), NO_LIMIT, assert_op(live)).await;
    live.bench
        .pgbench
        .run("single.sql", 8, Duration::from_secs(1), &[])
        .await;
    let mut rounds = Vec::new();
    for round in 0..s.rounds {
        let before = live.cpu();
        let mut http = None;
        let mut pg = None;
        for side in 0..2 {
            settle(pool, SETTLE_LIMIT).await;
            wait_for_quiet(live.bench, Some(live.server.pid())).await;
            if (side == 0) == round.is_multiple_of(2) {
                http = Some(closed_loop(WRITE_CONNECTIONS, d, NO_LIMIT, assert_op(live)).await);
            } else {
                pg = Some(
                    live.bench
                        .pgbench
                        .run("single.sql", WRITE_CONNECTIONS, d, &[])
                        .await,
                );
            }
        }
        let mut http = http.expect("the HTTP side ran");
        let r = AssertRound {
            http: http.sample(),
            http_errors: std::mem::take(&mut http.errors),
            pgbench: pg.expect("the pgbench side ran"),
            others_share: live.cpu().since(&before).others_share,
        };
        eprintln!(
            "  round {} | POST /v1/claims, {WRITE_CONNECTIONS} connections | factlog {} req/s p99 {} | pgbench {} tps | ratio {:.2} | others' CPU {:.0}%",
            round + 1,
            rate(r.http.rate),
            ms_fmt(r.http.p99),
            rate(r.pgbench.rate),
            r.http.rate / r.pgbench.rate,
            r.others_share * 100.0
        );
        rounds.push(r);
    }
    drain_projections(pool, SETTLE_LIMIT).await;
    rounds
}

// ---------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------

fn size_label(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        thousands(n)
    }
}

/// How a row's figure is judged against the smallest size.
enum Goal {
    /// At most this many times the first size's figure.
    AtMost(f64),
    /// At least this many times the first size's figure.
    AtLeast(f64),
    None,
}

struct Row {
    name: String,
    values: Vec<f64>,
    show: fn(f64) -> String,
    goal: Goal,
    /// Reads only: p50 and server + PostgreSQL CPU per request at each size.
    context: Option<(Vec<f64>, Vec<f64>)>,
}

fn ms_value(secs: f64) -> String {
    format!("{:.2} ms", secs * 1e3)
}

fn rate_value(v: f64) -> String {
    format!("{}/s", rate(v))
}

fn mb_value(v: f64) -> String {
    format!("{v:.0} MB")
}

fn ratio_value(v: f64) -> String {
    format!("{v:.2}x")
}

fn secs_value(v: f64) -> String {
    format!("{v:.0} s")
}

/// `a → b (b/a)` for a context column.
fn trend(values: &[f64]) -> String {
    let shown: Vec<String> = values.iter().map(|v| format!("{:.2}", v * 1e3)).collect();
    let ratio = values.last().copied().unwrap_or(f64::NAN) / values[0];
    format!("{} ms ({ratio:.2})", shown.join(" → "))
}

fn summary_rows(results: &[SizeResult], conns: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    let first = &results[0];
    let rebuild = |s: &SizeResult| s.events as f64 / s.rebuild.secs;
    let verify = |s: &SizeResult| s.events as f64 / s.verify.secs;
    for (i, r) in first.reads.iter().enumerate() {
        fn at(s: &SizeResult, i: usize) -> &ReadResult {
            &s.reads[i]
        }
        rows.push(Row {
            name: format!("{}, p99", r.name),
            values: results
                .iter()
                .map(|s| at(s, i).p50_p99().1.as_secs_f64())
                .collect(),
            show: ms_value,
            goal: if r.goal {
                Goal::AtMost(REQUEST_GOAL)
            } else {
                Goal::None
            },
            context: Some((
                results
                    .iter()
                    .map(|s| at(s, i).p50_p99().0.as_secs_f64())
                    .collect(),
                results.iter().map(|s| at(s, i).cpu_per_request()).collect(),
            )),
        });
    }
    let plain = |name: String, values: Vec<f64>, show: fn(f64) -> String, goal: Goal| Row {
        name,
        values,
        show,
        goal,
        context: None,
    };
    rows.push(plain(
        format!(
            "POST /v1/claims, {WRITE_CONNECTIONS} connections: factlog / pgbench single-row INSERT"
        ),
        results.iter().map(SizeResult::assert_ratio).collect(),
        ratio_value,
        Goal::AtLeast(1.0 / REQUEST_GOAL),
    ));
    rows.push(plain(
        format!("POST /v1/claims, {WRITE_CONNECTIONS} connections, p99"),
        results.iter().map(SizeResult::assert_p99).collect(),
        ms_value,
        Goal::AtMost(REQUEST_GOAL),
    ));
    rows.push(plain(
        "`factlog rebuild` (all projections), events/s".into(),
        results.iter().map(rebuild).collect(),
        rate_value,
        Goal::AtLeast(RATE_GOAL),
    ));
    rows.push(plain(
        "`factlog verify`, events/s".into(),
        results.iter().map(verify).collect(),
        rate_value,
        Goal::AtLeast(RATE_GOAL),
    ));
    rows.push(plain(
        "`factlog rebuild`, events per CPU second (rebuild + PostgreSQL)".into(),
        results
            .iter()
            .map(|s| s.rebuild.per_cpu_sec(s.events))
            .collect(),
        rate_value,
        Goal::None,
    ));
    rows.push(plain(
        "`factlog verify`, events per CPU second (verify + PostgreSQL)".into(),
        results
            .iter()
            .map(|s| s.verify.per_cpu_sec(s.events))
            .collect(),
        rate_value,
        Goal::None,
    ));
    rows.push(plain(
        "`factlog rebuild`, peak RSS".into(),
        results
            .iter()
            .map(|s| kib_mb(s.rebuild.peak_rss_kib))
            .collect(),
        mb_value,
        Goal::None,
    ));
    rows.push(plain(
        "`factlog verify`, peak RSS".into(),
        results
            .iter()
            .map(|s| kib_mb(s.verify.peak_rss_kib))
            .collect(),
        mb_value,
        Goal::None,
    ));
    rows.push(plain(
        "`factlog serve`, peak RSS over the size's measurements".into(),
        results.iter().map(|s| kib_mb(s.server_peak_kib)).collect(),
        mb_value,
        Goal::None,
    ));
    rows.push(plain(
        format!("control: pgbench primary-key SELECT on a fixed table, {conns} clients, tps"),
        results.iter().map(|s| s.control.rate).collect(),
        rate_value,
        Goal::None,
    ));
    rows.push(plain(
        format!(
            "control: pgbench single-row INSERT, {WRITE_CONNECTIONS} clients, tps (median of rounds)"
        ),
        results
            .iter()
            .map(|s| median(s.asserts.iter().map(|r| r.pgbench.rate).collect()))
            .collect(),
        rate_value,
        Goal::None,
    ));
    rows.push(plain(
        "fill (`factlog generate`, synchronous_commit off), events/s".into(),
        results
            .iter()
            .map(|s| s.fill_events as f64 / s.fill.secs)
            .collect(),
        rate_value,
        Goal::None,
    ));
    rows.push(plain(
        "`factlog serve` start until its chain verifier had caught up".into(),
        results.iter().map(|s| s.ready_secs).collect(),
        secs_value,
        Goal::None,
    ));
    rows
}

fn render(bench: &Bench, machine: &str, results: &[SizeResult], started: Instant) -> String {
    let s = &bench.settings;
    let labels: Vec<String> = results.iter().map(|r| size_label(r.target)).collect();
    let first = labels.first().cloned().unwrap_or_default();
    let last = labels.last().cloned().unwrap_or_default();
    let mut out = report_head(
        "scale",
        &format!("factlog scale benchmark ({})", labels.join(" and ")),
        machine,
        &format!("{:.0} min", started.elapsed().as_secs_f64() / 60.0),
    );
    let _ = writeln!(
        out,
        "Binary: {}. `factlog serve` runs as a subprocess with `FACTLOG_RATE_LIMIT=0`, \
         `FACTLOG_VERIFY_EVERY_MINUTES={VERIFY_EVERY_MINUTES}` (so that the verifier's hourly \
         full pass over the log cannot land in a measurement) and defaults otherwise; the load generator (hyper, one keep-alive connection per \
         simulated client) runs in the bench process on the same machine.\n",
        bench.bin_description
    );
    let _ = writeln!(
        out,
        "Method: one database, grown from size to size by `factlog generate` (seeds 1, 2, …; \
         `synchronous_commit = off` for the fill only, through `ALTER DATABASE`; everything \
         measured runs with the defaults). After each fill: `VACUUM ANALYZE`, `factlog \
         rebuild` (all projections from the whole log) and `factlog verify` as child processes \
         (wall time; peak RSS and CPU time from `wait4`), then `factlog serve` until `GET \
         /v1/integrity` reports `unverified` 0 and its start-up full pass has finished. Each \
         read: {} connections, closed loop, from a checkpoint, after waiting up to {} s for a \
         quiet machine (others below {:.0}% of it over {} s; so do the control, each side of \
         each assert pair, `rebuild` and `verify`), 1 s warm-up then {} s; ids, \
         actors, stories and cursors drawn at random per request from the database (fact ids \
         from `facts_view`; {STORY_SAMPLE} random stories; the six generated editors as \
         actors; deep cursors in the later half of the filter's range of positions). History: \
         the {BUSY_FACTS} facts with the most claims at {first}, and at every other size the \
         {BUSY_FACTS} with the most claims within the same range of claim counts, so that the \
         pages compared belong to facts of the same size; the busiest facts at each size are \
         shown too, without a goal (the generator gives old facts more claims as the log \
         grows). Asserts: `POST /v1/claims` at {WRITE_CONNECTIONS} connections about the \
         generated facts, and pgbench's single-row INSERT (bench/common.rs) at \
         {WRITE_CONNECTIONS} clients, {} s each, {} round(s), alternating which goes first; \
         medians. Pages are {PAGE} items, except the contested facts' listing: its page is as \
         many as {first} has ({}), so that every size lists as many. PostgreSQL: \
         `shared_buffers` {} MB (as the private cluster is made: a quarter of the RAM, at most \
         8 GiB; `FACTLOG_BENCH_SCALE_SHARED_BUFFERS_MB`), defaults otherwise.\n",
        s.conns,
        s.quiet_secs,
        QUIET_SHARE * 100.0,
        QUIET_SAMPLE.as_secs(),
        s.secs,
        s.write_secs,
        s.rounds,
        results.first().map_or(0, |r| r.shape.contested_page),
        s.shared_buffers_mb,
    );
    let _ = writeln!(
        out,
        "Goals: every per-request figure at {last} within {REQUEST_GOAL}x of its {first} figure \
         (p99 at most {REQUEST_GOAL}x; the asserts' ratio to pgbench at least 1/{REQUEST_GOAL}); \
         `verify` and `rebuild` rates at {last} at least {RATE_GOAL}x of {first}. The last two \
         columns give context for the reads: p50, and the CPU time the server and PostgreSQL \
         spent per request (less sensitive than latency to a busy machine). Rows without a goal \
         are there to read the others by; the two pgbench controls show whether the machine \
         itself changed speed between the sizes.\n"
    );
    let _ = write!(out, "| measurement |");
    for l in &labels {
        let _ = write!(out, " {l} |");
    }
    let _ = writeln!(
        out,
        " {last}/{first} | goal | met? | p50 ({last}/{first}) | server + PG CPU per request ({last}/{first}) |"
    );
    let _ = writeln!(
        out,
        "|---|{}---:|---|---|---:|---:|",
        "---:|".repeat(labels.len())
    );
    let mut missed = Vec::new();
    for row in summary_rows(results, s.conns) {
        let a = row.values.first().copied().unwrap_or(f64::NAN);
        let b = row.values.last().copied().unwrap_or(f64::NAN);
        let ratio = b / a;
        let (goal, ok) = match row.goal {
            Goal::AtMost(x) => (format!("≤ {x}x"), Some(ratio <= x)),
            Goal::AtLeast(x) => (format!("≥ {x:.2}x"), Some(ratio >= x)),
            Goal::None => ("—".into(), None),
        };
        if ok == Some(false) {
            missed.push(row.name.clone());
        }
        let _ = write!(out, "| {} |", row.name);
        for v in &row.values {
            let _ = write!(out, " {} |", (row.show)(*v));
        }
        let (p50, cpu) = match &row.context {
            Some((p50, cpu)) => (trend(p50), trend(cpu)),
            None => ("—".into(), "—".into()),
        };
        let _ = writeln!(
            out,
            " {ratio:.2} | {goal} | {} | {p50} | {cpu} |",
            goal_mark(ok)
        );
    }
    let _ = writeln!(out, "\n{}", goals_line(&missed));
    for r in results {
        render_size(&mut out, s, r);
    }
    out
}

fn render_size(out: &mut String, s: &Settings, r: &SizeResult) {
    let _ = writeln!(
        out,
        "\n### {} events (log head {})\n",
        size_label(r.target),
        thousands(r.events as u64)
    );
    let _ = writeln!(
        out,
        "Database {:.0} MB, `events` {:.0} MB with its indexes; {} facts; history read of \
         {BUSY_FACTS} facts with {} to {} claims (the busiest: {} to {}); {} contested facts, \
         listed {} a page. `factlog verify`: {}\n",
        r.db_bytes as f64 / MB,
        r.events_bytes as f64 / MB,
        thousands(r.facts as u64),
        r.shape.history_claims.0,
        r.shape.history_claims.1,
        r.busiest_claims.0,
        r.busiest_claims.1,
        thousands(r.contested as u64),
        r.shape.contested_page,
        r.verify_line
    );
    let _ = writeln!(
        out,
        "| step | events | seconds | events/s | events per CPU second (command + PG) | peak RSS | CPU cores: bench with the command / PG / other | others' CPU | waited for quiet |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---|---:|---:|");
    for (name, events, run) in [
        (
            "fill: `factlog generate` (synchronous_commit off)",
            r.fill_events,
            &r.fill,
        ),
        ("`factlog rebuild`", r.events, &r.rebuild),
        ("`factlog verify`", r.events, &r.verify),
    ] {
        let c = &run.cpu;
        let _ = writeln!(
            out,
            "| {name} | {} | {:.1} | {} | {} | {:.0} MB | {:.2} / {:.2} / {:.2} | {:.0}% | {:.0} s |",
            thousands(events as u64),
            run.secs,
            rate(events as f64 / run.secs),
            rate(run.per_cpu_sec(events)),
            kib_mb(run.peak_rss_kib),
            c.client,
            c.postgres,
            c.others,
            c.others_share * 100.0,
            run.quiet_wait
        );
    }
    let _ = writeln!(
        out,
        "| `VACUUM ANALYZE` (whole database, after the fill) | — | {:.1} | — | — | — | — | — | — |",
        r.vacuum_secs
    );
    let _ = writeln!(
        out,
        "\nReads, {} connections, {} s each. CPU in cores (of {}): bench process (load \
         generator) / server / PostgreSQL / anything else; \"others' CPU\" is the share of the \
         machine that went to anything but the benchmark.\n",
        s.conns,
        s.secs,
        cpu_count()
    );
    let _ = writeln!(
        out,
        "| read | req/s | p50 | p99 | server + PG CPU per request | non-2xx | CPU bench/server/pg/other | others' CPU | waited for quiet |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|---|---:|---:|");
    for read in &r.reads {
        let (p50, p99) = read.p50_p99();
        let c = &read.cpu;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} ms | {} | {:.2}/{:.2}/{:.2}/{:.2} | {:.0}% | {:.0} s |",
            read.name,
            rate(read.rate()),
            ms_fmt(p50),
            ms_fmt(p99),
            read.cpu_per_request() * 1e3,
            status_counts(&read.load.errors),
            c.client,
            c.server,
            c.postgres,
            c.others,
            c.others_share * 100.0,
            read.quiet_wait
        );
    }
    let _ = writeln!(
        out,
        "| control: pgbench `SELECT doc FROM bench_control WHERE n = :n` (`-M prepared`, {CONTROL_ROWS} rows) | {} tps | {} | {} | — | — | — | — | — |",
        rate(r.control.rate),
        ms_fmt(r.control.p50),
        ms_fmt(r.control.p99)
    );
    let _ = writeln!(
        out,
        "\n| round | POST /v1/claims req/s | p50 | p99 | non-2xx | pgbench tps | pgbench p99 | ratio | others' CPU |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---|---:|---:|---:|---:|");
    for (i, a) in r.asserts.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.0}% |",
            i + 1,
            rate(a.http.rate),
            ms_fmt(a.http.p50),
            ms_fmt(a.http.p99),
            status_counts(&a.http_errors),
            rate(a.pgbench.rate),
            ms_fmt(a.pgbench.p99),
            a.http.rate / a.pgbench.rate,
            a.others_share * 100.0
        );
    }
    if r.full_pass_during {
        let _ = writeln!(
            out,
            "\n**A full pass of the server's chain verifier started during these measurements.**"
        );
    }
    write_server_log(out, "Server log", &r.server_log);
}
