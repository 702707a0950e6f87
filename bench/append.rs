//! Library-level append benchmark: factlog's group-commit appender against
//! pgbench doing the same physical work (equivalent rows, same indexes) on the
//! same throw-away, fsync-on PostgreSQL cluster. See bench/README.md.
//!
//! Cloud machines drift by 2-4x between runs minutes apart, so absolute rates
//! mean little: every factlog measurement is paired with its pgbench
//! counterpart back to back, pairs are interleaved round by round, and the
//! ratio within each pair is what the goals are checked against.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use factlog::db::EphemeralCluster;
use factlog::store::{self, EventStore, ExpectedVersion, Metadata, NewEvent, StoreConfig};
use serde_json::Value;
use sqlx::PgPool;

use common::{
    CpuSnapshot, PAYLOAD, PGBENCH_SCHEMA, Pgbench, checkpoint, database, init_logging,
    machine_description, percentiles, postmaster_pid, single_insert_script, thousands,
    write_medians,
};

#[allow(dead_code, reason = "the per-party CPU split is not reported here")]
mod common;

const EVENT_TYPE: &str = "ClaimAsserted";
const ACTOR: &str = "bench";
const CLIENT_COUNTS: [usize; 3] = [1, 8, 32];
const BULK_CLIENTS: usize = 32;
const FACTLOG_BULK_EVENTS: usize = 1_000;
const PGBENCH_BULK_ROWS: usize = 100;
/// Writers filling the verify database; enough to fill group-commit batches.
const FILL_WRITERS: usize = 8;

struct Settings {
    secs: u64,
    rounds: usize,
    verify_events: u64,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            secs: env_number("FACTLOG_BENCH_SECS", 5),
            rounds: env_number("FACTLOG_BENCH_ROUNDS", 4) as usize,
            verify_events: env_number("FACTLOG_BENCH_VERIFY_EVENTS", 1_000_000),
        }
    }

    fn duration(&self) -> Duration {
        Duration::from_secs(self.secs)
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("{name} must be a positive integer, got {v:?}")),
        _ => default,
    }
}

/// One side of one pair.
#[derive(Debug, Clone, Copy)]
struct Sample {
    events_per_sec: f64,
    p50: Duration,
    p99: Duration,
    /// Events per transaction actually committed (factlog's group-commit
    /// batching, read back from the log; pgbench's is fixed by its script).
    events_per_commit: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pair {
    Single(usize),
    Bulk,
}

impl Pair {
    fn label(self) -> String {
        match self {
            Pair::Single(c) => format!(
                "1-event append, {c} writer{}",
                if c == 1 { "" } else { "s" }
            ),
            Pair::Bulk => format!(
                "{FACTLOG_BULK_EVENTS}-event append vs {PGBENCH_BULK_ROWS}-row INSERT, {BULK_CLIENTS} writers"
            ),
        }
    }

