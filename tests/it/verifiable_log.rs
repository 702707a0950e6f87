//! The verifiable log through the public API: checkpoints follow the log,
//! every event's inclusion and every pair of checkpoints' consistency
//! verify against the signed roots, bad input is a 422 naming its field,
//! and the tree a rebuild makes is the tree the worker made.

use std::time::{Duration, Instant};

use factlog::merkle::{self, Checkpoint, NoteVerifier};
use serde_json::{Value, json};

use crate::support::{AppOptions, TestApp};

pub(crate) async fn app() -> (TestApp, String, String) {
    let app = TestApp::start_with(AppOptions {
        workers: true,
        ..AppOptions::default()
    })
    .await;
    let editor = app.token("ann", "editor").await;
    let reader = app.token("rita", "reader").await;
    (app, editor, reader)
}

pub(crate) async fn stories(app: &TestApp, token: &str, n: usize) -> i64 {
    let mut last = 0;
    for i in 0..n {
        let (s, _, b) = app
            .post_json(
                "/v1/stories",
                token,
                &json!({"title": format!("t{i}"), "publisher": "p",
                        "published_at": "2020-01-01", "body": format!("body {i}")}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        last = b["position"].as_i64().expect("position");
    }
    last
}

/// The latest checkpoint once it covers `position`, opened with the app's key.
pub(crate) async fn checkpoint_covering(
    app: &TestApp,
    token: &str,
    position: i64,
) -> (Checkpoint, String) {
    let verifier = NoteVerifier::from_vkey(app.vkey.as_deref().expect("vkey")).expect("vkey");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = app.get("/v1/checkpoint", token).send().await.expect("get");
        if r.status() == 200 {
            assert!(
                r.headers()["content-type"]
                    .to_str()
                    .expect("ct")
                    .starts_with("text/plain")
            );
            let note = r.text().await.expect("text");
            let c = merkle::open(&note, &verifier).expect("a checkpoint signed by the app's key");
            if c.size as i64 >= position {
                return (c, note);
            }
        }
        assert!(Instant::now() < deadline, "no checkpoint covers {position}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn hashes(v: &Value) -> Vec<merkle::Hash> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|h| {
            hex::decode(h.as_str().expect("hex"))
                .expect("hex")
                .try_into()
                .expect("32 bytes")
        })
        .collect()
}

fn hash(v: &Value) -> merkle::Hash {
    hashes(&json!([v]))[0]
}

#[tokio::test]
async fn every_event_is_provably_in_the_log_and_the_log_only_grows() {
    let (app, editor, reader) = app().await;
    let head = stories(&app, &editor, 12).await;
    let (first, note) = checkpoint_covering(&app, &reader, head).await;
    assert_eq!(first.origin, crate::support::TEST_ORIGIN);
    assert_eq!(first.size as i64, head);
    assert!(note.contains("\n\n\u{2014} factlog/test "), "{note}");

    let auditor = app.token("audrey", "auditor").await;
    let (s, _, events) = app.get_json("/v1/events?limit=1000", &auditor).await;
    assert_eq!(s, 200);
    let events = events["events"].as_array().expect("events").clone();
    for e in events
        .iter()
        .filter(|e| e["position"].as_u64() <= Some(first.size))
    {
        let p = e["position"].as_i64().expect("position");
        let (s, _, proof) = app
            .get_json(
                &format!("/v1/proofs/inclusion?position={p}&tree_size={}", first.size),
                &reader,
            )
            .await;
        assert_eq!(s, 200, "{proof}");
        assert_eq!(proof["leaf_index"], p - 1);
        assert_eq!(proof["tree_size"], first.size);
        assert_eq!(
            proof["leaf_hash"], e["leaf_hash"],
            "the tree holds the event's leaf"
        );
        merkle::verify_inclusion(
            &hash(&proof["leaf_hash"]),
            (p - 1) as u64,
            first.size,
            &hashes(&proof["path"]),
            &first.root,
        )
        .expect("the audit path leads to the signed root");
    }

    let head = stories(&app, &editor, 7).await;
    let (second, _) = checkpoint_covering(&app, &reader, head).await;
    let (s, _, proof) = app
        .get_json(
            &format!(
                "/v1/proofs/consistency?from={}&to={}",
                first.size, second.size
            ),
            &reader,
        )
        .await;
    assert_eq!(s, 200, "{proof}");
    merkle::verify_consistency(
        first.size,
        second.size,
        &first.root,
        &second.root,
        &hashes(&proof["path"]),
    )
    .expect("the newer checkpoint extends the older");
    // The same proof does not hold for another old root.
    let mut forged = first.root;
    forged[0] ^= 1;
    assert!(
        merkle::verify_consistency(
            first.size,
            second.size,
            &forged,
            &second.root,
            &hashes(&proof["path"])
        )
        .is_err()
    );

    // An old size finds the earliest checkpoint at least that large.
    let r = app
        .get(&format!("/v1/checkpoints?size={}", first.size), &reader)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let verifier = NoteVerifier::from_vkey(app.vkey.as_deref().expect("vkey")).expect("vkey");
    let again = merkle::open(&r.text().await.expect("text"), &verifier).expect("signed");
    assert!(again.size >= first.size && again.size <= second.size);

    // A checkpoint checked with another key is refused.
    let other = merkle::NoteSigner::generate(crate::support::TEST_ORIGIN).expect("key");
    assert!(merkle::open(&note, &other.verifier()).is_err());
}

#[tokio::test]
async fn bad_proof_requests_are_422_naming_the_field_and_nothing_signed_is_404() {
    let unsigned = TestApp::start_with(AppOptions {
        workers: false,
        ..AppOptions::default()
    })
    .await;
    let token = unsigned.token("rita", "reader").await;
    for path in [
        "/v1/checkpoint",
        "/v1/proofs/inclusion?position=1",
        "/v1/checkpoints?size=1",
    ] {
        let r = unsigned.get(path, &token).send().await.expect("get");
        assert_eq!(r.status(), 404, "{path}: no signer has run");
    }
    let (app, editor, reader) = app().await;
    let head = stories(&app, &editor, 3).await;
    let (c, _) = checkpoint_covering(&app, &reader, head).await;
    let n = c.size;
    for (query, field) in [
        ("/v1/proofs/inclusion?position=0".to_owned(), "position"),
        (
            format!("/v1/proofs/inclusion?position={}", n + 1),
            "position",
        ),
        ("/v1/proofs/inclusion?position=x".to_owned(), "position"),
        ("/v1/proofs/inclusion".to_owned(), "position"),
        (
            format!("/v1/proofs/inclusion?position=1&tree_size={}", n + 1),
            "tree_size",
        ),
        (
            "/v1/proofs/inclusion?position=1&tree_size=0".to_owned(),
            "tree_size",
        ),
        ("/v1/proofs/consistency?from=0".to_owned(), "from"),
        ("/v1/proofs/consistency?from=3&to=2".to_owned(), "from"),
        (format!("/v1/proofs/consistency?from=1&to={}", n + 1), "to"),
        ("/v1/proofs/consistency?from=-1".to_owned(), "from"),
        (format!("/v1/checkpoints?size={}", n + 1), "size"),
        ("/v1/checkpoints".to_owned(), "size"),
    ] {
        let (s, _, body) = app.get_json(&query, &reader).await;
        assert_eq!(s, 422, "{query}: {body}");
        assert_eq!(body["field"], field, "{query}: {body}");
    }
    let r = app
        .get("/v1/proofs/inclusion?position=1", "not-a-token")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    let (s, _, proof) = app
        .get_json(&format!("/v1/proofs/consistency?from={n}&to={n}"), &reader)
        .await;
    assert_eq!(s, 200);
    assert_eq!(proof["path"], json!([]));
}

#[tokio::test]
async fn a_rebuild_of_the_tree_gives_the_same_tiles_and_roots() {
    let (app, editor, reader) = app().await;
    // More than one full tile, so that level 1 exists.
    let mut head = 0;
    for _ in 0..3 {
        head = stories(&app, &editor, 100).await;
    }
    let (c, _) = checkpoint_covering(&app, &reader, head).await;
    let tiles = |pool: sqlx::PgPool| async move {
        sqlx::query_as::<_, (i16, i64, Vec<u8>)>(
            "SELECT DISTINCT ON (level, idx) level, idx, hashes FROM tree_tiles \
             ORDER BY level, idx, width DESC",
        )
        .fetch_all(&pool)
        .await
        .expect("tiles")
    };
    let before = tiles(app.db.pool.clone()).await;
    assert!(before.iter().any(|t| t.0 == 1), "a level-1 tile");
    factlog::projections::rebuild(&app.db.pool, factlog::projections::TREE, |_| {})
        .await
        .expect("rebuild");
    let after = tiles(app.db.pool.clone()).await;
    // The worker may have moved on; compare what both cover.
    assert!(after.len() >= before.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!((b.0, b.1), (a.0, a.1));
        let n = b.2.len().min(a.2.len());
        assert_eq!(b.2[..n], a.2[..n], "tile {} {}", b.0, b.1);
    }
    // And the signed root is still the root of the rebuilt tree.
    let (s, _, proof) = app
        .get_json(
            &format!("/v1/proofs/inclusion?position=1&tree_size={}", c.size),
            &reader,
        )
        .await;
    assert_eq!(s, 200, "{proof}");
    merkle::verify_inclusion(
        &hash(&proof["leaf_hash"]),
        0,
        c.size,
        &hashes(&proof["path"]),
        &c.root,
    )
    .expect("proof against the signed root after the rebuild");
}

/// A tree that no longer extends the latest checkpoint (here a stored tile
/// altered under it) is never signed: the signer reports the fork, and
/// `/readyz` and `/metrics` say so, while the old checkpoint stays latest.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fork_is_not_signed_and_readiness_and_metrics_report_it() {
    let (app, editor, reader) = app().await;
    let head = stories(&app, &editor, 300).await;
    let (signed, _) = checkpoint_covering(&app, &reader, head).await;
    let (s, _, ready) = app.get_json("/readyz", &reader).await;
    assert_eq!(s, 200);
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checkpoints"]["size"], signed.size, "{ready}");
    assert_eq!(ready["checkpoints"]["fork"], Value::Null, "{ready}");

    // The level-1 tile's first hash, the root of leaves 0..256: every proof
    // and root over the first tile reads it (not the 256 leaves beneath).
    sqlx::query(
        "UPDATE tree_tiles SET hashes = set_byte(hashes, 0, get_byte(hashes, 0) # 1) \
         WHERE level = 1 AND idx = 0",
    )
    .execute(&app.db.pool)
    .await
    .expect("alter a tile");
    stories(&app, &editor, 1).await;

    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        let (_, _, ready) = app.get_json("/readyz", &reader).await;
        if ready["checkpoints"]["fork"].is_string() {
            break ready;
        }
        assert!(Instant::now() < deadline, "no fork reported: {ready}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert!(
        ready["checkpoints"]["fork"]
            .as_str()
            .expect("fork")
            .contains(&format!(
                "does not extend the checkpoint of size {}",
                signed.size
            )),
        "{ready}"
    );
    assert!(
        ready["checkpoints"]["unsigned_events"].as_u64() >= Some(1),
        "{ready}"
    );
    let metrics = app
        .get("/metrics", &reader)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("factlog_checkpoint_fork 1"), "{metrics}");
    assert!(
        metrics.contains(&format!("factlog_checkpoint_size {}", signed.size)),
        "{metrics}"
    );
    let (latest, _) = checkpoint_covering(&app, &reader, 1).await;
    assert_eq!(latest.size, signed.size, "nothing was signed over the fork");
}

