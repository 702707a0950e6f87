use super::{open_database, open_store};
use crate::config::Settings;
use crate::progress::Progress;
use crate::projections::{self, AnyProjection};

/// `factlog worker`: projection workers only, until SIGINT or SIGTERM. Any
/// number may run, anywhere; they share the work through PostgreSQL.
pub async fn worker(settings: &Settings) -> anyhow::Result<()> {
    let running = settings.projections()?;
    let database = open_database(settings).await?;
    let store = open_store(settings, &database).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut workers = projections::spawn_these(
        &running,
        &database.pool,
        &store,
        &stop_rx,
        settings.projection_linger(),
    );
    workers.push(crate::store::integrity::spawn_verifier(
        &store,
        settings.verifier(),
        stop_rx.clone(),
    ));
    workers
        .push(super::start_signer(settings, &database, Default::default(), stop_rx.clone()).await?);
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
    let list: Vec<&'static dyn AnyProjection> = match which {
        None => projections::ALL.to_vec(),
        Some(name) => projections::select(&[name.to_owned()])?,
    };
    let database = open_database(settings).await?;
    let total = crate::store::read_head(&database.pool)
        .await?
        .position
        .max(0) as u64;
    // Every projection asked for is built up to the same head.
    let mut progress = Progress::new("rebuild", Some(total));
    let result =
        projections::rebuild_many(&database.pool, &list, |done| progress.update(done)).await;
    let result = match result {
        Ok(reports) => {
            for r in &reports {
                tracing::info!(
                    projection = r.projection,
                    events = r.events,
                    position = r.position,
                    seconds = r.seconds,
                    events_per_second = (r.events as f64 / r.seconds.max(1e-9)).round(),
                    bulk_seconds = r.bulk.total,
                    catch_up_seconds = r.catch_up_seconds,
                    "projection rebuilt and swapped in"
                );
            }
            progress.finish(reports.iter().map(|r| r.events).max().unwrap_or(0));
            Ok(())
        }
        Err(e) => Err(anyhow::anyhow!(
            "rebuilding {}: {e}",
            list.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
        )),
    };
    database.close().await;
    result
}
