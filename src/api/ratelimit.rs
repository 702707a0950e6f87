//! Rate limiting: a token bucket per token name, and one per client
//! address for failed authentications. A token that spends its burst gets
//! 429 with `Retry-After` until the bucket refills; other tokens are
//! unaffected. An address that keeps presenting unknown tokens gets 429 for
//! those, while valid tokens from it are still served.
//!
//! The per-token limit holds across API processes without a database round
//! trip per request: each process counts the API processes alive on its
//! database ([`join_processes`]) and, while there are N, lets each token
//! through at 1/N of the rate and burst. N processes together never allow
//! more than the limit (a token served by one process alone gets less).
//! When a process starts, the others see it within a second.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::store::{EventStore, processes};

pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    /// API processes sharing the limit (at least 1).
    processes: AtomicUsize,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    failures: AddressLimiter,
}

/// Registers this process among the API processes of `store`'s database,
/// sets `limiter`'s share, and keeps both current every second until the
/// limiter is dropped (then the process leaves).
pub async fn join_processes(limiter: Arc<RateLimiter>, store: EventStore) {
    let id = Uuid::now_v7();
    beat(&limiter, &store, id).await;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if Arc::strong_count(&limiter) == 1 {
                let _ = processes::leave(store.pool(), id).await;
                return;
            }
            beat(&limiter, &store, id).await;
        }
    });
}

async fn beat(limiter: &RateLimiter, store: &EventStore, id: Uuid) {
    match processes::heartbeat(store.pool(), id).await {
        Ok(n) => limiter.set_processes(usize::try_from(n).unwrap_or(1)),
        // The last count stands until the database answers again.
        Err(e) => tracing::warn!(error = %e, "could not count the API processes"),
    }
}

/// Failed authentications per address: a burst of this many...
pub const AUTH_FAILURE_BURST: f64 = 100.0;
/// ...then this many a second.
pub const AUTH_FAILURE_RATE: f64 = 10.0;

impl RateLimiter {
    /// `per_second` of 0 turns limiting off. Failed authentications are
    /// limited per address at [`AUTH_FAILURE_RATE`] and [`AUTH_FAILURE_BURST`].
    pub fn new(per_second: f64, burst: f64) -> Self {
        RateLimiter {
            per_second,
            burst: burst.max(1.0),
            processes: AtomicUsize::new(1),
            buckets: Mutex::new(HashMap::new()),
            failures: AddressLimiter::new(AUTH_FAILURE_RATE, AUTH_FAILURE_BURST),
        }
    }

    /// Another limit on failed authentications per address (0 turns it off).
    pub fn with_failure_limit(mut self, per_second: f64, burst: f64) -> Self {
        self.failures = AddressLimiter::new(per_second, burst);
        self
    }

    /// Takes one failed authentication from the address's bucket (`None`:
    /// an unknown peer, one bucket for all such), or says how long until
    /// there is one.
    pub fn check_failure(&self, peer: Option<IpAddr>) -> Result<(), Duration> {
        self.failures.check(peer)
    }

    /// How many API processes share the limit (see the module's note).
    pub fn set_processes(&self, n: usize) {
        self.processes.store(n.max(1), Ordering::Relaxed);
    }

    /// Takes one request from `key`'s bucket, or says how long until one is there.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let n = self.processes.load(Ordering::Relaxed).max(1) as f64;
        let (per_second, burst) = (self.per_second / n, (self.burst / n).max(1.0));
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            // A poisoned lock means a panic elsewhere; do not add an outage to it.
            return Ok(());
        };
        // The key is copied only the first time a token is seen.
        if !buckets.contains_key(key) {
            buckets.insert(key.to_owned(), (burst, now));
        }
        let Some((tokens, last)) = buckets.get_mut(key) else {
            return Ok(());
        };
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * per_second).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / per_second))
        }
    }
}

/// Token buckets per client address, bounded in number: an IPv4 address, an
/// IPv6 /64 (what one subscriber usually holds), one bucket for peers of no
/// known address, and one for everyone past [`MAX_ADDRESSES`] while that
/// many are busy.
struct AddressLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    map: HashMap<Client, (f64, Instant)>,
    last_prune: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4(u32),
    V6(u64),
    Unknown,
    Overflow,
}

