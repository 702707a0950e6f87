//! Appends: every form round-trips; conflicts are typed and write nothing;
//! concurrent appenders to one stream lose nothing.

use std::collections::HashSet;

use factlog::store::{
    AppendOutcome, AppendRequest, EventStore, ExpectedVersion, Metadata, NewEvent, StoreConfig,
    StoreError, StreamAppend,
};
use serde_json::json;
use uuid::Uuid;

use crate::support::TestDb;

fn ev(kind: &str, n: i64) -> NewEvent {
    NewEvent::new(
        kind,
        json!({"n": n, "text": "some 5,200 U.S. soldiers", "amount": "5200"}),
    )
}

#[tokio::test]
async fn every_append_form_round_trips() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let meta = Metadata {
        actor: "ann".into(),
        correlation_id: Some(Uuid::new_v4()),
        causation_id: Some(Uuid::new_v4()),
        idempotency_key: Some("k-1".into()),
    };

    let r1 = store
        .append(
            "claim-a",
            ExpectedVersion::NoStream,
            vec![ev("ClaimAsserted", 1)],
            meta.clone(),
        )
        .await
        .expect("create stream");
    assert_eq!((r1.first_position, r1.last_position), (1, 1));
    assert_eq!(r1.version_of("claim-a"), Some(1));

    let r2 = store
        .append(
            "claim-a",
            ExpectedVersion::Exact(1),
            vec![ev("ClaimConfirmed", 2), ev("ClaimDisputed", 3)],
            Metadata::by("bob"),
        )
        .await
        .expect("exact version");
    assert_eq!((r2.first_position, r2.last_position), (2, 3));
    assert_eq!(r2.version_of("claim-a"), Some(3));

    let r3 = store
        .append(
            "claim-a",
            ExpectedVersion::Any,
            vec![ev("EvidenceAttached", 4)],
            Metadata::by("cy"),
        )
        .await
        .expect("any version");
    assert_eq!(r3.version_of("claim-a"), Some(4));
    let r4 = store
        .append(
            "claim-b",
            ExpectedVersion::Any,
            vec![ev("ClaimAsserted", 5)],
            Metadata::by("cy"),
        )
        .await
        .expect("any on a new stream");
    assert_eq!(r4.version_of("claim-b"), Some(1));

    // Two streams in one atomic append.
    let both = store
        .append_request(AppendRequest {
            streams: vec![
                StreamAppend {
                    stream: "claim-b".into(),
                    expected: ExpectedVersion::Exact(1),
                    events: vec![ev("ClaimConfirmed", 6)],
                },
                StreamAppend {
                    stream: "claim-a".into(),
                    expected: ExpectedVersion::Exact(4),
                    events: vec![ev("ClaimSuperseded", 7)],
                },
            ],
            metadata: Metadata::by("dee"),
            idempotency: None,
        })
        .await
        .expect("two streams");
    let AppendOutcome::Appended(both) = both else {
        panic!("expected an append")
    };
    assert_eq!(
        both.streams,
        vec![("claim-b".into(), 2), ("claim-a".into(), 5)]
    );

    // What was written is what is read, by stream and globally.
    let a = store.read_stream("claim-a", 0, 100).await.expect("read a");
    assert_eq!(
        a.iter().map(|e| e.version).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(
        a.iter().map(|e| e.event_type.as_str()).collect::<Vec<_>>(),
        vec![
            "ClaimAsserted",
            "ClaimConfirmed",
            "ClaimDisputed",
            "EvidenceAttached",
            "ClaimSuperseded"
        ]
    );
    assert_eq!(
        a[0].data,
        json!({"n": 1, "text": "some 5,200 U.S. soldiers", "amount": "5200"})
    );
    assert_eq!(a[0].actor, "ann");
    assert_eq!(
        a[0].metadata["correlation_id"],
        json!(meta.correlation_id.unwrap().to_string())
    );
    assert_eq!(
        a[0].metadata["causation_id"],
        json!(meta.causation_id.unwrap().to_string())
    );
    assert_eq!(a[0].metadata["idempotency_key"], json!("k-1"));
    let e = &r1.events[0];
    assert_eq!(
        (
            a[0].position,
            a[0].event_id,
            a[0].stream.as_str(),
            a[0].version
        ),
        (e.position, e.event_id, e.stream.as_str(), e.version),
        "the receipt says where the event landed"
    );
    assert_eq!(
        (a[0].recorded_at, a[0].actor.as_str()),
        (r1.recorded_at, r1.actor.as_str())
    );
    assert_eq!(a[0].hash, r1.last_hash);
    let after_two = store
        .read_stream("claim-a", 2, 100)
        .await
        .expect("read from version");
    assert_eq!(after_two.first().map(|e| e.version), Some(3));

    let all = store.read_all(0, 100).await.expect("read all");
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=7).collect::<Vec<i64>>()
    );
    assert!(all.windows(2).all(|w| w[0].recorded_at <= w[1].recorded_at));
    assert_eq!(
        all.last().map(|e| e.hash.clone()),
        Some(both.last_hash.clone())
    );
    let page = store.read_all(3, 2).await.expect("page");
    assert_eq!(
        page.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![4, 5]
    );
    assert_eq!(store.head().await.expect("head").position, 7);
}

