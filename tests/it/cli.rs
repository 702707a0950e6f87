//! The binary as a user runs it: `serve` with no DATABASE_URL brings up its
//! own cluster, answers /readyz, and the last process out stops the cluster.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{TestDb, free_port};

fn factlog() -> Command {
    Command::new(env!("CARGO_BIN_EXE_factlog"))
}

/// A plain HTTP/1.1 GET over a real socket; returns (status, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Some((status, body))
}

fn private_cluster_running(dir: &std::path::Path) -> bool {
    std::fs::read_to_string(dir.join(".factlog/pgdata/postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
        // SAFETY: signal 0 only probes for the process.
        .is_some_and(|pid| unsafe { libc::kill(pid, 0) } == 0)
}

#[test]
fn serve_without_database_url_runs_its_own_cluster_and_is_ready() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The server user (when we are root) must be able to enter the project dir.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let port = free_port();
    let mut child = factlog()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("FACTLOG_DATA_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn factlog serve");

    let deadline = Instant::now() + Duration::from_secs(90);
    let mut ready = None;
    while Instant::now() < deadline {
        if let Some((200, body)) = get(port, "/readyz") {
            ready = Some(body);
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            child.stderr.take().map(|mut e| e.read_to_string(&mut err));
            panic!("factlog serve exited early ({status}): {err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let body = ready.expect("GET /readyz answered 200 in time");
    assert!(body.contains("ready"), "{body}");
    assert_eq!(get(port, "/healthz").map(|r| r.0), Some(200));
    assert!(
        dir.path().join(".factlog/pgdata/PG_VERSION").is_file(),
        "cluster lives under ./.factlog"
    );
    assert!(private_cluster_running(dir.path()));

    // A second process shares the running cluster instead of making another.
    let out = factlog()
        .args(["db", "url"])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("FACTLOG_DATA_DIR")
        .output()
        .expect("db url");
    assert!(out.status.success());
    let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(url.starts_with("postgres://"), "{url}");
    assert!(
        private_cluster_running(dir.path()),
        "another user leaving does not stop it"
    );
    // Sized as a production server, not as initdb's laptop default.
    let shared_buffers_mb: i64 = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let pool = sqlx::PgPool::connect(&url).await.expect("connect");
            sqlx::query_scalar(
                "SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers'",
            )
            .fetch_one(&pool)
            .await
            .expect("shared_buffers")
        });
    assert_eq!(
        shared_buffers_mb as u64,
        factlog::db::production_shared_buffers_mb()
    );

    // SIGTERM: graceful shutdown, and the last user stops the cluster.
    // SAFETY: plain signal to our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
    assert!(!private_cluster_running(dir.path()));

    // The data is kept and reused on the next start.
    let out = factlog()
        .arg("verify")
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("FACTLOG_DATA_DIR")
        .output()
        .expect("verify");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!private_cluster_running(dir.path()));
}

#[tokio::test]
async fn verify_exits_zero_on_an_intact_log() {
    let db = TestDb::new().await;
    let out = factlog()
        .arg("verify")
        .env("DATABASE_URL", &db.url)
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: 0 events checked"));
}

/// Waits for `serve` on `port` to answer /readyz 200; panics with its
/// stderr if it exits first.
fn wait_ready(child: &mut std::process::Child, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if let Some((200, _)) = get(port, "/readyz") {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            child.stderr.take().map(|mut e| e.read_to_string(&mut err));
            panic!("factlog serve exited early ({status}): {err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("factlog serve was not ready within 90 s");
}

fn stop(mut child: std::process::Child) {
    // SAFETY: plain signal to our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
}

/// A checkout under a home directory of mode 700, as root's is: the
/// PostgreSQL server user cannot enter it, and `serve` still just works,
/// keeping its data where that user can reach and finding it again.
#[test]
fn serve_works_from_a_checkout_the_server_user_cannot_enter() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("home");
    let checkout = home.join("src").join("factlog");
    std::fs::create_dir_all(&checkout).expect("checkout");
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let run = |args: &[&str]| {
        let mut c = factlog();
        c.args(args)
            .current_dir(&checkout)
            .env_remove("DATABASE_URL")
            .env_remove("FACTLOG_DATA_DIR");
        c
    };
    let start = || {
        let port = free_port();
        let mut child = run(&["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn factlog serve");
        wait_ready(&mut child, port);
        (child, port)
    };

    let (child, _) = start();
    let token = run(&["token", "create", "--name", "ann", "--role", "editor"])
        .output()
        .expect("token create");
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let location = std::fs::read_to_string(checkout.join(".factlog/data-location")).ok();
    let data = match &location {
        Some(l) => std::path::PathBuf::from(l.trim()),
        None => checkout.join(".factlog"),
    };
    if root {
        assert!(
            location.is_some(),
            "as root, the data must live outside the unreachable checkout"
        );
    }
    assert!(
        data.join("pgdata/PG_VERSION").is_file(),
        "{}",
        data.display()
    );
    stop(child);

    // Started again, it finds the same cluster and its data.
    let (child, _) = start();
    let out = run(&["verify"]).output().expect("verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("ok: 1 events"),
        "{stdout}"
    );
    stop(child);
    if location.is_some() {
        std::fs::remove_dir_all(&data).expect("remove the relocated data");
    }
}

/// Each subcommand's `--help` shows only the settings it uses, each with
/// its environment variable.
#[test]
fn each_subcommand_shows_only_the_settings_it_uses() {
    let help = |args: &[&str]| {
        let out = factlog().args(args).arg("--help").output().expect("help");
        assert!(out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let serving = [
        "FACTLOG_CORS_ORIGINS",
        "FACTLOG_RATE_LIMIT",
        "FACTLOG_MAX_BODY_BYTES",
        "FACTLOG_STREAMS_PER_TOKEN",
    ];
    let serve = help(&["serve"]);
    for var in serving.iter().chain(&[
        "DATABASE_URL",
        "FACTLOG_LISTEN",
        "FACTLOG_VERIFY_EVERY_MINUTES",
    ]) {
        assert!(serve.contains(var), "serve --help lacks {var}:\n{serve}");
    }
    for args in [
        &["token", "create"][..],
        &["token", "revoke"],
        &["generate"],
        &["verify"],
        &["migrate"],
        &["rebuild"],
        &["worker"],
        &["db", "url"],
    ] {
        let text = help(args);
        assert!(text.contains("[env: DATABASE_URL"), "{args:?}:\n{text}");
        for var in serving {
            assert!(!text.contains(var), "{args:?} --help lists {var}:\n{text}");
        }
    }
    assert!(help(&["worker"]).contains("FACTLOG_PROJECTION_LINGER_MS"));
    assert!(!help(&["verify"]).contains("FACTLOG_PROJECTION_LINGER_MS"));
    for args in [&["serve"][..], &["worker"]] {
        assert!(
            help(args).contains("[env: FACTLOG_PROJECTIONS="),
            "{args:?}"
        );
    }
    assert!(!help(&["rebuild"]).contains("FACTLOG_PROJECTIONS"));
}

#[test]
fn an_unknown_projection_is_a_startup_error_naming_the_known_ones() {
    let out = factlog()
        .arg("worker")
        .env("FACTLOG_PROJECTIONS", "facts,trees")
        .env("DATABASE_URL", "postgres://127.0.0.1:1/never")
        .stdin(Stdio::null())
        .output()
        .expect("run factlog worker");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("FACTLOG_PROJECTIONS")
            && err.contains("\"trees\"")
            && err.contains("facts, tree"),
        "{err}"
    );
}
