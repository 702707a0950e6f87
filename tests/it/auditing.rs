//! `factlog audit` as an auditor runs it: the real binary against a running
//! server, holding only a saved checkpoint and the verifier key. It passes
//! on a log that only grew and saves the newer checkpoint; it fails, naming
//! what failed and keeping the old checkpoint, when the operator truncated
//! and re-appended the log with the chain and the tree recomputed, when an
//! event was altered after it was signed, and when a key or note is wrong.

use std::path::Path;
use std::process::Output;

use factlog::merkle::{self, NoteSigner, NoteVerifier};
use sqlx::{Connection, PgConnection};

use crate::chain_verifier::rewrite_and_rechain;
use crate::support::{TEST_ORIGIN, TestApp};
use crate::verifiable_log::{app, checkpoint_covering, stories};

async fn factlog(app: &TestApp, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_factlog"))
        .args(args)
        .env("DATABASE_URL", &app.db.url)
        .env_remove("FACTLOG_AUDIT_URL")
        .env_remove("FACTLOG_AUDIT_TOKEN")
        .output()
        .await
        .expect("run factlog")
}

/// `factlog audit` through the API with the app's verifier key.
async fn audit(app: &TestApp, file: &Path, token: &str, extra: &[&str]) -> (Option<i32>, String) {
    let vkey = app.vkey.clone().expect("vkey");
    let file = file.to_str().expect("path");
    let mut args = vec![
        "audit",
        "--checkpoint",
        file,
        "--url",
        &app.base,
        "--token",
        token,
        "--key",
        &vkey,
    ];
    args.extend_from_slice(extra);
    let out = factlog(app, &args).await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

fn size_of(file: &Path, app: &TestApp) -> u64 {
    let verifier = NoteVerifier::from_vkey(app.vkey.as_deref().expect("vkey")).expect("vkey");
    let note = std::fs::read_to_string(file).expect("saved checkpoint");
    merkle::open(&note, &verifier).expect("signed").size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_audit_of_a_log_that_only_grew_passes_and_saves_the_newer_checkpoint() {
    let (app, editor, reader) = app().await;
    let auditor = app.token("audrey", "auditor").await;
    let head = stories(&app, &editor, 5).await;
    let (first, note) = checkpoint_covering(&app, &reader, head).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("checkpoint");
    std::fs::write(&file, &note).expect("save");

    // Past a full tile and a mark, so the edge and the tiles both matter.
    let head = stories(&app, &editor, 300).await;
    checkpoint_covering(&app, &reader, head).await;
    let (code, out) = audit(&app, &file, &auditor, &["--events"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("from {} to {head} events", first.size)),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{} new events recomputed",
            head as u64 - first.size
        )),
        "{out}"
    );
    assert_eq!(
        size_of(&file, &app),
        head as u64,
        "the newer checkpoint is saved"
    );

    // Again with nothing new; then a reader's token suffices without --events.
    let (code, out) = audit(&app, &file, &auditor, &["--events"]).await;
    assert_eq!(code, Some(0), "{out}");
    let head = stories(&app, &editor, 3).await;
    checkpoint_covering(&app, &reader, head).await;
    let (code, out) = audit(&app, &file, &reader, &[]).await;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(size_of(&file, &app), head as u64);

    // The operator's own check reads the database instead of the API.
    let head = stories(&app, &editor, 2).await;
    checkpoint_covering(&app, &reader, head).await;
    let vkey = app.vkey.clone().expect("vkey");
    let out = factlog(
        &app,
        &[
            "audit",
            "--checkpoint",
            file.to_str().expect("path"),
            "--key",
            &vkey,
            "--events",
        ],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(size_of(&file, &app), head as u64);
}

/// The attack the hash chain alone misses: with the triggers off, the last
/// 100 events go, others are appended in their place through the service
/// (so the chain links), the tree is rebuilt from the rewritten log and the
/// old checkpoints are deleted, so the service signs the new tree with its
/// own key. `verify` is satisfied; an auditor's old checkpoint is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn truncating_and_reappending_with_chain_and_tree_recomputed_fails_the_audit() {
    let (app, editor, reader) = app().await;
    let auditor = app.token("audrey", "auditor").await;
    let head = stories(&app, &editor, 150).await;
    let (saved, note) = checkpoint_covering(&app, &reader, head).await;
    assert_eq!(saved.size, head as u64);
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("checkpoint");
    std::fs::write(&file, &note).expect("save");

    let cut = head - 100;
    let mut conn = PgConnection::connect(&app.db.url).await.expect("connect");
    let sql = |q: &'static str| sqlx::query(q);
    sql("ALTER TABLE events DISABLE TRIGGER ALL")
        .execute(&mut conn)
        .await
        .expect("disable");
    for q in [
        "DELETE FROM events WHERE position > $1",
        "DELETE FROM event_secrets WHERE position > $1",
    ] {
        sql(q).bind(cut).execute(&mut conn).await.expect(q);
    }
    sql(
        "UPDATE event_head h SET position = e.position, hash = e.hash, recorded_at = e.recorded_at \
         FROM events e WHERE e.position = $1",
    )
    .bind(cut)
    .execute(&mut conn)
    .await
    .expect("head");
    sql("ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_update_delete")
        .execute(&mut conn)
        .await
        .expect("enable");
    let rewritten = stories(&app, &editor, 150).await;
    assert_eq!(
        rewritten,
        cut + 150,
        "the new events took the old positions"
    );
    factlog::projections::rebuild(&app.db.pool, factlog::projections::TREE, |_| {})
        .await
        .expect("rebuild the tree");
    // Only now, so that the signer signs the rebuilt tree and nothing else.
    for q in [
        "ALTER TABLE checkpoints DISABLE TRIGGER ALL",
        "DELETE FROM checkpoints",
        "ALTER TABLE checkpoints ENABLE ALWAYS TRIGGER checkpoints_no_update_delete",
    ] {
        sql(q).execute(&mut conn).await.expect(q);
    }
    let (forged, _) = checkpoint_covering(&app, &reader, rewritten).await;
    assert!(forged.size > saved.size);

    let out = factlog(&app, &["verify"]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "the chain alone is satisfied: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for extra in [&[][..], &["--events"][..]] {
        let (code, out) = audit(&app, &file, &auditor, extra).await;
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("FAILED: the log was rewritten"), "{out}");
        assert_eq!(
            std::fs::read_to_string(&file).expect("file"),
            note,
            "a failed audit keeps the old checkpoint"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_altered_after_it_was_signed_is_named_by_the_audit() {
    let (app, editor, reader) = app().await;
    let auditor = app.token("audrey", "auditor").await;
    let head = stories(&app, &editor, 4).await;
    let (_, note) = checkpoint_covering(&app, &reader, head).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("checkpoint");
    std::fs::write(&file, &note).expect("save");
    let head = stories(&app, &editor, 1_100).await;
    checkpoint_covering(&app, &reader, head).await;

    // Rewritten in the database with the chain recomputed; the tree and the
    // signed checkpoint still hold the original.
    let altered = head - 20;
    rewrite_and_rechain(&app.db, altered).await;
    let (code, out) = audit(&app, &file, &auditor, &[]).await;
    assert_eq!(
        code,
        Some(0),
        "without --events only the tree is compared: {out}"
    );
    std::fs::write(&file, &note).expect("restore");
    let (code, out) = audit(&app, &file, &auditor, &["--events"]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "FAILED: event {altered} is not the event the signed root"
        )),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_key_a_forged_note_or_another_log_fails_the_audit() {
    let (app, editor, reader) = app().await;
    let head = stories(&app, &editor, 3).await;
    let (_, note) = checkpoint_covering(&app, &reader, head).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("checkpoint");
    let base = app.base.clone();
    let run = async |note: &str, key: &str| {
        std::fs::write(&file, note).expect("save");
        let out = factlog(
            &app,
            &[
                "audit",
                "--checkpoint",
                file.to_str().expect("path"),
                "--url",
                &base,
                "--token",
                &reader,
                "--key",
                key,
            ],
        )
        .await;
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let vkey = app.vkey.clone().expect("vkey");

    let stranger = NoteSigner::generate(TEST_ORIGIN).expect("key");
    let (code, out) = run(&note, &stranger.vkey()).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("the saved checkpoint does not verify with the key"),
        "{out}"
    );

    // A checkpoint the stranger signed, offered as the saved one.
    let forged = stranger
        .sign(&format!("{TEST_ORIGIN}\n1\n{}\n", base64_of(&[7u8; 32])))
        .expect("sign");
    let (code, out) = run(&forged, &vkey).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("the saved checkpoint does not verify"),
        "{out}"
    );

    // The saved note with its size edited: the signature no longer holds.
    let lines: Vec<&str> = note.lines().collect();
    let edited = note.replacen(&format!("\n{}\n", lines[1]), "\n1\n", 1);
    let (code, out) = run(&edited, &vkey).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("the saved checkpoint does not verify"),
        "{out}"
    );

    // A checkpoint of another log under the same key name does not carry over.
    let other = NoteSigner::generate("factlog/elsewhere").expect("key");
    let other_note = other
        .sign(&format!(
            "factlog/elsewhere\n1\n{}\n",
            base64_of(&[7u8; 32])
        ))
        .expect("sign");
    let (code, out) = run(&other_note, &other.vkey()).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("the server's latest checkpoint does not verify with the key"),
        "{out}"
    );

    // And the untouched note passes, so the failures above are the edits.
    let (code, out) = run(&note, &vkey).await;
    assert_eq!(code, Some(0), "{out}");
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_deleted_after_it_was_signed_is_named_by_the_audit() {
    let (app, editor, reader) = app().await;
    let auditor = app.token("audrey", "auditor").await;
    let head = stories(&app, &editor, 3).await;
    let (_, note) = checkpoint_covering(&app, &reader, head).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("checkpoint");
    std::fs::write(&file, &note).expect("save");
    let head = stories(&app, &editor, 40).await;
    checkpoint_covering(&app, &reader, head).await;

    let gone = head - 5;
    let mut conn = PgConnection::connect(&app.db.url).await.expect("connect");
    for q in [
        "ALTER TABLE events DISABLE TRIGGER ALL",
        "DELETE FROM events WHERE position = $1",
        "ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_update_delete",
    ] {
        let query = sqlx::query(q);
        let query = if q.contains("$1") {
            query.bind(gone)
        } else {
            query
        };
        query.execute(&mut conn).await.expect(q);
    }
    let (code, out) = audit(&app, &file, &auditor, &["--events"]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "FAILED: event {gone}: the server sent position {} in its place",
            gone + 1
        )),
        "{out}"
    );
}

