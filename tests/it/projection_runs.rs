//! Projections are always right: rebuilt equals incremental, a worker killed
//! mid-batch neither skips nor double-applies, and two workers share the work.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use factlog::domain::claim::{self, Amendment, Asserted, ClaimEvent, Command as ClaimCommand};
use factlog::domain::principal::{Actor, Role};
use factlog::domain::valid_time::ValidTime;
use factlog::domain::value::ClaimValue;
use factlog::projections::{
    self, ALL, AnyProjection, BulkReport, LogRow, Projection, ProjectionError, RebuildOptions,
    Shadow,
};
use factlog::service::{NewClaim, NewStory, Rules, Services, WriteContext};
use factlog::store::{
    AppendRequest, EventStore, ExpectedVersion, Metadata, NewEvent, StreamAppend,
};
use serde_json::Value;
use sqlx::Connection;
use uuid::Uuid;

use crate::support::TestDb;

/// A small deterministic generator: reproducible runs, varied per seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn ctx(name: &str) -> WriteContext {
    WriteContext {
        actor: Actor {
            name: name.into(),
            role: if name == "root" {
                Role::Admin
            } else {
                Role::Editor
            },
        },
        correlation_id: Uuid::new_v4(),
        idempotency: None,
        if_match: None,
    }
}

/// Random newsroom work: claims on a few facts at a few valid times,
/// confirmed, disputed, amended, corrected and retracted by several editors.
/// Refused commands are simply skipped.
pub async fn random_work(services: &Services, seed: u64, steps: usize) {
    let mut rng = Rng(seed | 1);
    let editors = ["ann", "bob", "cy", "dee", "root"];
    let subjects = ["U.S. troops in Iraq", "Iraqi parliament", "the letter"];
    let times = [
        None,
        Some("2020"),
        Some("2020-01"),
        Some("2020-01-05"),
        Some("2020-01-05T12:00:00Z"),
    ];
    let story = services
        .register_story(
            Ok(NewStory {
                title: "t".into(),
                publisher: "p".into(),
                published_at: "2020-01-06T10:00:00Z".parse().expect("time"),
                url: None,
                body: None,
            }),
            &ctx("ann"),
        )
        .await
        .expect("story");
    let story_id: Uuid = story.body["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let mut claims: Vec<Uuid> = Vec::new();
    for _ in 0..steps {
        let who = editors[rng.below(editors.len() as u64) as usize];
        let roll = rng.below(10);
        if claims.is_empty() || roll < 3 {
            let amount = 5000 + 100 * rng.below(3);
            let corrects = (!claims.is_empty() && rng.below(4) == 0)
                .then(|| claims[rng.below(claims.len() as u64) as usize]);
            let input = NewClaim {
                story_id,
                subject: subjects[rng.below(3) as usize].into(),
                property: "count".into(),
                value: ClaimValue::parse(&format!(
                    r#"{{"kind":"quantity","amount":"{amount}","unit":"soldier"}}"#
                ))
                .expect("value"),
                quote: "q".into(),
                valid_at: times[rng.below(times.len() as u64) as usize]
                    .map(|t| ValidTime::parse(t).expect("time")),
                attributed_to: None,
                corrects,
            };
            if let Ok(out) = services.assert_claim(Ok(input), &ctx(who)).await {
                claims.push(out.body["id"].as_str().expect("id").parse().expect("uuid"));
            }
            continue;
        }
        let claim = claims[rng.below(claims.len() as u64) as usize];
        let cmd = match roll {
            3..=5 => ClaimCommand::Confirm { note: None },
            6 => ClaimCommand::Dispute {
                reason: "doubt".into(),
            },
            7 => ClaimCommand::AttachEvidence {
                url: "https://example.org".into(),
                note: None,
            },
            8 => ClaimCommand::Amend(Box::new(Amendment {
                attributed_to: Some(Some("an official".into())),
                ..Amendment::default()
            })),
            _ => ClaimCommand::Retract {
                reason: "wrong".into(),
            },
        };
        let _ = services.act_on_claim(claim, Ok(cmd), &ctx(who)).await;
    }
}

const TABLES: [(&str, &str); 3] = [
    ("facts_view", "fact_id"),
    ("claim_versions", "claim_id, from_position"),
    ("tree_tiles", "level, idx, width"),
];

pub async fn dump(db: &TestDb) -> Vec<(String, Vec<Value>)> {
    let mut out = Vec::new();
    for (table, key) in TABLES {
        let rows: Vec<Value> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT to_jsonb(t) FROM {table} t ORDER BY {key}"
        )))
        .fetch_all(&db.pool)
        .await
        .expect("dump");
        out.push((table.to_owned(), rows));
    }
    out
}

async fn head(db: &TestDb) -> i64 {
    factlog::store::read_head(&db.pool)
        .await
        .expect("head")
        .position
}

async fn lowest(db: &TestDb) -> i64 {
    projections::lowest_checkpoint(&db.pool, &["facts", "tree"])
        .await
        .expect("checkpoints")
}

