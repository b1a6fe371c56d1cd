//! Rate limits on failed authentication, per klantcode and per source address: token buckets in memory.
//!
//! Each klantcode and each source address has a bucket of `max_failures` tokens
//! that refills completely over `lockout`. A failed authentication (unknown
//! klantcode, wrong klantnaam, wrong key; a wrong admin token or receipts
//! password) takes a token from both buckets. A request whose klantcode or source
//! address has an empty bucket is refused as a wrong key would be, without
//! looking at the key, so a locked-out guesser learns nothing, not even whether
//! the lockout is on; the first token is back after `lockout / max_failures`.
//! Successful requests take nothing. The buckets live in memory only: a restart
//! forgets them, which costs an attacker a restart of our service per burst.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept at most; past this, full buckets are dropped first, then all.
const MAX_BUCKETS: usize = 100_000;

/// Whose failures a bucket counts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Subject {
    Klantcode(String),
    Address(IpAddr),
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The failure buckets of one running gateway.
#[derive(Debug)]
pub struct AuthLimiter {
    buckets: Mutex<HashMap<Subject, Bucket>>,
    capacity: f64,
    /// Tokens added per second.
    refill: f64,
}

impl AuthLimiter {
    /// `max_failures` in a burst, all of them back after `lockout`.
    pub fn new(max_failures: u32, lockout: Duration) -> AuthLimiter {
        let capacity = f64::from(max_failures.max(1));
        AuthLimiter {
            buckets: Mutex::new(HashMap::new()),
            capacity,
            refill: capacity / lockout.as_secs_f64().max(0.001),
        }
    }

    fn subjects(klantcode: Option<&str>, address: Option<IpAddr>) -> Vec<Subject> {
        let mut subjects = Vec::with_capacity(2);
        if let Some(klantcode) = klantcode {
            subjects.push(Subject::Klantcode(klantcode.to_string()));
        }
        if let Some(address) = address {
            subjects.push(Subject::Address(address));
        }
        subjects
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        Bucket {
            tokens: (bucket.tokens + elapsed * self.refill).min(self.capacity),
            updated: now,
        }
    }

    /// Whether the klantcode or the address is locked out now.
    pub fn is_locked(&self, klantcode: Option<&str>, address: Option<IpAddr>) -> bool {
        let now = Instant::now();
        let buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Self::subjects(klantcode, address).iter().any(|subject| {
            buckets
                .get(subject)
                .is_some_and(|bucket| self.refilled(*bucket, now).tokens < 1.0)
        })
    }

    /// Counts one failed authentication; returns true when it emptied a bucket (the lockout starts).
    pub fn record_failure(&self, klantcode: Option<&str>, address: Option<IpAddr>) -> bool {
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            let capacity = self.capacity;
            buckets.retain(|_, bucket| self.refilled(*bucket, now).tokens < capacity);
            if buckets.len() >= MAX_BUCKETS {
                buckets.clear();
            }
        }
        let mut emptied = false;
        for subject in Self::subjects(klantcode, address) {
            let bucket = buckets.entry(subject).or_insert(Bucket {
                tokens: self.capacity,
                updated: now,
            });
            let mut refilled = self.refilled(*bucket, now);
            let before = refilled.tokens;
            refilled.tokens = (before - 1.0).max(0.0);
            emptied |= before >= 1.0 && refilled.tokens < 1.0;
            *bucket = refilled;
        }
        emptied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_lock_out_the_klantcode_and_the_address_until_tokens_return() {
        let limiter = AuthLimiter::new(3, Duration::from_millis(300));
        let address: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(!limiter.is_locked(Some("EA"), Some(address)));
        assert!(!limiter.record_failure(Some("EA"), Some(address)));
        assert!(!limiter.record_failure(Some("EA"), Some(address)));
        assert!(limiter.record_failure(Some("EA"), Some(address)));
        assert!(
            limiter.is_locked(Some("EA"), None),
            "the klantcode from any address"
        );
        assert!(
            limiter.is_locked(Some("OTHER"), Some(address)),
            "any klantcode from the address"
        );
        assert!(!limiter.is_locked(Some("OTHER"), Some(other)));
        std::thread::sleep(Duration::from_millis(120));
        assert!(
            !limiter.is_locked(Some("EA"), Some(address)),
            "one token is back after lockout / max_failures"
        );
        assert!(limiter.record_failure(Some("EA"), Some(address)));
        assert!(limiter.is_locked(Some("EA"), Some(address)));
    }
}
