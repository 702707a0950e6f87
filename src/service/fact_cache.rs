//! A process-local cache of current fact documents, as `GET /v1/facts/{id}`
//! serves them, kept exact with the facts projection's own bookkeeping.
//!
//! A fact's document is laid out from its claims' open versions in
//! `claim_versions`. A projection batch writes the new version of the claim
//! of every event it applies (moving the checkpoint past those events in the
//! same transaction), and a claim's fact never changes: so the documents that
//! change are exactly those of the facts of the claims of the events after
//! the checkpoint the batch started from. So one statement (the facts of the
//! claim events with `position > <last checkpoint seen>`, together with the
//! checkpoint itself) names exactly the documents that changed since the
//! cache last looked. A
//! background task asks that whenever any process reports a checkpoint moving
//! (NOTIFY `factlog_checkpoints`, through the store's checkpoint watch), and
//! at least every [`SAFETY_NET`]; it evicts what changed and then advances the
//! cache's **watermark** to the checkpoint it saw. This works with any number
//! of API processes and projection workers: each process's cache follows the
//! database, not its own writes.
//!
//! Invariants:
//!
//! - Every cached document is at least as new as the watermark: it equals the
//!   document laid out in some snapshot whose facts checkpoint is at least
//!   the watermark, and the fact has not changed between that checkpoint and
//!   the watermark. A read with `wait_for=P` waits until the watermark is at
//!   least `P`, so read-your-writes holds through the cache.
//! - A fill never puts back a document older than an eviction already done.
//!   A miss takes a [`Ticket`] (its shard's eviction epoch) *before* reading
//!   the row, and the fill is dropped if that shard has evicted anything since.
//!   An eviction pass bumps a shard's epoch and removes its ids under the
//!   shard's lock, after its query has returned: so either the fill lands
//!   before the removal (and is removed), or it sees the new epoch (and is
//!   dropped), or its ticket was taken after the pass's snapshot (and the row
//!   it read is at least that new).
//! - A rebuild bumps the projection's generation when it swaps tables in; a
//!   pass that sees another generation (or more than [`MAX_CHANGES`] events
//!   applied to facts, or a checkpoint that went backwards) drops everything.
//! - Nothing is served from the cache while its last successful pass is older
//!   than [`TRUST_FOR`] (the database unreachable, say): reads then go to the
//!   database as they would without a cache.
//! - Bounded by entries and bytes (documents plus a fixed overhead each);
//!   beyond either, the oldest fills are dropped first.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sqlx::PgPool;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::projections::read::{self as pread, FactChanges};
use crate::store::EventStore;

/// Independent locks; a request holds one for a hash look-up.
const SHARDS: usize = 16;
/// How often the cache checks the projection when nothing wakes it (what a
/// lost notification can cost in staleness).
pub const SAFETY_NET: Duration = Duration::from_secs(1);
/// How often a reader waiting for the watermark nudges the pass (what a lost
/// notification can cost a `wait_for`).
const NUDGE: Duration = Duration::from_millis(250);
/// The cache answers only while its last successful pass is this recent.
pub const TRUST_FOR: Duration = Duration::from_secs(5);
/// More events applied to facts than this since the last pass drop the whole
/// cache (rather than read an unbounded range).
pub const MAX_CHANGES: i64 = 10_000;
/// Memory an entry costs beyond its document, roughly: the map slot at its
/// load factor, queue slots, the shared buffer's header, allocator overhead.
const ENTRY_OVERHEAD: usize = 192;

/// How large the cache may grow; 0 in either disables it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FactCacheLimits {
    pub max_entries: usize,
    pub max_bytes: usize,
}

impl FactCacheLimits {
    pub fn enabled(&self) -> bool {
        self.max_entries > 0 && self.max_bytes > 0
    }
}

/// Where a look-up left the caller.
pub enum Lookup {
    /// The document, as served.
    Hit(Bytes),
    /// Not cached: read the row, then [`FactCache::fill`] with this ticket.
    Miss(Ticket),
    /// The cache cannot be trusted now: read the database, do not fill.
    Bypass,
}

