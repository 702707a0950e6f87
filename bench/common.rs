//! What the benchmarks share: pgbench's side of the comparison (the
//! payload, the table, the single-row script, running it), the machine's description,
//! CPU accounting from `/proc`, and number formatting. Each bench declares
//! `mod common;`; a bench that uses only part of it allows the rest to go
//! unused on that line.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use factlog::db::{self, EphemeralCluster};
use sqlx::PgPool;

/// A fact-check claim of about 300 bytes, written canonically (keys sorted,
/// no spaces) so that factlog and pgbench store byte-identical jsonb. No
/// colon is followed by a letter, so pgbench sees no `:variable` in it.
pub const PAYLOAD: &str = concat!(
    r#"{"checked_by":"desk-7","claim":"The city council approved a four percent increase "#,
    r#"in the transit budget for the next fiscal year, citing ridership growth on the "#,
    r#"east side lines.","rating":"mostly-true","source":"https://example.org/news/"#,
    r#"transit-budget-vote","speaker":"Council member J. Rivera","topic":"transit"}"#
);

/// The `events` table's shape and indexes, minus factlog's triggers (which
/// only fire on UPDATE, DELETE and TRUNCATE, so inserts never pay for them).
pub const PGBENCH_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bench_events (
    position    bigint      PRIMARY KEY CHECK (position > 0),
    event_id    uuid        NOT NULL UNIQUE,
    stream      text        NOT NULL CHECK (stream <> ''),
    version     bigint      NOT NULL CHECK (version > 0),
    type        text        NOT NULL CHECK (type <> ''),
    data        jsonb       NOT NULL,
    metadata    jsonb       NOT NULL,
    actor       text        NOT NULL,
    recorded_at timestamptz NOT NULL,
    hash        bytea       NOT NULL CHECK (octet_length(hash) = 32),
    CONSTRAINT bench_events_stream_version UNIQUE (stream, version)
);
CREATE INDEX IF NOT EXISTS bench_events_actor_recorded_at ON bench_events (actor, recorded_at, position);
CREATE INDEX IF NOT EXISTS bench_events_recorded_at ON bench_events (recorded_at, position);
CREATE SEQUENCE IF NOT EXISTS bench_events_position;
";

/// The library's log to stderr, at `RUST_LOG` (default `warn`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Database `name` of `cluster`, created if missing and migrated; its URL
/// and a pool of `connections`.
pub async fn database(
    cluster: &EphemeralCluster,
    name: &str,
    connections: u32,
) -> (String, PgPool) {
    let url = cluster.url(name);
    db::create_database_if_missing(&url)
        .await
        .unwrap_or_else(|e| panic!("create the {name} database: {e}"));
    let pool = db::pool(&url, connections)
        .await
        .unwrap_or_else(|e| panic!("connect to the {name} database: {e}"));
    db::migrate(&pool)
        .await
        .unwrap_or_else(|e| panic!("migrate the {name} database: {e}"));
    (url, pool)
}

/// Each measurement starts from a clean checkpoint so that one side does not
/// pay for the dirty pages the other left behind.
pub async fn checkpoint(pool: &PgPool) {
    sqlx::query("CHECKPOINT")
        .execute(pool)
        .await
        .expect("CHECKPOINT");
}

/// Lines are `client_id transaction_no time_us script_no epoch epoch_us`,
/// one file per pgbench thread.
fn read_pgbench_latencies(dir: &Path) -> Vec<Duration> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the pgbench log directory") {
        let path = entry.expect("pgbench log entry").path();
        let text = std::fs::read_to_string(&path).expect("read a pgbench log");
        for line in text.lines() {
            let us: u64 = line
                .split_whitespace()
                .nth(2)
                .and_then(|f| f.parse().ok())
                .unwrap_or_else(|| panic!("unexpected pgbench log line {line:?}"));
            out.push(Duration::from_micros(us));
        }
    }
    out
}

pub fn percentiles(latencies: &mut [Duration]) -> (Duration, Duration) {
    latencies.sort_unstable();
    (quantile(latencies, 0.50), quantile(latencies, 0.99))
}

/// The `q` quantile (nearest rank) of latencies already sorted; zero when
/// there are none.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// The median of `f` over one pair's rounds.
type Median<'a, M> = &'a dyn Fn(&dyn Fn(&M) -> f64) -> f64;