/// Erasure changes no leaf: an auditor who saved a checkpoint before it
/// still proves the log only grew, and recomputes every leaf, the erased
/// events' included, from what `/v1/events` shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_audit_across_an_erasure_passes_and_recomputes_the_erased_leaves() {
    let (app, editor, reader) = app().await;
    let auditor = app.token("audrey", "auditor").await;
    let admin = app.token("root", "admin").await;
    // Saved before any story, so that every story's leaf is recomputed.
    let tokens = app.count_events().await;
    let (_, note) = checkpoint_covering(&app, &reader, tokens).await;
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("checkpoint");
    std::fs::write(&file, &note).expect("save");
    stories(&app, &editor, 3).await;
    let (_, _, page) = app.get_json("/v1/events?limit=100", &auditor).await;
    let story = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["type"] == "StoryRegistered")
        .expect("a story")
        .clone();
    let (s, _, r) = app
        .post_json(
            "/v1/erasures",
            &admin,
            &serde_json::json!({"story_id": story["data"]["story_id"], "fields": ["body"], "reason": "asked"}),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let head = stories(&app, &editor, 2).await;
    checkpoint_covering(&app, &reader, head).await;
    let (code, out) = audit(&app, &file, &auditor, &["--events"]).await;
    assert_eq!(code, Some(0), "{out}");
}
