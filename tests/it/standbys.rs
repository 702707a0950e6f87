//! Reads on PostgreSQL streaming standbys (`FACTLOG_READ_DATABASE_URL`).
//!
//! Each test runs a primary of its own (a throw-away cluster: its base
//! backup stays small, and its standby's delay touches no other test) and a
//! real standby made from it with `pg_basebackup -R` over loopback, as the
//! same user as the primary, that replays each commit no sooner than
//! [`APPLY_DELAY`] after it: a read served there right after a write is
//! certain to be stale. Both clusters are stopped and removed when the test
//! ends (they are ephemeral clusters, dropped with it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use factlog::db::EphemeralCluster;
use serde_json::{Value, json};

use crate::fact_cache::{act, assert_claim, claim, desk};
use crate::read_audit::{lint_metrics, metrics_text};
use crate::support::{AppOptions, NO_FACT_CACHE, TestApp, TestDb};

/// How long the standby holds back each commit before replaying it.
const APPLY_DELAY: Duration = Duration::from_millis(1000);

struct Replicated {
    app: Arc<TestApp>,
    /// `Option` so a test can take it to stop and restart it.
    standby: Option<EphemeralCluster>,
    /// The standby's label in `/metrics`: `host:port/database`.
    name: String,
    _primary: EphemeralCluster,
}

/// A primary, a database on it, a standby of it, and the API over the
/// primary with reads on the standby (once the standby answers).
async fn replicated(opts: AppOptions) -> Replicated {
    let primary = tokio::task::spawn_blocking(|| EphemeralCluster::start(true))
        .await
        .expect("join")
        .expect("the primary");
    let db = TestDb::create_on(&primary.url("standby_reads")).await;
    let (primary, standby) = tokio::task::spawn_blocking(move || {
        let standby = primary.standby(APPLY_DELAY);
        (primary, standby)
    })
    .await
    .expect("join");
    let standby = standby.expect("a standby made with pg_basebackup");
    let name = format!("127.0.0.1:{}/{}", standby.port(), db.name);
    let app = TestApp::start_on(
        db,
        AppOptions {
            standbys: vec![standby.url("standby_reads")],
            ..opts
        },
    )
    .await;
    let r = Replicated {
        app: Arc::new(app),
        standby: Some(standby),
        name,
        _primary: primary,
    };
    r.until_up(true, Duration::from_secs(10)).await;
    r
}

impl Replicated {
    fn standby_is_up(&self) -> bool {
        self.app
            .services
            .standbys()
            .and_then(|s| s.all().first())
            .is_some_and(|s| s.is_up())
    }

