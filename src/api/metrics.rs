//! `GET /metrics`: Prometheus text. Projection lag is read from the database
//! at scrape time, so any process (API replica or worker) reports it.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::SharedState;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once (later calls reuse it).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()
                .inspect(|h| {
                    // Histograms keep every sample until upkeep folds them
                    // in; without a scraper that would grow without bound.
                    let h = h.clone();
                    std::thread::Builder::new()
                        .name("factlog-metrics-upkeep".into())
                        .spawn(move || {
                            loop {
                                std::thread::sleep(std::time::Duration::from_secs(5));
                                h.run_upkeep();
                            }
                        })
                        .ok();
                })
        })
        .as_ref()
}

pub async fn render(State(state): State<SharedState>) -> Response {
    let pool = state.services.store().pool();
    let head = state.services.store().known_head();
    metrics::gauge!("factlog_log_head_position").set(head as f64);
    if let Ok(list) = crate::projections::checkpoints(pool).await {
        let now = chrono::Utc::now();
        for c in list {
            let name = c.name.clone();
            metrics::gauge!("factlog_projection_checkpoint", "projection" => name.clone())
                .set(c.position as f64);
            metrics::gauge!("factlog_projection_lag_events", "projection" => name.clone())
                .set((head - c.position).max(0) as f64);
            let lag_seconds = c
                .oldest_pending_at
                .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            metrics::gauge!("factlog_projection_lag_seconds", "projection" => name.clone())
                .set(lag_seconds);
            metrics::gauge!("factlog_projection_failed", "projection" => name).set(
                if c.failed_position.is_some() {
                    1.0
                } else {
                    0.0
                },
            );
        }
    }
    let body = handle().map(|h| h.render()).unwrap_or_default();
    let mut res = body.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}
