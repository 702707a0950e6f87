//! Live reading: catch up from a position, then wait for commits.
//!
//! One LISTEN connection per process feeds a watch of the head position;
//! subscribers wait on that watch, never poll. A missed notification (say the
//! listener reconnected) costs at most `SAFETY_NET` of delay, never an event,
//! because subscribers always read the log itself, in position order.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

use super::error::StoreError;
use super::event::RecordedEvent;
use super::{EventStore, NOTIFY_CHANNEL, backoff_delay, read};

const SAFETY_NET: Duration = Duration::from_secs(30);
const PAGE: i64 = 500;

/// The channel projection workers notify on when a checkpoint moves.
pub const CHECKPOINT_CHANNEL: &str = "factlog_checkpoints";

/// Keeps `head` at the newest committed position announced by any process,
/// and bumps `checkpoints` whenever any projection checkpoint moves.
pub(crate) async fn watch_head(
    pool: PgPool,
    head: Arc<watch::Sender<i64>>,
    checkpoints: Arc<watch::Sender<u64>>,
) {
    let mut attempt = 0;
    loop {
        if pool.is_closed() {
            return;
        }
        match listen(&pool, &head, &checkpoints).await {
            Ok(()) => return,
            Err(_) if pool.is_closed() => return,
            Err(e) => {
                tracing::warn!(error = %e, "event notification listener lost; reconnecting");
                tokio::time::sleep(backoff_delay(attempt)).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

fn advance(head: &watch::Sender<i64>, p: i64) {
    head.send_if_modified(|h| {
        let newer = p > *h;
        if newer {
            *h = p;
        }
        newer
    });
}

async fn listen(
    pool: &PgPool,
    head: &watch::Sender<i64>,
    checkpoints: &watch::Sender<u64>,
) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener
        .listen_all([NOTIFY_CHANNEL, CHECKPOINT_CHANNEL])
        .await?;
    checkpoints.send_modify(|c| *c += 1);
    // Whatever was committed while we were not listening.
    if let Ok(h) = read::head(pool).await {
        advance(head, h.position);
    }
    loop {
        tokio::select! {
            n = listener.recv() => {
                let n = n?;
                if n.channel() == CHECKPOINT_CHANNEL {
                    checkpoints.send_modify(|c| *c += 1);
                } else if let Ok(p) = n.payload().parse::<i64>() {
                    advance(head, p);
                }
            }
            _ = head.closed() => return Ok(()),
        }
    }
}

/// Every event after a position, in order, then each new one as it commits.
pub struct Subscription {
    store: EventStore,
    after: i64,
    buffer: VecDeque<RecordedEvent>,
    head: watch::Receiver<i64>,
}

impl Subscription {
    pub(crate) fn new(store: EventStore, after: i64) -> Self {
        let head = store.head_watch();
        Subscription {
            store,
            after,
            buffer: VecDeque::new(),
            head,
        }
    }

    /// The position of the last event handed out.
    pub fn position(&self) -> i64 {
        self.after
    }

    /// The next event; waits for one when caught up.
    pub async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        loop {
            if let Some(e) = self.buffer.pop_front() {
                self.after = e.position;
                return Ok(e);
            }
            // Mark the head as seen before reading, so a commit that lands
            // after the read wakes the wait below.
            self.head.borrow_and_update();
            let page = self.store.read_all(self.after, PAGE).await?;
            if !page.is_empty() {
                self.buffer.extend(page);
                continue;
            }
            if let Ok(Err(_)) = tokio::time::timeout(SAFETY_NET, self.head.changed()).await {
                // The watch's senders are gone (shutdown): fall back to slow polling.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