pub(crate) async fn caught_up(db: &TestDb, within: Duration) {
    let target = head(db).await;
    let started = Instant::now();
    while lowest(db).await < target {
        let failed: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT name, last_error FROM projection_checkpoints WHERE failed_position IS NOT NULL",
        )
        .fetch_all(&db.pool)
        .await
        .expect("failures");
        assert!(failed.is_empty(), "a projection failed: {failed:?}");
        assert!(
            started.elapsed() < within,
            "projections did not reach {target} in {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the live projection workers until they reach the head, then stops them.
async fn project_live(db: &TestDb, store: &EventStore) {
    let (stop, rx) = tokio::sync::watch::channel(false);
    let workers = projections::spawn_all(&db.pool, store, &rx, projections::DEFAULT_LINGER);
    caught_up(db, Duration::from_secs(60)).await;
    let _ = stop.send(true);
    for w in workers {
        w.await.expect("worker");
    }
}

async fn rebuild_all(db: &TestDb) {
    for &p in ALL {
        projections::rebuild(&db.pool, p, |_| {})
            .await
            .expect("rebuild");
    }
}

fn assert_same(live: &[(String, Vec<Value>)], rebuilt: &[(String, Vec<Value>)]) {
    for ((table, a), (_, b)) in live.iter().zip(rebuilt) {
        assert_eq!(a.len(), b.len(), "{table}: row counts differ");
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x, y, "{table}: rows differ");
        }
    }
}

