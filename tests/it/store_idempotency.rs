//! Idempotency keys: a repeat replays the first response and writes nothing,
//! across processes and restarts; a reused key with another request is refused.

use factlog::store::{
    AppendOutcome, AppendRequest, EventStore, ExpectedVersion, IdempotencyClaim, Metadata,
    NewEvent, RequestFingerprint, StoreConfig, StoreError, StreamAppend, idempotency,
};
use serde_json::{Value, json};

use crate::support::TestDb;

fn keyed(scope: &str, key: &str, path: &str, body: Value) -> AppendRequest {
    AppendRequest {
        streams: vec![StreamAppend {
            stream: "claim-1".into(),
            expected: ExpectedVersion::Any,
            events: vec![NewEvent::new("ClaimConfirmed", body.clone())],
        }],
        metadata: Metadata {
            idempotency_key: Some(key.into()),
            ..Metadata::by(scope)
        },
        idempotency: Some(IdempotencyClaim {
            fingerprint: RequestFingerprint::new(scope, key, "POST", path, &body),
            status: 200,
            response: std::sync::Arc::new(|_| json!({"id": "claim-1", "status": "verified"})),
        }),
    }
}

#[tokio::test]
async fn a_repeated_key_replays_the_first_response_and_appends_nothing() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let body = json!({"note": "checked the letter", "n": 1});

    let first = store
        .append_request(keyed(
            "ann",
            "key-1",
            "/v1/claims/1/confirmations",
            body.clone(),
        ))
        .await
        .expect("first");
    let AppendOutcome::Appended(receipt) = first else {
        panic!("first must append")
    };
    assert_eq!(db.count_events().await, 1);

    // Same key, same request (keys in another order: compared as parsed JSON).
    let same = json!({"n": 1, "note": "checked the letter"});
    let again = store
        .append_request(keyed(
            "ann",
            "key-1",
            "/v1/claims/1/confirmations",
            same.clone(),
        ))
        .await
        .expect("again");
    let AppendOutcome::Replayed(replay) = again else {
        panic!("repeat must replay")
    };
    assert_eq!(replay.status, 200);
    assert_eq!(replay.position, receipt.last_position);
    assert_eq!(
        replay.body,
        json!({"id": "claim-1", "status": "verified", "position": receipt.last_position,
               "version": 1, "hash": receipt.last_hash, "leaf_hash": receipt.last_leaf_hash})
    );
    assert_eq!(db.count_events().await, 1, "a replay writes nothing");

    // The look-up the API does first agrees.
    let found = idempotency::lookup(
        &db.pool,
        &RequestFingerprint::new("ann", "key-1", "POST", "/v1/claims/1/confirmations", &same),
    )
    .await
    .expect("lookup");
    assert_eq!(found, Some(replay.clone()));

    // Another body, or another path, with the same key: refused, nothing written.
    for req in [
        keyed(
            "ann",
            "key-1",
            "/v1/claims/1/confirmations",
            json!({"note": "other"}),
        ),
        keyed("ann", "key-1", "/v1/claims/2/confirmations", body.clone()),
    ] {
        let err = store.append_request(req).await.expect_err("reuse refused");
        assert!(
            matches!(err, StoreError::IdempotencyKeyReused { .. }),
            "{err:?}"
        );
    }
    // Keys are scoped to the caller: another token may use the same key.
    let other = store
        .append_request(keyed(
            "bob",
            "key-1",
            "/v1/claims/1/confirmations",
            body.clone(),
        ))
        .await
        .expect("bob");
    assert!(matches!(other, AppendOutcome::Appended(_)));
    assert_eq!(db.count_events().await, 2);

    // Durable: a new store on a new pool (a restarted process) still replays.
    drop(store);
    let restarted = EventStore::open(db.other_pool().await, StoreConfig::default())
        .await
        .expect("store");
    let after = restarted
        .append_request(keyed("ann", "key-1", "/v1/claims/1/confirmations", body))
        .await
        .expect("after");
    assert_eq!(after, AppendOutcome::Replayed(replay));
    assert_eq!(db.count_events().await, 2);

    // Purging only forgets keys past their retention.
    assert_eq!(
        idempotency::purge(&db.pool, std::time::Duration::from_secs(3600))
            .await
            .expect("purge"),
        0
    );
    assert_eq!(
        idempotency::purge(&db.pool, std::time::Duration::ZERO)
            .await
            .expect("purge"),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_first_attempts_with_one_key_write_once() {
    let db = TestDb::new().await;
    let stores = [
        db.store().await,
        EventStore::open(db.other_pool().await, StoreConfig::default())
            .await
            .expect("store"),
    ];
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = stores[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            store
                .append_request(keyed(
                    "ann",
                    "same",
                    "/v1/claims/1/evidence",
                    json!({"url": "https://example.org"}),
                ))
                .await
        }));
    }
    let mut appended = 0;
    let mut replayed = 0;
    for t in tasks {
        match t.await.expect("task").expect("outcome") {
            AppendOutcome::Appended(_) => appended += 1,
            AppendOutcome::Replayed(_) => replayed += 1,
        }
    }
    assert_eq!((appended, replayed), (1, 19));
    assert_eq!(db.count_events().await, 1);
}
