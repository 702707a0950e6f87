//! What the benches that run the `factlog` binary share (http, scale,
//! tree): the binary and what it was built from, child commands waited for
//! with `wait4`, `factlog serve` as a subprocess, tokens, the closed-loop
//! load generator on bench/client.rs and the asserts it sends, and the
//! report's formatting. Each declares `mod harness;` beside `mod client;`
//! and `mod common;`, allowing what it does not use to go unused.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use factlog::db::EphemeralCluster;
use hyper::{Method, Request};
use serde_json::Value;
use sqlx::PgPool;

use crate::client;
use crate::common::{Sample, checkpoint, percentiles, thousands};

/// A request without an answer by then counts as failed (status 0).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the server's verifier or projections to catch up.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(600);

/// The server's interval between full passes of its chain verifier: its
/// hourly full pass over the whole log must not land in a measurement.
pub const VERIFY_EVERY_MINUTES: &str = "1440";
/// [`VERIFY_EVERY_MINUTES`] as an `env` entry for [`Server::start`]; the
/// pass at the server's first start is waited for ([`wait_until_verified`]).
pub const VERIFY_DAILY: (&str, &str) = ("FACTLOG_VERIFY_EVERY_MINUTES", VERIFY_EVERY_MINUTES);

/// A positive integer from the environment (`_` separators allowed), else `default`.
pub fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .replace('_', "")
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("{name} must be a positive integer, got {v:?}")),
        _ => default,
    }
}

