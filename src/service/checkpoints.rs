//! The verifiable log's service side: the signing key, the signer that
//! publishes a checkpoint of the tree soon after it grows, and the proofs
//! any client may ask for (AUDITING.md).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sqlx::PgPool;
use thiserror::Error;
use tokio::sync::watch;
use utoipa::ToSchema;

use super::ServiceError;
use super::proof_cache::ProofCache;
use crate::domain::error::FieldError;
use crate::merkle::{
    self, Checkpoint, Hash, NoteSigner, consistency_proof, inclusion_proof, leaf_hashes, root_at,
    tiles_for_consistency, tiles_for_inclusion, tiles_for_leaf_range, tiles_for_root,
    verify_consistency,
};
use crate::store::StoreError;
use crate::store::tree::{
    StoredCheckpoint, checkpoint_at_least, insert_checkpoint, latest_checkpoint, read_tiles,
    tree_size,
};

/// Serializes signers across processes sharing a database: each signs from
/// the latest checkpoint as it stands under this lock.
const SIGNER_LOCK: i64 = 0x6661_6374_6c6f_6701;

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("the signing key file {path} cannot be read or written: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the signing key file {path} holds no usable key: {reason}")]
    Unusable { path: PathBuf, reason: String },
}

/// The log's signing key from `path`, made there (mode 0600) when the file
/// does not exist. Several processes may race to make it: exactly one
/// creates the file and the others read it. `true` when this call made it.
pub fn load_or_create_key(path: &Path, name: &str) -> Result<(NoteSigner, bool), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_owned(),
        source,
    };
    let unusable = |reason: String| KeyError::Unusable {
        path: path.to_owned(),
        reason,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    match open.open(path) {
        Ok(mut file) => {
            let signer = NoteSigner::generate(name).map_err(|e| unusable(e.to_string()))?;
            file.write_all(format!("{}\n", signer.private_key()).as_bytes())
                .and_then(|_| file.sync_all())
                .map_err(io)?;
            Ok((signer, true))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // A racing creator may not have written it yet.
            for _ in 0..50 {
                let text = std::fs::read_to_string(path).map_err(io)?;
                if !text.trim().is_empty() {
                    let signer = NoteSigner::from_private_key(text.trim())
                        .map_err(|e| unusable(e.to_string()))?;
                    return Ok((signer, false));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(unusable("the file is empty".into()))
        }
        Err(e) => Err(io(e)),
    }
}

/// What one signing round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signed {
    /// A new checkpoint of this size was published.
    Published(u64),
    /// The latest checkpoint already covers the tree.
    UpToDate,
    /// The tree does not extend the latest checkpoint: nothing was signed.
    Fork(String),
}

/// The signer's last verdict, for `/readyz` and `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct SignerStatus(Arc<Mutex<Option<String>>>);

impl SignerStatus {
    /// The fork found, if the last round found one.
    pub fn fork(&self) -> Option<String> {
        self.0.lock().map(|g| g.clone()).unwrap_or(None)
    }

    fn set(&self, fork: Option<String>) {
        if let Ok(mut g) = self.0.lock() {
            *g = fork;
        }
    }
}

/// Signing as `/readyz` reports it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SigningState {
    /// The latest checkpoint's tree size (0 before the first).
    pub size: u64,
    pub signed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Leaves the tree holds that no checkpoint covers yet.
    pub unsigned_events: u64,
    /// How long the oldest of them has waited (0 when none).
    pub unsigned_seconds: f64,
    /// The fork this process's signer found, when it found one: the tree
    /// does not extend the latest checkpoint and nothing is signed.
    pub fork: Option<String>,
}

/// Unsigned leaves waiting longer than this mean signing has stopped (a
/// fork, or no process with workers) rather than lagging.
pub const SIGNING_STALLED_SECS: f64 = 10.0;

impl SigningState {
    /// A fork, or growth left unsigned past [`SIGNING_STALLED_SECS`].
    pub fn stalled(&self) -> bool {
        self.fork.is_some() || self.unsigned_seconds > SIGNING_STALLED_SECS
    }
}