#[tokio::test]
async fn a_version_mismatch_is_a_typed_conflict_that_writes_nothing() {
    let db = TestDb::new().await;
    let store = db.store().await;
    store
        .append(
            "s-1",
            ExpectedVersion::NoStream,
            vec![ev("A", 1), ev("B", 2)],
            Metadata::by("a"),
        )
        .await
        .expect("seed");

    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(1),
        ExpectedVersion::Exact(3),
    ] {
        let err = store
            .append("s-1", expected, vec![ev("C", 3)], Metadata::by("a"))
            .await
            .expect_err("must conflict");
        match err {
            StoreError::WrongExpectedVersion {
                stream,
                expected: e,
                actual,
            } => {
                assert_eq!((stream.as_str(), e, actual), ("s-1", expected, 2));
            }
            other => panic!("expected a version conflict, got {other:?}"),
        }
    }
    let err = store
        .append(
            "s-2",
            ExpectedVersion::Exact(1),
            vec![ev("C", 3)],
            Metadata::by("a"),
        )
        .await
        .expect_err("a missing stream is at version 0");
    assert!(matches!(
        err,
        StoreError::WrongExpectedVersion { actual: 0, .. }
    ));

    // One conflicting stream sinks the whole multi-stream append.
    let err = store
        .append_request(AppendRequest {
            streams: vec![
                StreamAppend {
                    stream: "s-3".into(),
                    expected: ExpectedVersion::NoStream,
                    events: vec![ev("A", 1)],
                },
                StreamAppend {
                    stream: "s-1".into(),
                    expected: ExpectedVersion::Exact(9),
                    events: vec![ev("A", 1)],
                },
            ],
            metadata: Metadata::by("a"),
            idempotency: None,
        })
        .await
        .expect_err("must conflict");
    assert!(matches!(err, StoreError::WrongExpectedVersion { .. }));
    assert_eq!(db.count_events().await, 2, "nothing was written");
    assert_eq!(store.head().await.expect("head").position, 2);
}

#[tokio::test]
async fn invalid_appends_are_refused_before_anything_is_written() {
    let db = TestDb::new().await;
    let store = db
        .store_with(StoreConfig {
            max_event_bytes: 1024,
            ..StoreConfig::default()
        })
        .await;
    let big = NewEvent::new("Big", json!({"text": "x".repeat(2000)}));
    let err = store
        .append(
            "s",
            ExpectedVersion::Any,
            vec![ev("Fine", 1), big],
            Metadata::by("a"),
        )
        .await
        .expect_err("too large");
    assert!(
        matches!(err, StoreError::EventTooLarge { limit: 1024, .. }),
        "{err:?}"
    );

    let nul = NewEvent::new("Nul", json!({"text": "a\u{0}b"}));
    let err = store
        .append("s", ExpectedVersion::Any, vec![nul], Metadata::by("a"))
        .await
        .expect_err("NUL refused");
    assert!(matches!(err, StoreError::InvalidAppend(_)), "{err:?}");

    let err = store
        .append("s", ExpectedVersion::Any, vec![], Metadata::by("a"))
        .await
        .expect_err("empty refused");
    assert!(matches!(err, StoreError::InvalidAppend(_)), "{err:?}");
    assert_eq!(db.count_events().await, 0);

    // Pages are bounded by count whatever is asked for.
    for i in 0..5 {
        store
            .append(
                "s",
                ExpectedVersion::Any,
                vec![ev("E", i)],
                Metadata::by("a"),
            )
            .await
            .expect("append");
    }
    assert_eq!(
        store.read_all(0, 1_000_000_000).await.expect("read").len(),
        5
    );
    assert_eq!(
        store.read_all(0, 0).await.expect("read").len(),
        1,
        "a page holds at least one event"
    );
}