/// The command that reproduces this run: every `FACTLOG_BENCH*` and
/// `FACTLOG_EPHEMERAL*` variable set, then cargo's.
pub fn command_line(bench: &str) -> String {
    let mut vars: Vec<String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("FACTLOG_BENCH") || k.starts_with("FACTLOG_EPHEMERAL"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    vars.sort();
    vars.push(format!("cargo bench --bench {bench}"));
    vars.join(" ")
}

fn die_with_parent(cmd: &mut std::process::Command) {
    // SAFETY: prctl is async-signal-safe. Children must not outlive a bench
    // that panics or is interrupted; they are spawned from the main thread,
    // which lives as long as the bench.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A child process run to its end, as `wait4` saw it.
pub struct Waited {
    /// Its wait status.
    pub status: i32,
    pub secs: f64,
    pub peak_rss_kib: u64,
    /// User and system CPU time.
    pub cpu_secs: f64,
}

impl Waited {
    pub fn success(&self) -> bool {
        libc::WIFEXITED(self.status) && libc::WEXITSTATUS(self.status) == 0
    }
}

/// Starts `cmd` (dying with the bench) and waits for it with `wait4`, which
/// gives its peak RSS and CPU time. Call it from the main thread: the
/// child's PR_SET_PDEATHSIG is tied to the thread that spawns it.
pub async fn run_waited(mut cmd: std::process::Command) -> Waited {
    die_with_parent(&mut cmd);
    let start = Instant::now();
    let child = cmd.spawn().expect("start a factlog command");
    let pid = child.id() as libc::pid_t;
    let (status, usage) = tokio::task::spawn_blocking(move || {
        let mut status = 0;
        // SAFETY: a zeroed rusage is a valid out-parameter; wait4 fills it.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our own child, not yet waited for (the `Child`
        // handle is never waited on: it is dropped below).
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
        (status, usage)
    })
    .await
    .expect("wait for the child");
    drop(child);
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Waited {
        status,
        secs: start.elapsed().as_secs_f64(),
        // Linux reports ru_maxrss in KiB.
        peak_rss_kib: usage.ru_maxrss.max(0) as u64,
        cpu_secs: tv(usage.ru_utime) + tv(usage.ru_stime),
    }
}

/// A bench's `main`: logging, the `factlog` binary, then `run` on a
/// throw-away cluster (fsync on), on this, the main thread: the children it
/// starts (the server, factlog commands) get PR_SET_PDEATHSIG from it.
pub fn run_on_cluster<F: Future<Output = ()>>(run: impl FnOnce(EphemeralCluster, PathBuf) -> F) {
    crate::common::init_logging();
    let bin = find_server_binary();
    eprintln!("starting a throw-away PostgreSQL cluster (fsync on)...");
    let cluster = EphemeralCluster::start(false).expect("start the ephemeral PostgreSQL cluster");
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(run(cluster, bin));
}

/// Sends `req` on a connection of its own and returns the body of its 200
/// answer; any other answer fails the bench.
pub async fn fetch_ok(authority: &str, req: Request<client::Body>) -> Bytes {
    fetch_expecting(authority, req, 200).await
}

/// [`fetch_ok`] for an answer of status `want`.
pub async fn fetch_expecting(authority: &str, req: Request<client::Body>, want: u16) -> Bytes {
    let what = format!("{} {}", req.method(), req.uri());
    let (status, body) = client::Conn::new(authority, REQUEST_TIMEOUT)
        .send(req)
        .await;
    assert_eq!(status, want, "{what}: {}", String::from_utf8_lossy(&body));
    body
}

/// Waits until `GET /v1/integrity` says nothing is unverified and the full
/// pass a fresh server starts with has finished (`token`: an auditor's).
pub async fn wait_until_verified(server: &Server, token: &str) {
    let mut conn = client::Conn::new(&server.authority, REQUEST_TIMEOUT);
    let start = Instant::now();
    loop {
        let (status, body) = conn
            .send(client::request(
                &server.authority,
                Method::GET,
                "/v1/integrity",
                token,
                None,
            ))
            .await;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert!(
            status == 200 || status == 0,
            "GET /v1/integrity answered {status}: {v}"
        );
        assert!(v["ok"] != false, "the chain is broken: {v}");
        if v["unverified"] == 0 && !v["full_check"]["finished_at"].is_null() {
            return;
        }
        assert!(
            start.elapsed() < SETTLE_LIMIT,
            "the server's verifier did not catch up within {SETTLE_LIMIT:?}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The position of the log's newest event.
pub async fn log_head(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT position FROM event_head")
        .fetch_one(pool)
        .await
        .expect("log head")
}

/// `synchronous_commit` for new connections to database `db`: off for the
/// generator only (it connects after this), back to the default for
/// everything measured.
pub async fn set_synchronous_commit(pool: &PgPool, db: &str, on: bool) {
    let sql = if on {
        format!("ALTER DATABASE {db} RESET synchronous_commit")
    } else {
        format!("ALTER DATABASE {db} SET synchronous_commit = off")
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(pool)
        .await
        .expect("set synchronous_commit");
}

/// How far the slowest projection is behind the head of the log.
pub async fn projection_lag(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT (SELECT position FROM event_head) - \
                (SELECT coalesce(min(position), 0) FROM projection_checkpoints)",
    )
    .fetch_one(pool)
    .await
    .expect("projection lag")
}

/// Waits until the projections have caught up with the log, or `limit` has
/// passed (then warns and goes on); returns how long that took. Work left
/// over from one measurement would otherwise take CPU from the next,
/// whichever side it is.
pub async fn drain_projections(pool: &PgPool, limit: Duration) -> Duration {
    let start = Instant::now();
    while projection_lag(pool).await > 0 {
        if start.elapsed() > limit {
            eprintln!("WARNING: projections still behind after {limit:?}; going on");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// Projections at the head (see [`drain_projections`]) and a clean
/// checkpoint before each measurement.
pub async fn settle(pool: &PgPool, limit: Duration) {
    drain_projections(pool, limit).await;
    checkpoint(pool).await;
}

/// splitmix64: cheap, stateless pseudo-random numbers from a counter.
pub fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Numbers every claim body across the run, so successive phases do not
/// replay the same subjects and valid times in the same order.
static CLAIM_SEQ: AtomicU64 = AtomicU64::new(0);

/// A claim about one of the generator's facts (`subject N`, `count`), at
/// one of twelve valid times, with one of three values.
pub fn claim_body_text(story: &str, facts: u64) -> String {
    claim_text(story, "subject", 0xc1a1, facts)
}

/// A claim about one of `facts` facts (`<subject> N`, `count`), at one of
/// twelve valid times, with one of three values, so facts hold a handful of
/// claims and some valid times are contested, as in a real log; `salt`
/// picks the sequence. The load generator's hot path sends the text as it
/// is (`story` is a uuid, the rest digits and fixed words, so nothing needs
/// escaping).
pub fn claim_text(story: &str, subject: &str, salt: u64, facts: u64) -> String {
    let h = mix(CLAIM_SEQ.fetch_add(1, Ordering::Relaxed) ^ salt);
    format!(
        concat!(
            r#"{{"story_id":"{}","subject":"{} {}","property":"count","#,
            r#""value":{{"kind":"quantity","amount":"{}","unit":"person"}},"#,
            r#""quote":"some people were there","valid_at":"2020-{:02}"}}"#
        ),
        story,
        subject,
        h % facts,
        1000 + 100 * (h >> 20) % 3,
        1 + (h >> 40) % 12
    )
}

/// Sees a 2xx answer's body and the time it came.
pub type Answered = Arc<dyn Fn(&Bytes, Instant) + Send + Sync>;
/// What to do with one request's answer: its status and body.
pub type OnReply = Box<dyn FnOnce(u16, &[u8]) + Send>;
/// A request, and what to do with its answer.
pub type Call = (Request<client::Body>, Option<OnReply>);

/// What each simulated client sends, all of it to one server: `next(i)`
/// makes the `i`th request of the run (`None`: the work prepared for the
/// measurement has run out, which ends that client), and `answered`, when
/// set, sees each 2xx answer's body and the time it came.
#[derive(Clone)]
pub struct Op {
    pub authority: Arc<str>,
    pub next: Arc<dyn Fn(u64) -> Option<Call> + Send + Sync>,
    pub answered: Option<Answered>,
}

impl Op {
    pub fn new(
        authority: Arc<str>,
        next: impl Fn(u64) -> Option<Request<client::Body>> + Send + Sync + 'static,
    ) -> Op {
        Op::with_replies(authority, move |i| next(i).map(|req| (req, None)))
    }

    /// Requests that each carry what to do with their own answer.
    pub fn with_replies(
        authority: Arc<str>,
        next: impl Fn(u64) -> Option<Call> + Send + Sync + 'static,
    ) -> Op {
        Op {
            authority,
            next: Arc::new(next),
            answered: None,
        }
    }
}

/// `POST /v1/claims` about the generator's `facts` facts in `story`, the
/// editors' tokens taking turns.
pub fn assert_op(
    authority: Arc<str>,
    editors: Arc<Vec<String>>,
    story: Arc<str>,
    facts: u64,
) -> Op {
    let to = authority.clone();
    Op::new(authority, move |i| {
        let e = (i % editors.len() as u64) as usize;
        Some(client::request(
            &to,
            Method::POST,
            "/v1/claims",
            &editors[e],
            Some(Bytes::from(claim_body_text(&story, facts))),
        ))
    })
}

#[derive(Default)]
pub struct Load {
    pub ok: u64,
    pub latencies: Vec<Duration>,
    pub errors: BTreeMap<u16, u64>,
    pub elapsed: Duration,
    /// Some client's `next` had nothing more to send.
    pub ran_out: bool,
}

impl Load {
    pub fn sample(&mut self) -> Sample {
        let (p50, p99) = percentiles(&mut self.latencies);
        Sample {
            rate: self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9),
            p50,
            p99,
        }
    }
}

/// No limit on a closed loop's requests: it runs until its deadline.
pub const NO_LIMIT: u64 = u64::MAX;

/// `conns` connections, each sending its next request as soon as the last
/// answered, until the deadline or `limit` requests in all.
pub async fn closed_loop(conns: usize, d: Duration, limit: u64, op: Op) -> Load {
    // The simulated clients run on a thread of their own, on a single-threaded
    // runtime: they share two cores with the server and PostgreSQL, and a
    // multi-threaded runtime's wake-ups between its workers cost more CPU per
    // request than the clients' own work.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("load generator runtime");
        let _ = tx.send(runtime.block_on(clients(conns, d, limit, op)));
    });
    rx.await.expect("load generator thread")
}

async fn clients(conns: usize, d: Duration, limit: u64, op: Op) -> Load {
    let start = Instant::now();
    let deadline = start + d;
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            let op = op.clone();
            let next = next.clone();
            tokio::spawn(async move {
                let mut conn = client::Conn::new(&op.authority, REQUEST_TIMEOUT);
                let mut load = Load::default();
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= limit {
                        break;
                    }
                    let t = Instant::now();
                    let Some((req, on_reply)) = (op.next)(i) else {
                        load.ran_out = true;
                        break;
                    };
                    let (status, body) = conn.send(req).await;
                    let took = t.elapsed();
                    if let Some(f) = on_reply {
                        f(status, &body);
                    }
                    if (200..300).contains(&status) {
                        if let Some(f) = &op.answered {
                            f(&body, t + took);
                        }
                        load.ok += 1;
                        load.latencies.push(took);
                    } else {
                        *load.errors.entry(status).or_default() += 1;
                    }
                }
                load
            })
        })
        .collect();
    let mut total = Load::default();
    for t in tasks {
        let l = t.await.expect("load task");
        total.ok += l.ok;
        total.latencies.extend(l.latencies);
        for (s, n) in l.errors {
            *total.errors.entry(s).or_default() += n;
        }
        total.ran_out |= l.ran_out;
    }
    total.elapsed = start.elapsed();
    total
}

/// The `factlog` binary cargo built for this bench (it builds a package's
/// binaries before its benches, in the same profile), unless
/// `FACTLOG_BENCH_BIN` names another.
pub fn find_server_binary() -> PathBuf {
    let bin = std::env::var_os("FACTLOG_BENCH_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_factlog")),
        PathBuf::from,
    );
    assert!(
        bin.is_file(),
        "{} is missing: run the bench through `cargo bench`, which builds it \
         (or point FACTLOG_BENCH_BIN at a factlog binary)",
        bin.display()
    );
    if let Some(newer) = newest_source_after(&bin) {
        eprintln!(
            "WARNING: {} is older than {}; the figures will describe the old code. \
             `cargo bench` rebuilds it.",
            bin.display(),
            newer.display()
        );
    }
    bin
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// A source file changed after the binary was built, if any.
fn newest_source_after(bin: &Path) -> Option<PathBuf> {
    let built = mtime(bin)?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stack = vec![root.join("src"), root.join("migrations")];
    let mut files = vec![root.join("Cargo.toml"), root.join("Cargo.lock")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
        .into_iter()
        .filter(|f| mtime(f).is_some_and(|t| t > built))
        .max_by_key(|f| mtime(f))
}

pub fn binary_description(bin: &Path) -> String {
    let built = mtime(bin)
        .map(|t| {
            DateTime::<Utc>::from(t)
                .format("%Y-%m-%d %H:%M UTC")
                .to_string()
        })
        .unwrap_or_else(|| "unknown".into());
    let stale = match newest_source_after(bin) {
        Some(f) => format!(
            " (**older than {}: stale build**)",
            f.strip_prefix(env!("CARGO_MANIFEST_DIR"))
                .unwrap_or(&f)
                .display()
        ),
        None => String::new(),
    };
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    // Others may be editing the same checkout: say when the build may hold
    // changes no commit has.
    let dirty = std::process::Command::new("git")
        .args([
            "status",
            "--porcelain",
            "--",
            "src",
            "migrations",
            "Cargo.toml",
            "Cargo.lock",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or(0, |o| String::from_utf8_lossy(&o.stdout).lines().count());
    let dirty = if dirty > 0 {
        format!(" with uncommitted changes to {dirty} source file(s)")
    } else {
        String::new()
    };
    let path = bin
        .strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(bin)
        .display();
    format!("`{path}` built {built}{stale}, working tree at commit {commit}{dirty}")
}

pub async fn create_token(bin: &Path, url: &str, name: &str, role: &str) -> String {
    let out = tokio::process::Command::new(bin)
        .args(["token", "create", "--name", name, "--role", role])
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run factlog token create");
    assert!(
        out.status.success(),
        "factlog token create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("the token is text")
        .trim()
        .to_owned()
}

/// Editors' tokens per server: confirmations need someone other than the
/// asserter, and asserts spread over several actors, taking turns, as in a
/// newsroom.
pub const EDITORS: usize = 4;

/// [`EDITORS`] editors' tokens (`editor0`, `editor1`, …).
pub async fn editor_tokens(bin: &Path, url: &str) -> Vec<String> {
    let mut editors = Vec::new();
    for i in 0..EDITORS {
        editors.push(create_token(bin, url, &format!("editor{i}"), "editor").await);
    }
    editors
}

/// A process's resident memory: now (VmRSS) and at its peak (VmHWM).
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Memory {
    pub fn rss_mb(self) -> f64 {
        kib_mb(self.rss_kib)
    }

    pub fn hwm_mb(self) -> f64 {
        kib_mb(self.hwm_kib)
    }
}

pub fn memory_of(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
    }
}

/// `factlog serve` as a child process (`FACTLOG_RATE_LIMIT=0`), logging to
/// a file of its own; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Server {
    child: std::process::Child,
    pub authority: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// With `FACTLOG_RATE_LIMIT=0`, `RUST_LOG=warn` and `env` besides;
    /// ready when `/readyz` answers 200.
    pub async fn start(bin: &Path, url: &str, env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let dir = tempfile::tempdir().expect("directory for the server log");
        let log = dir.path().join("serve.log");
        let out = std::fs::File::create(&log).expect("create the server log");
        let err = out.try_clone().expect("server log handle");
        let mut cmd = std::process::Command::new(bin);
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", url)
            .env("FACTLOG_RATE_LIMIT", "0")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().expect("start factlog serve");
        let mut server = Server {
            child,
            authority: format!("127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let mut conn = client::Conn::new(&server.authority, Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let req = client::request(&server.authority, Method::GET, "/readyz", "", None);
            if conn.send(req).await.0 == 200 {
                break;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("factlog serve exited ({status}):\n{}", server.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "factlog serve was not ready within 120 s:\n{}",
                server.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn memory(&self) -> Memory {
        memory_of(self.pid())
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Warnings and errors the server logged (it runs at `RUST_LOG=warn`, so
    /// every line is one), with the first few.
    pub fn log_summary(&self) -> (usize, Vec<String>) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        let first = lines.iter().take(5).cloned().collect();
        (lines.len(), first)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl Drop for Server {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        // SAFETY: a plain signal to our own child; SIGTERM lets it drain.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The report's paragraph on what the server logged (a
/// [`Server::log_summary`]), under `label`, e.g. "Server log".
pub fn write_server_log(out: &mut String, label: &str, (n, first): &(usize, Vec<String>)) {
    if *n == 0 {
        let _ = writeln!(out, "\n{label} (`RUST_LOG=warn`): empty.");
    } else {
        let _ = writeln!(
            out,
            "\n{label} (`RUST_LOG=warn`): **{n} warning/error line(s)**; first:\n"
        );
        for l in first {
            let _ = writeln!(out, "    {l}");
        }
    }
}

pub fn date_u() -> String {
    std::process::Command::new("date")
        .arg("-u")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| Utc::now().format("%a %b %e %T UTC %Y").to_string())
}

/// A report's opening: `title` with the date, the machine, how long the
/// whole run took (`took`), and the command that reproduces it.
pub fn report_head(bench: &str, title: &str, machine: &str, took: &str) -> String {
    format!(
        "## {title}, {}\n\nMachine: {machine}. Whole run {took}.\n\nCommand: `{}`\n\n",
        date_u(),
        command_line(bench)
    )
}

/// Prints the report to stdout and writes it to
/// `bench/results/<bench>-<UTC timestamp>.md`, saying where on stderr.
pub fn write_report(bench: &str, report: &str) -> PathBuf {
    println!("{report}");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results");
    std::fs::create_dir_all(&dir).expect("create bench/results");
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
    let path = dir.join(format!("{bench}-{stamp}.md"));
    std::fs::write(&path, report).expect("write the results file");
    eprintln!("written to {}", path.display());
    path
}

/// The report's sentence on the server: the binary, and the settings
/// every bench gives `factlog serve`, then `also` (", and …" or empty).
pub fn server_sentence(bin: &Path, also: &str) -> String {
    format!(
        "Binary: {}. `factlog serve` runs as a subprocess with `FACTLOG_RATE_LIMIT=0`, \
         `FACTLOG_VERIFY_EVERY_MINUTES={VERIFY_EVERY_MINUTES}`{also} and defaults otherwise; \
         the load generator (hyper, one keep-alive connection per simulated client) runs in \
         the bench process on the same machine.\n",
        binary_description(bin)
    )
}

/// One row of the summary: the figure, the limit beside it, their ratio,
/// the goal and whether it was met.
pub struct Row {
    pub name: String,
    pub figure: String,
    pub limit: String,
    pub ratio: String,
    pub goal: String,
    pub met: Option<bool>,
}

pub fn row(name: impl Into<String>, figure: String, goal: &str, met: Option<bool>) -> Row {
    Row {
        name: name.into(),
        figure,
        limit: "—".into(),
        ratio: "—".into(),
        goal: goal.into(),
        met,
    }
}

/// The summary table: a row per [`Row`], then the goals missed, if any.
pub fn write_summary(out: &mut String, rows: Vec<Row>) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "| measurement | figure | limit, same run | ratio | goal | met? |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---|---|");
    let mut missed = Vec::new();
    for row in rows {
        if row.met == Some(false) {
            missed.push(row.name.clone());
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            row.name,
            row.figure,
            row.limit,
            row.ratio,
            row.goal,
            goal_mark(row.met)
        );
    }
    let _ = writeln!(out, "\n{}", goals_line(&missed));
}

/// A summary row's goal column: met, **NOT met**, or none.
pub fn goal_mark(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**NOT met**",
        None => "—",
    }
}

/// The line under a summary table: every goal met, or the rows that missed theirs.
pub fn goals_line(missed: &[String]) -> String {
    if missed.is_empty() {
        "Every goal met.".into()
    } else {
        format!("Goals not met: {}.", missed.join("; "))
    }
}

/// KiB as megabytes (10^6 bytes).
pub fn kib_mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

/// An HTTP status, or "no answer" for 0.
pub fn status_name(status: u16) -> String {
    if status == 0 {
        "no answer".into()
    } else {
        status.to_string()
    }
}

pub fn status_counts(counts: &BTreeMap<u16, u64>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(s, n)| format!("{} ×{n}", status_name(*s)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn rate(per_sec: f64) -> String {
    if !per_sec.is_finite() {
        return "—".into();
    }
    thousands(per_sec.round() as u64)
}

pub fn ms_fmt(d: Duration) -> String {
    ms_secs(d.as_secs_f64())
}

pub fn ms_secs(secs: f64) -> String {
    format!("{:.2} ms", secs * 1e3)
}