    /// The goal the issue sets for this pair, as a minimum factlog/pgbench ratio.
    fn goal(self) -> Option<f64> {
        match self {
            Pair::Single(32) => Some(2.0),
            Pair::Bulk => Some(0.8),
            Pair::Single(_) => None,
        }
    }
}

struct Measured {
    pair: Pair,
    round: usize,
    factlog: Sample,
    pgbench: Sample,
    /// Share of the machine's CPU that something other than this benchmark
    /// used during the pair: a contaminated pair shows here.
    others_cpu: f64,
}

impl Measured {
    fn ratio(&self) -> f64 {
        self.factlog.events_per_sec / self.pgbench.events_per_sec
    }
}

struct Bench {
    cluster: EphemeralCluster,
    store: EventStore,
    pool: PgPool,
    /// pgbench's scripts and logs (`pgbench.scripts`); gone with the run.
    _scripts: tempfile::TempDir,
    pgbench: Pgbench,
}

fn main() {
    init_logging();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let cluster = runtime.block_on(run(Settings::from_env()));
    // The stores' background tasks have no shutdown of their own; ending the
    // runtime before the server stops them from reporting a lost connection.
    drop(runtime);
    drop(cluster);
}

async fn run(settings: Settings) -> EphemeralCluster {
    let started = Instant::now();

    let payload: Value = serde_json::from_str(PAYLOAD).expect("PAYLOAD is JSON");
    assert_eq!(
        store::chain::canonical_json(&payload),
        PAYLOAD,
        "PAYLOAD must be canonical so both sides store the same bytes"
    );

    eprintln!("starting a throw-away PostgreSQL cluster (fsync on)...");
    // fsync stays on: group commit exists to amortise WAL flushes, and
    // without them both sides would measure something nobody deploys.
    let cluster = tokio::task::spawn_blocking(|| EphemeralCluster::start(false))
        .await
        .expect("cluster start-up task")
        .expect("start the ephemeral PostgreSQL cluster");
    let (_, pool) = database(&cluster, "bench", 40).await;
    sqlx::raw_sql(PGBENCH_SCHEMA)
        .execute(&pool)
        .await
        .expect("create the pgbench table");
    let store = EventStore::open(pool.clone(), store_config())
        .await
        .expect("open the event store");
    let scripts = tempfile::tempdir().expect("temporary directory for pgbench scripts");
    // Scripts and pgbench's per-transaction logs go away with this directory.
    write_pgbench_scripts(scripts.path());
    let bench = Bench {
        pgbench: Pgbench {
            scripts: scripts.path().to_owned(),
            port: cluster.port(),
            db: "bench".into(),
        },
        cluster,
        store,
        pool,
        _scripts: scripts,
    };

    let machine = machine_description(&bench.pool).await;
    eprintln!("{machine}");
    eprintln!(
        "{} s per measurement, {} round(s), verify over {} events; payload {} bytes",
        settings.secs,
        settings.rounds,
        settings.verify_events,
        PAYLOAD.len()
    );

    // The first seconds on a fresh cluster pay for cold caches and relation
    // extension on both sides; keep them out of round 1.
    eprintln!("warming up...");
    let warm = Duration::from_secs(1);
    run_factlog(&bench, 8, 1, &payload, warm).await;
    run_pgbench(&bench, "single.sql", 8, 1, warm).await;

    let postmaster = postmaster_pid(bench.cluster.dir());
    let mut results = Vec::new();
    for round in 0..settings.rounds {
        let pairs = CLIENT_COUNTS
            .iter()
            .map(|&c| Pair::Single(c))
            .chain([Pair::Bulk]);
        for pair in pairs {
            // Alternating who goes first spreads any drift within a pair
            // (checkpoints, autovacuum, a noisy neighbour) over both sides.
            let factlog_first = round % 2 == 0;
            let cpu_before = CpuSnapshot::take(postmaster, None);
            let mut factlog = None;
            let mut pgbench = None;
            for side in 0..2 {
                if (side == 0) == factlog_first {
                    factlog =
                        Some(measure_factlog(&bench, pair, &payload, settings.duration()).await);
                } else {
                    pgbench = Some(measure_pgbench(&bench, pair, settings.duration()).await);
                }
            }
            let m = Measured {
                pair,
                round,
                factlog: factlog.expect("factlog side ran"),
                pgbench: pgbench.expect("pgbench side ran"),
                others_cpu: CpuSnapshot::take(postmaster, None)
                    .since(&cpu_before)
                    .others_share,
            };
            eprintln!(
                "round {} | {:<52} | factlog {:>9} ev/s ({:.1} ev/commit) | pgbench {:>9} ev/s | ratio {:.2} | others' CPU {:.0}%",
                round + 1,
                pair.label(),
                rate(m.factlog.events_per_sec),
                m.factlog.events_per_commit,
                rate(m.pgbench.events_per_sec),
                m.ratio(),
                m.others_cpu * 100.0
            );
            results.push(m);
        }
    }

    eprintln!(
        "verify: filling a fresh database with {} events...",
        settings.verify_events
    );
    let verify = measure_verify(&bench, &payload, settings.verify_events).await;
    eprintln!(
        "verify: filled in {:.1} s, verified in {:.2} s",
        verify.fill.as_secs_f64(),
        verify.verify.as_secs_f64()
    );

    let report = render_report(&settings, &machine, &results, &verify, started.elapsed());
    println!("{report}");
    let path = write_report(&report);
    eprintln!("written to {}", path.display());
    bench.cluster
}

async fn measure_factlog(bench: &Bench, pair: Pair, payload: &Value, d: Duration) -> Sample {
    checkpoint(&bench.pool).await;
    match pair {
        Pair::Single(c) => run_factlog(bench, c, 1, payload, d).await,
        Pair::Bulk => run_factlog(bench, BULK_CLIENTS, FACTLOG_BULK_EVENTS, payload, d).await,
    }
}

async fn measure_pgbench(bench: &Bench, pair: Pair, d: Duration) -> Sample {
    checkpoint(&bench.pool).await;
    match pair {
        Pair::Single(c) => run_pgbench(bench, "single.sql", c, 1, d).await,
        Pair::Bulk => run_pgbench(bench, "bulk.sql", BULK_CLIENTS, PGBENCH_BULK_ROWS, d).await,
    }
}

/// `writers` tasks, each appending `per_append` events to a fresh stream
/// (`NoStream`, so every append also pays the expected-version check) until
/// the deadline.
async fn run_factlog(
    bench: &Bench,
    writers: usize,
    per_append: usize,
    payload: &Value,
    d: Duration,
) -> Sample {
    let head_before = head_position(&bench.pool).await;
    let start = Instant::now();
    let deadline = start + d;
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let store = bench.store.clone();
            let events: Vec<NewEvent> = (0..per_append)
                .map(|_| NewEvent::new(EVENT_TYPE, payload.clone()))
                .collect();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let stream = format!("claim-{}", uuid::Uuid::new_v4());
                    let t = Instant::now();
                    store
                        .append(
                            &stream,
                            ExpectedVersion::NoStream,
                            events.clone(),
                            Metadata::by(ACTOR),
                        )
                        .await
                        .expect("factlog append");
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("writer task"));
    }
    let elapsed = start.elapsed();
    let events = (latencies.len() * per_append) as f64;
    let (logged, commits): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT recorded_at) FROM events WHERE position > $1",
    )
    .bind(head_before)
    .fetch_one(&bench.pool)
    .await
    .expect("count events and commits");
    // Every transaction stamps all its events with one recorded_at, so
    // distinct stamps count group commits.
    assert_eq!(
        logged as f64, events,
        "every acknowledged event is in the log"
    );
    let (p50, p99) = percentiles(&mut latencies);
    Sample {
        events_per_sec: events / elapsed.as_secs_f64(),
        p50,
        p99,
        events_per_commit: events / commits.max(1) as f64,
    }
}

