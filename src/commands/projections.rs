use super::{open_database, open_store};
use crate::config::Settings;
use crate::progress::Progress;
use crate::projections::{self, Projection};

/// `factlog worker`: projection workers only, until SIGINT or SIGTERM. Any
/// number may run, anywhere; they share the work through PostgreSQL.
pub async fn worker(settings: &Settings) -> anyhow::Result<()> {
    let database = open_database(settings).await?;
    let store = open_store(settings, &database).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = projections::spawn_all(&database.pool, &store, &stop_rx);
    super::serve::shutdown_signal().await;
    let _ = stop_tx.send(true);
    for w in workers {
        let _ = w.await;
    }
    database.close().await;
    Ok(())
}

/// `factlog rebuild [PROJECTION]`.
pub async fn rebuild(settings: &Settings, which: Option<&str>) -> anyhow::Result<()> {
    let list: Vec<Projection> = match which {
        None => projections::ALL.to_vec(),
        Some(name) => vec![Projection::parse(name).ok_or_else(|| {
            anyhow::anyhow!(
                "unknown projection {name:?}; there are: {}",
                projections::ALL.map(|p| p.name()).join(", ")
            )
        })?],
    };
    let database = open_database(settings).await?;
    let total = crate::store::read_head(&database.pool)
        .await?
        .position
        .max(0) as u64;
    let mut result = Ok(());
    for p in list {
        let mut progress = Progress::new(p.name(), Some(total));
        match projections::rebuild(&database.pool, p, |done| progress.update(done)).await {
            Ok(r) => {
                progress.finish(r.events);
                tracing::info!(
                    projection = r.projection,
                    events = r.events,
                    position = r.position,
                    seconds = r.seconds,
                    events_per_second = (r.events as f64 / r.seconds.max(1e-9)).round(),
                    "projection rebuilt and swapped in"
                );
            }
            Err(e) => {
                result = Err(anyhow::anyhow!("rebuilding {}: {e}", p.name()));
                break;
            }
        }
    }
    database.close().await;
    result
}
