//! The checkpoint signer's start-up: the key, the origin, the task.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;

use crate::config::Settings;
use crate::db::Database;
use crate::service::checkpoints::{self, SignerStatus};

async fn database_name(database: &Database) -> anyhow::Result<String> {
    Ok(sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&database.pool)
        .await?)
}

/// Loads (or makes) the signing key and starts signing checkpoints.
pub async fn start_signer(
    settings: &Settings,
    database: &Database,
    status: SignerStatus,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let origin = settings.origin(&database_name(database).await?);
    let path = settings.signing_key_path();
    let (signer, made) = checkpoints::load_or_create_key(&path, &origin)
        .with_context(|| "loading the log's signing key (FACTLOG_SIGNING_KEY_FILE)")?;
    if made {
        tracing::info!(
            path = %path.display(),
            vkey = %signer.vkey(),
            "made a new signing key for the log's checkpoints; keep the file safe and give auditors the verifier key"
        );
    } else {
        tracing::info!(path = %path.display(), vkey = %signer.vkey(), "signing checkpoints");
    }
    Ok(checkpoints::spawn_signer(
        database.pool.clone(),
        Arc::new(signer),
        origin,
        std::time::Duration::from_millis(settings.checkpoint_interval_ms.max(10)),
        status,
        stop,
    ))
}

/// `factlog key show`: the verifier key, making the key first if needed.
pub async fn key_show(settings: &Settings) -> anyhow::Result<String> {
    let path = settings.signing_key_path();
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let signer = crate::merkle::NoteSigner::from_private_key(text.trim())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        return Ok(signer.vkey());
    }
    let database = super::open_database(settings).await?;
    let origin = settings.origin(&database_name(&database).await?);
    database.close().await;
    let (signer, _) = checkpoints::load_or_create_key(&path, &origin)?;
    Ok(signer.vkey())
}