fn services(db: &TestDb, store: factlog::store::EventStore) -> Services {
    let _ = db;
    Services::new(
        store,
        Rules {
            required_confirmations: 1,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilt_tables_equal_the_ones_built_live() {
    for seed in [7u64, 1234, 99_991] {
        let db = TestDb::new().await;
        let store = db.store().await;
        let (stop, rx) = tokio::sync::watch::channel(false);
        let workers = projections::spawn_all(&db.pool, &store, &rx, projections::DEFAULT_LINGER);
        random_work(&services(&db, store.clone()), seed, 250).await;
        caught_up(&db, Duration::from_secs(30)).await;
        let _ = stop.send(true);
        for w in workers {
            w.await.expect("worker");
        }
        let live = dump(&db).await;
        let facts = live
            .iter()
            .find(|(t, _)| t == "facts_view")
            .expect("facts_view");
        assert!(!facts.1.is_empty(), "the work made facts");
        rebuild_all(&db).await;
        assert_same(&live, &dump(&db).await);
        assert_eq!(lowest(&db).await, head(&db).await);
        // Both in one pass, as `factlog rebuild` does.
        projections::rebuild_many(&db.pool, ALL, |_| {})
            .await
            .expect("rebuild both");
        assert_same(&live, &dump(&db).await);
    }
}

fn worker(db: &TestDb) -> Child {
    Command::new(env!("CARGO_BIN_EXE_factlog"))
        .arg("worker")
        .env("FACTLOG_SIGNING_KEY_FILE", crate::support::test_key_file())
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn factlog worker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_neither_skips_nor_double_applies() {
    let db = TestDb::new().await;
    let store = db.store().await;
    random_work(&services(&db, store), 42, 1_500).await;
    let target = head(&db).await;

    let mut w = worker(&db);
    // Kill it as soon as it has committed something, while work remains.
    let started = Instant::now();
    loop {
        let low = lowest(&db).await;
        if low > 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the worker never started"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    w.kill().expect("kill -9");
    w.wait().expect("reap");
    let at_kill = lowest(&db).await;
    assert!(
        at_kill < target,
        "the worker finished before it could be killed ({at_kill}/{target})"
    );

    let mut w = worker(&db);
    caught_up(&db, Duration::from_secs(60)).await;
    w.kill().expect("stop");
    w.wait().expect("reap");
    let live = dump(&db).await;
    rebuild_all(&db).await;
    assert_same(&live, &dump(&db).await);
}

/// The tree's batches are larger (2,000 leaves) than the facts'; this kill
/// lands inside the tree's work, and the tree it finishes has exactly one
/// leaf per event: the root of its tiles is the root of the leaves
/// recomputed from the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_worker_killed_mid_batch_loses_and_doubles_no_leaf() {
    let db = TestDb::new().await;
    random_work(&services(&db, db.store().await), 4_242, 6_000).await;
    let target = head(&db).await;
    let tree = async || {
        projections::lowest_checkpoint(&db.pool, &["tree"])
            .await
            .expect("checkpoint")
    };
    let mut w = worker(&db);
    let started = Instant::now();
    while tree().await == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "no tree batch");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    w.kill().expect("kill -9");
    w.wait().expect("reap");
    let at_kill = tree().await;
    assert!(
        at_kill < target,
        "the tree was done before the kill ({at_kill}/{target})"
    );

    let mut w = worker(&db);
    caught_up(&db, Duration::from_secs(60)).await;
    w.kill().expect("stop");
    w.wait().expect("reap");

    let mut edge = factlog::merkle::Frontier::new();
    let mut after = 0;
    loop {
        let page = db.store().await.read_all(after, 1_000).await.expect("read");
        let Some(last) = page.last() else { break };
        after = last.position;
        for e in &page {
            edge.push(factlog::audit::published_leaf(e).expect("leaf"));
        }
    }
    assert_eq!(edge.size(), target as u64);
    let mut conn = db.pool.acquire().await.expect("conn");
    let size = target as u64;
    let tiles = factlog::store::tree::read_tiles(&mut conn, &factlog::merkle::tiles_for_root(size))
        .await
        .expect("tiles");
    assert_eq!(
        factlog::merkle::root_at(size, &tiles).expect("root"),
        edge.root(),
        "the stored tree is the log's tree"
    );
    let live = dump(&db).await;
    rebuild_all(&db).await;
    assert_same(&live, &dump(&db).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_the_work_without_double_applying() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let mut a = worker(&db);
    let mut b = worker(&db);
    // Writes arrive while both run.
    random_work(&services(&db, store), 4242, 600).await;
    caught_up(&db, Duration::from_secs(60)).await;
    // One dies; the other carries on alone.
    a.kill().expect("kill");
    a.wait().expect("reap");
    random_work(&services(&db, db.store().await), 77, 100).await;
    caught_up(&db, Duration::from_secs(30)).await;
    b.kill().expect("kill");
    b.wait().expect("reap");
    let live = dump(&db).await;
    rebuild_all(&db).await;
    assert_same(&live, &dump(&db).await);
}

#[tokio::test]
async fn factlog_rebuild_swaps_in_fresh_tables() {
    let db = TestDb::new().await;
    let store = db.store().await;
    random_work(&services(&db, store), 5, 60).await;
    let out = Command::new(env!("CARGO_BIN_EXE_factlog"))
        .args(["rebuild"])
        .env("DATABASE_URL", &db.url)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lowest(&db).await, head(&db).await);
    let bad = Command::new(env!("CARGO_BIN_EXE_factlog"))
        .args(["rebuild", "nonsense"])
        .env("DATABASE_URL", &db.url)
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown projection"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_work_projects_live_and_rebuilds_identically() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let n = factlog::commands::fill_log(&store, 2_000, 9, |_| {})
        .await
        .expect("generate");
    assert!(n >= 2_000);
    assert_eq!(head(&db).await, n as i64);
    project_live(&db, &store).await;
    let live = dump(&db).await;
    rebuild_all(&db).await;
    assert_same(&live, &dump(&db).await);
    assert!(
        factlog::store::verify_chain(&db.pool, 0, |_| {})
            .await
            .expect("verify")
            .ok
    );
}

/// The projection tables' indexes (names and definitions), constraints and
/// storage options, as the migrations made them.
async fn table_definitions(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT format('%s %s', indexname, indexdef) FROM pg_indexes \
         WHERE schemaname = 'public' AND tablename = ANY($1) \
         UNION ALL SELECT format('%s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid)) \
         FROM pg_constraint WHERE conrelid::regclass::text = ANY($1) \
         UNION ALL SELECT format('%s %s', relname, reloptions) FROM pg_class \
         WHERE relnamespace = 'public'::regnamespace AND relname = ANY($1) \
         UNION ALL SELECT format('%s.%s %s', attrelid::regclass, attname, attcompression) \
         FROM pg_attribute WHERE attrelid::regclass::text = ANY($1) AND attnum > 0 \
         AND NOT attisdropped \
         ORDER BY 1",
    )
    .bind(TABLES.map(|t| t.0).to_vec())
    .fetch_all(&db.pool)
    .await
    .expect("table definitions")
}

/// One append of `streams` by `who`, without an idempotency key.
fn write(streams: Vec<StreamAppend>, who: &str) -> AppendRequest {
    AppendRequest {
        streams,
        metadata: Metadata::by(who),
        idempotency: None,
    }
}

fn claim_append(claim: Uuid, expected: ExpectedVersion, events: &[ClaimEvent]) -> StreamAppend {
    StreamAppend {
        stream: claim::stream_name(claim),
        expected,
        events: events
            .iter()
            .map(|e| NewEvent::new(e.type_name(), e.data()))
            .collect(),
    }
}

/// The confirmation that verifies a claim needing one.
pub(crate) fn verifying_confirmation() -> ClaimEvent {
    ClaimEvent::ClaimConfirmed {
        schema: claim::SCHEMA,
        note: None,
        verified: true,
        confirmations: 1,
        required: 1,
    }
}

pub(crate) fn assert_event(
    claim_id: Uuid,
    story_id: Uuid,
    amount: u32,
    corrects: Option<Uuid>,
) -> ClaimEvent {
    ClaimEvent::ClaimAsserted(Box::new(Asserted {
        schema: claim::SCHEMA,
        claim_id,
        story_id,
        subject: "the crowd".into(),
        property: "size".into(),
        fact_id: factlog::domain::text::fact_id("the crowd", "size"),
        value: ClaimValue::parse(&format!(
            r#"{{"kind":"quantity","amount":"{amount}","unit":"person"}}"#
        ))
        .expect("value"),
        quote: "q".into(),
        valid_at: None,
        attributed_to: None,
        corrects,
        story_published_at: "2020-01-06T10:00:00Z".parse().expect("time"),
    }))
}

/// Writes that live batches (500 events) and a rebuild's hand-over can cut
/// anywhere: a transaction of 1,200 events over two claims of one fact, a
/// correction superseding a claim in the same transaction that asserts its
/// successor, and claims changed in many transactions of their own.
async fn long_transactions(store: &factlog::store::EventStore) {
    let story = Uuid::now_v7();
    let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    store
        .append_request(write(
            vec![
                claim_append(
                    a,
                    ExpectedVersion::NoStream,
                    &[assert_event(a, story, 100, None)],
                ),
                claim_append(
                    b,
                    ExpectedVersion::NoStream,
                    &[assert_event(b, story, 200, None)],
                ),
            ],
            "ann",
        ))
        .await
        .expect("assert a and b");
    let evidence = |i: usize| ClaimEvent::EvidenceAttached {
        schema: claim::SCHEMA,
        url: format!("https://example.org/{i}"),
        note: None,
    };
    let confirm = verifying_confirmation();
    let mut many_a: Vec<ClaimEvent> = (0..700).map(evidence).collect();
    many_a.push(confirm.clone());
    let many_b: Vec<ClaimEvent> = (0..500).map(evidence).collect();
    store
        .append_request(write(
            vec![
                claim_append(a, ExpectedVersion::Exact(1), &many_a),
                claim_append(b, ExpectedVersion::Exact(1), &many_b),
            ],
            "bob",
        ))
        .await
        .expect("one long transaction");
    for i in 0..30u64 {
        store
            .append_request(write(
                vec![claim_append(
                    b,
                    ExpectedVersion::Exact(501 + i),
                    &[evidence(i as usize)],
                )],
                "cy",
            ))
            .await
            .expect("one event per transaction");
    }
    store
        .append_request(write(
            vec![
                claim_append(
                    c,
                    ExpectedVersion::NoStream,
                    &[assert_event(c, story, 150, Some(a))],
                ),
                claim_append(
                    a,
                    ExpectedVersion::Exact(702),
                    &[ClaimEvent::ClaimSuperseded {
                        schema: claim::SCHEMA,
                        by: c,
                    }],
                ),
            ],
            "ann",
        ))
        .await
        .expect("a correction");
    store
        .append_request(write(
            vec![claim_append(c, ExpectedVersion::Exact(1), &[confirm])],
            "bob",
        ))
        .await
        .expect("confirm the correction");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuilds_equal_live_wherever_the_bulk_pass_hands_over() {
    let db = TestDb::new().await;
    let store = db.store().await;
    random_work(&services(&db, store.clone()), 2024, 150).await;
    long_transactions(&store).await;
    random_work(&services(&db, store.clone()), 2025, 150).await;
    project_live(&db, &store).await;
    let live = dump(&db).await;
    // The long transaction is one version of each of its claims, whatever
    // batches it was applied in.
    let long_versions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM claim_versions v JOIN events e ON e.position = v.from_position \
         WHERE e.version IN (702, 501)",
    )
    .fetch_one(&db.pool)
    .await
    .expect("versions");
    assert_eq!(
        long_versions, 2,
        "one version per claim for the long transaction"
    );

    let schema = table_definitions(&db).await;
    let end = head(&db).await;
    let (long_from, long_to): (i64, i64) = sqlx::query_as(
        "SELECT min(position), max(position) FROM events \
         WHERE recorded_at = (SELECT recorded_at FROM events WHERE version = 702)",
    )
    .fetch_one(&db.pool)
    .await
    .expect("the long transaction");
    assert!(long_to - long_from >= 1_200);
    for at in [
        0,
        1,
        end / 3,
        long_from,
        long_from + 350,
        long_to - 1,
        long_to,
        end - 1,
        end,
    ] {
        projections::rebuild_with(
            &db.pool,
            ALL,
            RebuildOptions {
                bulk_until: Some(at),
            },
            |_| {},
        )
        .await
        .expect("rebuild");
        assert_same(&live, &dump(&db).await);
        assert_eq!(lowest(&db).await, end, "handing over at {at}");
        assert_eq!(
            schema,
            table_definitions(&db).await,
            "indexes, keys and options"
        );
    }
    // One projection alone, and both in one call, from the bulk pass only.
    for &p in ALL {
        projections::rebuild(&db.pool, p, |_| {})
            .await
            .expect("rebuild one");
        assert_same(&live, &dump(&db).await);
    }
}

/// The rebuild's passes hold one claim, then one fact, at a time: a claim's
/// versions go out in buffers as its transactions end, and a fact's claims
/// are folded into its summary a bounded number of states at a time. A
/// claim whose versions fill many buffers, and a fact with more claims than
/// one such fold takes whose first claim (in claim order) comes last in its
/// fact's sorted rows, come out of a rebuild as they were built live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_facts_bigger_than_the_rebuilds_buffers_rebuild_as_built_live() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let story = Uuid::now_v7();
    // The fact's first claim has the highest id: the second pass, which
    // reads a fact's claims in id order, meets it after all the others.
    let first = Uuid::from_u128(u128::MAX);
    let mut shouted = assert_event(first, story, 1, None);
    if let ClaimEvent::ClaimAsserted(a) = &mut shouted {
        a.subject = "THE CROWD".into();
    }
    store
        .append_request(write(
            vec![claim_append(first, ExpectedVersion::NoStream, &[shouted])],
            "ann",
        ))
        .await
        .expect("the first claim");
    let ids: Vec<Uuid> = (0..1_100).map(|_| Uuid::now_v7()).collect();
    store
        .append_request(write(
            ids.iter()
                .zip(0u32..)
                .map(|(id, n)| {
                    claim_append(
                        *id,
                        ExpectedVersion::NoStream,
                        &[assert_event(*id, story, 5_000 + n % 3, None)],
                    )
                })
                .collect(),
            "ann",
        ))
        .await
        .expect("many claims of the fact");
    store
        .append_request(write(
            ids.iter()
                .step_by(3)
                .map(|id| claim_append(*id, ExpectedVersion::Exact(1), &[verifying_confirmation()]))
                .collect(),
            "bob",
        ))
        .await
        .expect("a third of them verified");
    // One claim changed in 40 transactions of 100 evidence links each: its
    // versions come to several MB.
    let long = ids[1];
    for t in 0..40u64 {
        let links: Vec<ClaimEvent> = (0..100)
            .map(|i| ClaimEvent::EvidenceAttached {
                schema: claim::SCHEMA,
                url: format!("https://example.org/evidence/{t}/{i}"),
                note: None,
            })
            .collect();
        store
            .append_request(write(
                vec![claim_append(
                    long,
                    ExpectedVersion::Exact(1 + 100 * t),
                    &links,
                )],
                "cy",
            ))
            .await
            .expect("evidence");
    }
    project_live(&db, &store).await;
    let live = dump(&db).await;
    let (subject, versions, bytes): (String, i64, i64) = sqlx::query_as(
        "SELECT (SELECT summary->>'subject' FROM facts_view), \
                (SELECT count(*) FROM claim_versions WHERE claim_id = $1), \
                (SELECT sum(octet_length(state::text))::int8 FROM claim_versions \
                 WHERE claim_id = $1)",
    )
    .bind(long)
    .fetch_one(&db.pool)
    .await
    .expect("the fact and the long claim");
    assert_eq!(subject, "THE CROWD", "the first claim names the fact");
    assert_eq!(versions, 41, "a version per transaction");
    assert!(
        bytes > 4 << 20,
        "its versions fill several buffers: {bytes}"
    );
    rebuild_all(&db).await;
    assert_same(&live, &dump(&db).await);
}

/// Recording a claim costs the same however many claims its fact already
/// has: a pending claim added to an existing fact leaves the fact's row as it
/// was (the document is laid out from the claims when read), while a change
/// that moves the fact's status (here, a confirmation verifying a claim)
/// rewrites it once. Every claim still shows in the served document.
#[tokio::test]
async fn a_pending_claim_leaves_its_facts_row_alone() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let workers = projections::spawn_all(&db.pool, &store, &rx, projections::DEFAULT_LINGER);
    let story = Uuid::now_v7();
    const CLAIMS: usize = 20;
    let mut ids = Vec::new();
    for _ in 0..CLAIMS {
        let id = Uuid::now_v7();
        ids.push(id);
        store
            .append_request(write(
                vec![claim_append(
                    id,
                    ExpectedVersion::NoStream,
                    &[assert_event(id, story, 5_200, None)],
                )],
                "ann",
            ))
            .await
            .expect("append");
        // One batch per claim: each claim after the first finds the row there.
        caught_up(&db, Duration::from_secs(30)).await;
    }
    let confirm = verifying_confirmation();
    store
        .append_request(write(
            vec![claim_append(ids[3], ExpectedVersion::Exact(1), &[confirm])],
            "bob",
        ))
        .await
        .expect("confirm");
    caught_up(&db, Duration::from_secs(30)).await;
    let _ = stop.send(true);
    for w in workers {
        w.await.expect("worker");
    }

    // The workers' connections have closed, which flushes their statistics;
    // the flush may land just after this backend first looks.
    let started = Instant::now();
    let (inserts, updates) = loop {
        let (inserts, updates): (i64, i64) = sqlx::query_as(
            "SELECT n_tup_ins, n_tup_upd FROM pg_stat_user_tables \
             WHERE relid = 'facts_view'::regclass",
        )
        .fetch_one(&db.pool)
        .await
        .expect("table statistics");
        if updates >= 1 || started.elapsed() > Duration::from_secs(10) {
            break (inserts, updates);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (inserts, updates),
        (1, 1),
        "one insert for the fact, one update for the confirmation"
    );
    let (status, count): (String, i64) = sqlx::query_as(
        "SELECT f.status, (SELECT count(*) FROM claim_versions v \
             WHERE v.fact_id = f.fact_id AND v.to_position IS NULL) FROM facts_view f",
    )
    .fetch_one(&db.pool)
    .await
    .expect("the fact");
    assert_eq!((status.as_str(), count), ("verified", CLAIMS as i64));
}

/// An event the projections cannot read stops each of them exactly there:
/// everything before it is applied, it is recorded as the failure, and
/// nothing after it is applied (no event is ever skipped).
#[tokio::test]
async fn an_unreadable_event_stops_the_projections_at_its_position() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let story = Uuid::now_v7();
    let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let append = |streams: Vec<StreamAppend>| write(streams, "ann");
    for id in [a, b] {
        store
            .append_request(append(vec![claim_append(
                id,
                ExpectedVersion::NoStream,
                &[assert_event(id, story, 5_200, None)],
            )]))
            .await
            .expect("assert");
    }
    // A confirmation whose data has none of a confirmation's fields.
    store
        .append_request(append(vec![StreamAppend {
            stream: claim::stream_name(b),
            expected: ExpectedVersion::Exact(1),
            events: vec![NewEvent::new(
                "ClaimConfirmed",
                serde_json::json!({"unexpected": true}),
            )],
        }]))
        .await
        .expect("append the unreadable event");
    store
        .append_request(append(vec![claim_append(
            c,
            ExpectedVersion::NoStream,
            &[assert_event(c, story, 5_200, None)],
        )]))
        .await
        .expect("assert after it");
    let bad: i64 = sqlx::query_scalar("SELECT position FROM events WHERE type = 'ClaimConfirmed'")
        .fetch_one(&db.pool)
        .await
        .expect("the bad event's position");

    let (stop, rx) = tokio::sync::watch::channel(false);
    let workers = projections::spawn_all(&db.pool, &store, &rx, projections::DEFAULT_LINGER);
    let started = Instant::now();
    let stuck = loop {
        let all = projections::checkpoints(&db.pool)
            .await
            .expect("checkpoints");
        // The tree hashes an event's bytes whatever they mean: it has
        // nothing to stop at. Every projection that reads claims stops.
        let (tree, readers): (Vec<_>, Vec<_>) = all.into_iter().partition(|c| c.name == "tree");
        if readers.iter().all(|c| c.failed_position.is_some())
            && tree.iter().all(|c| c.position >= bad)
        {
            assert!(tree.iter().all(|c| c.failed_position.is_none()), "{tree:?}");
            break readers;
        }
        let all = (readers, tree);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the projections did not stop at the unreadable event: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = stop.send(true);
    for w in workers {
        w.await.expect("worker");
    }

    for cp in &stuck {
        assert_eq!(
            cp.position,
            bad - 1,
            "{}: applied up to the event before",
            cp.name
        );
        assert_eq!(
            cp.failed_position,
            Some(bad),
            "{}: stopped at the event",
            cp.name
        );
        assert!(
            cp.last_error
                .as_deref()
                .is_some_and(|e| e.contains("unreadable ClaimConfirmed")),
            "{}: {:?}",
            cp.name,
            cp.last_error
        );
    }
    let claims: Vec<Uuid> = sqlx::query_scalar(
        "SELECT claim_id FROM claim_versions WHERE to_position IS NULL ORDER BY claim_id",
    )
    .fetch_all(&db.pool)
    .await
    .expect("claims");
    let mut before = vec![a, b];
    before.sort();
    assert_eq!(
        claims, before,
        "the claims before the event, and not the one after"
    );
    let versions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM claim_versions WHERE claim_id = $1")
            .bind(c)
            .fetch_one(&db.pool)
            .await
            .expect("versions");
    assert_eq!(
        versions, 0,
        "the facts projection did not pass the event either"
    );
}

/// While the projections keep up, a trickle of writes is gathered into one
/// batch per linger period rather than a batch per commit or two: what
/// arrives while a worker lingers after a batch lands in its next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickle_of_writes_is_projected_in_lingered_batches() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let linger = Duration::from_millis(500);
    let workers = projections::spawn_all(&db.pool, &store, &rx, linger);
    let story = Uuid::now_v7();
    let assert_one = |id: Uuid| {
        store.append_request(write(
            vec![claim_append(
                id,
                ExpectedVersion::NoStream,
                &[assert_event(id, story, 5_200, None)],
            )],
            "ann",
        ))
    };
    // A first write starts a batch of each projection...
    assert_one(Uuid::now_v7()).await.expect("append");
    caught_up(&db, Duration::from_secs(30)).await;
    // ...and the next five commit, 20 ms apart, while both linger.
    let mut ids = Vec::new();
    for _ in 0..5 {
        let id = Uuid::now_v7();
        assert_one(id).await.expect("append");
        ids.push(id);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    caught_up(&db, Duration::from_secs(30)).await;
    let _ = stop.send(true);
    for w in workers {
        w.await.expect("worker");
    }
    // Rows written by one batch share its transaction id (one projection
    // now writes every table, so one of them tells).
    let batches: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT xmin::text) FROM claim_versions WHERE claim_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_one(&db.pool)
    .await
    .expect("batches");
    assert_eq!(batches, 1, "the five claims took {batches} batches");
}

/// A transaction cut in two by a facts batch: its claims share one record
/// time, so a claim after the cut can precede one before it in claim order
/// (record time, then id) and be its fact's first claim, the one the fact
/// shows its subject and property from. The live batch must see that,
/// exactly as a rebuild does.
#[tokio::test]
async fn a_fact_first_claim_can_come_after_a_batch_cut() {
    let db = TestDb::new().await;
    let store = db.store().await;
    // 99 events of another stream: the first facts batch (100 events) then
    // ends right after the transaction's first claim.
    let notes = (0..99)
        .map(|n| NewEvent::new("NoteTaken", serde_json::json!({ "n": n })))
        .collect();
    store
        .append_request(write(
            vec![StreamAppend {
                stream: format!("note-{}", Uuid::now_v7()),
                expected: ExpectedVersion::NoStream,
                events: notes,
            }],
            "ann",
        ))
        .await
        .expect("notes");
    let story = Uuid::now_v7();
    let (low, high) = (Uuid::now_v7(), Uuid::now_v7());
    assert!(low < high);
    let mut shouted = assert_event(low, story, 1, None);
    if let ClaimEvent::ClaimAsserted(a) = &mut shouted {
        a.subject = "THE CROWD".into();
    }
    // `high` lands at position 100, `low` at 101, in one transaction.
    store
        .append_request(write(
            vec![
                claim_append(
                    high,
                    ExpectedVersion::NoStream,
                    &[assert_event(high, story, 2, None)],
                ),
                claim_append(low, ExpectedVersion::NoStream, &[shouted]),
            ],
            "ann",
        ))
        .await
        .expect("claims");
    project_live(&db, &store).await;
    let live = dump(&db).await;
    let subject: String = sqlx::query_scalar("SELECT summary->>'subject' FROM facts_view")
        .fetch_one(&db.pool)
        .await
        .expect("summary");
    assert_eq!(
        subject, "THE CROWD",
        "the first claim in claim order names the fact"
    );
    rebuild_all(&db).await;
    assert_same(&live, &dump(&db).await);
}

/// A worker remembers which facts have a row, to skip writing them again;
/// it must forget when the projection starts over under it (a migration
/// that empties the tables and bumps the generation, as 0014 did). The log
/// is one claim of fact G, then, in a later transaction, one of fact F:
/// starting over, F's claim is new, pending and later than the batch's
/// first event, so only the worker's memory could keep F's row unwritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_forgets_known_facts_when_the_projection_starts_over() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let workers = projections::spawn_all(&db.pool, &store, &rx, Duration::from_millis(1));
    let story = Uuid::now_v7();
    let (g, f) = (Uuid::now_v7(), Uuid::now_v7());
    let mut other = assert_event(g, story, 1, None);
    if let ClaimEvent::ClaimAsserted(a) = &mut other {
        a.subject = "the march".into();
        a.fact_id = factlog::domain::text::fact_id("the march", "size");
    }
    for (id, event) in [(g, other), (f, assert_event(f, story, 2, None))] {
        store
            .append_request(write(
                vec![claim_append(id, ExpectedVersion::NoStream, &[event])],
                "ann",
            ))
            .await
            .expect("append");
        caught_up(&db, Duration::from_secs(30)).await;
    }
    let facts = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM facts_view")
            .fetch_one(&db.pool)
            .await
            .expect("facts")
    };
    assert_eq!(facts().await, 2, "both facts projected");

    sqlx::raw_sql(
        "TRUNCATE facts_view, claim_versions; \
         UPDATE projection_checkpoints SET position = 0, generation = generation + 1 \
         WHERE name = 'facts'",
    )
    .execute(&db.pool)
    .await
    .expect("start over");
    caught_up(&db, Duration::from_secs(30)).await;
    let _ = stop.send(true);
    for w in workers {
        w.await.expect("worker");
    }
    assert_eq!(facts().await, 2, "both facts projected again");
}

