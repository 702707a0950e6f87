//! `factlog export` and `factlog import`, the real binary: a log moved to
//! another database has the same head hash, tree root and fact documents;
//! imports repeat, overlap and resume after `kill -9` without appending an
//! event twice; a bad line is named and nothing of its batch is written; a
//! log that diverged from the file is refused before anything is written.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use factlog::store::{Head, Metadata, NewEvent};
use serde_json::Value;

use crate::projection_runs::{caught_up, dump, random_work};
use crate::support::{AppOptions, TestApp, TestDb};

fn factlog(url: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_factlog"));
    c.env("DATABASE_URL", url)
        .env("FACTLOG_SIGNING_KEY_FILE", crate::support::test_key_file())
        .env("RUST_LOG", "warn");
    c
}

/// `factlog export [--after P] > file`; returns how many lines it wrote.
pub(crate) async fn export(db: &TestDb, after: i64, file: &Path) -> usize {
    let out = std::fs::File::create(file).expect("create export file");
    let status = factlog(&db.url)
        .args(["export", "--after", &after.to_string()])
        .stdout(out)
        .stderr(Stdio::inherit())
        .status()
        .await
        .expect("run factlog export");
    assert!(status.success(), "export failed: {status}");
    lines(file).len()
}

/// `factlog import file [--batch N]` into the database at `url`.
pub(crate) async fn import(url: &str, file: &Path, batch: Option<usize>) -> Output {
    let mut c = factlog(url);
    c.arg("import").arg(file);
    if let Some(n) = batch {
        c.args(["--batch", &n.to_string()]);
    }
    c.output().await.expect("run factlog import")
}

/// The summary an import that succeeded prints.
pub(crate) fn summary(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "import failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("summary JSON")
}

/// What an import that was refused said (exit 1).
fn refusal(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "not refused: {err}");
    err
}

fn lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .expect("read export")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(file: &Path, lines: &[String], last_newline: bool) {
    let mut text = lines.join("\n");
    if last_newline {
        text.push('\n');
    }
    std::fs::write(file, text).expect("write file");
}

pub(crate) async fn head(db: &TestDb) -> Head {
    factlog::store::read_head(&db.pool).await.expect("head")
}

async fn tree_root(db: &TestDb, size: u64) -> factlog::merkle::Hash {
    let mut conn = db.pool.acquire().await.expect("conn");
    let tiles = factlog::store::tree::read_tiles(&mut conn, &factlog::merkle::tiles_for_root(size))
        .await
        .expect("tiles");
    factlog::merkle::root_at(size, &tiles).expect("root")
}