/// Taken on a miss before the row is read; see the module's invariants.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    shard: usize,
    epoch: u64,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Uuid, Entry>,
    /// Fill order, oldest first; stale pairs (evicted or refilled since) are
    /// skipped when popped and dropped when the queue is compacted.
    order: VecDeque<(Uuid, u64)>,
    bytes: usize,
    /// Bumped by every eviction pass that removes something here.
    epoch: u64,
    seq: u64,
    hits: u64,
    misses: u64,
    fills: u64,
    dropped_fills: u64,
}

struct Entry {
    body: Bytes,
    seq: u64,
}

fn cost(body: &Bytes) -> usize {
    body.len() + ENTRY_OVERHEAD
}

impl Shard {
    fn remove(&mut self, id: &Uuid) {
        if let Some(e) = self.map.remove(id) {
            self.bytes -= cost(&e.body);
        }
    }

    fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
        self.bytes = 0;
    }

    fn insert(&mut self, id: Uuid, body: Bytes, max_entries: usize, max_bytes: usize) {
        self.seq += 1;
        let seq = self.seq;
        self.bytes += cost(&body);
        if let Some(old) = self.map.insert(id, Entry { body, seq }) {
            self.bytes -= cost(&old.body);
        }
        self.order.push_back((id, seq));
        while self.map.len() > max_entries || self.bytes > max_bytes {
            let Some((old, old_seq)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&old).is_some_and(|e| e.seq == old_seq) {
                self.remove(&old);
            }
        }
        // Evictions and refills leave stale pairs behind; keep the queue
        // within a constant factor of the map.
        if self.order.len() > 2 * self.map.len() + 32 {
            let map = &self.map;
            self.order
                .retain(|(id, seq)| map.get(id).is_some_and(|e| e.seq == *seq));
        }
    }
}

struct Inner {
    shards: Vec<Mutex<Shard>>,
    shard_entries: usize,
    shard_bytes: usize,
    /// The facts checkpoint up to which every change has been evicted; -1
    /// before the first pass.
    watermark: watch::Sender<i64>,
    started: Instant,
    /// Milliseconds after `started` of the last successful pass (0: none yet).
    checked_ms: AtomicU64,
    passes: AtomicU64,
    evicted: AtomicU64,
    flushes: AtomicU64,
}

/// A handle on one process's cache; cheap to clone.
#[derive(Clone)]
pub struct FactCache {
    inner: Arc<Inner>,
    nudge: Arc<Notify>,
}

fn shard_of(id: &Uuid) -> usize {
    // Fact ids are name-based UUIDs: their low bits are hash output.
    (id.as_u128() as usize) % SHARDS
}

impl FactCache {
    /// A cache and the task that keeps it current; `None` when `limits`
    /// disable it. Needs a Tokio runtime.
    pub fn start(store: &EventStore, limits: FactCacheLimits) -> Option<FactCache> {
        let cache = FactCache::new(limits)?;
        tokio::spawn(keep_current(
            Arc::downgrade(&cache.inner),
            cache.nudge.clone(),
            store.pool().clone(),
            store.checkpoint_watch(),
        ));
        Some(cache)
    }