/// A fact's history is the events of its claims' streams, in log order, up to
/// the facts checkpoint (so it agrees with the documents served); the change
/// feed of the fact cache names the facts of the claim events after a
/// position, from the same two sources.
#[tokio::test]
async fn a_facts_history_is_its_claims_events_as_far_as_projected() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let story = Uuid::now_v7();
    let fact = factlog::domain::text::fact_id("the crowd", "size");
    let other_fact = factlog::domain::text::fact_id("the march", "size");
    let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let mut elsewhere = assert_event(c, story, 7, None);
    if let ClaimEvent::ClaimAsserted(asserted) = &mut elsewhere {
        asserted.subject = "the march".into();
        asserted.fact_id = other_fact;
    }
    let mut at = Vec::new();
    for (claim, expected, event, who) in [
        (
            a,
            ExpectedVersion::NoStream,
            assert_event(a, story, 5_200, None),
            "ann",
        ),
        (c, ExpectedVersion::NoStream, elsewhere, "ann"),
        (
            b,
            ExpectedVersion::NoStream,
            assert_event(b, story, 5_000, None),
            "cy",
        ),
        (
            a,
            ExpectedVersion::Exact(1),
            verifying_confirmation(),
            "bob",
        ),
    ] {
        store
            .append_request(write(vec![claim_append(claim, expected, &[event])], who))
            .await
            .expect("append");
        at.push(head(&db).await);
    }
    project_live(&db, &store).await;
    // Past the checkpoint: not in the history until projected.
    store
        .append_request(write(
            vec![claim_append(
                b,
                ExpectedVersion::Exact(1),
                &[verifying_confirmation()],
            )],
            "bob",
        ))
        .await
        .expect("append");
    let beyond = head(&db).await;

    let history = |after: i64| {
        let pool = db.pool.clone();
        async move {
            projections::read::fact_history(&pool, fact, after, 100)
                .await
                .expect("history")
                .into_iter()
                .map(|(position, _, actor, kind, claim, _)| (position, actor, kind, claim))
                .collect::<Vec<_>>()
        }
    };
    let event = |i: usize, actor: &str, kind: &str, claim: Uuid| {
        (at[i], actor.to_owned(), kind.to_owned(), claim)
    };
    assert_eq!(
        history(0).await,
        [
            event(0, "ann", "ClaimAsserted", a),
            event(2, "cy", "ClaimAsserted", b),
            event(3, "bob", "ClaimConfirmed", a),
        ],
        "both claims' events in log order, the other fact's claim left out"
    );
    assert_eq!(
        history(at[2]).await,
        [event(3, "bob", "ClaimConfirmed", a)],
        "a page after a position"
    );

    let changes = |after: i64| {
        let pool = db.pool.clone();
        async move {
            let generation = projections::read::fact_changes(&pool, 0, None, 100)
                .await
                .expect("generation")
                .generation;
            projections::read::fact_changes(&pool, after, Some(generation), 100)
                .await
                .expect("changes")
        }
    };
    let mut both = vec![fact, other_fact];
    both.sort();
    let all = changes(0).await;
    // What a pass over an empty cache reads: the same checkpoint, nothing
    // said about what changed.
    let bare = projections::read::facts_checkpoint(&db.pool)
        .await
        .expect("checkpoint");
    assert_eq!(
        (bare.position, bare.generation, bare.changed),
        (all.position, all.generation, None)
    );
    assert_eq!((all.position, all.changed), (at[3], Some(both)));
    assert_eq!(changes(at[1]).await.changed, Some(vec![fact]));
    assert_eq!(changes(at[3]).await.changed, Some(vec![]));

    project_live(&db, &store).await;
    let all = history(0).await;
    assert_eq!(all.len(), 4);
    assert_eq!(all[3], (beyond, "bob".into(), "ClaimConfirmed".into(), b));
    assert_eq!(changes(at[3]).await.changed, Some(vec![fact]));
}

