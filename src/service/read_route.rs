//! Which database serves a read: a streaming standby when there are any
//! (`FACTLOG_READ_DATABASE_URL`), else the primary.
//!
//! - A read without `wait_for` goes to the next healthy standby in turn and
//!   may lag by its replay delay; it never says anything false, only
//!   something older (a standby holds an exact earlier state of the primary).
//! - A read with `wait_for=P` goes to a healthy standby whose own tables
//!   (its `event_head`, its projection checkpoints, replicated from the
//!   primary) have reached `P` for the read's source, polled there (a standby
//!   cannot `LISTEN`) for up to [`WAIT_FOR_LIMIT`]; failing that, to the
//!   primary, if it has reached `P` by then. Replay only moves forward, so
//!   what a standby was once seen to have replayed (by a read or its health
//!   poll) is remembered until it next goes down, and a read waiting for a
//!   position it has passed asks nothing.
//! - Fact documents from the fact cache are as good on any route: a
//!   `wait_for` waits for the cache's watermark as well, and a miss that fills
//!   the cache is read from the primary (`reads::fact_documents`).
//! - Writes, the reads that decide them, idempotency and token checks never
//!   come here: they use the base handle, whose reader is the primary; so do
//!   event streams and every other follower of the log (they `LISTEN`).

use std::future::Future;
use std::time::Duration;

use super::reads::{FACTS, Source, WAIT_FOR_LIMIT};
use super::{ServiceError, Services};
use crate::db::standbys::LOG_HEAD;
use crate::db::{Standby, Standbys};
use crate::projections;
use crate::store::StoreError;

/// First pause between two looks at the standbys while waiting for one to
/// reach a position; doubled up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(10);
const POLL_MAX: Duration = Duration::from_millis(100);

impl Services {
    /// The same, sending the reads that [`Services::route`] routes to
    /// `standbys`.
    pub fn with_standbys(mut self, standbys: Standbys) -> Self {
        if !standbys.is_empty() {
            self.standbys = Some(standbys);
        }
        self
    }

    pub fn standbys(&self) -> Option<&Standbys> {
        self.standbys.as_ref()
    }

    /// The standby this handle reads from; `None` for the primary.
    pub fn standby(&self) -> Option<&Standby> {
        self.reader.as_ref()
    }

    /// The handle one read is to be served by, once it may: a healthy
    /// standby or the primary, as the module says. Only for reads.
    pub async fn route(
        &self,
        source: Source,
        wait_for: Option<i64>,
    ) -> Result<Services, ServiceError> {
        let Some(standbys) = &self.standbys else {
            if let Some(position) = wait_for {
                self.wait_for(source, position).await?;
            }
            return Ok(self.primary());
        };
        let Some(position) = wait_for else {
            return Ok(match standbys.pick() {
                Some(s) => self.reading_from(s),
                None => self.primary(),
            });
        };
        self.check_acknowledged(position).await?;
        let deadline = tokio::time::Instant::now() + WAIT_FOR_LIMIT;
        let on_standby = match (source, &self.facts) {
            (Source::FactDocuments, Some(cache)) => {
                // Hits must be as new as `position` whatever the route.
                if !cache.wait_for(position, deadline).await {
                    return Err(ServiceError::NotCaughtUp { position });
                }
                // The rest of the read (a listing's ids, a bypass) comes
                // from the route's own facts projection.
                FACTS
            }
            (other, _) => other,
        };
        let mut nap = POLL_FIRST;
        loop {
            let mut any_up = false;
            for s in standbys.rotation() {
                any_up = true;
                let candidate = self.reading_from(s.clone());
                if known_replayed(s, on_standby).is_some_and(|p| p >= position) {
                    return Ok(candidate);
                }
                match candidate.reached(on_standby).await {
                    Ok(p) => {
                        for key in keys(on_standby) {
                            s.saw_replayed(key, p);
                        }
                        if p >= position {
                            return Ok(candidate);
                        }
                    }
                    Err(e) if e.is_standby_failure() => s.mark_down(),
                    Err(e) => return Err(e),
                }
            }
            let now = tokio::time::Instant::now();
            if !any_up || now >= deadline {
                break;
            }
            tokio::time::sleep(nap.min(deadline - now)).await;
            nap = (nap * 2).min(POLL_MAX);
        }
        // The primary holds everything a standby could: no standby has
        // reached `position` in time (or none answers), so it serves, when it
        // has reached `position` itself by the same deadline.
        let primary = self.primary();
        primary
            .wait_until(source, position, deadline.max(tokio::time::Instant::now()))
            .await?;
        Ok(primary)
    }

    /// This handle reading from the primary.
    pub fn primary(&self) -> Services {
        Services {
            reader: None,
            ..self.clone()
        }
    }

    fn reading_from(&self, standby: Standby) -> Services {
        Services {
            reader: Some(standby),
            ..self.clone()
        }
    }
}

impl Services {
    /// Makes `read` where [`Services::route`] sends it. A standby that fails
    /// it (gone away, say) is skipped from then on and the read made again on
    /// the primary, which holds everything the standby did: the caller sees
    /// no failure.
    pub async fn routed<T, F, Fut>(
        &self,
        source: Source,
        wait_for: Option<i64>,
        read: F,
    ) -> Result<T, ServiceError>
    where
        F: Fn(Services) -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        let services = self.route(source, wait_for).await?;
        let Some(standby) = services.standby().cloned() else {
            return read(services).await;
        };
        match read(services).await {
            Err(e) if e.is_standby_failure() => {
                tracing::debug!(standby = %standby.name(), error = %e, "read retried on the primary");
                standby.mark_down();
                metrics::counter!("factlog_standby_retries_total", "standby" => standby.name().to_owned())
                    .increment(1);
                read(self.primary()).await
            }
            result => {
                metrics::counter!("factlog_standby_reads_total", "standby" => standby.name().to_owned())
                    .increment(1);
                result
            }
        }
    }
}

/// What `source` is read from on a standby, as [`Standby::replayed`] keys it.
fn keys(source: Source) -> Vec<&'static str> {
    match source {
        Source::Log => vec![LOG_HEAD],
        Source::Projections(list) => list.iter().map(|p| p.name()).collect(),
        Source::FactDocuments => vec![projections::FACTS.name()],
    }
}

/// How far `source` is known to be replayed on `standby` without asking it
/// (the least of its parts).
fn known_replayed(standby: &Standby, source: Source) -> Option<i64> {
    keys(source)
        .into_iter()
        .map(|k| standby.replayed(k))
        .min()
        .flatten()
}

impl ServiceError {
    /// Whether a read failed because of where it ran, not what it asked: the
    /// server away or restarting, or a query cancelled by a conflict with WAL
    /// replay (a standby cancels those). The same read on the primary
    /// answers.
    pub fn is_standby_failure(&self) -> bool {
        match self {
            ServiceError::Store(e) if e.is_unavailable() => true,
            ServiceError::Store(StoreError::Database(e)) => e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|c| c == "40001"),
            _ => false,
        }
    }
}
