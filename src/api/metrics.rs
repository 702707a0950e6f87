//! `GET /metrics`: Prometheus text. Projection lag is read from the database
//! at scrape time, so any process (API replica or worker) reports it; the
//! chain's state comes from [`crate::store::ChainStatus`], no older than
//! its `MAX_AGE`.

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
                    describe();
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

/// The HELP text and unit of every metric the process may export
/// (`promtool check metrics` wants HELP on each).
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "factlog_http_requests_total",
        "HTTP requests answered, by method, route template and status"
    );
    describe_histogram!(
        "factlog_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request (to its first byte for event streams), by method and route template"
    );
    describe_counter!(
        "factlog_http_connections_shed_total",
        "Idle connections closed to make room for a new one, by the cap reached (per-address or server-wide)"
    );
    describe_counter!(
        "factlog_http_connections_refused_total",
        "New connections closed unanswered because every open connection was busy"
    );
    describe_gauge!(
        "factlog_event_streams_open",
        "Event streams open in this process"
    );
    describe_counter!(
        "factlog_events_appended_total",
        "Events appended to the log by this process"
    );
    describe_counter!(
        "factlog_append_fallbacks_total",
        "Group commits laid out ahead of the lock that had to be redone on the two-step path (something moved meanwhile)"
    );
    describe_histogram!(
        "factlog_group_commit_seconds",
        Unit::Seconds,
        "Time from sending a group-commit batch to its outcome"
    );
    describe_histogram!(
        "factlog_group_commit_batch_commands",
        Unit::Count,
        "Append commands per group-commit transaction"
    );
    describe_gauge!(
        "factlog_log_head_position",
        "Position of the last event this process knows of"
    );
    describe_gauge!(
        "factlog_projection_checkpoint",
        "Last log position a projection has applied"
    );
    describe_gauge!(
        "factlog_projection_lag_events",
        "Events committed to the log that a projection has not applied"
    );
    describe_gauge!(
        "factlog_projection_lag_seconds",
        Unit::Seconds,
        "Age of the oldest event a projection has not applied (0 when caught up)"
    );
    describe_gauge!(
        "factlog_projection_failed",
        "1 while a projection is stopped at an event it cannot apply"
    );
    describe_counter!(
        "factlog_projection_events_applied_total",
        "Events a projection applied in this process"
    );
    describe_counter!(
        "factlog_projection_failures_total",
        "Projection batches that failed in this process"
    );
    describe_gauge!(
        "factlog_projection_heartbeat_seconds",
        Unit::Seconds,
        "Unix time at which a projection worker in this process last started a step"
    );
    describe_gauge!(
        "factlog_chain_verified_position",
        "Last position whose hash-chain link the background verifier has recomputed"
    );
    describe_gauge!(
        "factlog_chain_unverified_events",
        "Events past the verified prefix of the hash chain"
    );
    describe_gauge!(
        "factlog_chain_broken",
        "1 when a verification found the hash chain broken (see /v1/integrity)"
    );
    describe_gauge!(
        "factlog_checkpoint_size",
        "Tree size of the latest signed checkpoint"
    );
    describe_gauge!(
        "factlog_checkpoint_unsigned_events",
        "Leaves of the Merkle tree that no signed checkpoint covers yet"
    );
    describe_gauge!(
        "factlog_checkpoint_unsigned_seconds",
        Unit::Seconds,
        "How long the oldest unsigned leaf has waited (0 when none)"
    );
    describe_gauge!(
        "factlog_checkpoint_fork",
        "1 while this process's signer finds that the tree does not extend the latest checkpoint"
    );
    describe_gauge!(
        "factlog_standby_up",
        "1 while a standby reads go to answers its health poll (FACTLOG_READ_DATABASE_URL), by standby"
    );
    describe_gauge!(
        "factlog_standby_lag_events",
        "Events in the primary's log that a standby has not replayed, by standby"
    );
    describe_gauge!(
        "factlog_standby_lag_seconds",
        Unit::Seconds,
        "Age of the last transaction a standby replayed while it has WAL left to replay (0 when caught up), by standby"
    );
    describe_counter!(
        "factlog_standby_reads_total",
        "Reads served by a standby, by standby"
    );
    describe_counter!(
        "factlog_standby_retries_total",
        "Reads that failed on a standby (it went away, say) and were made again on the primary, by standby"
    );
    for (name, help) in [
        (
            "factlog_fact_cache_entries",
            "Fact documents cached in this process",
        ),
        (
            "factlog_fact_cache_bytes",
            "Bytes of fact documents cached in this process",
        ),
        (
            "factlog_fact_cache_watermark",
            "Facts checkpoint up to which this process's fact cache is known exact",
        ),
    ] {
        describe_gauge!(name, help);
    }
    for (name, help) in [
        (
            "factlog_fact_cache_hits_total",
            "Fact document reads served from the cache",
        ),
        (
            "factlog_fact_cache_misses_total",
            "Fact document reads laid out from the database",
        ),
        (
            "factlog_fact_cache_fills_total",
            "Fact documents put into the cache",
        ),
        (
            "factlog_fact_cache_dropped_fills_total",
            "Fills not kept because the document changed while it was read",
        ),
        (
            "factlog_fact_cache_evictions_total",
            "Fact documents evicted for room",
        ),
        (
            "factlog_fact_cache_flushes_total",
            "Times the whole cache was dropped (a rebuild, or a pass too far behind)",
        ),
    ] {
        describe_counter!(name, help);
    }
}

/// Metrics
///
/// Prometheus text exposition, including projection lag.
#[utoipa::path(
    get, path = "/metrics", tag = "service", operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
    )
)]
pub async fn render(State(state): State<SharedState>) -> Response {
    let pool = state.services.store().pool();
    let head = state.services.store().known_head();
    metrics::gauge!("factlog_log_head_position").set(head as f64);
    if let Ok(chain) = state.services.store().chain_status().get().await {
        metrics::gauge!("factlog_chain_verified_position").set(chain.position as f64);
        metrics::gauge!("factlog_chain_unverified_events")
            .set((head - chain.position).max(0) as f64);
        metrics::gauge!("factlog_chain_broken").set(if chain.first_bad_position.is_some() {
            1.0
        } else {
            0.0
        });
    }
    if let Ok(signing) = state.services.signing_state().await {
        metrics::gauge!("factlog_checkpoint_size").set(signing.size as f64);
        metrics::gauge!("factlog_checkpoint_unsigned_events").set(signing.unsigned_events as f64);
        metrics::gauge!("factlog_checkpoint_unsigned_seconds").set(signing.unsigned_seconds);
        metrics::gauge!("factlog_checkpoint_fork").set(if signing.fork.is_some() {
            1.0
        } else {
            0.0
        });
    }
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
