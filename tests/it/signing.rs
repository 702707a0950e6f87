//! The signing key and the signers: one key file, made once with mode 0600
//! however many processes start at once, and refused rather than replaced
//! when it is damaged; several signers over one database publish a single
//! line of checkpoints, each extending the one before.

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use factlog::merkle::{self, NoteSigner, NoteVerifier};
use factlog::projections::{DEFAULT_LINGER, TREE};
use factlog::service::checkpoints::{self, load_or_create_key};

use crate::store_integrity::seed;
use crate::support::{TEST_ORIGIN, TestDb};

#[test]
fn the_key_is_made_once_with_mode_0600_whoever_races_to_make_it() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("keys").join("signing.key");
    let makers: Vec<_> = (0..8)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || load_or_create_key(&path, "factlog/news").expect("key"))
        })
        .collect();
    let keys: Vec<(NoteSigner, bool)> = makers
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    assert_eq!(keys.iter().filter(|(_, made)| *made).count(), 1);
    let vkey = keys[0].0.vkey();
    assert!(keys.iter().all(|(k, _)| k.vkey() == vkey));
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // `factlog key show` prints the same verifier key from the file.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_factlog"))
        .args(["key", "show"])
        .env("FACTLOG_SIGNING_KEY_FILE", &path)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), vkey);

    // A damaged key is refused, never silently replaced by a new one.
    std::fs::write(&path, "PRIVATE+KEY+factlog/news+00000000+garbage\n").expect("damage");
    let err = load_or_create_key(&path, "factlog/news").expect_err("refused");
    assert!(err.to_string().contains("holds no usable key"), "{err}");
    assert!(
        std::fs::read_to_string(&path)
            .expect("file")
            .contains("garbage")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signers_in_several_processes_publish_one_line_of_checkpoints() {
    let db = TestDb::new().await;
    let store = db.store().await;
    let (stop, rx) = tokio::sync::watch::channel(false);
    TREE.spawn(&db.pool, &store, rx.clone(), DEFAULT_LINGER);
    let key = Arc::new(NoteSigner::generate(TEST_ORIGIN).expect("key"));
    for _ in 0..4 {
        // Each with its own pool, as separate processes would have.
        checkpoints::spawn_signer(
            db.other_pool().await,
            key.clone(),
            TEST_ORIGIN.into(),
            Duration::from_millis(5),
            Default::default(),
            rx.clone(),
        );
    }
    for _ in 0..20 {
        seed(&store, 25).await;
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let head = factlog::store::read_head(&db.pool)
        .await
        .expect("head")
        .position as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while checkpoints::latest(&db.pool, &Default::default())
        .await
        .map(|c| c.size)
        .ok()
        != Some(head)
    {
        assert!(Instant::now() < deadline, "no checkpoint of the head");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(true);

    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT size, note FROM checkpoints ORDER BY size")
            .fetch_all(&db.pool)
            .await
            .expect("checkpoints");
    assert!(rows.len() >= 3, "several rounds signed: {}", rows.len());
    let verifier = NoteVerifier::from_vkey(&key.vkey()).expect("vkey");
    let opened: Vec<merkle::Checkpoint> = rows
        .iter()
        .map(|(size, note)| {
            let c = merkle::open(note, &verifier).expect("signed with the key");
            assert_eq!(c.size, *size as u64, "the row's size is the note's");
            c
        })
        .collect();
    for pair in opened.windows(2) {
        let (old, new) = (&pair[0], &pair[1]);
        let proof =
            checkpoints::consistency(&db.pool, &Default::default(), old.size, Some(new.size))
                .await
                .expect("proof");
        let path: Vec<merkle::Hash> = proof
            .path
            .iter()
            .map(|h| hex::decode(h).expect("hex").try_into().expect("32 bytes"))
            .collect();
        merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &path)
            .unwrap_or_else(|e| panic!("{} then {}: {e}", old.size, new.size));
    }
}
