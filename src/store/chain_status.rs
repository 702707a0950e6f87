//! The chain's verification state as this process last saw it, for what is
//! asked for often and needs only its gist (`/readyz`, `/metrics`): those
//! are probed and scraped every few seconds by every replica, and need not
//! read `chain_verification` each time.
//!
//! Whatever in this process reads or writes the state publishes it here:
//! the verifier after every step (so, where it runs, at least once a tick),
//! and the integrity requests. Where nothing has for [`MAX_AGE`] (a process
//! without a verifier, or one whose verifier another process keeps busy),
//! the next reader reads the table itself, so a break another process finds
//! shows here within that time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::error::StoreError;
use super::integrity::{self, IntegrityState};

/// How old a published state may be and still be answered with: twice the
/// verifier's default tick, so that a verifier in this process keeps it
/// fresh while it runs.
pub const MAX_AGE: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct ChainStatus {
    pool: PgPool,
    /// The newest state known, and when it was current.
    latest: Arc<Mutex<Option<(Instant, IntegrityState)>>>,
}

impl ChainStatus {
    pub fn new(pool: PgPool) -> Self {
        ChainStatus {
            pool,
            latest: Arc::default(),
        }
    }

    /// Records `state`, current as of `at` (a write's commit, or the start
    /// of the read that found it). A state older than the one known is
    /// dropped: a slow read must not undo what a verifier step published
    /// meanwhile.
    pub fn publish(&self, state: &IntegrityState, at: Instant) {
        if let Ok(mut latest) = self.latest.lock()
            && latest.as_ref().is_none_or(|(known, _)| *known <= at)
        {
            *latest = Some((at, state.clone()));
        }
    }

    /// The state as published within [`MAX_AGE`], else as the table holds
    /// it now.
    pub async fn get(&self) -> Result<IntegrityState, StoreError> {
        if let Ok(latest) = self.latest.lock()
            && let Some((at, state)) = latest.as_ref()
            && at.elapsed() <= MAX_AGE
        {
            return Ok(state.clone());
        }
        let began = Instant::now();
        let state = integrity::state(&self.pool).await?;
        self.publish(&state, began);
        Ok(state)
    }
}
