//! Reads on a streaming standby (issue 28): `GET /v1/facts/{id}` throughput
//! from a `factlog serve` reading from one standby, beside one reading from
//! the primary alone, in the same run. A throw-away, fsync-on primary and a
//! standby made from it with `pg_basebackup` (no apply delay) on the same
//! machine; facts asserted through the API; then rounds in which each
//! server in turn (the order rotating between rounds) takes a closed loop of
//! reads of random seeded facts. The fact cache is off in both, so every
//! read reaches a database. See bench/README.md.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod client;
#[allow(
    dead_code,
    reason = "pgbench, the paired-rounds table and the payload are the other benches'"
)]
mod common;
#[allow(
    dead_code,
    reason = "child commands, the projections' lag and the write-side helpers are the other benches'"
)]
mod harness;

use bytes::Bytes;
use factlog::db::EphemeralCluster;
use hyper::Method;
use serde_json::Value;
use sqlx::PgPool;

use common::{Sample, database, machine_description, median};
use harness::{
    NO_LIMIT, Op, SETTLE_LIMIT, Server, VERIFY_DAILY, assert_op, closed_loop, create_token,
    editor_tokens, env_number, fetch_expecting, fetch_ok, mix, ms_fmt, rate, report_head,
    run_on_cluster, server_sentence, settle, write_report,
};

const DB_NAME: &str = "standby";
/// Connections asserting the seed claims.
const FILL_CONNECTIONS: usize = 16;
/// Requests before each measurement, unmeasured: connections and
/// statement caches on both sides.
const WARM_UP: u64 = 200;

struct Settings {
    secs: u64,
    rounds: usize,
    facts: u64,
    claims: u64,
    conns: usize,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            secs: env_number("FACTLOG_BENCH_SECS", 10),
            rounds: env_number("FACTLOG_BENCH_ROUNDS", 3) as usize,
            facts: env_number("FACTLOG_BENCH_FACTS", 2_000),
            claims: env_number("FACTLOG_BENCH_CLAIMS", 6_000),
            conns: env_number("FACTLOG_BENCH_CONNECTIONS", 32) as usize,
        }
    }
}

/// One way of serving the reads.
struct Side {
    name: &'static str,
    server: Server,
    /// Reads carry `wait_for` at the seeded head (routed by position).
    wait_for: Option<i64>,
    samples: Vec<Sample>,
}

fn main() {
    run_on_cluster(run);
}