/// A table of medians over rounds of paired measurements (factlog against
/// pgbench): how to read it, `header` and its `align` line, then one row per
/// pair in the order the pairs first ran, `row(pair, med)`, where `med(f)`
/// is the median of `f` over that pair's rounds.
pub fn write_medians<M, P: Copy + PartialEq>(
    out: &mut String,
    header: &str,
    align: &str,
    results: &[M],
    pair_of: impl Fn(&M) -> P,
    row: impl Fn(P, Median<'_, M>) -> String,
) {
    let _ = writeln!(
        out,
        "Medians over rounds; the ratio is the median of the per-round ratios \
         (factlog and pgbench measured back to back).\n"
    );
    let _ = writeln!(out, "{header}");
    let _ = writeln!(out, "{align}");
    let mut pairs: Vec<P> = Vec::new();
    for m in results {
        if !pairs.contains(&pair_of(m)) {
            pairs.push(pair_of(m));
        }
    }
    for pair in pairs {
        let ms: Vec<&M> = results.iter().filter(|m| pair_of(m) == pair).collect();
        let med = |f: &dyn Fn(&M) -> f64| median(ms.iter().map(|m| f(m)).collect());
        let _ = writeln!(out, "{}", row(pair, &med));
    }
}

pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn postmaster_pid(cluster_dir: &Path) -> Option<u32> {
    std::fs::read_to_string(cluster_dir.join("pgdata/postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// utime+stime and cutime+cstime from `/proc/<pid>/stat`.
fn process_ticks(pid: &str) -> Option<ProcessTicks> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields follow the last ')'.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some(ProcessTicks {
        parent: fields.get(1)?.parse().ok()?,
        own: num(11)? + num(12)?,
        reaped: num(13)? + num(14)?,
    })
}

struct ProcessTicks {
    parent: u32,
    own: u64,
    reaped: u64,
}

/// Where the machine's CPU went between two [`CpuSnapshot`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSplit {
    /// Cores used on average: this process and its reaped children (the
    /// load generator, pgbench, factlog commands), the server, PostgreSQL,
    /// anything else.
    pub client: f64,
    pub server: f64,
    pub postgres: f64,
    pub others: f64,
    /// Share of the whole machine used by anything but the benchmark.
    pub others_share: f64,
    /// CPU seconds of the server and of PostgreSQL.
    pub server_secs: f64,
    pub postgres_secs: f64,
}

/// CPU time in clock ticks: the machine's, and each party's: this process
/// (the load generator, plus reaped children such as pgbench), the server,
/// and the cluster's processes.
pub struct CpuSnapshot {
    busy: u64,
    total: u64,
    client: u64,
    server: u64,
    postgres: u64,
}

impl CpuSnapshot {
    pub fn take(postmaster: Option<u32>, server: Option<u32>) -> CpuSnapshot {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let ticks: Vec<u64> = stat
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("cpu "))
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|f| f.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        let at = |i: usize| ticks.get(i).copied().unwrap_or(0);
        // user nice system idle iowait irq softirq steal (guest is inside
        // user). Interrupt time is charged to no process and is mostly our
        // own loopback traffic, so it counts as nobody's.
        let busy = at(0) + at(1) + at(2) + at(7);
        let total = busy + at(3) + at(4);
        let client = process_ticks("self").map_or(0, |p| p.own + p.reaped);
        let server = server
            .and_then(|pid| process_ticks(&pid.to_string()))
            .map_or(0, |p| p.own + p.reaped);
        let mut postgres = 0;
        if let Some(pm) = postmaster {
            postgres += process_ticks(&pm.to_string()).map_or(0, |p| p.own + p.reaped);
            // Live backends; exited ones are in the postmaster's reaped time.
            for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                let name = entry.file_name();
                let Some(pid) = name
                    .to_str()
                    .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                else {
                    continue;
                };
                if let Some(p) = process_ticks(pid).filter(|p| p.parent == pm) {
                    postgres += p.own;
                }
            }
        }
        CpuSnapshot {
            busy,
            total,
            client,
            server,
            postgres,
        }
    }

    pub fn since(&self, before: &CpuSnapshot) -> CpuSplit {
        let total = self.total.saturating_sub(before.total);
        if total == 0 {
            return CpuSplit::default();
        }
        let busy = self.busy.saturating_sub(before.busy);
        let client = self.client.saturating_sub(before.client);
        let server = self.server.saturating_sub(before.server);
        let postgres = self.postgres.saturating_sub(before.postgres);
        let others = busy.saturating_sub(client + server + postgres);
        // Machine ticks count every CPU; one core's worth is total / cpus.
        let per_core = total as f64 / cpu_count() as f64;
        CpuSplit {
            client: client as f64 / per_core,
            server: server as f64 / per_core,
            postgres: postgres as f64 / per_core,
            others: others as f64 / per_core,
            others_share: others as f64 / total as f64,
            server_secs: server as f64 / clock_ticks_per_sec(),
            postgres_secs: postgres as f64 / clock_ticks_per_sec(),
        }
    }
}