/// Most addresses with a bucket of their own (about 40 bytes each).
const MAX_ADDRESSES: usize = 65_536;

impl Client {
    fn of(peer: Option<IpAddr>) -> Client {
        match peer.map(|ip| ip.to_canonical()) {
            None => Client::Unknown,
            Some(IpAddr::V4(v4)) => Client::V4(u32::from(v4)),
            Some(IpAddr::V6(v6)) => Client::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

impl AddressLimiter {
    fn new(per_second: f64, burst: f64) -> Self {
        AddressLimiter {
            per_second,
            burst: burst.max(1.0),
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                last_prune: None,
            }),
        }
    }

    fn check(&self, peer: Option<IpAddr>) -> Result<(), Duration> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let mut client = Client::of(peer);
        if !buckets.map.contains_key(&client) && buckets.map.len() >= MAX_ADDRESSES {
            // Forget the buckets that have refilled (as good as new), at most
            // once a second; past that, newcomers share one bucket.
            if buckets
                .last_prune
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
            {
                let (rate, burst) = (self.per_second, self.burst);
                buckets.map.retain(|_, (tokens, last)| {
                    *tokens + now.duration_since(*last).as_secs_f64() * rate < burst
                });
                buckets.last_prune = Some(now);
            }
            if buckets.map.len() >= MAX_ADDRESSES {
                client = Client::Overflow;
            }
        }
        let (tokens, last) = buckets.map.entry(client).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_per_address() {
        let l = AddressLimiter::new(1000.0, 2.0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(l.check(Some(a)).is_ok());
        assert!(l.check(Some(mapped)).is_ok(), "the same address, mapped");
        assert!(l.check(Some(a)).is_err());
        assert!(l.check(Some(b)).is_ok(), "another address");
        assert!(l.check(None).is_ok() && l.check(None).is_ok());
        assert!(l.check(None).is_err(), "unknown peers share one bucket");
        // An IPv6 /64 is one client.
        let x: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let y: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let z: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(l.check(Some(x)).is_ok() && l.check(Some(y)).is_ok());
        assert!(l.check(Some(x)).is_err());
        assert!(l.check(Some(z)).is_ok());
        std::thread::sleep(Duration::from_millis(5));
        assert!(l.check(Some(a)).is_ok(), "refilled");
        assert!(
            AddressLimiter::new(0.0, 1.0).check(Some(a)).is_ok(),
            "0 turns it off"
        );
    }

    #[test]
    fn the_number_of_buckets_is_bounded() {
        let l = AddressLimiter::new(0.001, 1.0);
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            let _ = l.check(Some(IpAddr::V4(i.into())));
        }
        let buckets = l.buckets.lock().unwrap();
        assert!(buckets.map.len() <= MAX_ADDRESSES + 1);
        assert!(buckets.map.contains_key(&Client::Overflow));
    }

    #[test]
    fn n_processes_each_allow_a_nth() {
        let one = RateLimiter::new(1.0, 10.0);
        one.set_processes(2);
        let allowed = (0..20).filter(|_| one.check("ann").is_ok()).count();
        assert_eq!(allowed, 5, "half the burst");
        one.set_processes(1);
        std::thread::sleep(Duration::from_millis(1100));
        assert!(one.check("ann").is_ok(), "the whole rate again");
    }

    #[test]
    fn a_burst_then_refusal_then_refill() {
        let l = RateLimiter::new(1000.0, 3.0);
        for _ in 0..3 {
            assert!(l.check("ann").is_ok());
        }
        let wait = l.check("ann").expect_err("burst spent");
        assert!(wait <= Duration::from_millis(2));
        assert!(l.check("bob").is_ok(), "buckets are per token");
        std::thread::sleep(Duration::from_millis(5));
        assert!(l.check("ann").is_ok(), "refilled");
        assert!(
            RateLimiter::new(0.0, 1.0).check("x").is_ok(),
            "0 turns it off"
        );
    }
}
