//! Exchange benchmark: `factlog export` and `factlog import` (issue 26)
//! against PostgreSQL's own COPY of the same rows, on the same throw-away,
//! fsync-on cluster in the same run. A log is generated (`factlog
//! generate`), then, per round: `factlog export` to a file beside `psql`'s
//! `COPY (SELECT …) TO STDOUT` of the columns it reads, and `factlog
//! import` of that file into a fresh database beside `COPY … FROM STDIN` of
//! the same rows into tables shaped like `events` and `event_secrets`.
//! See bench/README.md.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

#[allow(
    dead_code,
    reason = "the harness's HTTP client; this bench runs no server"
)]
mod client;
#[allow(
    dead_code,
    reason = "pgbench, the CPU accounting and the paired-rounds table are the other benches'"
)]
mod common;
#[allow(
    dead_code,
    reason = "the server, its tokens and the load generator are the other benches'"
)]
mod harness;

use factlog::db::EphemeralCluster;
use sqlx::PgPool;

use common::{checkpoint, database, machine_description, median, thousands};
use harness::{
    Row, Waited, binary_description, env_number, kib_mb, log_head, rate, report_head, row,
    run_on_cluster, run_waited, set_synchronous_commit, write_report, write_summary,
};

const DB_NAME: &str = "exchange";

/// Export's rate, at least this share of `COPY … TO STDOUT`'s.
const EXPORT_RATIO_GOAL: f64 = 0.5;
const IMPORT_RATE_GOAL: f64 = 50_000.0;
/// Import's rate, at least this share of `COPY … FROM STDIN`'s.
const IMPORT_RATIO_GOAL: f64 = 0.3;
const IMPORT_RSS_GOAL_MB: f64 = 200.0;

/// What `factlog export` reads of a log of `events` events (every column
/// and each event's secrets, in order), in text rather than its binary COPY.
fn export_copy_sql(events: u64) -> String {
    format!(
        "COPY ({}) TO STDOUT",
        factlog::store::export::select(0, events as i64)
    )
}

/// Tables with the columns, checks and indexes of the two `factlog import`
/// writes (`LIKE … INCLUDING ALL` copies no triggers; `events`' own fire
/// only on UPDATE, DELETE and TRUNCATE, so an INSERT never runs them).
const COPY_TABLES_SQL: &str = "CREATE TABLE copy_events (LIKE events INCLUDING ALL); \
     CREATE TABLE copy_secrets (LIKE event_secrets INCLUDING ALL);";

struct Settings {
    events: u64,
    rounds: usize,
    /// `--batch` for the import; `None`: factlog's default.
    batch: Option<u64>,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            events: env_number("FACTLOG_BENCH_EXCHANGE_EVENTS", 1_000_000),
            rounds: env_number("FACTLOG_BENCH_ROUNDS", 1) as usize,
            batch: std::env::var("FACTLOG_BENCH_EXCHANGE_BATCH")
                .ok()
                .map(|_| env_number("FACTLOG_BENCH_EXCHANGE_BATCH", 1)),
        }
    }
}

struct Bench {
    settings: Settings,
    cluster: EphemeralCluster,
    bin: PathBuf,
    url: String,
    pool: PgPool,
    /// The export, the COPY files, the psql script.
    scratch: tempfile::TempDir,
}

impl Bench {
    fn file(&self, name: &str) -> PathBuf {
        self.scratch.path().join(name)
    }

    fn factlog(&self, url: &str, args: &[&str], stdout: &Path) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.bin);
        cmd.args(args)
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(create(stdout));
        cmd
    }

    /// psql on database `db` (no ~/.psqlrc, stop at the first error), its
    /// output to `stdout`.
    fn psql(&self, db: &str, args: &[&str], stdout: &Path) -> std::process::Command {
        let mut cmd = std::process::Command::new("psql");
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U"])
            .arg("postgres")
            .arg("-p")
            .arg(self.cluster.port().to_string())
            .arg("-d")
            .arg(db)
            .args(args)
            .stdin(Stdio::null())
            .stdout(create(stdout));
        cmd
    }
}

fn create(path: &Path) -> std::fs::File {
    std::fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()))
}

fn main() {
    let settings = Settings::from_env();
    run_on_cluster(|cluster, bin| run(settings, cluster, bin));
}

