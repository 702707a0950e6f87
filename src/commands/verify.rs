use super::open_database;
use crate::config::Settings;
use crate::progress::Progress;
use crate::store::{self, TreeReport, VerifyReport};

/// What `factlog verify` found: the hash chain and the Merkle tree, each
/// recomputed from the log.
#[derive(Debug, Clone)]
pub struct Verification {
    pub chain: VerifyReport,
    pub tree: TreeReport,
}

impl Verification {
    /// Both intact.
    pub fn ok(&self) -> bool {
        self.chain.ok && self.tree.ok()
    }

    /// The report, a line per finding: the chain's first, then the tree's.
    pub fn lines(&self) -> Vec<String> {
        let c = &self.chain;
        let mut lines = vec![if c.ok {
            format!(
                "ok: {} events checked; head {} {}",
                c.checked, c.head_position, c.head_hash
            )
        } else {
            format!(
                "BROKEN: the hash chain breaks at position {}; {} events before it are intact",
                c.first_bad_position.unwrap_or_default(),
                c.checked
            )
        }];
        let t = &self.tree;
        if t.ok() {
            let mut line = format!(
                "ok: the Merkle tree of {} leaves matches the log",
                t.tree_size
            );
            if let Some(root) = t.root {
                line += &format!("; root {}", hex::encode(root));
            }
            match t.checkpoint_size {
                Some(size) => line += &format!("; the latest checkpoint (size {size}) matches"),
                None => line += "; no checkpoint signed yet",
            }
            lines.push(line);
        }
        lines.extend(t.problems.iter().map(|p| format!("BROKEN: {p}")));
        if t.not_in_tree > 0 {
            lines.push(format!(
                "note: {} events are not in the tree yet (the tree projection lags the head)",
                t.not_in_tree
            ));
        }
        lines
    }
}

/// `factlog verify`: recomputes the hash chain and the Merkle tree. Returns
/// the report; the caller turns a broken chain or tree into a non-zero exit.
pub async fn verify(settings: &Settings) -> anyhow::Result<Verification> {
    let database = open_database(settings).await?;
    let result = async {
        let total = store::read_head(&database.pool).await?.position.max(0) as u64;
        let mut progress = Progress::new("verify", Some(total));
        let chain =
            store::verify_chain(&database.pool, 10_000, |done| progress.update(done)).await?;
        progress.finish(chain.checked);
        let size = store::tree::tree_size(&mut *database.pool.acquire().await?).await?;
        let mut progress = Progress::new("verify tree", Some(size));
        let tree = store::check_tree(&database.pool, |done| progress.update(done)).await?;
        progress.finish(tree.tree_size);
        anyhow::Ok(Verification { chain, tree })
    }
    .await;
    database.close().await;
    result
}
