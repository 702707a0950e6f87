//! Tree benchmark: the verifiable log (the `tree` projection, its signed
//! checkpoints and proofs) against limits measured on the same machine in
//! the same run. A throw-away, fsync-on cluster is filled with generated
//! newsroom work (`factlog generate`), then: `factlog rebuild tree` beside
//! PostgreSQL's own COPY of the rows it hashes; the tiles' size per event;
//! inclusion proofs over HTTP at 32 connections beside pgbench's primary-key
//! SELECT on `events`; one inclusion and one consistency proof verified in
//! process; `factlog audit --events` from a checkpoint of a tiny prefix; and
//! asserts at 32 connections with the tree on and off, with the time from
//! each acknowledged write until a signed checkpoint covers it. See
//! bench/README.md.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod client;
#[allow(
    dead_code,
    reason = "pgbench's write side, the CPU accounting and the paired-rounds table are the other benches'"
)]
mod common;
#[allow(
    dead_code,
    reason = "the server's current RSS and the projections' catch-up are the other benches'"
)]
mod harness;

use factlog::db::EphemeralCluster;
use factlog::merkle::{
    self, Checkpoint, Hash, NoteSigner, root_at, tiles_for_root, verify_consistency,
    verify_inclusion,
};
use futures::StreamExt as _;
use hyper::Method;
use serde_json::Value;
use sqlx::PgPool;

use common::{
    Pgbench, Sample, checkpoint, database, machine_description, median, percentiles, thousands,
};
use harness::{
    Load, NO_LIMIT, Op, REQUEST_TIMEOUT, Row, SETTLE_LIMIT, Server, VERIFY_DAILY, closed_loop,
    create_token, editor_tokens, env_number, fetch_ok, kib_mb, log_head, mix, ms_fmt, rate,
    report_head, row, run_on_cluster, run_waited, server_sentence, set_synchronous_commit,
    status_counts, wait_until_verified, write_report, write_server_log, write_summary,
};

const DB_NAME: &str = "tree";
/// Connections for the proofs and the asserts (pgbench clients likewise).
const CONNECTIONS: usize = 32;
/// How often the checkpoint is polled while the asserts run.
const POLL: Duration = Duration::from_millis(20);
/// Verifications timed per proof.
const VERIFY_ITERATIONS: u32 = 100_000;
/// The audited checkpoint's size when the log is larger.
const AUDIT_PREFIX: u64 = 1_000;

const BUILD_GOAL: f64 = 200_000.0;
const BYTES_GOAL: f64 = 64.0;
const PROOF_P99_GOAL: Duration = Duration::from_millis(5);
const PROOF_RATIO_GOAL: f64 = 0.5;
const VERIFY_GOAL: Duration = Duration::from_millis(1);
/// Seconds for an audit of 1,000,000 new events.
const AUDIT_GOAL_SECS: f64 = 15.0;
const LAG_GOAL: Duration = Duration::from_secs(1);
/// Write rate with the tree on, at least this share of the rate without it.
const WRITE_RATIO_GOAL: f64 = 0.9;

struct Settings {
    events: u64,
    secs: u64,
    rounds: usize,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            events: env_number("FACTLOG_BENCH_TREE_EVENTS", 1_000_000),
            secs: env_number("FACTLOG_BENCH_SECS", 10),
            rounds: env_number("FACTLOG_BENCH_ROUNDS", 2) as usize,
        }
    }
}

struct Bench {
    settings: Settings,
    /// The throw-away cluster, stopped when the bench ends.
    _cluster: EphemeralCluster,
    bin: PathBuf,
    url: String,
    pool: PgPool,
    /// pgbench scripts and logs, the signing key, the audited checkpoint.
    scratch: tempfile::TempDir,
    pgbench: Pgbench,
    auditor: Arc<str>,
    editors: Arc<Vec<String>>,
}

impl Bench {
    /// The signing key every server of the run shares, so that its
    /// checkpoints form one history.
    fn key_file(&self) -> PathBuf {
        self.scratch.path().join("signing.key")
    }

    async fn serve(&self, tree: bool) -> Server {
        let key = self.key_file();
        let key = key.to_str().expect("a UTF-8 temporary path");
        let mut env = vec![VERIFY_DAILY, ("FACTLOG_SIGNING_KEY_FILE", key)];
        if !tree {
            env.push(("FACTLOG_PROJECTIONS", "facts"));
        }
        Server::start(&self.bin, &self.url, &env).await
    }

    fn factlog(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.bin);
        cmd.args(args)
            .env("DATABASE_URL", &self.url)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        cmd
    }
}

fn main() {
    let settings = Settings::from_env();
    run_on_cluster(|cluster, bin| run(settings, cluster, bin));
}

