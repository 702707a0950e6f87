//! The bulk pass of a rebuild: the claims' versions and the facts' rows built
//! from the log with the live projection's own code and streamed into the
//! shadow tables with `COPY`, in memory that does not grow with the log.
//!
//! Two passes, each over rows the server sorts (on disk when it must), so
//! that this side holds one claim, then one fact, at a time:
//!
//! 1. [`versions`]: the claim events, claim after claim, folded into each
//!    claim's versions and loaded into `claim_versions`.
//! 2. [`summaries`]: the open versions just loaded, fact after fact, laid
//!    out into `facts_view` while `claim_versions` gets its indexes.
//!
//! Each table is loaded over a connection of its own while its rows are
//! still being produced, then gets the live table's indexes, each built in
//! one go over the loaded rows ([`index`]), and its statistics.

pub(crate) use index::index_like_live;
mod index;
mod summaries;
mod versions;

use std::time::Instant;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use super::copy::CopyWriter;
use super::facts;
use super::{BulkReport, ProjectionError};
use crate::store::StoreError;

/// Where a bulk pass's time went, in seconds of each stage (stages overlap).
/// The stages are the facts projection's; another fills `total` and those
/// it has.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BulkTimings {
    /// The whole pass, from the first read to the last index.
    pub total: f64,
    /// The reader: waiting for the server's sorted rows and decoding events.
    pub reading: f64,
    /// The fold waiting for the reader (the server's sort included).
    pub fold_waiting_for_reader: f64,
    /// The fold evolving claims and encoding their versions.
    pub folding: f64,
    /// The second pass: reading the open versions back by fact and laying
    /// out each fact's row (beside the indexing of `claim_versions`).
    pub laying_out: f64,
    /// Both passes waiting for the table writers (the server was slower).
    pub fold_waiting_for_writers: f64,
    /// From the end of the fold until every version was loaded.
    pub loading_tail: f64,
    /// After that, until every row, index and statistic was in (the second
    /// pass included).
    pub indexing: f64,
}

/// The time the producing side of a pass spends, by what it was doing.
#[derive(Debug, Default)]
struct Stage {
    reading: f64,
    waiting_for_reader: f64,
    folding: f64,
    /// Handing full chunks to the table writers (backpressure).
    waiting_for_writers: f64,
}

impl Stage {
    /// Hands a writer's full chunk to its connection, timing the wait.
    async fn flush(&mut self, w: &mut CopyWriter) -> Result<(), ProjectionError> {
        let t = Instant::now();
        w.flush_if_full().await?;
        self.waiting_for_writers += t.elapsed().as_secs_f64();
        Ok(())
    }
}

fn stage_failed(what: &str, e: tokio::task::JoinError) -> ProjectionError {
    ProjectionError::Stage(format!("{what} failed: {e}"))
}

async fn connect(options: &PgConnectOptions) -> Result<PgConnection, ProjectionError> {
    Ok(PgConnection::connect_with(options)
        .await
        .map_err(StoreError::from)?)
}

/// Builds the facts projection's tables in `schema` (created empty, without
/// indexes) from the log after `from` up to `upto`, then their indexes and
/// statistics. `progress` is told the claim events folded so far.
pub(super) async fn load(
    options: &PgConnectOptions,
    schema: &str,
    from: i64,
    upto: i64,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<BulkReport, ProjectionError> {
    let started = Instant::now();
    let position = upto.max(from);
    let mut stage = Stage::default();

    let reader = connect(options).await?;
    let mut out = CopyWriter::start(
        options,
        format!("{schema}.claim_versions"),
        facts::VERSIONS_COLUMNS,
    )
    .await?;
    let folded = versions::fold(reader, from, upto, &mut out, &mut stage, progress).await?;
    let t = Instant::now();
    let (conn, _) = out.finish().await?;
    let loading_tail = t.elapsed().as_secs_f64();

    // The versions' indexes build while the facts are laid out from them.
    let t = Instant::now();
    let versions_indexed = {
        let (options, schema) = (options.clone(), schema.to_owned());
        tokio::spawn(async move {
            index::index_like_live(&options, conn, &schema, "claim_versions").await
        })
    };
    let laid_out = async {
        let mut out = CopyWriter::start(
            options,
            format!("{schema}.facts_view"),
            facts::FACTS_COLUMNS,
        )
        .await?;
        let waited = stage.waiting_for_writers;
        let t = Instant::now();
        summaries::lay_out(connect(options).await?, schema, &mut out, &mut stage).await?;
        let laying_out = t.elapsed().as_secs_f64() - (stage.waiting_for_writers - waited);
        let (conn, _) = out.finish().await?;
        index::index_like_live(options, conn, schema, "facts_view").await?;
        Ok::<_, ProjectionError>(laying_out)
    }
    .await;
    // Whichever failed, the index builds are waited for before returning.
    let indexed = versions_indexed
        .await
        .map_err(|e| stage_failed("indexing claim_versions", e));
    let laying_out = laid_out?;
    indexed??;

    let b = BulkTimings {
        total: started.elapsed().as_secs_f64(),
        reading: stage.reading,
        fold_waiting_for_reader: stage.waiting_for_reader,
        folding: stage.folding,
        laying_out,
        fold_waiting_for_writers: stage.waiting_for_writers,
        loading_tail,
        indexing: t.elapsed().as_secs_f64(),
    };
    tracing::info!(
        claims = folded,
        total = b.total,
        reading = b.reading,
        folding = b.folding,
        fold_waiting_for_reader = b.fold_waiting_for_reader,
        laying_out = b.laying_out,
        fold_waiting_for_writers = b.fold_waiting_for_writers,
        loading_tail = b.loading_tail,
        indexing = b.indexing,
        "rebuild bulk pass (seconds per stage)"
    );
    Ok(BulkReport {
        position,
        timings: b,
    })
}