/// `factlog verify` as a user runs it, against the app's database: its exit
/// code and what it printed.
async fn cli_verify(app: &TestApp) -> (Option<i32>, String) {
    cli_verify_on(&app.db).await
}

async fn cli_verify_on(db: &crate::support::TestDb) -> (Option<i32>, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_factlog"))
        .arg("verify")
        .env("DATABASE_URL", &db.url)
        .output()
        .await
        .expect("run factlog verify");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Runs `sql` with the refuse-change triggers of `checkpoints` off, then
/// back on as the migration left them (as only the database owner can).
async fn on_checkpoints(app: &TestApp, sql: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&app.db.url)
        .await
        .expect("connect");
    let run = |sql: String| sqlx::query(sqlx::AssertSqlSafe(sql));
    run("ALTER TABLE checkpoints DISABLE TRIGGER USER".to_owned())
        .execute(&mut conn)
        .await
        .expect("disable");
    run(sql.to_owned()).execute(&mut conn).await.expect(sql);
    for trigger in ["checkpoints_no_update_delete", "checkpoints_no_truncate"] {
        run(format!(
            "ALTER TABLE checkpoints ENABLE ALWAYS TRIGGER {trigger}"
        ))
        .execute(&mut conn)
        .await
        .expect("enable");
    }
}

