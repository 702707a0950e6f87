//! Per-token rate limiting: a token bucket per token name, in this process.
//! A token that spends its burst gets 429 with `Retry-After` until the
//! bucket refills; other tokens are unaffected.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_second` of 0 turns limiting off.
    pub fn new(per_second: f64, burst: f64) -> Self {
        RateLimiter {
            per_second,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s bucket, or says how long until one is there.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            // A poisoned lock means a panic elsewhere; do not add an outage to it.
            return Ok(());
        };
        // The key is copied only the first time a token is seen.
        if !buckets.contains_key(key) {
            buckets.insert(key.to_owned(), (self.burst, now));
        }
        let Some((tokens, last)) = buckets.get_mut(key) else {
            return Ok(());
        };
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
