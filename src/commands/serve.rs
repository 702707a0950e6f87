use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

use super::{open_database, open_store};
use std::sync::Arc;

use crate::api::ratelimit::RateLimiter;
use crate::api::{self, AppState, Limits, ServerLimits, StreamCaps, StreamSlots};
use crate::auth::TokenCache;
use crate::config::Settings;
use crate::projections;
use crate::service::claim_review::Publication;
use crate::service::{Rules, Services};
use crate::store::{idempotency, integrity};

/// `factlog serve`: the HTTP API and, unless `no_workers`, the projection
/// runners and the chain verifier, in one process until SIGINT or SIGTERM.
pub async fn serve(
    settings: &Settings,
    listen: SocketAddr,
    no_workers: bool,
) -> anyhow::Result<()> {
    let running = settings.projections()?;
    let database = open_database(settings).await?;
    let store = open_store(settings, &database).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signer = crate::service::checkpoints::SignerStatus::default();
    let workers = if no_workers {
        tracing::info!(
            "--no-workers: serving the API only; projections and the chain verifier run elsewhere"
        );
        Vec::new()
    } else {
        let mut workers = projections::spawn_these(
            &running,
            &database.pool,
            &store,
            &stop_rx,
            settings.projection_linger(),
        );
        workers.push(integrity::spawn_verifier(
            &store,
            settings.verifier(),
            stop_rx.clone(),
        ));
        workers
            .push(super::start_signer(settings, &database, signer.clone(), stop_rx.clone()).await?);
        workers
    };

    let retention = settings.idempotency_retention();
    let purge_pool = database.pool.clone();
    let purger = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            match idempotency::purge(&purge_pool, retention).await {
                Ok(n) if n > 0 => tracing::info!(removed = n, "expired idempotency keys purged"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "idempotency purge failed"),
            }
        }
    });

    let tokens = TokenCache::load(database.pool.clone()).await?;
    let refresher = tokens.spawn_refresher();
    let services = Services::new(
        store,
        Rules {
            required_confirmations: settings.required_confirmations.max(1),
        },
    )
    .with_fact_cache(settings.fact_cache_limits())
    .with_proof_cache(settings.proof_cache_mb.saturating_mul(1024 * 1024))
    .with_verifier(settings.verifier());
    // An API-only process signs nothing, so it has no fork of its own to report.
    let services = if no_workers {
        services
    } else {
        services.with_signer(signer)
    };
    let standbys =
        crate::db::Standbys::connect(&settings.read_database_urls, settings.db_pool_size)
            .context("FACTLOG_READ_DATABASE_URL")?;
    let health = (!standbys.is_empty()).then(|| {
        tracing::info!(
            standbys = ?standbys.all().iter().map(|s| s.name()).collect::<Vec<_>>(),
            "reads go to the standbys while they answer"
        );
        standbys.spawn_health(services.store().head_watch(), stop_rx.clone())
    });
    let services = services.with_standbys(standbys);
    let rate = Arc::new(RateLimiter::new(settings.rate_limit, settings.rate_burst));
    api::ratelimit::join_processes(rate.clone(), services.store().clone()).await;
    let app = api::router(AppState {
        services,
        tokens,
        limits: Limits {
            max_body_bytes: settings.max_body_bytes,
            request_timeout: Duration::from_secs(settings.request_timeout_secs.max(1)),
            cors_origins: settings.cors_origins.clone(),
            publication: Publication::new(
                &settings
                    .public_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{listen}")),
                &settings.publisher,
            ),
        },
        rate,
        streams: StreamSlots::new(StreamCaps {
            per_token: settings.streams_per_token,
            total: settings.max_streams,
        }),
    });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(addr = %listener.local_addr()?, "factlog is listening");
    let served = api::serve(listener, app, ServerLimits::default(), shutdown_signal()).await;
    purger.abort();
    refresher.abort();
    let _ = stop_tx.send(true);
    for w in workers.into_iter().chain(health) {
        let _ = w.await;
    }
    database.close().await;
    served.context("serving HTTP")
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