async fn head_position(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT position FROM event_head")
        .fetch_one(pool)
        .await
        .expect("read the log head")
}

fn write_pgbench_scripts(dir: &Path) {
    let data = PAYLOAD.replace('\'', "''");
    let columns =
        "position, event_id, stream, version, type, data, metadata, actor, recorded_at, hash";
    let single = single_insert_script();
    // The CASE on g keeps the planner from folding the jsonb literal into one
    // constant: factlog parses every event's jsonb, so pgbench must too.
    let bulk = format!(
        "WITH s AS (SELECT 'claim-' || gen_random_uuid() AS stream) \
         INSERT INTO bench_events ({columns}) SELECT nextval('bench_events_position'), \
         gen_random_uuid(), s.stream, g, '{EVENT_TYPE}', \
         (CASE WHEN g > 0 THEN '{data}' END)::jsonb, '{{}}'::jsonb, \
         '{ACTOR}', now(), sha256(random()::text::bytea) \
         FROM s, generate_series(1, {PGBENCH_BULK_ROWS}) AS g;\n"
    );
    std::fs::write(dir.join("single.sql"), single).expect("write single.sql");
    std::fs::write(dir.join("bulk.sql"), bulk).expect("write bulk.sql");
}

/// pgbench's side of a pair, in events: `rows_per_txn` rows per transaction.
async fn run_pgbench(
    bench: &Bench,
    script: &str,
    clients: usize,
    rows_per_txn: usize,
    d: Duration,
) -> Sample {
    let run = bench.pgbench.run(script, clients, d, &[]).await;
    Sample {
        events_per_sec: run.rate * rows_per_txn as f64,
        p50: run.p50,
        p99: run.p99,
        events_per_commit: rows_per_txn as f64,
    }
}

struct VerifyResult {
    events: u64,
    fill: Duration,
    verify: Duration,
}