/// CPUs as /proc/stat counts them (what its tick totals add up).
pub fn cpu_count() -> usize {
    std::fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count()
        .max(1)
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

pub async fn machine_description(pool: &PgPool) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let pg: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(pool)
        .await
        .expect("server version");
    format!("{cores} cores ({cpu}), {mem_gib:.1} GiB RAM, PostgreSQL {pg} (fsync on)")
}

/// One row per transaction into `bench_events`, with the same work per row
/// as factlog's append: a fresh uuid, a fresh stream, the payload's jsonb, a
/// 32-byte hash and every index.
pub fn single_insert_script() -> String {
    let data = PAYLOAD.replace('\'', "''");
    format!(
        "INSERT INTO bench_events (position, event_id, stream, version, type, data, metadata, \
         actor, recorded_at, hash) VALUES (nextval('bench_events_position'), \
         gen_random_uuid(), 'claim-' || gen_random_uuid(), 1, 'ClaimAsserted', '{data}'::jsonb, \
         '{{}}'::jsonb, 'bench', now(), sha256(random()::text::bytea));\n"
    )
}

/// What one side of a measurement did: requests (HTTP) or transactions
/// (pgbench) per second, and the p50/p99 latency of each.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub rate: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// pgbench against database `db` of the cluster on `port`, with its scripts
/// in `scripts` (each run's per-transaction logs go to a directory there).
pub struct Pgbench {
    pub scripts: PathBuf,
    pub port: u16,
    pub db: String,
}

impl Pgbench {
    /// `scripts/<script>` with one transaction per script run, `clients`
    /// clients (`-j` up to 2) for `d`; latencies come from its
    /// per-transaction log (`-l`), so both sides get p50/p99 the same way.
    /// Any failed transaction fails the bench.
    pub async fn run(&self, script: &str, clients: usize, d: Duration, extra: &[&str]) -> Sample {
        let logs = tempfile::Builder::new()
            .prefix("pgbench-log")
            .tempdir_in(&self.scripts)
            .expect("pgbench log directory");
        let prefix = logs.path().join("txn");
        let output = tokio::process::Command::new("pgbench")
            .args(["-n", "-h", "127.0.0.1", "-U", "postgres"])
            .arg("-p")
            .arg(self.port.to_string())
            .args(extra)
            .arg("-f")
            .arg(self.scripts.join(script))
            .arg("-c")
            .arg(clients.to_string())
            .arg("-j")
            .arg(clients.min(2).to_string())
            .arg("-T")
            .arg(d.as_secs().max(1).to_string())
            .arg("-l")
            .arg(format!("--log-prefix={}", prefix.display()))
            .arg(&self.db)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run pgbench (is it on PATH?)");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "pgbench failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let tps: f64 = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("tps = "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no tps in pgbench output:\n{stdout}"));
        if let Some(failed) = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("number of failed transactions: "))
        {
            assert!(
                failed.starts_with('0'),
                "pgbench transactions failed: {failed}"
            );
        }
        let mut latencies = read_pgbench_latencies(logs.path());
        assert!(!latencies.is_empty(), "pgbench wrote no transaction log");
        let (p50, p99) = percentiles(&mut latencies);
        Sample {
            rate: tps,
            p50,
            p99,
        }
    }
}
