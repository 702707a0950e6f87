//! `factlog audit`: the auditor's check from a saved checkpoint.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::audit::{self, AuditError, AuditReport, Source};
use crate::config::Settings;
use crate::merkle::{NoteSigner, NoteVerifier};
use crate::progress::Progress;

/// What `factlog audit` was asked.
pub struct AuditRequest {
    pub checkpoint: PathBuf,
    pub url: Option<String>,
    pub token: Option<String>,
    /// A verifier key, or a file holding one.
    pub key: Option<String>,
    pub events: bool,
}

/// The key to trust: `--key` (its text or a file), else the verifier of the
/// signing key this configuration names.
fn verifier(settings: &Settings, key: Option<&str>) -> anyhow::Result<NoteVerifier> {
    if let Some(key) = key {
        let text = if Path::new(key).is_file() {
            std::fs::read_to_string(key).with_context(|| format!("reading the key file {key}"))?
        } else {
            key.to_owned()
        };
        return NoteVerifier::from_vkey(text.trim())
            .map_err(|e| anyhow::anyhow!("--key is not a verifier key: {e}"));
    }
    let path = settings.signing_key_path();
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no --key given, and the configured signing key {} cannot be read",
            path.display()
        )
    })?;
    let signer = NoteSigner::from_private_key(text.trim())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(signer.verifier())
}

/// Replaces `path` with `text` whole or not at all.
fn save(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// Runs the check. The outer error is a check that could not run (no file,
/// no key, no server); the inner one is a check that ran and failed. On
/// success the newer checkpoint replaces the saved one.
pub async fn audit(
    settings: &Settings,
    request: AuditRequest,
) -> anyhow::Result<Result<AuditReport, AuditError>> {
    let saved = std::fs::read_to_string(&request.checkpoint).with_context(|| {
        format!(
            "reading the saved checkpoint {} (save one with: curl -H 'Authorization: Bearer …' <server>/v1/checkpoint)",
            request.checkpoint.display()
        )
    })?;
    let key = verifier(settings, request.key.as_deref())?;
    let mut database = None;
    let source = match &request.url {
        Some(url) => Source::http(url, request.token.clone())?,
        None => {
            let db = super::open_database(settings).await?;
            let store = super::open_store(settings, &db).await?;
            database = Some(db);
            Source::Database(store)
        }
    };
    let mut progress = Progress::new("audit", None);
    let result = audit::audit(&source, &saved, &key, request.events, |done, total| {
        progress.set_total(total);
        progress.update(done);
    })
    .await;
    if let Some(db) = database {
        db.close().await;
    }
    if let Ok(report) = &result {
        progress.finish(report.events_checked);
        save(&request.checkpoint, &report.latest_note)?;
    }
    Ok(result)
}