/// Flips one bit of byte `byte` of the stored tile at `level`, `idx` (the
/// tiles have no refuse-change triggers: the projection rewrites them).
async fn flip(app: &TestApp, level: i16, idx: i64, byte: i32) {
    let done = sqlx::query(
        "UPDATE tree_tiles SET hashes = set_byte(hashes, $3, get_byte(hashes, $3) # 1) \
         WHERE level = $1 AND idx = $2",
    )
    .bind(level)
    .bind(idx)
    .bind(byte)
    .execute(&app.db.pool)
    .await
    .expect("flip");
    assert_eq!(done.rows_affected(), 1);
}

async fn check(app: &TestApp) -> factlog::store::TreeReport {
    factlog::store::check_tree(&app.db.pool, |_| {})
        .await
        .expect("check the tree")
}

/// `factlog verify` recomputes the tree from the log: an intact log passes
/// (chain, tiles of two levels, the signed root), and a flipped bit in a
/// leaf tile or a level-1 tile, a deleted tile and a checkpoint whose root
/// is not the log's are each caught, naming the first bad position.
#[tokio::test]
async fn verify_recomputes_the_tree_and_names_a_bad_tile_or_checkpoint() {
    use factlog::merkle::TileId;
    use factlog::store::TreeProblem;
    let (app, editor, reader) = app().await;
    let mut head = 0;
    for _ in 0..3 {
        head = stories(&app, &editor, 100).await;
    }
    assert!(head > 256, "more than one full leaf tile");
    let (c, _) = checkpoint_covering(&app, &reader, head).await;
    assert_eq!(c.size as i64, head, "nothing else appends");

    let (code, out) = cli_verify(&app).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with(&format!("ok: {head} events checked")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "ok: the Merkle tree of {head} leaves matches the log; root {}; \
             the latest checkpoint (size {head}) matches",
            hex::encode(c.root)
        )),
        "{out}"
    );
    let intact = check(&app).await;
    assert!(intact.ok(), "{:?}", intact.problems);
    assert_eq!(
        (intact.tree_size, intact.not_in_tree, intact.root),
        (head as u64, 0, Some(c.root))
    );

    // A bit of leaf 5 of the second leaf tile: event 256 + 5 + 1.
    flip(&app, 0, 1, 5 * 32 + 3).await;
    let r = check(&app).await;
    assert_eq!(r.first_bad_position(), Some(262));
    assert_eq!(
        r.problems,
        vec![TreeProblem::TileDiffers {
            position: 262,
            tile: TileId { level: 0, index: 1 }
        }]
    );
    let (code, out) = cli_verify(&app).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.starts_with(&format!("ok: {head} events checked")),
        "the chain is intact: {out}"
    );
    assert!(
        out.contains(
            "BROKEN: the stored tree differs from the log at position 262 (tile level 0 index 1)"
        ),
        "{out}"
    );
    flip(&app, 0, 1, 5 * 32 + 3).await;
    assert!(check(&app).await.ok());

    // The level-1 tile: its first hash is the root of events 1..=256.
    flip(&app, 1, 0, 31).await;
    assert_eq!(
        check(&app).await.problems,
        vec![TreeProblem::TileDiffers {
            position: 1,
            tile: TileId { level: 1, index: 0 }
        }]
    );
    let (code, out) = cli_verify(&app).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("at position 1 (tile level 1 index 0)"),
        "{out}"
    );
    flip(&app, 1, 0, 31).await;

    // A deleted tile.
    let saved: Vec<u8> =
        sqlx::query_scalar("SELECT hashes FROM tree_tiles WHERE level = 0 AND idx = 0")
            .fetch_one(&app.db.pool)
            .await
            .expect("tile");
    sqlx::query("DELETE FROM tree_tiles WHERE level = 0 AND idx = 0")
        .execute(&app.db.pool)
        .await
        .expect("delete a tile");
    assert_eq!(
        check(&app).await.problems,
        vec![TreeProblem::TileMissing {
            position: 1,
            tile: TileId { level: 0, index: 0 }
        }]
    );
    let (code, out) = cli_verify(&app).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("(tile level 0 index 0 is missing)"), "{out}");
    sqlx::query("INSERT INTO tree_tiles (level, idx, width, hashes) VALUES (0, 0, 256, $1)")
        .bind(&saved)
        .execute(&app.db.pool)
        .await
        .expect("put the tile back");
    assert!(check(&app).await.ok());

    // The latest checkpoint's root, altered: the stored tree still matches
    // the log, the signed root does not.
    let size = c.size;
    let forge = format!(
        "UPDATE checkpoints SET root = set_byte(root, 0, get_byte(root, 0) # 1) \
         WHERE size = {size}"
    );
    on_checkpoints(&app, &forge).await;
    let r = check(&app).await;
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert!(
        matches!(&r.problems[0], TreeProblem::Checkpoint { size: s, .. } if *s == size),
        "{:?}",
        r.problems
    );
    assert_eq!(r.first_bad_position(), None);
    let (code, out) = cli_verify(&app).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "BROKEN: the latest checkpoint (size {size}) does not match the log's tree"
        )),
        "{out}"
    );
    on_checkpoints(&app, &forge).await;
    assert!(check(&app).await.ok());

    // A forged checkpoint beyond the log: the log cannot give its root.
    let note = format!("factlog/test\n{}\n{}\n\n— x\n", size + 5, "A".repeat(44));
    sqlx::query("INSERT INTO checkpoints (size, root, note) VALUES ($1, $2, $3)")
        .bind((size + 5) as i64)
        .bind(c.root.as_slice())
        .bind(&note)
        .execute(&app.db.pool)
        .await
        .expect("forge");
    let r = check(&app).await;
    assert!(
        matches!(&r.problems[..], [TreeProblem::Checkpoint { size: s, .. }] if *s == size + 5),
        "{:?}",
        r.problems
    );
    let (code, _) = cli_verify(&app).await;
    assert_eq!(code, Some(1));
}