async fn run(settings: Settings, cluster: EphemeralCluster, bin: PathBuf) {
    let started = Instant::now();
    let (url, pool) = database(&cluster, DB_NAME, 8).await;
    let editors = editor_tokens(&bin, &url).await;
    let scratch = tempfile::tempdir().expect("scratch directory");
    let bench = Bench {
        settings,
        auditor: create_token(&bin, &url, "auditor", "auditor").await.into(),
        editors: Arc::new(editors),
        pgbench: Pgbench {
            scripts: scratch.path().to_owned(),
            port: cluster.port(),
            db: DB_NAME.into(),
        },
        _cluster: cluster,
        bin,
        url,
        pool,
        scratch,
    };
    let machine = machine_description(&bench.pool).await;
    eprintln!("{machine}");

    let events = fill(&bench).await;
    let build = measure_build(&bench, events).await;
    let tile_bytes: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('tree_tiles')")
        .fetch_one(&bench.pool)
        .await
        .expect("size of tree_tiles");

    let server = bench.serve(true).await;
    wait_until_verified(&server, &bench.auditor).await;
    let head = wait_for_checkpoint(&bench, &server, events as u64).await;
    let proofs = measure_proofs(&bench, &server, head.size).await;
    let verify = measure_verify(&bench, &server, &head).await;
    let audit = measure_audit(&bench, &server, &head).await;
    let server_peak_kib = server.memory().hwm_kib;
    let server_log = server.log_summary();
    drop(server);

    let writes = measure_writes(&bench).await;
    let results = Results {
        events,
        build,
        tile_bytes,
        proofs,
        verify,
        audit,
        writes,
        server_peak_kib,
        server_log,
    };
    let report = render(&bench, &machine, &results, started);
    write_report("tree", &report);
    bench.pool.close().await;
}

/// `factlog generate` (with `synchronous_commit` off for its connections
/// only), the `facts` projection rebuilt (unmeasured: the server's worker
/// must not start it from scratch during the measurements), `VACUUM
/// ANALYZE`; returns the log's head.
async fn fill(bench: &Bench) -> i64 {
    let n = bench.settings.events;
    eprintln!("filling the log with {} events...", thousands(n));
    let t = Instant::now();
    set_synchronous_commit(&bench.pool, DB_NAME, false).await;
    run_ok(
        bench.factlog(&["generate", "--events", &n.to_string()]),
        "generate",
    )
    .await;
    set_synchronous_commit(&bench.pool, DB_NAME, true).await;
    let events = log_head(&bench.pool).await;
    eprintln!(
        "  {} events in {:.0} s; rebuilding facts, VACUUM ANALYZE...",
        thousands(events as u64),
        t.elapsed().as_secs_f64()
    );
    run_ok(bench.factlog(&["rebuild", "facts"]), "rebuild facts").await;
    sqlx::raw_sql("VACUUM ANALYZE")
        .execute(&bench.pool)
        .await
        .expect("VACUUM ANALYZE");
    events
}

async fn run_ok(cmd: std::process::Command, what: &str) -> harness::Waited {
    let run = run_waited(cmd).await;
    assert!(
        run.success(),
        "factlog {what} failed (wait status {})",
        run.status
    );
    run
}

// ---------------------------------------------------------------------------
// 1. The tree's bulk build against PostgreSQL's COPY of the same rows
// ---------------------------------------------------------------------------

struct Build {
    run: harness::Waited,
    copy_rows: u64,
    copy_secs: f64,
    copy_bytes: u64,
}

async fn measure_build(bench: &Bench, events: i64) -> Build {
    checkpoint(&bench.pool).await;
    eprintln!("factlog rebuild tree...");
    let run = run_ok(bench.factlog(&["rebuild", "tree"]), "rebuild tree").await;
    eprintln!(
        "  {:.1} s ({}/s), peak RSS {:.0} MB",
        run.secs,
        rate(events as f64 / run.secs),
        kib_mb(run.peak_rss_kib)
    );
    checkpoint(&bench.pool).await;
    let (copy_rows, copy_secs, copy_bytes) = copy_out(&bench.pool).await;
    eprintln!(
        "  COPY of the hashed columns: {} rows in {copy_secs:.2} s ({}/s)",
        thousands(copy_rows),
        rate(copy_rows as f64 / copy_secs)
    );
    Build {
        run,
        copy_rows,
        copy_secs,
        copy_bytes,
    }
}