/// A projection for the tests of the generic rebuild: every event's
/// position, in `test_positions`. Its bulk pass copies them from the log,
/// or, when `bulk` is false, does nothing at all.
struct Positions {
    bulk: bool,
}

static HOLLOW: Positions = Positions { bulk: false };
static FILLED: Positions = Positions { bulk: true };

impl Projection for Positions {
    const NAME: &'static str = "test_positions";
    const TABLES: &'static [&'static str] = &["test_positions"];
    const LOCK_ID: i64 = 0x7E57;
    const BATCH_SIZE: i64 = 100;
    type Event = i64;
    type Memory = ();

    fn decode(row: LogRow) -> Option<Result<i64, ProjectionError>> {
        Some(Ok(row.position))
    }

    async fn apply(
        &self,
        conn: &mut sqlx::PgConnection,
        events: &[i64],
        _: &(),
    ) -> Result<(), ProjectionError> {
        sqlx::query("INSERT INTO test_positions SELECT unnest($1::bigint[])")
            .bind(events)
            .execute(conn)
            .await?;
        Ok(())
    }

    async fn rebuild_bulk(
        &self,
        shadow: &Shadow<'_>,
        upto: i64,
        _: &mut (dyn FnMut(u64) + Send),
    ) -> Result<BulkReport, ProjectionError> {
        if self.bulk {
            let mut conn = sqlx::PgConnection::connect_with(shadow.connect).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {}.test_positions SELECT position FROM events WHERE position <= $1",
                shadow.schema
            )))
            .bind(upto)
            .execute(&mut conn)
            .await?;
        }
        Ok(BulkReport {
            position: upto,
            ..BulkReport::default()
        })
    }
}