    fn new(limits: FactCacheLimits) -> Option<FactCache> {
        if !limits.enabled() {
            return None;
        }
        let (watermark, _) = watch::channel(-1);
        Some(FactCache {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
                shard_entries: limits.max_entries.div_ceil(SHARDS),
                shard_bytes: limits.max_bytes.div_ceil(SHARDS),
                watermark,
                started: Instant::now(),
                checked_ms: AtomicU64::new(0),
                passes: AtomicU64::new(0),
                evicted: AtomicU64::new(0),
                flushes: AtomicU64::new(0),
            }),
            nudge: Arc::new(Notify::new()),
        })
    }

    fn shard(&self, i: usize) -> Option<MutexGuard<'_, Shard>> {
        // A poisoned shard (a panic while holding it) is simply not used.
        self.inner.shards[i].lock().ok()
    }

    fn now_ms(&self) -> u64 {
        self.inner.started.elapsed().as_millis() as u64 + 1
    }

    /// Whether the last successful pass is recent enough to serve from.
    fn trusted(&self) -> bool {
        let checked = self.inner.checked_ms.load(Ordering::Acquire);
        checked != 0 && self.now_ms().saturating_sub(checked) <= TRUST_FOR.as_millis() as u64
    }

    pub fn lookup(&self, id: Uuid) -> Lookup {
        if !self.trusted() {
            return Lookup::Bypass;
        }
        let i = shard_of(&id);
        let Some(mut shard) = self.shard(i) else {
            return Lookup::Bypass;
        };
        match shard.map.get(&id).map(|e| e.body.clone()) {
            Some(body) => {
                shard.hits += 1;
                Lookup::Hit(body)
            }
            None => {
                shard.misses += 1;
                Lookup::Miss(Ticket {
                    shard: i,
                    epoch: shard.epoch,
                })
            }
        }
    }

    /// Caches a document read after `ticket` was taken, unless an eviction
    /// pass has touched its shard since (the row may predate that pass).
    pub fn fill(&self, ticket: Ticket, id: Uuid, body: Bytes) {
        let Some(mut shard) = self.shard(ticket.shard) else {
            return;
        };
        if shard.epoch != ticket.epoch || cost(&body) > self.inner.shard_bytes {
            shard.dropped_fills += 1;
            return;
        }
        shard.fills += 1;
        shard.insert(id, body, self.inner.shard_entries, self.inner.shard_bytes);
    }

    /// The checkpoint up to which every change is evicted (-1 before the
    /// first pass).
    pub fn watermark(&self) -> i64 {
        *self.inner.watermark.borrow()
    }

    /// Waits until the watermark reaches `position`; false at `deadline`.
    pub async fn wait_for(&self, position: i64, deadline: tokio::time::Instant) -> bool {
        if self.watermark() >= position {
            return true;
        }
        let mut rx = self.inner.watermark.subscribe();
        loop {
            if *rx.borrow_and_update() >= position {
                return true;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return false;
            }
            let nap = (deadline - now).min(NUDGE);
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return false;
                    }
                }
                // A notification may have been lost: have the pass look now.
                _ = tokio::time::sleep(nap) => self.nudge.notify_one(),
            }
        }
    }

    /// Reads served from the cache since it started.
    pub fn hits(&self) -> u64 {
        (0..SHARDS)
            .filter_map(|i| self.shard(i).map(|s| s.hits))
            .sum()
    }

    /// Entries and bytes held now.
    pub fn size(&self) -> (usize, usize) {
        (0..SHARDS)
            .filter_map(|i| self.shard(i).map(|s| (s.map.len(), s.bytes)))
            .fold((0, 0), |(n, b), (sn, sb)| (n + sn, b + sb))
    }

    /// Drops every entry and every fill in flight. Counted as a flush only
    /// when it dropped an entry: a pass over an empty cache flushes it every
    /// time (see [`keep_current`]).
    fn flush(&self) {
        let mut held = false;
        for i in 0..SHARDS {
            if let Some(mut shard) = self.shard(i) {
                held |= !shard.map.is_empty();
                shard.epoch += 1;
                shard.clear();
            }
        }
        if held {
            self.inner.flushes.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn evict(&self, ids: &[Uuid]) {
        let mut by_shard: [Vec<Uuid>; SHARDS] = Default::default();
        for id in ids {
            by_shard[shard_of(id)].push(*id);
        }
        for (i, list) in by_shard.iter().enumerate() {
            if list.is_empty() {
                continue;
            }
            if let Some(mut shard) = self.shard(i) {
                shard.epoch += 1;
                for id in list {
                    shard.remove(id);
                }
            }
        }
        self.inner
            .evicted
            .fetch_add(ids.len() as u64, Ordering::Relaxed);
    }

    /// Applies one pass's answer; returns the (position, generation) seen.
    fn apply(&self, seen: Option<(i64, i64)>, changes: FactChanges) -> (i64, i64) {
        match (seen, &changes.changed) {
            (Some((position, _)), Some(ids)) if changes.position >= position => self.evict(ids),
            _ => self.flush(),
        }
        self.inner.passes.fetch_add(1, Ordering::Relaxed);
        self.inner
            .checked_ms
            .store(self.now_ms(), Ordering::Release);
        self.inner.watermark.send_if_modified(|w| {
            let moved = *w != changes.position;
            *w = changes.position;
            moved
        });
        (changes.position, changes.generation)
    }

    fn publish_metrics(&self) {
        let (mut hits, mut misses, mut fills, mut dropped) = (0, 0, 0, 0);
        for i in 0..SHARDS {
            if let Some(s) = self.shard(i) {
                hits += s.hits;
                misses += s.misses;
                fills += s.fills;
                dropped += s.dropped_fills;
            }
        }
        let (entries, bytes) = self.size();
        let i = &self.inner;
        metrics::counter!("factlog_fact_cache_hits_total").absolute(hits);
        metrics::counter!("factlog_fact_cache_misses_total").absolute(misses);
        metrics::counter!("factlog_fact_cache_fills_total").absolute(fills);
        metrics::counter!("factlog_fact_cache_dropped_fills_total").absolute(dropped);
        metrics::counter!("factlog_fact_cache_evictions_total")
            .absolute(i.evicted.load(Ordering::Relaxed));
        metrics::counter!("factlog_fact_cache_flushes_total")
            .absolute(i.flushes.load(Ordering::Relaxed));
        metrics::gauge!("factlog_fact_cache_entries").set(entries as f64);
        metrics::gauge!("factlog_fact_cache_bytes").set(bytes as f64);
        metrics::gauge!("factlog_fact_cache_watermark").set(self.watermark() as f64);
    }
}

/// The pass loop: look, evict, advance the watermark; sleep until a
/// checkpoint moves, a reader nudges, or [`SAFETY_NET`] passes. Ends when
/// the cache is dropped or the pool closes.
async fn keep_current(
    inner: Weak<Inner>,
    nudge: Arc<Notify>,
    pool: PgPool,
    mut checkpoints: watch::Receiver<u64>,
) {
    let mut seen: Option<(i64, i64)> = None;
    let mut failures = 0u32;
    let mut published = Instant::now();
    loop {
        if pool.is_closed() {
            return;
        }
        let Some(cache) = inner.upgrade().map(|inner| FactCache {
            inner,
            nudge: nudge.clone(),
        }) else {
            return;
        };
        // Marked seen before the query: a checkpoint moving during it wakes
        // the next pass.
        checkpoints.borrow_and_update();
        // A cache that holds nothing has nothing a change could make stale:
        // the pass reads only the checkpoint, and the answer (which does not
        // say what changed) drops any fill that may have raced it, as every
        // such answer does. So a process that only writes, or whose readers
        // are elsewhere, does not read the facts of every batch's events.
        let after = seen.map_or(0, |s| s.0);
        let answer = if cache.size().0 == 0 {
            pread::facts_checkpoint(&pool).await
        } else {
            pread::fact_changes(&pool, after, seen.map(|s| s.1), MAX_CHANGES).await
        };
        let wait = match answer {
            Ok(changes) => {
                if failures > 0 {
                    tracing::info!("fact cache checks the projection again");
                }
                failures = 0;
                seen = Some(cache.apply(seen, changes));
                SAFETY_NET
            }
            Err(_) if pool.is_closed() => return,
            Err(e) => {
                if failures == 0 {
                    tracing::warn!(error = %e, "fact cache cannot check the projection; reads bypass it after {} s", TRUST_FOR.as_secs());
                }
                failures = failures.saturating_add(1);
                crate::store::backoff_delay(failures).min(SAFETY_NET)
            }
        };
        if published.elapsed() >= SAFETY_NET {
            cache.publish_metrics();
            published = Instant::now();
        }
        drop(cache);
        tokio::select! {
            changed = checkpoints.changed() => {
                if changed.is_err() {
                    // The store is gone: no more notifications, keep the safety net.
                    tokio::time::sleep(wait).await;
                }
            }
            _ = nudge.notified() => {},
            _ = tokio::time::sleep(wait) => {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: usize, bytes: usize) -> FactCache {
        let c = FactCache::new(FactCacheLimits {
            max_entries: entries,
            max_bytes: bytes,
        })
        .expect("enabled");
        // As if a pass had run.
        c.apply(
            None,
            FactChanges {
                position: 0,
                generation: 0,
                changed: None,
            },
        );
        c
    }

    fn id(n: u128) -> Uuid {
        // Same shard for every n (low bits equal).
        Uuid::from_u128(n << 8)
    }

    fn miss(c: &FactCache, id: Uuid) -> Ticket {
        match c.lookup(id) {
            Lookup::Miss(t) => t,
            Lookup::Hit(_) => panic!("unexpected hit"),
            Lookup::Bypass => panic!("unexpected bypass"),
        }
    }

    fn hit(c: &FactCache, id: Uuid) -> Option<Bytes> {
        match c.lookup(id) {
            Lookup::Hit(b) => Some(b),
            _ => None,
        }
    }

    fn changes(position: i64, ids: Vec<Uuid>) -> FactChanges {
        FactChanges {
            position,
            generation: 0,
            changed: Some(ids),
        }
    }

    #[test]
    fn a_fill_after_an_eviction_it_may_predate_is_dropped() {
        let c = cache(100, 1 << 20);
        let x = id(1);
        // A reader misses and takes its ticket, then reads the row...
        let t = miss(&c, x);
        // ...meanwhile a pass evicts x (it changed after the reader's snapshot).
        c.apply(Some((0, 0)), changes(5, vec![x]));
        // The reader's fill may hold the old document: it must not land.
        c.fill(t, x, Bytes::from_static(b"old"));
        assert!(hit(&c, x).is_none());
        // A reader after the pass fills normally.
        let t = miss(&c, x);
        c.fill(t, x, Bytes::from_static(b"new"));
        assert_eq!(hit(&c, x).as_deref(), Some(&b"new"[..]));
        assert_eq!(c.watermark(), 5);
    }

    #[test]
    fn a_fill_before_an_eviction_is_removed_by_it() {
        let c = cache(100, 1 << 20);
        let x = id(1);
        let t = miss(&c, x);
        c.fill(t, x, Bytes::from_static(b"old"));
        assert!(hit(&c, x).is_some());
        c.apply(Some((0, 0)), changes(3, vec![x]));
        assert!(hit(&c, x).is_none());
    }

    #[test]
    fn a_pass_evicts_only_what_changed_and_other_shards_keep_filling() {
        let c = cache(100, 1 << 20);
        let (x, y) = (id(1), id(2));
        let other = Uuid::from_u128(3); // another shard
        for k in [x, y] {
            let t = miss(&c, k);
            c.fill(t, k, Bytes::from_static(b"doc"));
        }
        let t_other = miss(&c, other);
        c.apply(Some((0, 0)), changes(7, vec![x]));
        assert!(hit(&c, x).is_none());
        assert!(hit(&c, y).is_some());
        // The pass did not touch `other`'s shard: its fill still lands.
        c.fill(t_other, other, Bytes::from_static(b"doc"));
        assert!(hit(&c, other).is_some());
    }

    #[test]
    fn a_pass_over_an_empty_cache_drops_a_racing_fill_and_is_no_flush() {
        let c = cache(100, 1 << 20);
        let x = id(1);
        // A reader misses and takes its ticket while the cache is empty...
        let t = miss(&c, x);
        // ...and the pass, seeing nothing cached, reads only the checkpoint.
        c.apply(
            Some((0, 0)),
            FactChanges {
                position: 5,
                generation: 0,
                changed: None,
            },
        );
        assert_eq!(c.watermark(), 5);
        // The reader's row may predate the changes up to 5: it must not land.
        c.fill(t, x, Bytes::from_static(b"old"));
        assert!(hit(&c, x).is_none());
        assert_eq!(
            c.inner.flushes.load(Ordering::Relaxed),
            0,
            "nothing was held"
        );
        // Once something is held, the same answer is a flush.
        let t = miss(&c, x);
        c.fill(t, x, Bytes::from_static(b"new"));
        c.apply(
            Some((5, 0)),
            FactChanges {
                position: 6,
                generation: 0,
                changed: None,
            },
        );
        assert!(hit(&c, x).is_none());
        assert_eq!(c.inner.flushes.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_new_generation_or_a_checkpoint_going_back_flushes() {
        let c = cache(100, 1 << 20);
        let x = id(1);
        let fill = |c: &FactCache| {
            let t = miss(c, x);
            c.fill(t, x, Bytes::from_static(b"doc"));
            assert!(hit(c, x).is_some());
        };
        fill(&c);
        let seen = c.apply(
            Some((0, 0)),
            FactChanges {
                position: 9,
                generation: 1,
                changed: None,
            },
        );
        assert_eq!(seen, (9, 1));
        assert!(hit(&c, x).is_none(), "new generation");
        fill(&c);
        c.apply(Some((9, 1)), changes(4, vec![]));
        assert!(hit(&c, x).is_none(), "checkpoint went back");
        assert_eq!(c.watermark(), 4);
    }

    #[test]
    fn bounded_by_entries_and_bytes_oldest_first() {
        // One shard holds ceil(32 / 16) = 2 entries.
        let c = cache(32, 1 << 20);
        for n in 1..=3 {
            let t = miss(&c, id(n));
            c.fill(t, id(n), Bytes::from_static(b"doc"));
        }
        assert!(hit(&c, id(1)).is_none());
        assert!(hit(&c, id(2)).is_some() && hit(&c, id(3)).is_some());

        // A shard's share of 1,000 bytes (63) is less than one entry's
        // overhead: nothing fits.
        let c = cache(1000, 1000);
        let t = miss(&c, id(1));
        c.fill(t, id(1), Bytes::from_static(b"doc"));
        assert!(hit(&c, id(1)).is_none());

        let per_entry = 10 + ENTRY_OVERHEAD;
        let c = cache(1000, per_entry * 2 * SHARDS);
        for n in 1..=3 {
            let t = miss(&c, id(n));
            c.fill(t, id(n), Bytes::from(vec![b'x'; 10]));
        }
        assert!(hit(&c, id(1)).is_none());
        assert!(hit(&c, id(3)).is_some());
        assert_eq!(c.size(), (2, 2 * per_entry));
    }

    #[test]
    fn the_queue_stays_small_under_refills() {
        let c = cache(1000, 1 << 20);
        let x = id(1);
        for round in 0..10_000 {
            let t = miss(&c, x);
            c.fill(t, x, Bytes::from_static(b"doc"));
            c.apply(Some((round, 0)), changes(round + 1, vec![x]));
        }
        let shard = c.shard(shard_of(&x)).expect("shard");
        assert!(shard.order.len() <= 2 * shard.map.len() + 33);
    }

    #[test]
    fn nothing_is_served_before_the_first_pass() {
        let c = FactCache::new(FactCacheLimits {
            max_entries: 10,
            max_bytes: 1 << 20,
        })
        .expect("enabled");
        assert!(matches!(c.lookup(id(1)), Lookup::Bypass));
        assert!(
            FactCache::new(FactCacheLimits {
                max_entries: 0,
                max_bytes: 1 << 20
            })
            .is_none()
        );
    }
}
