use super::open_database;
use crate::config::Settings;
use crate::progress::Progress;
use crate::store::{self, VerifyReport};

/// `factlog verify`: recomputes the hash chain. Returns the report; the
/// caller turns a broken chain into a non-zero exit.
pub async fn verify(settings: &Settings) -> anyhow::Result<VerifyReport> {
    let database = open_database(settings).await?;
    let total = store::read_head(&database.pool).await?.position.max(0) as u64;
    let mut progress = Progress::new("verify", Some(total));
    let report = store::verify_chain(&database.pool, 10_000, |done| progress.update(done)).await;
    if let Ok(r) = &report {
        progress.finish(r.checked);
    }
    database.close().await;
    Ok(report?)
}