async fn run(primary: EphemeralCluster, bin: PathBuf) {
    let started = Instant::now();
    let s = Settings::from_env();
    let (url, pool) = database(&primary, DB_NAME, 4).await;
    let machine = machine_description(&pool).await;
    eprintln!("{machine}");
    eprintln!("making a standby with pg_basebackup...");
    let (primary, standby) = tokio::task::spawn_blocking(move || {
        let standby = primary.standby(Duration::ZERO).expect("a standby");
        (primary, standby)
    })
    .await
    .expect("join");
    let standby_url = standby.url(DB_NAME);

    let editors = Arc::new(editor_tokens(&bin, &url).await);
    let reader = Arc::new(create_token(&bin, &url, "reader", "reader").await);
    let no_cache = ("FACTLOG_FACT_CACHE_MB", "0");
    let alone = Server::start(&bin, &url, &[VERIFY_DAILY, no_cache]).await;

    let story: Value = serde_json::from_slice(
        &fetch_expecting(
            &alone.authority,
            client::request(
                &alone.authority,
                Method::POST,
                "/v1/stories",
                &editors[0],
                Some(Bytes::from_static(
                    br#"{"title":"t","publisher":"Wire","published_at":"2020-01-06T10:00:00Z"}"#,
                )),
            ),
            201,
        )
        .await,
    )
    .expect("a story");
    let story: Arc<str> = story["id"].as_str().expect("story id").into();
    eprintln!("asserting {} claims about {} facts...", s.claims, s.facts);
    let fill = closed_loop(
        FILL_CONNECTIONS,
        Duration::from_secs(600),
        s.claims,
        assert_op(alone.authority.as_str().into(), editors, story, s.facts),
    )
    .await;
    assert!(fill.errors.is_empty(), "seeding failed: {:?}", fill.errors);
    settle(&pool, SETTLE_LIMIT).await;
    let head = harness::log_head(&pool).await;
    until_replayed(&standby_url, &pool).await;
    let ids: Arc<Vec<String>> = Arc::new(
        sqlx::query_scalar::<_, uuid::Uuid>("SELECT fact_id FROM facts_view ORDER BY fact_id")
            .fetch_all(&pool)
            .await
            .expect("fact ids")
            .iter()
            .map(uuid::Uuid::to_string)
            .collect(),
    );

    let with_standby = Server::start(
        &bin,
        &url,
        &[
            VERIFY_DAILY,
            no_cache,
            ("FACTLOG_READ_DATABASE_URL", standby_url.as_str()),
        ],
    )
    .await;
    until_standby_up(&with_standby).await;
    let mut sides = vec![
        Side {
            name: "primary alone",
            server: alone,
            wait_for: None,
            samples: Vec::new(),
        },
        Side {
            name: "one standby",
            server: with_standby,
            wait_for: None,
            samples: Vec::new(),
        },
    ];
    // The same server, its reads routed by position: each asks the standby
    // how far it has replayed first.
    sides.push(Side {
        name: "one standby, `wait_for`",
        server: Server::start(
            &bin,
            &url,
            &[
                VERIFY_DAILY,
                no_cache,
                ("FACTLOG_READ_DATABASE_URL", standby_url.as_str()),
            ],
        )
        .await,
        wait_for: Some(head),
        samples: Vec::new(),
    });
    until_standby_up(&sides[2].server).await;

    let d = Duration::from_secs(s.secs);
    for round in 0..s.rounds {
        for k in 0..sides.len() {
            let side = &mut sides[(k + round) % 3];
            let op = read_op(&side.server, &reader, &ids, side.wait_for);
            let warm = closed_loop(s.conns, Duration::from_secs(5), WARM_UP, op.clone()).await;
            assert!(warm.errors.is_empty(), "{}: {:?}", side.name, warm.errors);
            let mut load = closed_loop(s.conns, d, NO_LIMIT, op).await;
            assert!(load.errors.is_empty(), "{}: {:?}", side.name, load.errors);
            let sample = load.sample();
            eprintln!(
                "round {}: {}: {} reads/s, p50 {}, p99 {}",
                round + 1,
                side.name,
                rate(sample.rate),
                ms_fmt(sample.p50),
                ms_fmt(sample.p99)
            );
            side.samples.push(sample);
        }
    }

    let mut served = Vec::new();
    for side in &sides[1..] {
        served.push(standby_reads(&side.server).await);
    }
    let mut report = report_head(
        "standby",
        "GET /v1/facts/{id}: one standby beside the primary alone",
        &machine,
        &format!("{:.0} s", started.elapsed().as_secs_f64()),
    );
    report.push_str(&server_sentence(
        &bin,
        ", `FACTLOG_FACT_CACHE_MB=0` (every read reaches a database)",
    ));
    let _ = writeln!(
        report,
        "\nThe primary (fsync on) and its standby (`pg_basebackup -R`, no apply delay) run on \
         the same machine, as do the three servers and the load generator: the standby adds no \
         CPU here, so this shows what routing costs and whether the standby carries the reads, \
         not the scaling more machines would give. {} facts ({} claims asserted through the \
         API); {} connections, {} s per measurement, {} rounds, the order rotating; reads of \
         uniformly random facts. Standby reads counted by `factlog_standby_reads_total`: {}.\n",
        s.facts,
        s.claims,
        s.conns,
        s.secs,
        s.rounds,
        served
            .iter()
            .map(|n| format!("{n:.0}"))
            .collect::<Vec<_>>()
            .join(" and ")
    );
    report.push_str(
        "| reads from | reads/s (median) | p50 | p99 | per round |\n|---|---|---|---|---|\n",
    );
    for side in &sides {
        let rates: Vec<f64> = side.samples.iter().map(|x| x.rate).collect();
        let p50 = median(side.samples.iter().map(|x| x.p50.as_secs_f64()).collect());
        let p99 = median(side.samples.iter().map(|x| x.p99.as_secs_f64()).collect());
        let _ = writeln!(
            report,
            "| {} | {} | {} | {} | {} |",
            side.name,
            rate(median(rates.clone())),
            ms_fmt(Duration::from_secs_f64(p50)),
            ms_fmt(Duration::from_secs_f64(p99)),
            rates
                .iter()
                .map(|r| rate(*r))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    write_report("standby", &report);
    drop(sides);
    drop(standby);
    drop(primary);
}

fn read_op(
    server: &Server,
    token: &Arc<String>,
    ids: &Arc<Vec<String>>,
    wait_for: Option<i64>,
) -> Op {
    let to: Arc<str> = server.authority.as_str().into();
    let (token, ids) = (token.clone(), ids.clone());
    let host = to.clone();
    Op::new(to, move |i| {
        let id = &ids[(mix(i) % ids.len() as u64) as usize];
        let path = match wait_for {
            Some(p) => format!("/v1/facts/{id}?wait_for={p}"),
            None => format!("/v1/facts/{id}"),
        };
        Some(client::request(&host, Method::GET, &path, &token, None))
    })
}

/// Waits until the standby's facts checkpoint is the primary's.
async fn until_replayed(standby_url: &str, primary: &PgPool) {
    let standby = factlog::db::pool(standby_url, 2)
        .await
        .expect("the standby");
    let sql = "SELECT position FROM projection_checkpoints WHERE name = 'facts'";
    let want: i64 = sqlx::query_scalar(sql)
        .fetch_one(primary)
        .await
        .expect("checkpoint");
    let start = Instant::now();
    loop {
        let got: i64 = sqlx::query_scalar(sql)
            .fetch_one(&standby)
            .await
            .expect("standby checkpoint");
        if got >= want {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the standby never replayed the seed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    standby.close().await;
}

async fn metrics(server: &Server) -> String {
    let body = fetch_ok(
        &server.authority,
        client::request(&server.authority, Method::GET, "/metrics", "", None),
    )
    .await;
    String::from_utf8_lossy(&body).into_owned()
}

async fn until_standby_up(server: &Server) {
    let start = Instant::now();
    while !metrics(server)
        .await
        .lines()
        .any(|l| l.starts_with("factlog_standby_up{") && l.ends_with(" 1"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the standby is not up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn standby_reads(server: &Server) -> f64 {
    metrics(server)
        .await
        .lines()
        .filter(|l| l.starts_with("factlog_standby_reads_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