async fn run(settings: Settings, cluster: EphemeralCluster, bin: PathBuf) {
    let started = Instant::now();
    let (url, pool) = database(&cluster, DB_NAME, 4).await;
    let bench = Bench {
        settings,
        cluster,
        bin,
        url,
        pool,
        scratch: tempfile::tempdir().expect("scratch directory"),
    };
    let machine = machine_description(&bench.pool).await;
    eprintln!("{machine}");
    let events = fill(&bench).await;
    prepare_copy_files(&bench).await;
    let mut rounds = Vec::new();
    for i in 0..bench.settings.rounds {
        rounds.push(round(&bench, i, events).await);
    }
    let report = render(&bench, &machine, events, &rounds, started);
    write_report("exchange", &report);
    bench.pool.close().await;
}

/// `factlog generate` (with `synchronous_commit` off for its connections
/// only), then `VACUUM ANALYZE`; returns the log's head.
async fn fill(bench: &Bench) -> u64 {
    let n = bench.settings.events;
    eprintln!("filling the log with {} events...", thousands(n));
    let t = Instant::now();
    set_synchronous_commit(&bench.pool, DB_NAME, false).await;
    let out = bench.file("generate.out");
    run_ok(
        bench.factlog(&bench.url, &["generate", "--events", &n.to_string()], &out),
        "factlog generate",
    )
    .await;
    set_synchronous_commit(&bench.pool, DB_NAME, true).await;
    let events = log_head(&bench.pool).await as u64;
    eprintln!(
        "  {} events in {:.0} s; VACUUM ANALYZE...",
        thousands(events),
        t.elapsed().as_secs_f64()
    );
    sqlx::raw_sql("VACUUM ANALYZE")
        .execute(&bench.pool)
        .await
        .expect("VACUUM ANALYZE");
    events
}

/// The rows `COPY FROM` loads, as the log stores them (unmeasured).
async fn prepare_copy_files(bench: &Bench) {
    for (table, file) in [("events", "events.copy"), ("event_secrets", "secrets.copy")] {
        let sql = format!("COPY {table} TO STDOUT");
        run_ok(
            bench.psql(DB_NAME, &["-c", &sql], &bench.file(file)),
            "psql COPY TO",
        )
        .await;
    }
}

async fn run_ok(cmd: std::process::Command, what: &str) -> Waited {
    let run = run_waited(cmd).await;
    assert!(run.success(), "{what} failed (wait status {})", run.status);
    run
}

fn lines_in(path: &Path) -> u64 {
    use std::io::BufRead as _;
    let f = std::fs::File::open(path).expect("open a written file");
    std::io::BufReader::with_capacity(1 << 20, f)
        .split(b'\n')
        .count() as u64
}

fn size_of(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// One run of a command over the log: how long, its peak RSS, bytes.
struct Timed {
    run: Waited,
    bytes: u64,
}

impl Timed {
    fn rate(&self, events: u64) -> f64 {
        events as f64 / self.run.secs
    }
}

struct Round {
    export: Timed,
    copy_to: Timed,
    import: Timed,
    copy_from: Timed,
}

impl Round {
    fn export_ratio(&self) -> f64 {
        self.copy_to.run.secs / self.export.run.secs
    }

    fn import_ratio(&self) -> f64 {
        self.copy_from.run.secs / self.import.run.secs
    }
}

/// Export and COPY TO, then import and COPY FROM, each pair in the order
/// the round's parity says, each from a clean checkpoint.
async fn round(bench: &Bench, i: usize, events: u64) -> Round {
    eprintln!("round {}:", i + 1);
    let export_first = i.is_multiple_of(2);
    let (mut export, mut copy_to) = (None, None);
    for side in [export_first, !export_first] {
        checkpoint(&bench.pool).await;
        if side {
            export = Some(measure_export(bench, events).await);
        } else {
            copy_to = Some(measure_copy_to(bench, events).await);
        }
    }
    let (mut import, mut copy_from) = (None, None);
    for side in [export_first, !export_first] {
        if side {
            import = Some(measure_import(bench, i, events).await);
        } else {
            copy_from = Some(measure_copy_from(bench, i, events).await);
        }
    }
    let (Some(export), Some(copy_to), Some(import), Some(copy_from)) =
        (export, copy_to, import, copy_from)
    else {
        unreachable!("each side ran once");
    };
    Round {
        export,
        copy_to,
        import,
        copy_from,
    }
}

async fn measure_export(bench: &Bench, events: u64) -> Timed {
    let out = bench.file("export.ndjson");
    let run = run_ok(
        bench.factlog(&bench.url, &["export"], &out),
        "factlog export",
    )
    .await;
    assert_eq!(lines_in(&out), events, "the export has a line per event");
    let t = Timed {
        run,
        bytes: size_of(&out),
    };
    eprintln!(
        "  factlog export: {:.1} s ({}/s), {:.0} MB, peak RSS {:.0} MB",
        t.run.secs,
        rate(t.rate(events)),
        t.bytes as f64 / 1e6,
        kib_mb(t.run.peak_rss_kib)
    );
    t
}

async fn measure_copy_to(bench: &Bench, events: u64) -> Timed {
    let out = bench.file("copy-to.out");
    let run = run_ok(
        bench.psql(DB_NAME, &["-c", &export_copy_sql(events)], &out),
        "psql COPY TO",
    )
    .await;
    assert_eq!(lines_in(&out), events, "COPY wrote a row per event");
    let t = Timed {
        run,
        bytes: size_of(&out),
    };
    eprintln!(
        "  COPY (SELECT …) TO STDOUT: {:.1} s ({}/s), {:.0} MB",
        t.run.secs,
        rate(t.rate(events)),
        t.bytes as f64 / 1e6
    );
    std::fs::remove_file(&out).ok();
    t
}

/// A fresh, migrated database of the cluster, and its URL.
async fn fresh_database(bench: &Bench, name: &str) -> String {
    drop_database(bench, name).await;
    let (url, pool) = database(&bench.cluster, name, 1).await;
    pool.close().await;
    url
}

async fn drop_database(bench: &Bench, name: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&bench.pool)
    .await
    .expect("DROP DATABASE");
}