/// How far signing has followed the tree; `signer` is this process's own.
pub async fn signing_state(
    pool: &PgPool,
    signer: Option<&SignerStatus>,
) -> Result<SigningState, ServiceError> {
    let p = crate::store::tree::signing_progress(pool).await?;
    let unsigned_seconds = p.oldest_unsigned_at.map_or(0.0, |t| {
        (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0
    });
    Ok(SigningState {
        size: p.size,
        signed_at: p.signed_at,
        unsigned_events: p.unsigned_leaves,
        unsigned_seconds,
        fork: signer.and_then(SignerStatus::fork),
    })
}

/// Signs a checkpoint of the tree as the `tree` projection has built it,
/// when it has grown past the latest checkpoint and extends it.
pub async fn sign_once(
    pool: &PgPool,
    signer: &NoteSigner,
    origin: &str,
) -> Result<Signed, ServiceError> {
    let mut tx = pool.begin().await.map_err(StoreError::from)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SIGNER_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
    let latest = latest_checkpoint(&mut tx).await?;
    let size = tree_size(&mut tx).await?;
    let old = latest.as_ref().map_or(0, |c| c.size);
    if size <= old {
        return Ok(Signed::UpToDate);
    }
    let mut wanted = tiles_for_root(size);
    if old > 0 {
        wanted.extend(tiles_for_root(old));
        wanted.extend(tiles_for_consistency(old, size));
    }
    let tiles = read_tiles(&mut tx, &wanted).await?;
    let root = root_at(size, &tiles).map_err(|e| ServiceError::Corrupt(e.to_string()))?;
    if let Some(latest) = &latest {
        let extends = consistency_proof(old, size, &tiles)
            .map_err(|e| e.to_string())
            .and_then(|proof| {
                verify_consistency(old, size, &latest.root, &root, &proof)
                    .map_err(|e| e.to_string())
            });
        if let Err(why) = extends {
            return Ok(Signed::Fork(format!(
                "the tree of {size} leaves does not extend the checkpoint of size {old}: {why}"
            )));
        }
    }
    let body = Checkpoint {
        origin: origin.to_owned(),
        size,
        root,
    }
    .body();
    let note = signer
        .sign(&body)
        .map_err(|e| ServiceError::Corrupt(e.to_string()))?;
    insert_checkpoint(&mut tx, size, &root, &note).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(Signed::Published(size))
}

/// Signs every `every` while the tree grows, until `stop`. A fork is
/// logged and kept in `status`; it is checked again every round, and
/// nothing is signed while it lasts.
pub fn spawn_signer(
    pool: PgPool,
    signer: Arc<NoteSigner>,
    origin: String,
    every: Duration,
    status: SignerStatus,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
            match sign_once(&pool, &signer, &origin).await {
                Ok(Signed::Published(size)) => {
                    status.set(None);
                    tracing::debug!(size, "checkpoint signed");
                }
                Ok(Signed::UpToDate) => status.set(None),
                Ok(Signed::Fork(why)) => {
                    if status.fork().as_deref() != Some(why.as_str()) {
                        tracing::error!(%why, "the log forked from its latest checkpoint; signing stopped");
                    }
                    status.set(Some(why));
                }
                Err(e) => tracing::warn!(error = %e, "signing a checkpoint failed; retrying"),
            }
        }
    })
}

/// The latest checkpoint (from `cache` when fresh enough), or 404 before
/// the first.
pub async fn latest(pool: &PgPool, cache: &ProofCache) -> Result<StoredCheckpoint, ServiceError> {
    cache
        .latest(pool, false)
        .await?
        .ok_or(ServiceError::NotFound("checkpoint"))
}

/// The latest checkpoint as large as `size` if there is one: the cached one
/// when it is, else the database's, so a size just signed is never refused.
async fn latest_for(
    pool: &PgPool,
    cache: &ProofCache,
    size: u64,
) -> Result<StoredCheckpoint, ServiceError> {
    let cached = latest(pool, cache).await?;
    if size <= cached.size {
        return Ok(cached);
    }
    cache
        .latest(pool, true)
        .await?
        .ok_or(ServiceError::NotFound("checkpoint"))
}

