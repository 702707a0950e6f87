//! Subscriptions catch up, then deliver new events live, whichever process wrote them.

use std::time::Duration;

use factlog::store::{EventStore, ExpectedVersion, Metadata, NewEvent, StoreConfig};
use serde_json::json;

use crate::support::TestDb;

#[tokio::test]
async fn a_subscription_catches_up_then_follows_live_writes_from_any_process() {
    let db = TestDb::new().await;
    let store = db.store().await;
    for i in 0..3 {
        store
            .append(
                "s",
                ExpectedVersion::Any,
                vec![NewEvent::new("E", json!({"i": i}))],
                Metadata::by("a"),
            )
            .await
            .expect("append");
    }
    let mut sub = store.subscribe(1);
    for expected in [2, 3] {
        let e = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("catch-up in time")
            .expect("event");
        assert_eq!(e.position, expected);
    }

    // Nothing more yet: the subscription waits rather than inventing events.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sub.next())
            .await
            .is_err()
    );

    // A write through this process's store wakes it at once...
    store
        .append(
            "s",
            ExpectedVersion::Any,
            vec![NewEvent::new("E", json!({"i": 3}))],
            Metadata::by("a"),
        )
        .await
        .expect("append");
    let e = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("live")
        .expect("event");
    assert_eq!(e.position, 4);

    // ...and so does one from another process (via LISTEN/NOTIFY), well
    // before the 30 s safety net.
    let other = EventStore::open(db.other_pool().await, StoreConfig::default())
        .await
        .expect("store");
    let mut sub = store.subscribe(4);
    let waiter = tokio::spawn(async move { sub.next().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    other
        .append(
            "t",
            ExpectedVersion::NoStream,
            vec![NewEvent::new("E", json!({}))],
            Metadata::by("b"),
        )
        .await
        .expect("append elsewhere");
    let e = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken by NOTIFY")
        .expect("task")
        .expect("event");
    assert_eq!((e.position, e.stream.as_str()), (5, "t"));
}