/// 50 appenders race for one stream through three independent stores (as
/// three processes would): every version has exactly one winner, each
/// append's events are contiguous, and every acknowledged event is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_appenders_to_one_stream_lose_nothing() {
    let db = TestDb::new().await;
    let mut stores = vec![db.store().await];
    for _ in 0..2 {
        stores.push(
            EventStore::open(db.other_pool().await, StoreConfig::default())
                .await
                .expect("store"),
        );
    }
    const WRITERS: usize = 50;
    const WINS_EACH: usize = 3;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = stores[w % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut wins = Vec::new();
            let mut conflicts = 0;
            while wins.len() < WINS_EACH {
                let v = store.stream_version("race").await.expect("version") as u64;
                let expected = if v == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(v)
                };
                let tag = format!("w{w}-{}", wins.len());
                let events = vec![
                    NewEvent::new("First", json!({"tag": tag})),
                    NewEvent::new("Second", json!({"tag": tag})),
                ];
                match store
                    .append("race", expected, events, Metadata::by(format!("w{w}")))
                    .await
                {
                    Ok(r) => {
                        assert_eq!(r.version_of("race"), Some(v + 2));
                        wins.push((tag, v + 1));
                    }
                    Err(StoreError::WrongExpectedVersion { .. }) => conflicts += 1,
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
            (wins, conflicts)
        }));
    }
    let mut acknowledged = Vec::new();
    let mut total_conflicts = 0;
    for t in tasks {
        let (wins, conflicts) = t.await.expect("task");
        acknowledged.extend(wins);
        total_conflicts += conflicts;
    }
    assert!(total_conflicts > 0, "the race must actually have contended");

    let events = stores[0]
        .read_stream("race", 0, 10_000)
        .await
        .expect("read");
    assert_eq!(events.len(), WRITERS * WINS_EACH * 2);
    assert_eq!(
        events.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=(WRITERS * WINS_EACH * 2) as i64).collect::<Vec<_>>()
    );
    // Each winning append sits whole at the version it was promised.
    let mut starts = HashSet::new();
    for (tag, first_version) in &acknowledged {
        let i = (*first_version - 1) as usize;
        assert_eq!(events[i].event_type, "First");
        assert_eq!(events[i + 1].event_type, "Second");
        assert_eq!(events[i].data["tag"], json!(tag));
        assert_eq!(events[i + 1].data["tag"], json!(tag));
        assert!(
            starts.insert(*first_version),
            "two winners for version {first_version}"
        );
    }
    let verified = factlog::store::verify_chain(&db.pool, 0, |_| {})
        .await
        .expect("verify");
    assert!(verified.ok, "{verified:?}");
}

#[tokio::test]
async fn appenders_in_two_processes_take_turns_without_gaps_or_forks() {
    // Each store's appender remembers the head it last wrote and lays its
    // next batch out after it; the other store's appends keep making that
    // memory stale, which must cost a fallback and never a gap, a fork of
    // the chain or a time going backwards.
    let db = TestDb::new().await;
    let a = db.store().await;
    let b = EventStore::open(db.other_pool().await, StoreConfig::default())
        .await
        .expect("store");
    for i in 0..30i64 {
        let store = if i % 3 == 0 { &b } else { &a };
        let r = store
            .append(
                &format!("turn-{i}"),
                ExpectedVersion::NoStream,
                vec![ev("A", i), ev("B", i)],
                Metadata::by("a"),
            )
            .await
            .expect("append");
        assert_eq!((r.first_position, r.last_position), (2 * i + 1, 2 * i + 2));
    }
    // A stale expectation is still a typed conflict on either path.
    let err = a
        .append(
            "turn-3",
            ExpectedVersion::NoStream,
            vec![ev("C", 0)],
            Metadata::by("a"),
        )
        .await
        .expect_err("turn-3 exists");
    assert!(matches!(
        err,
        StoreError::WrongExpectedVersion { actual: 2, .. }
    ));
    let events = a.read_all(0, 1_000).await.expect("read");
    assert_eq!(
        events.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=60).collect::<Vec<_>>()
    );
    assert!(
        events
            .windows(2)
            .all(|w| w[0].recorded_at <= w[1].recorded_at),
        "record times never go backwards along the log"
    );
    // Stamped with the database clock, even when the database was not asked.
    let (db_now,): (chrono::DateTime<chrono::Utc>,) = sqlx::query_as("SELECT clock_timestamp()")
        .fetch_one(&db.pool)
        .await
        .expect("clock");
    let last = events.last().expect("events").recorded_at;
    assert!(
        (db_now - last).num_milliseconds().abs() < 5_000,
        "{last} is far from the database clock {db_now}"
    );
    let verified = factlog::store::verify_chain(&db.pool, 0, |_| {})
        .await
        .expect("verify");
    assert!(verified.ok, "{verified:?}");
}

#[tokio::test]
async fn two_pipelined_lanes_keep_the_log_gapless_and_the_chain_whole() {
    // With two lanes, one lane lays its batch out after the head the other's
    // batch in flight will leave; whatever order the two reach the database
    // in, every acknowledged append must land once, in a verifiable chain.
    let db = TestDb::new().await;
    let store = EventStore::open(
        db.other_pool().await,
        StoreConfig {
            lanes: 2,
            ..StoreConfig::default()
        },
    )
    .await
    .expect("store");
    const TASKS: i64 = 48;
    const EACH: u64 = 12;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let stream = format!("lane-{t}");
            let mut positions = Vec::new();
            for v in 0..EACH {
                let expected = if v == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(v)
                };
                let r = store
                    .append(&stream, expected, vec![ev("A", t)], Metadata::by("a"))
                    .await
                    .expect("append");
                assert_eq!(r.version_of(&stream), Some(v + 1));
                positions.push(r.last_position);
            }
            positions
        }));
    }
    let mut acknowledged = Vec::new();
    for t in tasks {
        acknowledged.extend(t.await.expect("task"));
    }
    acknowledged.sort_unstable();
    let total = TASKS * EACH as i64;
    assert_eq!(acknowledged, (1..=total).collect::<Vec<_>>());
    assert_eq!(db.count_events().await, total);
    let verified = factlog::store::verify_chain(&db.pool, 0, |_| {})
        .await
        .expect("verify");
    assert!(verified.ok, "{verified:?}");
}