/// Fills a database of its own, so the chain verified is exactly
/// `target` events long whatever the rounds before appended.
async fn measure_verify(bench: &Bench, payload: &Value, target: u64) -> VerifyResult {
    let (_, pool) = database(&bench.cluster, "verify", 40).await;
    let store = EventStore::open(pool.clone(), store_config())
        .await
        .expect("open the verify event store");

    let claimed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..FILL_WRITERS)
        .map(|_| {
            let store = store.clone();
            let claimed = claimed.clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                loop {
                    let from = claimed.fetch_add(FACTLOG_BULK_EVENTS as u64, Ordering::Relaxed);
                    if from >= target {
                        break;
                    }
                    let n = (target - from).min(FACTLOG_BULK_EVENTS as u64) as usize;
                    let events = vec![NewEvent::new(EVENT_TYPE, payload.clone()); n];
                    store
                        .append(
                            &format!("claim-{}", uuid::Uuid::new_v4()),
                            ExpectedVersion::NoStream,
                            events,
                            Metadata::by(ACTOR),
                        )
                        .await
                        .expect("fill append");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("fill task");
    }
    let fill = start.elapsed();

    // A cold first read would mostly measure the page cache; the chain check
    // is what is being timed, so start it from a checkpointed, warm table.
    checkpoint(&pool).await;
    let start = Instant::now();
    let report = store::verify_chain(&pool, 0, |_| {})
        .await
        .expect("verify the chain");
    let verify = start.elapsed();
    assert!(report.ok, "chain verification failed: {report:?}");
    assert_eq!(report.checked, target, "verify checked every event");
    VerifyResult {
        events: report.checked,
        fill,
        verify,
    }
}

fn render_report(
    settings: &Settings,
    machine: &str,
    results: &[Measured],
    verify: &VerifyResult,
    total: Duration,
) -> String {
    let mut out = String::new();
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let _ = writeln!(out, "## factlog append benchmark, {now}\n");
    let _ = writeln!(
        out,
        "Machine: {machine}. {} s per measurement, {} round(s), {} payload bytes, {} appender lane(s); whole run {:.0} s.\n",
        settings.secs,
        settings.rounds,
        PAYLOAD.len(),
        store_config().lanes,
        total.as_secs_f64()
    );
    write_medians(
        &mut out,
        "| measurement | events/s | p50 | p99 | ev/commit | pgbench events/s | pgbench p50 | pgbench p99 | ratio (factlog/pgbench) | goal |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        results,
        |m| m.pair,
        |pair, med| {
            let ratio = med(&|m| m.ratio());
            let goal = match pair.goal() {
                Some(g) => format!("≥ {g}x: {}", if ratio >= g { "met" } else { "NOT met" }),
                None => "—".into(),
            };
            format!(
                "| {} | {} | {} | {} | {:.1} | {} | {} | {} | {:.2} | {} |",
                pair.label(),
                rate(med(&|m| m.factlog.events_per_sec)),
                ms_fmt(med(&|m| m.factlog.p50.as_secs_f64())),
                ms_fmt(med(&|m| m.factlog.p99.as_secs_f64())),
                med(&|m| m.factlog.events_per_commit),
                rate(med(&|m| m.pgbench.events_per_sec)),
                ms_fmt(med(&|m| m.pgbench.p50.as_secs_f64())),
                ms_fmt(med(&|m| m.pgbench.p99.as_secs_f64())),
                ratio,
                goal
            )
        },
    );
    let fill_rate = verify.events as f64 / verify.fill.as_secs_f64();
    let verify_rate = verify.events as f64 / verify.verify.as_secs_f64();
    let _ = writeln!(
        out,
        "| fill {} events ({FACTLOG_BULK_EVENTS}-event appends, {FILL_WRITERS} writers), {:.1} s | {} | — | — | — | — | — | — | — | — |",
        thousands(verify.events),
        verify.fill.as_secs_f64(),
        rate(fill_rate)
    );
    let _ = writeln!(
        out,
        "| verify_chain over {} events, {:.2} s | {} | — | — | — | — | — | — | — | < 10 s: {} |",
        thousands(verify.events),
        verify.verify.as_secs_f64(),
        rate(verify_rate),
        if verify.verify < Duration::from_secs(10) {
            "met"
        } else {
            "NOT met"
        }
    );

    let _ = writeln!(
        out,
        "\nPer round (events/s). \"Others' CPU\" is the share of the machine's CPU time \
         used during the pair by anything but this benchmark and its cluster (other \
         processes, hypervisor steal); pairs where it is high are less trustworthy.\n"
    );
    let _ = writeln!(
        out,
        "| round | measurement | factlog | pgbench | ratio | others' CPU |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|");
    for m in results {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} | {:.0}% |",
            m.round + 1,
            m.pair.label(),
            rate(m.factlog.events_per_sec),
            rate(m.pgbench.events_per_sec),
            m.ratio(),
            m.others_cpu * 100.0
        );
    }
    out
}

fn write_report(report: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results");
    std::fs::create_dir_all(&dir).expect("create bench/results");
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let path = dir.join(format!("append-{stamp}.md"));
    std::fs::write(&path, report).expect("write the results file");
    path
}

fn rate(per_sec: f64) -> String {
    thousands(per_sec.round() as u64)
}

fn ms_fmt(secs: f64) -> String {
    format!("{:.2} ms", secs * 1e3)
}

/// The store as `factlog serve` would configure it (`FACTLOG_APPEND_LANES`).
fn store_config() -> StoreConfig {
    let default = StoreConfig::default();
    StoreConfig {
        lanes: env_number("FACTLOG_APPEND_LANES", default.lanes as u64) as usize,
        ..default
    }
}