/// The earliest checkpoint whose tree has at least `size` leaves.
pub async fn at_least(
    pool: &PgPool,
    cache: &ProofCache,
    size: u64,
) -> Result<StoredCheckpoint, ServiceError> {
    let latest = latest_for(pool, cache, size).await?;
    if size > latest.size {
        return Err(FieldError::new(
            "size",
            format!(
                "is beyond the latest checkpoint's tree size {}",
                latest.size
            ),
        )
        .into());
    }
    checkpoint_at_least(pool, size)
        .await?
        .ok_or(ServiceError::NotFound("checkpoint"))
}

/// `GET /v1/proofs/inclusion`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InclusionProof {
    /// `position - 1`.
    pub leaf_index: u64,
    pub tree_size: u64,
    /// Hex leaf hash of the event (as `/v1/events` shows it).
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub leaf_hash: String,
    /// RFC 9162 audit path, hex, from the leaf's sibling upwards.
    pub path: Vec<String>,
}

/// `GET /v1/proofs/consistency`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    /// RFC 9162 consistency proof, hex.
    pub path: Vec<String>,
}

fn hexes(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(hex32).collect()
}

/// Lower-case hex of a hash: `hex::encode` collects its chars one by one
/// through an iterator, a measurable share of a cached proof's CPU.
fn hex32(hash: &Hash) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for b in hash {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// The tree size a proof is asked at: `asked`, or the latest checkpoint's.
async fn proof_size(
    pool: &PgPool,
    cache: &ProofCache,
    asked: Option<u64>,
    field: &str,
) -> Result<u64, ServiceError> {
    let latest = latest_for(pool, cache, asked.unwrap_or(0)).await?.size;
    match asked {
        None => Ok(latest),
        Some(n) if n > latest => Err(FieldError::new(
            field,
            format!("is beyond the latest checkpoint's tree size {latest}"),
        )
        .into()),
        Some(n) => Ok(n),
    }
}

/// The audit path of the event at `position` in the tree of `tree_size`
/// leaves (the latest checkpoint's when `None`).
pub async fn inclusion(
    pool: &PgPool,
    cache: &ProofCache,
    position: u64,
    tree_size: Option<u64>,
) -> Result<InclusionProof, ServiceError> {
    if position == 0 {
        return Err(FieldError::new("position", "must be at least 1").into());
    }
    if tree_size == Some(0) {
        return Err(FieldError::new("tree_size", "must be at least 1").into());
    }
    let size = proof_size(pool, cache, tree_size, "tree_size").await?;
    if position > size {
        return Err(
            FieldError::new("position", format!("is beyond the tree of size {size}")).into(),
        );
    }
    let index = position - 1;
    let mut wanted = tiles_for_inclusion(index, size);
    wanted.extend(tiles_for_leaf_range(index, index + 1));
    let tiles = cache.tiles(pool, &wanted).await?;
    let corrupt = |e: merkle::ProofError| ServiceError::Corrupt(e.to_string());
    let path = inclusion_proof(index, size, &tiles).map_err(corrupt)?;
    let leaf = leaf_hashes(index, index + 1, &tiles).map_err(corrupt)?;
    Ok(InclusionProof {
        leaf_index: index,
        tree_size: size,
        leaf_hash: leaf.first().map(hex32).unwrap_or_default(),
        path: hexes(&path),
    })
}

/// The proof that the tree of `to` leaves (the latest checkpoint's when
/// `None`) extends the tree of `from` leaves.
pub async fn consistency(
    pool: &PgPool,
    cache: &ProofCache,
    from: u64,
    to: Option<u64>,
) -> Result<ConsistencyProof, ServiceError> {
    if from == 0 {
        return Err(FieldError::new("from", "must be at least 1").into());
    }
    let to = proof_size(pool, cache, to, "to").await?;
    if from > to {
        return Err(FieldError::new("from", format!("is beyond to ({to})")).into());
    }
    let tiles = cache.tiles(pool, &tiles_for_consistency(from, to)).await?;
    let path =
        consistency_proof(from, to, &tiles).map_err(|e| ServiceError::Corrupt(e.to_string()))?;
    Ok(ConsistencyProof {
        from,
        to,
        path: hexes(&path),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex32_is_hex_encode() {
        let hash: Hash = std::array::from_fn(|i| (i as u8).wrapping_mul(37));
        assert_eq!(hex32(&hash), hex::encode(hash));
    }
}