    async fn until_up(&self, up: bool, within: Duration) {
        let start = Instant::now();
        while self.standby_is_up() != up {
            assert!(
                start.elapsed() < within,
                "the standby is still {} after {within:?}",
                if up { "down" } else { "up" }
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// This standby's value of a metric in `/metrics`.
    async fn metric(&self, metric: &str) -> Option<f64> {
        let prefix = format!("{metric}{{standby=\"{}\"}} ", self.name);
        metrics_text(&self.app)
            .await
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
            .and_then(|v| v.trim().parse().ok())
    }

    async fn reads_served(&self) -> f64 {
        self.metric("factlog_standby_reads_total")
            .await
            .unwrap_or(0.0)
    }
}

/// GETs `path` as `token`: (status, body).
async fn read(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let (s, _, b) = app.get_json(path, token).await;
    (s, b)
}

/// Writers assert and confirm claims and read each back at once with the
/// write's `wait_for`, many times over and several at a time: every read
/// shows the write, though the standby replays it a second later.
async fn every_wait_for_read_sees_its_write(opts: AppOptions) {
    let r = replicated(opts).await;
    let app = r.app.clone();
    let d = Arc::new(desk(&app).await);
    let served_before = r.reads_served().await;
    let mut writers = Vec::new();
    for w in 0..6 {
        let (app, d) = (app.clone(), d.clone());
        writers.push(tokio::spawn(async move {
            for round in 0..3 {
                let amount = format!("{}", 1000 + w * 10 + round);
                let subject = format!("troops {w}.{round}");
                let (c, f, pos) =
                    assert_claim(&app, &d.ed[0], &claim(&d.story, &subject, &amount)).await;
                let (s, fact) =
                    read(&app, &d.reader, &format!("/v1/facts/{f}?wait_for={pos}")).await;
                assert_eq!(s, 200, "{fact}");
                assert_eq!(
                    fact["claims"][0]["value"]["amount"],
                    amount.as_str(),
                    "{fact}"
                );
                let (s, got) =
                    read(&app, &d.reader, &format!("/v1/claims/{c}?wait_for={pos}")).await;
                assert_eq!(s, 200, "{got}");
                assert_eq!(got["status"], "pending", "{got}");

                let pos = act(&app, &d.ed[1], &c, "confirmations", json!({})).await;
                let (s, fact) =
                    read(&app, &d.reader, &format!("/v1/facts/{f}?wait_for={pos}")).await;
                assert_eq!(s, 200, "{fact}");
                assert_eq!(fact["status"], "verified", "{fact}");
                assert_eq!(fact["value"]["amount"], amount.as_str(), "{fact}");
                let (s, page) = read(
                    &app,
                    &d.reader,
                    &format!("/v1/claims?status=verified&limit=100&wait_for={pos}"),
                )
                .await;
                assert_eq!(s, 200, "{page}");
                let listed = page["items"]
                    .as_array()
                    .is_some_and(|items| items.iter().any(|i| i["id"] == c.as_str()));
                assert!(listed, "{c} is not listed as verified: {page}");
            }
        }));
    }
    for w in writers {
        w.await.expect("a writer");
    }
    // The standby served (most of) them: a read waited for it rather than
    // going to the primary.
    let served = r.reads_served().await - served_before;
    assert!(
        served >= 36.0,
        "only {served} reads were served by the standby"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_with_its_writes_position_always_sees_the_write() {
    every_wait_for_read_sees_its_write(AppOptions {
        fact_cache: NO_FACT_CACHE,
        ..AppOptions::default()
    })
    .await;
}

/// The same through the fact cache: its hits wait for the position too, and
/// what it fills comes from the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_with_its_writes_position_sees_the_write_through_the_fact_cache() {
    every_wait_for_read_sees_its_write(AppOptions::default()).await;
}

/// Without `wait_for` a read goes to the standby and may lag, but what it
/// says was true at some earlier point: a fact not there yet (404), a claim
/// at its earlier version, and then the new state; never anything else.
/// `/metrics` shows the lag, per standby.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_without_wait_for_may_be_stale_but_never_false() {
    let r = replicated(AppOptions {
        fact_cache: NO_FACT_CACHE,
        ..AppOptions::default()
    })
    .await;
    let app = &r.app;
    let d = desk(app).await;
    let (c, f, pos) = assert_claim(app, &d.ed[0], &claim(&d.story, "troops", "5200")).await;

    // Right after the write the standby has not replayed it.
    let (s, b) = read(app, &d.reader, &format!("/v1/facts/{f}")).await;
    assert_eq!(
        s, 404,
        "a standby a second behind already had the fact: {b}"
    );
    let (s, b) = read(app, &d.reader, &format!("/v1/claims/{c}")).await;
    assert_eq!(
        s, 404,
        "a standby a second behind already had the claim: {b}"
    );
    let (s, b) = read(app, &d.reader, &format!("/v1/facts/{f}?wait_for={pos}")).await;
    assert_eq!(
        (s, &b["claims"][0]["value"]["amount"]),
        (200, &json!("5200")),
        "{b}"
    );

    // Confirmed: until the standby replays it, the claim reads as pending at
    // version 1 and the fact as unverified; then as verified. Nothing else.
    let confirmed = act(app, &d.ed[1], &c, "confirmations", json!({})).await;
    let mut stale = 0;
    let start = Instant::now();
    loop {
        let (s, got) = read(app, &d.reader, &format!("/v1/claims/{c}")).await;
        assert_eq!(s, 200, "{got}");
        let (s, fact) = read(app, &d.reader, &format!("/v1/facts/{f}")).await;
        assert_eq!(s, 200, "{fact}");
        assert_eq!(fact["claims"][0]["value"]["amount"], "5200", "{fact}");
        let fact_verified = match (fact["status"].as_str(), &fact["value"]["amount"]) {
            (Some("unverified"), Value::Null) => false,
            (Some("verified"), amount) if amount == "5200" => true,
            other => panic!("a fact neither as it was nor as it is: {other:?} {fact}"),
        };
        match (got["status"].as_str(), got["version"].as_u64()) {
            // (Read after the claim, the fact may be the newer of the two.)
            (Some("pending"), Some(1)) => stale += 1,
            (Some("verified"), Some(2)) if fact_verified => break,
            (Some("verified"), Some(2)) => stale += 1,
            other => panic!("a claim neither as it was nor as it is: {other:?} {got}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the standby never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stale > 0, "no read was stale: the standby did not lag");
    let (s, got) = read(
        app,
        &d.reader,
        &format!("/v1/claims/{c}?wait_for={confirmed}"),
    )
    .await;
    assert_eq!((s, &got["status"]), (200, &json!("verified")), "{got}");

    // Under a steady trickle of writes the standby is always about the delay
    // behind, and `/metrics` says so.
    let (mut most_events, mut most_seconds) = (0.0f64, 0.0f64);
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_millis(3500) {
        n += 1;
        assert_claim(app, &d.ed[0], &claim(&d.story, &format!("lag {n}"), "1")).await;
        most_events = most_events.max(r.metric("factlog_standby_lag_events").await.unwrap_or(0.0));
        most_seconds =
            most_seconds.max(r.metric("factlog_standby_lag_seconds").await.unwrap_or(0.0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        most_events >= 1.0,
        "lag in events never shown: {most_events}"
    );
    assert!(
        most_seconds > 0.0,
        "lag in seconds never shown: {most_seconds}"
    );
    assert_eq!(r.metric("factlog_standby_up").await, Some(1.0));
    let text = metrics_text(app).await;
    assert!(
        !text.contains("postgres@"),
        "a standby label names its user"
    );
    lint_metrics(&text);
}

/// The standby is stopped as a crash would (an immediate shutdown, as
/// `pg_ctl stop -m immediate`) while readers read with and without
/// `wait_for`: no read fails (one caught on the standby is made again on
/// the primary), the standby is reported down within seconds, and once it
/// is back it is reported up and serves reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_stopped_mid_run_costs_no_failed_read_and_is_used_again() {
    let mut r = replicated(AppOptions {
        fact_cache: NO_FACT_CACHE,
        ..AppOptions::default()
    })
    .await;
    let d = desk(&r.app).await;
    let (c, f, pos) = assert_claim(&r.app, &d.ed[0], &claim(&d.story, "troops", "5200")).await;
    let (s, b) = read(&r.app, &d.reader, &format!("/v1/claims/{c}?wait_for={pos}")).await;
    assert_eq!(s, 200, "{b}");

    let app = r.app.clone();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (reads, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut readers = Vec::new();
    for k in 0..3 {
        let (app, stop, reads, failures) =
            (app.clone(), stop.clone(), reads.clone(), failures.clone());
        let (token, c, f) = (d.reader.clone(), c.clone(), f.clone());
        readers.push(tokio::spawn(async move {
            let paths = [
                format!("/v1/claims/{c}"),
                format!("/v1/facts/{f}"),
                format!("/v1/facts/{f}?wait_for={pos}"),
                format!("/v1/claims?limit=10&wait_for={pos}"),
            ];
            let mut i = k;
            while !stop.load(Ordering::Relaxed) {
                let path = &paths[i % paths.len()];
                i += 1;
                let (s, b) = read(&app, &token, path).await;
                reads.fetch_add(1, Ordering::Relaxed);
                if s != 200 {
                    failures.fetch_add(1, Ordering::Relaxed);
                    eprintln!("GET {path}: {s} {b}");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let served_before = r.reads_served().await;
    assert!(
        served_before > 0.0,
        "the standby served nothing before it stopped"
    );

    let mut standby = r.standby.take().expect("the standby");
    let mut standby = tokio::task::spawn_blocking(move || {
        standby.halt(true);
        standby
    })
    .await
    .expect("stop the standby");
    let stopped = Instant::now();
    r.until_up(false, Duration::from_secs(5)).await;
    assert_eq!(r.metric("factlog_standby_up").await, Some(0.0));
    let down_after = stopped.elapsed();
    // Reads go on meanwhile, on the primary.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = r.reads_served().await;

    let standby = tokio::task::spawn_blocking(move || {
        standby.resume().expect("restart the standby");
        standby
    })
    .await
    .expect("restart the standby");
    r.until_up(true, Duration::from_secs(10)).await;
    assert_eq!(r.metric("factlog_standby_up").await, Some(1.0));
    let start = Instant::now();
    while r.reads_served().await <= during {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the standby serves no read since it came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.await.expect("a reader");
    }
    let (reads, failures) = (
        reads.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed),
    );
    assert_eq!(failures, 0, "{failures} of {reads} reads failed");
    assert!(reads > 100, "only {reads} reads");
    assert!(
        down_after < Duration::from_secs(5),
        "noticed after {down_after:?}"
    );
    drop(standby);
}