async fn measure_import(bench: &Bench, i: usize, events: u64) -> Timed {
    let name = format!("import_{i}");
    let url = fresh_database(bench, &name).await;
    let file = bench.file("export.ndjson");
    let file = file.to_str().expect("a UTF-8 temporary path");
    let mut args = vec!["import", file];
    let batch = bench.settings.batch.map(|b| b.to_string());
    if let Some(b) = &batch {
        args.extend(["--batch", b.as_str()]);
    }
    checkpoint(&bench.pool).await;
    let summary = bench.file("import.out");
    let run = run_ok(bench.factlog(&url, &args, &summary), "factlog import").await;
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).expect("read the import's summary"))
            .expect("the import prints its summary as JSON");
    let source: Vec<u8> = sqlx::query_scalar("SELECT hash FROM event_head")
        .fetch_one(&bench.pool)
        .await
        .expect("the source's head hash");
    assert_eq!(summary["appended"], events, "{summary}");
    assert_eq!(
        summary["head_hash"].as_str(),
        Some(hex::encode(source).as_str()),
        "the imported log ends where the source does"
    );
    let t = Timed {
        run,
        bytes: size_of(Path::new(file)),
    };
    eprintln!(
        "  factlog import: {:.1} s ({}/s), peak RSS {:.0} MB",
        t.run.secs,
        rate(t.rate(events)),
        kib_mb(t.run.peak_rss_kib)
    );
    drop_database(bench, &name).await;
    t
}

async fn measure_copy_from(bench: &Bench, i: usize, events: u64) -> Timed {
    let name = format!("copy_{i}");
    fresh_database(bench, &name).await;
    run_ok(
        bench.psql(&name, &["-c", COPY_TABLES_SQL], &bench.file("psql.out")),
        "psql CREATE TABLE",
    )
    .await;
    let (rows, secrets) = (bench.file("events.copy"), bench.file("secrets.copy"));
    let script = bench.file("copy-from.sql");
    std::fs::write(
        &script,
        format!(
            "\\copy copy_events FROM '{}'\n\\copy copy_secrets FROM '{}'\n",
            rows.display(),
            secrets.display()
        ),
    )
    .expect("write the COPY script");
    let script = script.to_str().expect("a UTF-8 temporary path");
    checkpoint(&bench.pool).await;
    // One transaction (-1), as each of factlog's batches is one.
    let run = run_ok(
        bench.psql(&name, &["-1", "-f", script], &bench.file("psql.out")),
        "psql COPY FROM",
    )
    .await;
    let t = Timed {
        run,
        bytes: size_of(&rows) + size_of(&secrets),
    };
    eprintln!(
        "  COPY FROM STDIN: {:.1} s ({}/s), {:.0} MB",
        t.run.secs,
        rate(t.rate(events)),
        t.bytes as f64 / 1e6
    );
    drop_database(bench, &name).await;
    t
}

// ---------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------

fn med(rounds: &[Round], f: impl Fn(&Round) -> f64) -> f64 {
    median(rounds.iter().map(f).collect())
}