/// The columns a leaf hashes, streamed out by PostgreSQL and dropped:
/// rows, seconds, bytes.
async fn copy_out(pool: &PgPool) -> (u64, f64, u64) {
    let mut conn = pool.acquire().await.expect("COPY connection");
    let start = Instant::now();
    let mut out = conn
        .copy_out_raw(
            "COPY (SELECT position, stream, version, type, data, actor, recorded_at \
             FROM events) TO STDOUT",
        )
        .await
        .expect("COPY TO STDOUT");
    let (mut rows, mut bytes) = (0u64, 0u64);
    while let Some(chunk) = out.next().await {
        let chunk = chunk.expect("COPY data");
        bytes += chunk.len() as u64;
        rows += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    (rows, start.elapsed().as_secs_f64(), bytes)
}

// ---------------------------------------------------------------------------
// The server's checkpoints
// ---------------------------------------------------------------------------

/// The latest signed checkpoint as `GET /v1/checkpoint` serves it.
struct Signed {
    note: String,
    origin: String,
    size: u64,
}

impl Signed {
    fn parse(note: &str) -> Option<Signed> {
        let mut lines = note.lines();
        let origin = lines.next()?.to_owned();
        let size = lines.next()?.parse().ok()?;
        Some(Signed {
            note: note.to_owned(),
            origin,
            size,
        })
    }
}

async fn latest_checkpoint(
    conn: &mut client::Conn,
    server: &Server,
    token: &str,
) -> Option<Signed> {
    let req = client::request(
        &server.authority,
        Method::GET,
        "/v1/checkpoint",
        token,
        None,
    );
    match conn.send(req).await {
        (200, body) => Signed::parse(std::str::from_utf8(&body).ok()?),
        _ => None,
    }
}

/// Waits until the server has signed a checkpoint of at least `size` leaves.
async fn wait_for_checkpoint(bench: &Bench, server: &Server, size: u64) -> Signed {
    let mut conn = client::Conn::new(&server.authority, REQUEST_TIMEOUT);
    let start = Instant::now();
    loop {
        if let Some(c) = latest_checkpoint(&mut conn, server, &bench.auditor).await
            && c.size >= size
        {
            return c;
        }
        assert!(
            start.elapsed() < SETTLE_LIMIT,
            "no checkpoint of {size} leaves within {SETTLE_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------
// 3. Inclusion proofs over HTTP against pgbench's primary-key SELECT
// ---------------------------------------------------------------------------

struct Proofs {
    http: Sample,
    http_errors: std::collections::BTreeMap<u16, u64>,
    pgbench: Sample,
}

async fn measure_proofs(bench: &Bench, server: &Server, size: u64) -> Proofs {
    let authority: Arc<str> = server.authority.clone().into();
    let to = authority.clone();
    let token = bench.auditor.clone();
    let op = Op::new(authority, move |i| {
        let position = 1 + mix(i ^ 0x1eaf) % size;
        let path = format!("/v1/proofs/inclusion?position={position}&tree_size={size}");
        Some(client::request(&to, Method::GET, &path, &token, None))
    });
    let d = Duration::from_secs(bench.settings.secs);
    eprintln!("inclusion proofs, {CONNECTIONS} connections...");
    // Warm-up: connections, the server's statement cache, the pages read.
    closed_loop(CONNECTIONS, Duration::from_secs(1), NO_LIMIT, op.clone()).await;
    checkpoint(&bench.pool).await;
    let mut load = closed_loop(CONNECTIONS, d, NO_LIMIT, op).await;
    let http = load.sample();
    std::fs::write(
        bench.scratch.path().join("select.sql"),
        format!(
            "\\set p random(1, {size})\nSELECT position, hash FROM events WHERE position = :p;\n"
        ),
    )
    .expect("write a pgbench script");
    checkpoint(&bench.pool).await;
    let pgbench = bench
        .pgbench
        .run("select.sql", CONNECTIONS, d, &["-M", "prepared"])
        .await;
    eprintln!(
        "  factlog {} req/s p99 {} | pgbench {} tps p99 {} | ratio {:.2}",
        rate(http.rate),
        ms_fmt(http.p99),
        rate(pgbench.rate),
        ms_fmt(pgbench.p99),
        http.rate / pgbench.rate
    );
    Proofs {
        http,
        http_errors: std::mem::take(&mut load.errors),
        pgbench,
    }
}

// ---------------------------------------------------------------------------
// 4. One proof verified in process
// ---------------------------------------------------------------------------

struct Verified {
    inclusion: Duration,
    inclusion_len: usize,
    consistency: Duration,
    consistency_len: usize,
    from: u64,
}

fn hash(hex_text: &str) -> Hash {
    hex::decode(hex_text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .unwrap_or_else(|| panic!("not a hex hash: {hex_text:?}"))
}

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array()
        .expect("a proof's path")
        .iter()
        .map(|h| hash(h.as_str().expect("a hex hash")))
        .collect()
}

async fn get_json(server: &Server, token: &str, path: &str) -> Value {
    let req = client::request(&server.authority, Method::GET, path, token, None);
    let body = fetch_ok(&server.authority, req).await;
    serde_json::from_slice(&body).expect("a JSON answer")
}

fn signer(bench: &Bench) -> NoteSigner {
    let text = std::fs::read_to_string(bench.key_file()).expect("read the signing key");
    NoteSigner::from_private_key(text.trim()).expect("a signing key")
}

/// The root of the tree's first `size` leaves, from the stored tiles.
async fn root_of_prefix(pool: &PgPool, size: u64) -> Hash {
    let mut conn = pool.acquire().await.expect("a connection");
    let tiles = factlog::store::tree::read_tiles(&mut conn, &tiles_for_root(size))
        .await
        .expect("read tiles");
    root_at(size, &tiles).expect("the prefix's root")
}

/// Mean time of `f` over [`VERIFY_ITERATIONS`] calls.
fn mean_time(mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..VERIFY_ITERATIONS {
        f();
    }
    start.elapsed() / VERIFY_ITERATIONS
}

async fn measure_verify(bench: &Bench, server: &Server, head: &Signed) -> Verified {
    let size = head.size;
    let root = merkle::open(&head.note, &signer(bench).verifier())
        .expect("the server's checkpoint opens with its key")
        .root;
    let position = 1 + mix(0x7e57) % size;
    let proof = get_json(
        server,
        &bench.auditor,
        &format!("/v1/proofs/inclusion?position={position}&tree_size={size}"),
    )
    .await;
    let leaf = hash(proof["leaf_hash"].as_str().expect("leaf_hash"));
    let path = hashes(&proof["path"]);
    verify_inclusion(&leaf, position - 1, size, &path, &root).expect("the inclusion proof holds");
    let inclusion = mean_time(|| {
        black_box(verify_inclusion(
            black_box(&leaf),
            position - 1,
            size,
            black_box(&path),
            &root,
        ))
        .expect("holds");
    });

    let from = audit_prefix(size);
    let old_root = root_of_prefix(&bench.pool, from).await;
    let proof = get_json(
        server,
        &bench.auditor,
        &format!("/v1/proofs/consistency?from={from}&to={size}"),
    )
    .await;
    let cpath = hashes(&proof["path"]);
    verify_consistency(from, size, &old_root, &root, &cpath).expect("the consistency proof holds");
    let consistency = mean_time(|| {
        black_box(verify_consistency(
            from,
            size,
            black_box(&old_root),
            &root,
            black_box(&cpath),
        ))
        .expect("holds");
    });
    eprintln!(
        "verify: inclusion ({} hashes) {:.2} µs, consistency {from} → {size} ({} hashes) {:.2} µs",
        path.len(),
        inclusion.as_secs_f64() * 1e6,
        cpath.len(),
        consistency.as_secs_f64() * 1e6
    );
    Verified {
        inclusion,
        inclusion_len: path.len(),
        consistency,
        consistency_len: cpath.len(),
        from,
    }
}

// ---------------------------------------------------------------------------
// 5. factlog audit --events from a checkpoint of a tiny prefix
// ---------------------------------------------------------------------------

fn audit_prefix(size: u64) -> u64 {
    if size > AUDIT_PREFIX { AUDIT_PREFIX } else { 1 }
}

struct Audit {
    run: harness::Waited,
    events: u64,
    from: u64,
    output: String,
}

impl Audit {
    /// Seconds the audit would take for 1,000,000 new events at its rate.
    fn per_million(&self) -> f64 {
        self.run.secs * 1e6 / self.events.max(1) as f64
    }
}

async fn measure_audit(bench: &Bench, server: &Server, head: &Signed) -> Audit {
    let from = audit_prefix(head.size);
    let signer = signer(bench);
    let body = Checkpoint {
        origin: head.origin.clone(),
        size: from,
        root: root_of_prefix(&bench.pool, from).await,
    }
    .body();
    let saved = bench.scratch.path().join("audit.checkpoint");
    std::fs::write(&saved, signer.sign(&body).expect("sign the prefix"))
        .expect("save the checkpoint");
    let out_path = bench.scratch.path().join("audit.out");
    let out = std::fs::File::create(&out_path).expect("audit output file");
    let mut cmd = bench.factlog(&[
        "audit",
        "--checkpoint",
        saved.to_str().expect("a UTF-8 temporary path"),
        "--url",
        &format!("http://{}", server.authority),
        "--token",
        &bench.auditor,
        "--key",
        &signer.vkey(),
        "--events",
    ]);
    cmd.stdout(out.try_clone().expect("audit output"))
        .stderr(out);
    eprintln!(
        "factlog audit --events from a checkpoint of {from} to {}...",
        thousands(head.size)
    );
    checkpoint(&bench.pool).await;
    let run = run_waited(cmd).await;
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(
        run.success(),
        "factlog audit failed (wait status {}):\n{output}",
        run.status
    );
    let audit = Audit {
        events: head.size - from,
        run,
        from,
        output: output.trim().to_owned(),
    };
    eprintln!(
        "  {:.1} s ({}/s), peak RSS {:.0} MB",
        audit.run.secs,
        rate(audit.events as f64 / audit.run.secs),
        kib_mb(audit.run.peak_rss_kib)
    );
    audit
}

// ---------------------------------------------------------------------------
// 6. Asserts with the tree on and off; checkpoint lag
// ---------------------------------------------------------------------------

struct WriteSide {
    tree: bool,
    sample: Sample,
    errors: std::collections::BTreeMap<u16, u64>,
    /// From each acknowledged write to the first checkpoint seen covering it.
    lags: Vec<Duration>,
    /// Acknowledged writes no checkpoint covered within [`SETTLE_LIMIT`].
    uncovered: usize,
}

struct WriteRound {
    /// In the order they ran.
    sides: Vec<WriteSide>,
}

impl WriteRound {
    fn side(&self, tree: bool) -> &WriteSide {
        self.sides
            .iter()
            .find(|s| s.tree == tree)
            .expect("both sides ran")
    }

    fn ratio(&self) -> f64 {
        self.side(true).sample.rate / self.side(false).sample.rate
    }
}

async fn measure_writes(bench: &Bench) -> Vec<WriteRound> {
    let mut rounds = Vec::new();
    for round in 0..bench.settings.rounds {
        let order = if round.is_multiple_of(2) {
            [true, false]
        } else {
            [false, true]
        };
        let mut sides = Vec::new();
        for tree in order {
            sides.push(measure_write_side(bench, tree).await);
        }
        let r = WriteRound { sides };
        eprintln!(
            "  round {} | tree on {} req/s | off {} req/s | on/off {:.2}",
            round + 1,
            rate(r.side(true).sample.rate),
            rate(r.side(false).sample.rate),
            r.ratio()
        );
        rounds.push(r);
    }
    rounds
}

/// The projections the side's server runs.
fn running(tree: bool) -> &'static [&'static str] {
    if tree { &["facts", "tree"] } else { &["facts"] }
}

/// Waits until the named projections are at the log's head.
async fn drain(pool: &PgPool, names: &[&str]) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let start = Instant::now();
    loop {
        let behind: i64 = sqlx::query_scalar(
            "SELECT (SELECT position FROM event_head) - coalesce(min(position), 0) \
             FROM projection_checkpoints WHERE name = ANY($1)",
        )
        .bind(&names)
        .fetch_one(pool)
        .await
        .expect("projection lag");
        if behind <= 0 {
            return;
        }
        assert!(
            start.elapsed() < SETTLE_LIMIT,
            "projections {names:?} still {behind} events behind after {SETTLE_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Projections at the head, with the tree on a checkpoint of it, then a
/// clean `CHECKPOINT`.
async fn settle(bench: &Bench, server: &Server, tree: bool) {
    drain(&bench.pool, running(tree)).await;
    if tree {
        wait_for_checkpoint(bench, server, log_head(&bench.pool).await as u64).await;
    }
    checkpoint(&bench.pool).await;
}

/// The `position` of a write's receipt, without parsing the whole answer.
fn receipt_position(body: &[u8]) -> Option<i64> {
    const KEY: &[u8] = b"\"position\":";
    let at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits: Vec<u8> = body[at..]
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

async fn measure_write_side(bench: &Bench, tree: bool) -> WriteSide {
    let server = bench.serve(tree).await;
    let story: String = sqlx::query_scalar("SELECT story_id::text FROM claim_versions LIMIT 1")
        .fetch_one(&bench.pool)
        .await
        .expect("a generated story");
    let facts: i64 = sqlx::query_scalar("SELECT count(*) FROM facts_view")
        .fetch_one(&bench.pool)
        .await
        .expect("facts");
    let op = || {
        harness::assert_op(
            server.authority.clone().into(),
            bench.editors.clone(),
            story.clone().into(),
            facts.max(1) as u64,
        )
    };
    settle(bench, &server, tree).await;
    closed_loop(8, Duration::from_secs(1), NO_LIMIT, op()).await;
    settle(bench, &server, tree).await;

    let acks: Arc<Mutex<Vec<(i64, Instant)>>> = Arc::default();
    let record = acks.clone();
    let mut op = op();
    op.answered = Some(Arc::new(move |body, at| {
        if let Some(p) = receipt_position(body) {
            record.lock().expect("acks").push((p, at));
        }
    }));
    let (stop, stopped) = tokio::sync::watch::channel(0u64);
    let poller = tokio::spawn(poll_checkpoints(
        server.authority.clone(),
        bench.auditor.clone(),
        stopped,
    ));
    let mut load: Load = closed_loop(
        CONNECTIONS,
        Duration::from_secs(bench.settings.secs),
        NO_LIMIT,
        op,
    )
    .await;
    let acks = std::mem::take(&mut *acks.lock().expect("acks"));
    // With the tree on, the poller goes on until the last write is covered;
    // with it off, it stops at once (the poll's own cost is on both sides).
    let last = acks.iter().map(|(p, _)| *p as u64).max().unwrap_or(0);
    let _ = stop.send(if tree { last } else { 0 });
    let seen = poller.await.expect("the checkpoint poller");
    let (lags, uncovered) = if tree {
        checkpoint_lags(&acks, &seen)
    } else {
        (Vec::new(), 0)
    };
    let side = WriteSide {
        tree,
        sample: load.sample(),
        errors: std::mem::take(&mut load.errors),
        lags,
        uncovered,
    };
    eprintln!(
        "  tree {}: {} req/s p99 {}{}",
        if tree { "on" } else { "off" },
        rate(side.sample.rate),
        ms_fmt(side.sample.p99),
        if tree {
            let (p50, p99) = percentiles(&mut side.lags.clone());
            format!(", checkpoint lag p50 {} p99 {}", ms_fmt(p50), ms_fmt(p99))
        } else {
            String::new()
        }
    );
    side
}

/// Polls `GET /v1/checkpoint` every [`POLL`] and records when each new
/// size was first seen, until told a size to wait for (0: none) and it has
/// been seen, or [`SETTLE_LIMIT`] after that.
async fn poll_checkpoints(
    authority: String,
    token: Arc<str>,
    mut stop: tokio::sync::watch::Receiver<u64>,
) -> Vec<(u64, Instant)> {
    let server_conn = &mut client::Conn::new(&authority, REQUEST_TIMEOUT);
    let mut seen: Vec<(u64, Instant)> = Vec::new();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut until: Option<(u64, Instant)> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = stop.changed(), if until.is_none() => {
                if changed.is_ok() {
                    until = Some((*stop.borrow(), Instant::now()));
                }
            }
        }
        let req = client::request(&authority, Method::GET, "/v1/checkpoint", &token, None);
        if let (200, body) = server_conn.send(req).await
            && let Some(size) = std::str::from_utf8(&body)
                .ok()
                .and_then(|t| t.lines().nth(1)?.parse::<u64>().ok())
            && seen.last().is_none_or(|(s, _)| size > *s)
        {
            seen.push((size, Instant::now()));
        }
        if let Some((want, since)) = until {
            let covered = seen.last().is_some_and(|(s, _)| *s >= want);
            if covered || since.elapsed() > SETTLE_LIMIT {
                return seen;
            }
        }
    }
}

/// Each acknowledged write's lag: the first checkpoint seen covering its
/// position, less the time its answer came (none when it came after).
fn checkpoint_lags(acks: &[(i64, Instant)], seen: &[(u64, Instant)]) -> (Vec<Duration>, usize) {
    let mut out = Vec::with_capacity(acks.len());
    let mut uncovered = 0;
    for &(position, acked) in acks {
        let first = seen.partition_point(|(size, _)| (*size as i64) < position);
        match seen.get(first) {
            Some((_, at)) => out.push(at.saturating_duration_since(acked)),
            None => uncovered += 1,
        }
    }
    (out, uncovered)
}

// ---------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------

struct Results {
    events: i64,
    build: Build,
    tile_bytes: i64,
    proofs: Proofs,
    verify: Verified,
    audit: Audit,
    writes: Vec<WriteRound>,
    server_peak_kib: u64,
    server_log: (usize, Vec<String>),
}

impl Results {
    fn build_rate(&self) -> f64 {
        self.events as f64 / self.build.run.secs
    }

    fn copy_rate(&self) -> f64 {
        self.build.copy_rows as f64 / self.build.copy_secs
    }

    fn bytes_per_event(&self) -> f64 {
        self.tile_bytes as f64 / self.events as f64
    }

    /// Every acknowledged write's lag over the rounds with the tree on.
    fn lag_percentiles(&self) -> (Duration, Duration) {
        let mut all: Vec<Duration> = self
            .writes
            .iter()
            .flat_map(|r| r.side(true).lags.iter().copied())
            .collect();
        percentiles(&mut all)
    }

    fn write_ratio(&self) -> f64 {
        median(self.writes.iter().map(WriteRound::ratio).collect())
    }
}

fn us(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

fn summary_rows(r: &Results) -> Vec<Row> {
    let p = &r.proofs;
    let proof_ratio = p.http.rate / p.pgbench.rate;
    let (lag50, lag99) = r.lag_percentiles();
    let uncovered: usize = r.writes.iter().map(|w| w.side(true).uncovered).sum();
    let million = r.audit.per_million();
    vec![
        Row {
            limit: format!("{}/s (COPY of the hashed columns)", rate(r.copy_rate())),
            ratio: format!("{:.2}x", r.build_rate() / r.copy_rate()),
            ..row(
                "1. `factlog rebuild tree`, events/s",
                format!("{}/s", rate(r.build_rate())),
                "≥ 200,000/s",
                Some(r.build_rate() >= BUILD_GOAL),
            )
        },
        row(
            "1. `factlog rebuild tree`, peak RSS",
            format!("{:.0} MB", kib_mb(r.build.run.peak_rss_kib)),
            "—",
            None,
        ),
        row(
            "2. `tree_tiles` (with indexes and TOAST), bytes per event",
            format!("{:.1} B", r.bytes_per_event()),
            "≤ 64 B",
            Some(r.bytes_per_event() <= BYTES_GOAL),
        ),
        Row {
            limit: format!("{} tps (pgbench primary-key SELECT)", rate(p.pgbench.rate)),
            ratio: format!("{proof_ratio:.2}x"),
            ..row(
                format!("3. `GET /v1/proofs/inclusion`, {CONNECTIONS} connections, req/s"),
                format!("{}/s", rate(p.http.rate)),
                "≥ 0.5x",
                Some(proof_ratio >= PROOF_RATIO_GOAL),
            )
        },
        Row {
            limit: format!("{} (pgbench)", ms_fmt(p.pgbench.p99)),
            ..row(
                "3. `GET /v1/proofs/inclusion`, p99",
                ms_fmt(p.http.p99),
                "< 5 ms",
                Some(p.http.p99 < PROOF_P99_GOAL && p.http_errors.is_empty()),
            )
        },
        Row {
            limit: format!("{} (pgbench)", ms_fmt(p.pgbench.p50)),
            ..row(
                "3. `GET /v1/proofs/inclusion`, p50",
                ms_fmt(p.http.p50),
                "—",
                None,
            )
        },
        row(
            "4. `verify_inclusion`, mean per verification",
            us(r.verify.inclusion),
            "< 1 ms",
            Some(r.verify.inclusion < VERIFY_GOAL),
        ),
        row(
            "4. `verify_consistency`, mean per verification",
            us(r.verify.consistency),
            "< 1 ms",
            Some(r.verify.consistency < VERIFY_GOAL),
        ),
        row(
            format!(
                "5. `factlog audit --events`, {} new events (s per 1M at its rate)",
                thousands(r.audit.events)
            ),
            format!(
                "{:.1} s, {}/s ({million:.1} s per 1M)",
                r.audit.run.secs,
                rate(r.audit.events as f64 / r.audit.run.secs)
            ),
            "< 15 s per 1M",
            Some(million < AUDIT_GOAL_SECS),
        ),
        row(
            "5. `factlog audit --events`, peak RSS",
            format!("{:.0} MB", kib_mb(r.audit.run.peak_rss_kib)),
            "—",
            None,
        ),
        row(
            format!("6. checkpoint lag under {CONNECTIONS}-connection asserts, p50 / p99"),
            format!(
                "{} / {}{}",
                ms_fmt(lag50),
                ms_fmt(lag99),
                if uncovered > 0 {
                    format!(" ({uncovered} never covered)")
                } else {
                    String::new()
                }
            ),
            "p99 ≤ 1 s",
            Some(lag99 <= LAG_GOAL && uncovered == 0),
        ),
        Row {
            limit: format!(
                "{}/s (tree off, median)",
                rate(median(
                    r.writes.iter().map(|w| w.side(false).sample.rate).collect()
                ))
            ),
            ratio: format!("{:.2}x", r.write_ratio()),
            ..row(
                format!("6. `POST /v1/claims`, {CONNECTIONS} connections, tree on, req/s"),
                format!(
                    "{}/s (median)",
                    rate(median(
                        r.writes.iter().map(|w| w.side(true).sample.rate).collect()
                    ))
                ),
                "≥ 0.9x (at most 10% drop)",
                Some(r.write_ratio() >= WRITE_RATIO_GOAL),
            )
        },
    ]
}

fn render(bench: &Bench, machine: &str, r: &Results, started: Instant) -> String {
    let s = &bench.settings;
    let mut out = report_head(
        "tree",
        &format!(
            "factlog tree benchmark ({} events)",
            thousands(r.events as u64)
        ),
        machine,
        &format!("{:.1} min", started.elapsed().as_secs_f64() / 60.0),
    );
    out.push_str(&server_sentence(
        &bench.bin,
        ", its own signing key (`FACTLOG_SIGNING_KEY_FILE` in a temporary directory)",
    ));
    out.push('\n');
    let _ = writeln!(
        out,
        "Method: `factlog generate` fills the log (`synchronous_commit = off` for the fill \
         only), `factlog rebuild facts`, `VACUUM ANALYZE`. (1) `factlog rebuild tree` as a child \
         process (wall time; peak RSS from `wait4`), then `COPY (SELECT position, stream, \
         version, type, data, actor, recorded_at FROM events) TO STDOUT` read and dropped. \
         (2) `pg_total_relation_size('tree_tiles')` per event. (3) once the server's verifier \
         has caught up and a checkpoint covers the head: `GET /v1/proofs/inclusion` of random \
         positions at the head's size, {CONNECTIONS} connections, closed loop, 1 s warm-up then \
         {} s; pgbench `-M prepared` `SELECT position, hash FROM events WHERE position = :p` \
         with random `p`, {CONNECTIONS} clients, {} s. (4) one inclusion proof and one \
         consistency proof (from the size in (5)) fetched once, each verified {} times in \
         process. (5) a checkpoint of the tree's first {} leaves signed with the server's key, \
         then `factlog audit --checkpoint … --url … --events` as a child process. (6) \
         `POST /v1/claims` at {CONNECTIONS} connections for {} s, a fresh server per side, \
         tree on (all projections) and off (`FACTLOG_PROJECTIONS=facts`), {} round(s) \
         alternating which goes first, each side after the projections it runs (and, with the \
         tree, a checkpoint) reached the head and a `CHECKPOINT`; `GET /v1/checkpoint` polled \
         every {} ms on both sides; a write's lag is from its 201 until the first poll that saw \
         a checkpoint covering its position (so up to {} ms more than the true lag); the ratio \
         is the median of the rounds' on/off ratios.\n",
        s.secs,
        s.secs,
        thousands(u64::from(VERIFY_ITERATIONS)),
        r.audit.from,
        s.secs,
        s.rounds,
        POLL.as_millis(),
        POLL.as_millis()
    );
    write_summary(&mut out, summary_rows(r));
    render_details(&mut out, r);
    out
}

fn render_details(out: &mut String, r: &Results) {
    let b = &r.build;
    let _ = writeln!(
        out,
        "\n### Details\n\n- `factlog rebuild tree`: {:.1} s, {:.1} CPU s, peak RSS {:.0} MB. \
         COPY: {} rows, {:.0} MB in {:.2} s.\n- `tree_tiles`: {:.1} MB for {} events.\n\
         - Inclusion proofs: {} answers other than 2xx: {}; pgbench p50 {} p99 {}.\n\
         - Verified: inclusion path of {} hashes, consistency path of {} hashes ({} → head).\n\
         - `factlog audit` said: `{}`\n- `factlog serve` peak RSS during (3)-(5): {:.0} MB.",
        b.run.secs,
        b.run.cpu_secs,
        kib_mb(b.run.peak_rss_kib),
        thousands(b.copy_rows),
        b.copy_bytes as f64 / 1e6,
        b.copy_secs,
        r.tile_bytes as f64 / 1e6,
        thousands(r.events as u64),
        r.proofs.http_errors.values().sum::<u64>(),
        status_counts(&r.proofs.http_errors),
        ms_fmt(r.proofs.pgbench.p50),
        ms_fmt(r.proofs.pgbench.p99),
        r.verify.inclusion_len,
        r.verify.consistency_len,
        r.verify.from,
        r.audit.output.lines().last().unwrap_or(""),
        kib_mb(r.server_peak_kib)
    );
    let _ = writeln!(
        out,
        "\n| round | side | `POST /v1/claims` req/s | p50 | p99 | non-2xx | checkpoint lag p50 | p99 | max | writes measured |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---|---:|---:|---:|---:|");
    for (i, round) in r.writes.iter().enumerate() {
        for side in &round.sides {
            let mut lags = side.lags.clone();
            let (p50, p99) = percentiles(&mut lags);
            let (p50, p99, max) = if side.tree {
                (
                    ms_fmt(p50),
                    ms_fmt(p99),
                    ms_fmt(lags.last().copied().unwrap_or_default()),
                )
            } else {
                ("—".into(), "—".into(), "—".into())
            };
            let _ = writeln!(
                out,
                "| {} | tree {} | {} | {} | {} | {} | {p50} | {p99} | {max} | {} |",
                i + 1,
                if side.tree { "on" } else { "off" },
                rate(side.sample.rate),
                ms_fmt(side.sample.p50),
                ms_fmt(side.sample.p99),
                status_counts(&side.errors),
                if side.tree {
                    thousands(side.lags.len() as u64)
                } else {
                    "—".into()
                }
            );
        }
    }
    write_server_log(out, "Server log during (3)-(5)", &r.server_log);
}
