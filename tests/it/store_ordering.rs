//! No reader ever skips an event: positions are gapless and become visible
//! in position order, even when transactions start, append, dawdle, roll back
//! and commit in a scrambled order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use factlog::store::{
    AppendOutcome, AppendRequest, ExpectedVersion, Metadata, NewEvent, PreparedAppend,
    StreamAppend, append_batch,
};
use serde_json::json;

use crate::support::TestDb;

fn prepared(writer: usize, round: usize) -> PreparedAppend {
    let events = (0..1 + writer % 3)
        .map(|i| NewEvent::new("Tick", json!({"writer": writer, "round": round, "i": i})))
        .collect();
    PreparedAppend::new(
        AppendRequest {
            streams: vec![StreamAppend {
                stream: format!("w-{writer}"),
                expected: ExpectedVersion::Any,
                events,
            }],
            metadata: Metadata::by(format!("w{writer}")),
            idempotency: None,
        },
        1 << 20,
    )
    .expect("valid append")
}

/// A tiny deterministic generator so every run scrambles differently but
/// reproducibly per seed.
fn jitter(seed: u64) -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 29)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_concurrent_reader_never_skips_an_event() {
    let db = TestDb::new().await;
    const ROUNDS: usize = 8;
    const WRITERS: usize = 24;

    let done = Arc::new(AtomicBool::new(false));
    let reader_pool = db.other_pool().await;
    let reader_done = done.clone();
    // The reader pages through the log exactly as a projection would: after
    // the last position it has seen. A skipped position would show as a gap.
    let reader = tokio::spawn(async move {
        let mut last = 0i64;
        let mut pages = 0u64;
        loop {
            let finished = reader_done.load(Ordering::SeqCst);
            let rows: Vec<(i64,)> = sqlx::query_as(
                "SELECT position FROM events WHERE position > $1 ORDER BY position LIMIT 50",
            )
            .bind(last)
            .fetch_all(&reader_pool)
            .await
            .expect("read");
            for (p,) in &rows {
                assert_eq!(
                    *p,
                    last + 1,
                    "reader saw position {p} right after {last}: an event was skipped"
                );
                last = *p;
            }
            pages += 1;
            if rows.is_empty() {
                if finished {
                    return (last, pages);
                }
                tokio::task::yield_now().await;
            }
        }
    });

    let mut committed_events = 0i64;
    for round in 0..ROUNDS {
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let pool = db.pool.clone();
            let seed = jitter((round * WRITERS + w) as u64);
            writers.push(tokio::spawn(async move {
                let mut tx = pool.begin().await.expect("begin");
                // Some transactions do unrelated work first, so the order in
                // which they started is not the order in which they append.
                tokio::time::sleep(Duration::from_micros(seed % 3_000)).await;
                let batch = [prepared(w, round)];
                let results = append_batch(&mut tx, &batch).await.expect("append");
                let n = match &results[0] {
                    Ok(AppendOutcome::Appended(r)) => r.events.len() as i64,
                    other => panic!("unexpected {other:?}"),
                };
                // ...and dawdle before committing while holding the head.
                tokio::time::sleep(Duration::from_micros((seed >> 16) % 2_000)).await;
                if (seed >> 32).is_multiple_of(5) {
                    tx.rollback().await.expect("rollback");
                    0
                } else {
                    tx.commit().await.expect("commit");
                    n
                }
            }));
        }
        for w in writers {
            committed_events += w.await.expect("writer");
        }
    }
    done.store(true, Ordering::SeqCst);
    let (last, pages) = reader.await.expect("reader");
    assert_eq!(
        last, committed_events,
        "the reader saw every committed event and nothing rolled back"
    );
    assert!(
        pages > ROUNDS as u64,
        "the reader read while writers were writing"
    );

    let max: Option<i64> = sqlx::query_scalar("SELECT max(position) FROM events")
        .fetch_one(&db.pool)
        .await
        .expect("max");
    assert_eq!(
        max,
        Some(committed_events),
        "rolled-back appends leave no gap"
    );
    let report = factlog::store::verify_chain(&db.pool, 0, |_| {})
        .await
        .expect("verify");
    assert!(report.ok, "{report:?}");
}