async fn positions_state(db: &TestDb) -> (Vec<i64>, i64, i64) {
    let rows: Vec<i64> = sqlx::query_scalar("SELECT position FROM test_positions ORDER BY 1")
        .fetch_all(&db.pool)
        .await
        .expect("positions");
    let (position, generation): (i64, i64) = sqlx::query_as(
        "SELECT position, generation FROM projection_checkpoints WHERE name = 'test_positions'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("checkpoint");
    (rows, position, generation)
}

/// A rebuild never swaps in tables its bulk pass left empty: a projection
/// whose pass writes nothing fails the rebuild loudly, naming the table, and
/// its live tables and checkpoint stay as they were. The same projection
/// with a real pass rebuilds to what its live worker built, also when the
/// pass hands over to the live path half-way, and a log holding nothing it
/// applies lets empty tables through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_refuses_a_bulk_pass_that_leaves_a_table_empty() {
    let db = TestDb::new().await;
    for sql in [
        "CREATE TABLE test_positions (position bigint PRIMARY KEY)",
        "INSERT INTO projection_checkpoints (name) VALUES ('test_positions')",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&db.pool)
            .await
            .expect("setup");
    }
    let hollow: &'static dyn AnyProjection = &HOLLOW;
    let filled: &'static dyn AnyProjection = &FILLED;

    // Nothing to apply yet: empty tables are the right ones.
    assert_eq!(head(&db).await, 0);
    projections::rebuild(&db.pool, hollow, |_| {})
        .await
        .expect("an empty log, an empty table");

    let store = db.store().await;
    random_work(&services(&db, store.clone()), 23, 60).await;
    let end = head(&db).await;
    assert!(end > 0);
    let (stop, rx) = tokio::sync::watch::channel(false);
    let worker = filled.spawn(&db.pool, &store, rx, projections::DEFAULT_LINGER);
    let started = Instant::now();
    while positions_state(&db).await.1 < end {
        assert!(started.elapsed() < Duration::from_secs(60), "worker stuck");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);
    worker.await.expect("worker");
    let live = positions_state(&db).await;
    assert_eq!(live.0, (1..=end).collect::<Vec<_>>());

    let err = projections::rebuild(&db.pool, hollow, |_| {})
        .await
        .expect_err("a hollow bulk pass must not be swapped in");
    let message = err.to_string();
    assert!(
        matches!(err, ProjectionError::HollowBulk { first: 1, .. }),
        "{message}"
    );
    assert!(message.contains("left test_positions empty"), "{message}");
    assert_eq!(positions_state(&db).await, live, "nothing swapped in");

    for bulk_until in [None, Some(end / 2)] {
        projections::rebuild_with(&db.pool, &[filled], RebuildOptions { bulk_until }, |_| {})
            .await
            .expect("rebuild");
    }
    let (rows, position, generation) = positions_state(&db).await;
    assert_eq!((rows, position), (live.0, live.1));
    assert_eq!(generation, live.2 + 2, "two swaps");
}
