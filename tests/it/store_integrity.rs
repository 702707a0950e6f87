//! The log is immutable in the database and tamper-evident: UPDATE, DELETE
//! and TRUNCATE fail for everyone; a superuser who disables the triggers and
//! edits an event is caught by `verify` at exactly that position.

use factlog::store::{EventStore, ExpectedVersion, Metadata, NewEvent, verify_chain};
use proptest::prelude::*;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::support::TestDb;

pub async fn seed(store: &EventStore, n: i64) {
    for i in 1..=n {
        store
            .append(
                &format!("claim-{}", i % 3),
                ExpectedVersion::Any,
                vec![NewEvent::new(
                    "ClaimAsserted",
                    json!({"i": i, "quote": "“some 5,200” troops"}),
                )],
                Metadata::by("ann"),
            )
            .await
            .expect("append");
    }
}

#[tokio::test]
async fn update_delete_and_truncate_fail_even_for_a_superuser() {
    let db = TestDb::new().await;
    let store = db.store().await;
    seed(&store, 3).await;
    // The test connects as the cluster's superuser.
    let superuser: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&db.pool)
            .await
            .expect("role");
    assert!(
        superuser,
        "this test must run as a superuser to mean anything"
    );

    let mut conn = PgConnection::connect(&db.url).await.expect("connect");
    for sql in [
        "UPDATE events SET actor = 'mallory' WHERE position = 2",
        "DELETE FROM events WHERE position = 3",
        "TRUNCATE events",
    ] {
        let err = sqlx::query(sql).execute(&mut conn).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    // Replication mode does not switch the guards off either.
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut conn)
        .await
        .expect("set");
    let err = sqlx::query("UPDATE events SET actor = 'mallory'")
        .execute(&mut conn)
        .await
        .expect_err("replica");
    assert!(err.to_string().contains("append-only"));
    assert_eq!(db.count_events().await, 3);
    assert!(verify_chain(&db.pool, 0, |_| {}).await.expect("verify").ok);
}

#[tokio::test]
async fn the_runtime_role_can_append_and_read_but_never_rewrite() {
    let db = TestDb::new().await;
    let store = db.store().await;
    seed(&store, 2).await;
    let app_pool = factlog::db::pool(&db.url_as("factlog_app"), 4)
        .await
        .expect("connect as factlog_app");
    let app_store = EventStore::open(app_pool.clone(), Default::default())
        .await
        .expect("store as app");
    app_store
        .append(
            "claim-9",
            ExpectedVersion::NoStream,
            vec![NewEvent::new("ClaimAsserted", json!({}))],
            Metadata::by("ann"),
        )
        .await
        .expect("the runtime role appends");
    assert_eq!(app_store.read_all(0, 10).await.expect("reads").len(), 3);
    for sql in [
        "UPDATE events SET actor = 'mallory'",
        "DELETE FROM events",
        "TRUNCATE events",
        "ALTER TABLE events DISABLE TRIGGER ALL",
    ] {
        let err = sqlx::query(sql).execute(&app_pool).await.expect_err(sql);
        let msg = err.to_string();
        assert!(
            msg.contains("permission denied") || msg.contains("must be owner"),
            "{sql}: {msg}"
        );
    }
    assert!(verify_chain(&db.pool, 0, |_| {}).await.expect("verify").ok);
}

pub async fn tamper(db: &TestDb, sql: &str) {
    let mut conn = PgConnection::connect(&db.url).await.expect("connect");
    sqlx::query("ALTER TABLE events DISABLE TRIGGER ALL")
        .execute(&mut conn)
        .await
        .expect("disable");
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .expect("tamper");
    sqlx::query("ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_update_delete")
        .execute(&mut conn)
        .await
        .expect("enable");
}

#[tokio::test]
async fn verify_names_the_first_altered_event() {
    let db = TestDb::new().await;
    let store = db.store().await;
    seed(&store, 12).await;
    let before = verify_chain(&db.pool, 0, |_| {}).await.expect("verify");
    assert!(before.ok);
    assert_eq!(
        (
            before.checked,
            before.first_bad_position,
            before.head_position
        ),
        (12, None, 12)
    );

    // A one-character edit of the data deep inside the log.
    tamper(
        &db,
        "UPDATE events SET data = jsonb_set(data, '{i}', '70') WHERE position = 7",
    )
    .await;
    let after = verify_chain(&db.pool, 0, |_| {}).await.expect("verify");
    assert!(!after.ok);
    assert_eq!(after.first_bad_position, Some(7));
    assert_eq!(after.checked, 6);

    // Through the binary as well: exit status 1, naming the position.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_factlog"))
        .arg("verify")
        .env("DATABASE_URL", &db.url)
        .output()
        .expect("run factlog verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("position 7"), "{stdout}");
}

#[tokio::test]
async fn verify_finds_changed_metadata_a_deleted_event_and_a_cut_tail() {
    let db = TestDb::new().await;
    let store = db.store().await;
    seed(&store, 10).await;

    tamper(
        &db,
        "UPDATE events SET actor = 'mallory' WHERE position = 9",
    )
    .await;
    assert_eq!(
        verify_chain(&db.pool, 0, |_| {})
            .await
            .expect("v")
            .first_bad_position,
        Some(9)
    );

    tamper(&db, "DELETE FROM events WHERE position = 4").await;
    assert_eq!(
        verify_chain(&db.pool, 0, |_| {})
            .await
            .expect("v")
            .first_bad_position,
        Some(4)
    );

    let db2 = TestDb::new().await;
    seed(&db2.store().await, 5).await;
    tamper(&db2, "DELETE FROM events WHERE position = 5").await;
    let r = verify_chain(&db2.pool, 0, |_| {}).await.expect("v");
    assert_eq!((r.ok, r.first_bad_position, r.checked), (false, Some(5), 4));

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_factlog"))
        .arg("verify")
        .env("DATABASE_URL", &db2.url)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        "[\\x01-\\x1f\"\\\\ éß€😀\u{00A0}\u{FEFF}]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,6}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Whatever JSON goes in (floats, huge integers, escapes, any Unicode),
/// PostgreSQL's jsonb hands back a value whose canonical encoding is the one
/// hashed at append: the chain verifies.
#[test]
fn any_json_payload_survives_the_round_trip_through_the_chain() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let db = rt.block_on(TestDb::new());
    let store = rt.block_on(db.store());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
    runner
        .run(&prop::collection::vec(json_value(), 1..6), |values| {
            rt.block_on(async {
                let events = values
                    .into_iter()
                    .map(|v| NewEvent::new("Fuzz", json!({ "v": v })))
                    .collect();
                store
                    .append("fuzz", ExpectedVersion::Any, events, Metadata::by("fuzz"))
                    .await
                    .expect("append");
                let report = verify_chain(&db.pool, 0, |_| {}).await.expect("verify");
                if let Some(bad) = report.first_bad_position {
                    let ev = store.read_all(bad - 1, 1).await.expect("read");
                    eprintln!(
                        "BAD EVENT {:?}",
                        ev.first()
                            .map(|e| (&e.data, factlog::store::chain::canonical_json(&e.data)))
                    );
                }
                prop_assert!(report.ok, "{report:?}");
                Ok(())
            })
        })
        .expect("every payload verifies");
}