fn render(bench: &Bench, machine: &str, events: u64, rounds: &[Round], started: Instant) -> String {
    let s = &bench.settings;
    let mut out = report_head(
        "exchange",
        &format!("factlog exchange benchmark ({} events)", thousands(events)),
        machine,
        &format!("{:.1} min", started.elapsed().as_secs_f64() / 60.0),
    );
    let batch = s
        .batch
        .map_or_else(|| "its default".to_owned(), |b| b.to_string());
    let _ = writeln!(
        out,
        "Binary: {}.\n\nMethod: `factlog generate` fills the log (`synchronous_commit = off` \
         for the fill only), `VACUUM ANALYZE`. Each of {} round(s), each side from a \
         `CHECKPOINT`, which side goes first alternating: `factlog export` to a file (wall \
         time, peak RSS from `wait4`) beside `psql -c \"{}\"` to a file (the rows and \
         columns export reads, in text rather than binary); \
         `factlog import` of that export (`--batch` {batch}; checking every line's chain hash \
         and leaf) into a fresh migrated database, whose head hash must then be the \
         source's, beside `psql -1` running `\\copy … FROM` of the log's rows as `COPY events \
         TO STDOUT` and `COPY event_secrets TO STDOUT` wrote them, into fresh tables `LIKE \
         events INCLUDING ALL` and `LIKE event_secrets INCLUDING ALL` (the same columns, \
         checks and indexes; no triggers, and `events`' own fire only on UPDATE, DELETE and \
         TRUNCATE). Rates are events per second of wall time; ratios are medians of the \
         per-round ratios.\n",
        binary_description(&bench.bin),
        s.rounds,
        export_copy_sql(events),
    );
    let export_rate = med(rounds, |r| r.export.rate(events));
    let copy_to_rate = med(rounds, |r| r.copy_to.rate(events));
    let import_rate = med(rounds, |r| r.import.rate(events));
    let copy_from_rate = med(rounds, |r| r.copy_from.rate(events));
    let export_ratio = med(rounds, Round::export_ratio);
    let import_ratio = med(rounds, Round::import_ratio);
    let export_rss = med(rounds, |r| kib_mb(r.export.run.peak_rss_kib));
    let import_rss = rounds
        .iter()
        .map(|r| kib_mb(r.import.run.peak_rss_kib))
        .fold(0.0, f64::max);
    let rows = vec![
        Row {
            limit: format!("{}/s (`COPY (SELECT …) TO STDOUT`)", rate(copy_to_rate)),
            ratio: format!("{export_ratio:.2}x"),
            ..row(
                "`factlog export`, events/s",
                format!("{}/s", rate(export_rate)),
                "≥ 0.5x",
                Some(export_ratio >= EXPORT_RATIO_GOAL),
            )
        },
        row(
            "`factlog export`, peak RSS",
            format!("{export_rss:.0} MB"),
            "—",
            None,
        ),
        row(
            "`factlog import` (verified), events/s",
            format!("{}/s", rate(import_rate)),
            "≥ 50,000/s",
            Some(import_rate >= IMPORT_RATE_GOAL),
        ),
        Row {
            limit: format!("{}/s (`COPY … FROM STDIN`)", rate(copy_from_rate)),
            ratio: format!("{import_ratio:.2}x"),
            ..row(
                "`factlog import` against COPY FROM",
                format!("{}/s", rate(import_rate)),
                "≥ 0.3x",
                Some(import_ratio >= IMPORT_RATIO_GOAL),
            )
        },
        row(
            "`factlog import`, peak RSS (largest)",
            format!("{import_rss:.0} MB"),
            "< 200 MB",
            Some(import_rss < IMPORT_RSS_GOAL_MB),
        ),
    ];
    write_summary(&mut out, rows);
    let _ = writeln!(
        out,
        "\n### Rounds\n\n| round | side | seconds | events/s | CPU s | peak RSS | MB written or read |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|");
    for (i, r) in rounds.iter().enumerate() {
        for (side, t) in [
            ("`factlog export`", &r.export),
            ("`COPY (SELECT …) TO STDOUT` (psql)", &r.copy_to),
            ("`factlog import`", &r.import),
            ("`COPY … FROM STDIN` (psql)", &r.copy_from),
        ] {
            let _ = writeln!(
                out,
                "| {} | {side} | {:.2} | {} | {:.1} | {:.0} MB | {:.0} |",
                i + 1,
                t.run.secs,
                rate(t.rate(events)),
                t.run.cpu_secs,
                kib_mb(t.run.peak_rss_kib),
                t.bytes as f64 / 1e6
            );
        }
    }
    let _ = writeln!(
        out,
        "\nCPU s is the child's own user+system time (psql's, not the server's, for COPY)."
    );
    out
}