/// Someone who rewrites a signed event and rebuilds the tree to match still
/// cannot make the log agree with the signed checkpoint.
#[tokio::test]
async fn a_log_rewritten_after_signing_disagrees_with_its_checkpoint_even_with_the_tree_rebuilt() {
    use factlog::store::TreeProblem;
    let (app, editor, reader) = app().await;
    let head = stories(&app, &editor, 12).await;
    let (c, _) = checkpoint_covering(&app, &reader, head).await;
    assert!(check(&app).await.ok());

    crate::store_integrity::tamper(
        &app.db,
        "UPDATE events SET data = data || '{\"forged\": true}' WHERE position = 5",
    )
    .await;
    let r = check(&app).await;
    assert_eq!(r.first_bad_position(), Some(5), "{:?}", r.problems);
    assert!(
        matches!(
            &r.problems[..],
            [TreeProblem::TileDiffers { position: 5, .. }, TreeProblem::Checkpoint { size, .. }]
                if *size == c.size
        ),
        "{:?}",
        r.problems
    );

    factlog::projections::rebuild(&app.db.pool, factlog::projections::TREE, |_| {})
        .await
        .expect("rebuild");
    let r = check(&app).await;
    assert!(
        matches!(&r.problems[..], [TreeProblem::Checkpoint { size, .. }] if *size == c.size),
        "{:?}",
        r.problems
    );
    let (code, out) = cli_verify(&app).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("BROKEN: the hash chain breaks at position 5"),
        "{out}"
    );
}

/// The tree projection may lag the head: `verify` checks the tree it has
/// built and says how many events it has not reached, without failing.
#[tokio::test]
async fn a_tree_behind_the_head_is_checked_as_far_as_it_goes() {
    let db = crate::support::TestDb::new().await;
    let store = db.store().await;
    crate::store_integrity::seed(&store, 12).await;
    factlog::projections::rebuild(&db.pool, factlog::projections::TREE, |_| {})
        .await
        .expect("build the tree");
    crate::store_integrity::seed(&store, 3).await;
    let r = factlog::store::check_tree(&db.pool, |_| {})
        .await
        .expect("check");
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(
        (r.tree_size, r.not_in_tree, r.checkpoint_size),
        (12, 3, None)
    );
    let (code, out) = cli_verify_on(&db).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("ok: the Merkle tree of 12 leaves matches the log"),
        "{out}"
    );
    assert!(
        out.contains("note: 3 events are not in the tree yet"),
        "{out}"
    );
}