/// A log of generated newsroom work (stories, claims with sealed quotes,
/// confirmations, disputes), exported to a file in `dir`.
async fn source(dir: &Path, events: u64) -> (TestDb, PathBuf) {
    let db = TestDb::new().await;
    factlog::commands::fill_log(&db.store().await, events, 5, |_| {})
        .await
        .expect("generate");
    let file = dir.join("source.ndjson");
    let n = export(&db, 0, &file).await;
    assert_eq!(n as i64, head(&db).await.position);
    (db, file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_exported_and_imported_elsewhere_has_the_same_head_tree_and_facts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = TestApp::start().await;
    a.token("desk", "editor").await;
    random_work(&a.services, 31, 300).await;
    factlog::commands::fill_log(&a.db.store().await, 1_500, 8, |_| {})
        .await
        .expect("generate");
    random_work(&a.services, 32, 200).await;
    let a_head = head(&a.db).await;
    caught_up(&a.db, Duration::from_secs(60)).await;

    let file = dir.path().join("a.ndjson");
    assert_eq!(export(&a.db, 0, &file).await as i64, a_head.position);
    // A line is the event as /v1/events shows it, and the hash before it.
    let text = lines(&file);
    let first_events: Vec<Value> = a
        .services
        .events(0, 2)
        .await
        .expect("events")
        .iter()
        .map(|e| serde_json::to_value(e).expect("an event is JSON"))
        .collect();
    for (i, line) in text.iter().take(2).enumerate() {
        let mut line: Value = serde_json::from_str(line).expect("a line is JSON");
        let prev = line
            .as_object_mut()
            .and_then(|o| o.remove("prev_hash"))
            .expect("prev_hash");
        assert_eq!(line, first_events[i]);
        let expected_prev = if i == 0 {
            "0".repeat(64)
        } else {
            first_events[0]["hash"].as_str().expect("hash").to_owned()
        };
        assert_eq!(prev, expected_prev);
    }
    assert!(
        text.iter().any(|l| l.contains("\"salts\":{\"quote\"")),
        "sealed values travel with their salts"
    );

    // Into a fresh database, as the runtime role.
    let b = TestDb::new().await;
    let out = summary(&import(&b.url_as("factlog_app"), &file, None).await);
    assert_eq!(out["appended"], a_head.position);
    assert_eq!(out["head_hash"], a_head.hash);
    assert_eq!(head(&b).await, a_head, "the head hash is the source's");
    let secrets = |db: &TestDb| {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, Value>(
                "SELECT coalesce(jsonb_agg(to_jsonb(s) ORDER BY position), '[]') FROM event_secrets s",
            )
            .fetch_one(&pool)
            .await
            .expect("secrets")
        }
    };
    assert_eq!(secrets(&a.db).await, secrets(&b).await, "the same secrets");
    let report = factlog::store::verify_chain(&b.pool, 0, |_| {})
        .await
        .expect("verify");
    assert!(report.ok, "{report:?}");

    // B's projections follow the imported log by themselves.
    let b = TestApp::start_on(b, AppOptions::default()).await;
    caught_up(&b.db, Duration::from_secs(60)).await;
    let size = a_head.position as u64;
    assert_eq!(
        tree_root(&b.db, size).await,
        tree_root(&a.db, size).await,
        "the tree root is the source's"
    );
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT fact_id FROM facts_view ORDER BY 1")
        .fetch_all(&a.db.pool)
        .await
        .expect("facts");
    assert!(ids.len() > 10, "the work made facts");
    for id in ids {
        let fa = a.services.fact(id, None, None).await.expect("fact on A");
        let fb = b.services.fact(id, None, None).await.expect("fact on B");
        assert!(fa.is_some());
        assert_eq!(fa, fb, "fact {id}");
    }
    assert_eq!(dump(&a.db).await, dump(&b.db).await, "the same read models");

    // Imported again: every line is already there; nothing is appended.
    let count = b.count_events().await;
    let again = summary(&import(&b.db.url, &file, Some(1_000)).await);
    assert_eq!(again["appended"], 0);
    assert_eq!(again["present"], a_head.position);
    assert_eq!(b.count_events().await, count);
    assert_eq!(head(&b.db).await, a_head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlapping_export_appends_only_what_the_log_lacks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, full) = source(dir.path(), 3_000).await;
    let a_head = head(&a).await;
    let all = lines(&full);
    let tail = dir.path().join("tail.ndjson");
    let after = 1_500;
    assert_eq!(
        export(&a, after, &tail).await as i64,
        a_head.position - after
    );

    // B holds the first after + 200 events.
    let b = TestDb::new().await;
    let prefix = dir.path().join("prefix.ndjson");
    write_lines(&prefix, &all[..after as usize + 200], true);
    assert_eq!(
        summary(&import(&b.url, &prefix, None).await)["appended"],
        after + 200
    );
    let out = summary(&import(&b.url, &tail, Some(500)).await);
    assert_eq!(out["present"], 200);
    assert_eq!(out["appended"], a_head.position - after - 200);
    assert_eq!(head(&b).await, a_head);
    assert_eq!(b.count_events().await, a_head.position);

    // A log that ends before the file begins is refused.
    let c = TestDb::new().await;
    let err = refusal(&import(&c.url, &tail, None).await);
    assert!(
        err.contains("ends at position 0") && err.contains("begins at position 1501"),
        "{err}"
    );
    assert_eq!(c.count_events().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_line_is_named_and_nothing_of_its_batch_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_a, full) = source(dir.path(), 3_000).await;
    let all = lines(&full);
    let n = all.len();
    // The first claim assertion after line 2,400 (its quote is sealed).
    let quoted = 2_400
        + all[2_400..]
            .iter()
            .position(|l| l.contains("\"type\":\"ClaimAsserted\""))
            .expect("a claim");
    let edit = |i: usize, f: &dyn Fn(&mut Value)| {
        let mut out = all.clone();
        let mut v: Value = serde_json::from_str(&out[i]).expect("line");
        f(&mut v);
        out[i] = v.to_string();
        out
    };
    let mut removed = all.clone();
    removed.remove(2_099);
    let mut not_json = all.clone();
    not_json[1_499] = "this is not JSON".into();
    let mut cut = all.clone();
    let last = cut[n - 1].clone();
    cut[n - 1] = last[..last.len() / 2].to_owned();
    let cases: Vec<(&str, Vec<String>, bool, usize, &str)> = vec![
        (
            "a changed quote",
            edit(quoted, &|v| v["data"]["quote"] = "some other words".into()),
            true,
            quoted + 1,
            "chain hash does not match",
        ),
        (
            "a changed hash",
            edit(1_233, &|v| v["hash"] = "ab".repeat(32).into()),
            true,
            1_234,
            "chain hash does not match",
        ),
        (
            "a changed leaf hash",
            edit(2_999, &|v| v["leaf_hash"] = "cd".repeat(32).into()),
            true,
            3_000,
            "leaf hash does not match",
        ),
        (
            "a removed line",
            removed,
            true,
            2_100,
            "does not follow the line before",
        ),
        ("a line that is not JSON", not_json, true, 1_500, "not JSON"),
        ("a truncated last line", cut, false, n, "cut short"),
    ];
    for (what, text, newline, line, reason) in cases {
        let db = TestDb::new().await;
        let file = dir.path().join("bad.ndjson");
        write_lines(&file, &text, newline);
        let err = refusal(&import(&db.url, &file, Some(1_000)).await);
        assert!(
            err.contains(&format!("line {line}: ")) && err.contains(reason),
            "{what}: {err}"
        );
        // The batches before the bad line's, and nothing of its own.
        let committed = ((line - 1) / 1_000 * 1_000) as i64;
        assert_eq!(db.count_events().await, committed, "{what}");
        assert_eq!(head(&db).await.position, committed, "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_into_a_diverged_log_is_refused_before_writing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_a, full) = source(dir.path(), 2_000).await;
    let all = lines(&full);

    // B took the first 1,000 events, then one of its own.
    let b = TestDb::new().await;
    let prefix = dir.path().join("prefix.ndjson");
    write_lines(&prefix, &all[..1_000], true);
    summary(&import(&b.url, &prefix, None).await);
    b.store()
        .await
        .append(
            "other-1",
            factlog::store::ExpectedVersion::NoStream,
            vec![NewEvent::new("Other", serde_json::json!({"n": 1}))],
            Metadata::by("cli"),
        )
        .await
        .expect("append");
    let before = head(&b).await;
    // Batches of 700: the first is all present, the second diverges midway.
    let err = refusal(&import(&b.url, &full, Some(700)).await);
    assert!(
        err.contains("diverged at position 1001") && err.contains("line 1001"),
        "{err}"
    );
    assert_eq!(head(&b).await, before);
    assert_eq!(b.count_events().await, 1_001);

    // A log with an event of its own at position 1.
    let c = TestDb::new().await;
    factlog::auth::create(&c.pool, "desk", "editor")
        .await
        .expect("token");
    let err = refusal(&import(&c.url, &full, None).await);
    assert!(err.contains("diverged at position 1"), "{err}");
    assert_eq!(c.count_events().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_mid_run_resumes_to_exactly_the_source_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, file) = source(dir.path(), 20_000).await;
    let a_head = head(&a).await;

    let b = TestDb::new().await;
    let mut child = factlog(&b.url)
        .arg("import")
        .arg(&file)
        .args(["--batch", "1000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn factlog import");
    let started = Instant::now();
    while head(&b).await.position == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the import never committed a batch"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.start_kill().expect("kill -9");
    child.wait().await.expect("reap");
    let at_kill = head(&b).await.position;
    assert!(
        at_kill < a_head.position,
        "the import finished before it could be killed ({at_kill}/{})",
        a_head.position
    );
    assert_eq!(at_kill % 1_000, 0, "whole batches only");

    let out = summary(&import(&b.url, &file, Some(1_000)).await);
    assert_eq!(out["present"], at_kill);
    assert_eq!(out["appended"], a_head.position - at_kill);
    assert_eq!(head(&b).await, a_head);
    assert_eq!(b.count_events().await, a_head.position);
    let report = factlog::store::verify_chain(&b.pool, 0, |_| {})
        .await
        .expect("verify");
    assert!(report.ok, "{report:?}");
}
