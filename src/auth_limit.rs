//! Rate limits on failed authentication, per API, klantcode and source network: token buckets in memory.
//!
//! A failed authentication (unknown klantcode, wrong klantnaam, wrong key; a
//! wrong receipts password, admin token or reader token) takes a token from two
//! buckets:
//! - the bucket of its API, klantcode (where the API has one) and source
//!   network, with `max_failures` tokens: a guesser at one address locks out
//!   only itself, never the real sender at another address, and bad reader
//!   tokens never lock out SOAP calls from the same address;
//! - the bucket of its klantcode across every address and API that checks its
//!   key (SOAP and receipts), with `klantcode_max_failures` tokens (far more):
//!   the last line against a guesser spread over many addresses. Emptying it
//!   also refuses the real sender, so it raises an alert (a warning and a
//!   counter in `AuthLimitStats`).
//!
//! A source network is an IPv4 address or an IPv6 /64 (one subscriber's
//! allocation, where a guesser can pick any of 2^64 addresses). Every bucket
//! refills completely over `lockout`. A request with an empty bucket is refused
//! as a wrong key would be, without looking at the key, so a locked-out guesser
//! learns nothing, not even whether the lockout is on. Successful requests take
//! nothing. The buckets live in memory only: a restart forgets them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets kept at most per kind; past this, full buckets are dropped first, then all.
const MAX_BUCKETS: usize = 100_000;

/// The log message of a klantcode-wide lockout; stable, so that alerts can match it.
pub(crate) const KLANTCODE_LOCKOUT_ALERT: &str =
    "klantcode-wide authentication limit reached; every address is refused for this klantcode";

/// The endpoint family a credential was presented to; each counts its failures apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Api {
    /// `BrengLeerresultaten` with the autorisatie header.
    Soap,
    /// `GET /api/v1/receipts/{id}` with klantcode and autorisatiesleutel.
    Receipts,
    /// The admin API's bearer token.
    Admin,
    /// Reader tokens on the read API.
    Reader,
}

impl Api {
    fn name(self) -> &'static str {
        match self {
            Api::Soap => "soap",
            Api::Receipts => "receipts",
            Api::Admin => "admin",
            Api::Reader => "reader",
        }
    }
}

/// One authentication attempt: where it came from and what it claimed to be.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attempt<'a> {
    pub(crate) api: Api,
    /// The klantcode presented, on the APIs that have one.
    pub(crate) klantcode: Option<&'a str>,
    pub(crate) address: Option<IpAddr>,
}

/// Limits of an `AuthLimiter`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AuthLimits {
    /// Failures per API, klantcode and source network in a burst.
    pub(crate) max_failures: u32,
    /// Failures per klantcode over all addresses in a burst.
    pub(crate) klantcode_max_failures: u32,
    /// Time in which an empty bucket fills up again.
    pub(crate) lockout: Duration,
}

/// Counters since start, for a metrics endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AuthLimitStats {
    /// Failed authentications counted.
    pub(crate) failures: u64,
    /// Times a bucket of one API, klantcode and source network emptied.
    pub(crate) source_lockouts: u64,
    /// Times a klantcode-wide bucket emptied (each also logged as `KLANTCODE_LOCKOUT_ALERT`).
    pub(crate) klantcode_lockouts: u64,
    /// Requests refused without a key check because a bucket was empty.
    pub(crate) refused: u64,
}

/// Whose failures a bucket counts. Klantcodes are kept as their SHA-256: a klantcode
/// is read before the schema check that limits it to 64 characters, and 100,000
/// buckets of megabyte klantcodes must not fit in memory.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Subject {
    /// One API, klantcode (if any) and source network.
    Source {
        api: Api,
        klantcode: Option<[u8; 32]>,
        network: IpAddr,
    },
    /// One klantcode, from anywhere.
    Klantcode([u8; 32]),
}

fn klantcode_key(klantcode: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(klantcode.as_bytes()).into()
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The failure buckets of one running gateway.
#[derive(Debug)]
pub(crate) struct AuthLimiter {
    buckets: Mutex<HashMap<Subject, Bucket>>,
    limits: AuthLimits,
    failures: AtomicU64,
    source_lockouts: AtomicU64,
    klantcode_lockouts: AtomicU64,
    refused: AtomicU64,
}

/// The network a source address counts for: an IPv4 address, or the /64 of an IPv6 one
/// (an IPv4-mapped IPv6 address counts as its IPv4 address).
pub(crate) fn network_of(address: IpAddr) -> IpAddr {
    crate::budget::address_group(address)
}

impl AuthLimiter {
    pub(crate) fn new(limits: AuthLimits) -> AuthLimiter {
        AuthLimiter {
            buckets: Mutex::new(HashMap::new()),
            limits,
            failures: AtomicU64::new(0),
            source_lockouts: AtomicU64::new(0),
            klantcode_lockouts: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Counters since start.
    pub(crate) fn stats(&self) -> AuthLimitStats {
        AuthLimitStats {
            failures: self.failures.load(Ordering::Relaxed),
            source_lockouts: self.source_lockouts.load(Ordering::Relaxed),
            klantcode_lockouts: self.klantcode_lockouts.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }

    fn capacity(&self, subject: &Subject) -> f64 {
        f64::from(
            match subject {
                Subject::Source { .. } => self.limits.max_failures,
                Subject::Klantcode(_) => self.limits.klantcode_max_failures,
            }
            .max(1),
        )
    }

    fn subjects(attempt: &Attempt) -> Vec<Subject> {
        let mut subjects = Vec::with_capacity(2);
        if let Some(address) = attempt.address {
            subjects.push(Subject::Source {
                api: attempt.api,
                klantcode: attempt.klantcode.map(klantcode_key),
                network: network_of(address),
            });
        }
        if let (Api::Soap | Api::Receipts, Some(klantcode)) = (attempt.api, attempt.klantcode) {
            subjects.push(Subject::Klantcode(klantcode_key(klantcode)));
        }
        subjects
    }

    fn refilled(&self, subject: &Subject, bucket: Bucket, now: Instant) -> Bucket {
        let capacity = self.capacity(subject);
        let refill = capacity / self.limits.lockout.as_secs_f64().max(0.001);
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        Bucket {
            tokens: (bucket.tokens + elapsed * refill).min(capacity),
            updated: now,
        }
    }

    /// Whether this attempt is refused without a key check; a refusal is counted in `stats`.
    pub(crate) fn is_locked(&self, attempt: &Attempt) -> bool {
        let now = Instant::now();
        let buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let locked = Self::subjects(attempt).iter().any(|subject| {
            buckets
                .get(subject)
                .is_some_and(|bucket| self.refilled(subject, *bucket, now).tokens < 1.0)
        });
        if locked {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        locked
    }

    /// Counts one failed authentication, and logs a warning when it empties a bucket.
    pub(crate) fn record_failure(&self, attempt: &Attempt) {
        let now = Instant::now();
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|subject, bucket| {
                self.refilled(subject, *bucket, now).tokens < self.capacity(subject)
            });
            if buckets.len() >= MAX_BUCKETS {
                // Keep the klantcode-wide buckets: an attacker who floods the map with
                // sources must not reset the limit that stops a spread-out guesser.
                buckets.retain(|subject, _| matches!(subject, Subject::Klantcode(_)));
                if buckets.len() >= MAX_BUCKETS {
                    buckets.clear();
                }
            }
        }
        let mut emptied = Vec::new();
        for subject in Self::subjects(attempt) {
            let capacity = self.capacity(&subject);
            let bucket = buckets.entry(subject.clone()).or_insert(Bucket {
                tokens: capacity,
                updated: now,
            });
            let mut refilled = self.refilled(&subject, *bucket, now);
            let before = refilled.tokens;
            refilled.tokens = (before - 1.0).max(0.0);
            *bucket = refilled;
            if before >= 1.0 && refilled.tokens < 1.0 {
                emptied.push(matches!(subject, Subject::Klantcode(_)));
            }
        }
        // Logged after the lock is released: a slow log must not hold up other requests.
        drop(buckets);
        let klantcode = crate::logging::clip(attempt.klantcode.unwrap_or("-"));
        let klantcode = klantcode.as_ref();
        let network = attempt
            .address
            .map(|address| network_of(address).to_string())
            .unwrap_or_else(|| "-".into());
        for klantcode_wide in emptied {
            if klantcode_wide {
                self.klantcode_lockouts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    api = attempt.api.name(),
                    klantcode,
                    network = network.as_str(),
                    "{KLANTCODE_LOCKOUT_ALERT}"
                );
            } else {
                self.source_lockouts.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    api = attempt.api.name(),
                    klantcode,
                    network = network.as_str(),
                    "repeated authentication failures; locking out"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max_failures: u32, klantcode_max_failures: u32, lockout_ms: u64) -> AuthLimiter {
        AuthLimiter::new(AuthLimits {
            max_failures,
            klantcode_max_failures,
            lockout: Duration::from_millis(lockout_ms),
        })
    }

    fn soap<'a>(klantcode: &'a str, address: &str) -> Attempt<'a> {
        Attempt {
            api: Api::Soap,
            klantcode: Some(klantcode),
            address: Some(address.parse().unwrap()),
        }
    }

    #[test]
    fn a_guesser_locks_out_only_its_own_address_and_api() {
        let limiter = limiter(3, 100, 300);
        let guesser = soap("EA", "192.0.2.7");
        for _ in 0..3 {
            assert!(!limiter.is_locked(&guesser));
            limiter.record_failure(&guesser);
        }
        assert!(limiter.is_locked(&guesser));
        assert!(
            !limiter.is_locked(&soap("EA", "192.0.2.8")),
            "the real sender elsewhere"
        );
        assert!(
            !limiter.is_locked(&soap("OTHER", "192.0.2.7")),
            "another klantcode from the guesser's address"
        );
        let receipts = Attempt {
            api: Api::Receipts,
            ..guesser
        };
        assert!(!limiter.is_locked(&receipts), "another API");
        let stats = limiter.stats();
        assert_eq!((stats.failures, stats.source_lockouts), (3, 1));
        assert_eq!((stats.klantcode_lockouts, stats.refused), (0, 1));
        std::thread::sleep(Duration::from_millis(120));
        assert!(
            !limiter.is_locked(&guesser),
            "one token is back after lockout / max_failures"
        );
    }

    #[test]
    fn reader_token_failures_leave_soap_from_the_same_address_alone() {
        let limiter = limiter(2, 100, 60_000);
        let reader = Attempt {
            api: Api::Reader,
            klantcode: None,
            address: Some("192.0.2.9".parse().unwrap()),
        };
        for _ in 0..10 {
            limiter.record_failure(&reader);
        }
        assert!(limiter.is_locked(&reader));
        assert!(!limiter.is_locked(&soap("EA", "192.0.2.9")));
        let admin = Attempt {
            api: Api::Admin,
            ..reader
        };
        assert!(!limiter.is_locked(&admin));
    }

    #[test]
    fn the_klantcode_wide_limit_stops_a_spread_out_guesser_and_counts_an_alert() {
        let limiter = limiter(3, 20, 60_000);
        // Ten addresses, two failures each: no address is locked, but the klantcode is.
        for host in 1..=10 {
            let attempt = soap("EA", &format!("198.51.100.{host}"));
            limiter.record_failure(&attempt);
            limiter.record_failure(&attempt);
        }
        assert_eq!(limiter.stats().source_lockouts, 0);
        assert_eq!(limiter.stats().klantcode_lockouts, 1);
        assert!(
            limiter.is_locked(&soap("EA", "203.0.113.1")),
            "the klantcode from a fresh address"
        );
        let receipts = Attempt {
            api: Api::Receipts,
            ..soap("EA", "203.0.113.1")
        };
        assert!(
            limiter.is_locked(&receipts),
            "the klantcode's key on every API"
        );
        assert!(!limiter.is_locked(&soap("OTHER", "203.0.113.1")));
    }

    #[test]
    fn a_huge_klantcode_costs_a_bucket_of_fixed_size() {
        let limiter = limiter(1, 100, 60_000);
        let huge = "K".repeat(1 << 20);
        limiter.record_failure(&soap(&huge, "192.0.2.1"));
        assert!(limiter.is_locked(&soap(&huge, "192.0.2.1")));
        assert!(!limiter.is_locked(&soap(&huge[1..], "192.0.2.1")));
        assert!(std::mem::size_of::<Subject>() <= 64);
    }

    #[test]
    fn ipv6_addresses_count_per_64() {
        let check = |address: &str, network: &str| {
            assert_eq!(
                network_of(address.parse().unwrap()),
                network.parse::<IpAddr>().unwrap(),
                "{address}"
            );
        };
        check("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::");
        check("2001:db8:1:2::1", "2001:db8:1:2::");
        check("2001:db8:1:3::1", "2001:db8:1:3::");
        check("::ffff:192.0.2.1", "192.0.2.1");
        check("192.0.2.1", "192.0.2.1");
        check("::1", "::");

        let limiter = limiter(2, 100, 60_000);
        limiter.record_failure(&soap("EA", "2001:db8:1:2::1"));
        limiter.record_failure(&soap("EA", "2001:db8:1:2::ffff:2"));
        assert!(
            limiter.is_locked(&soap("EA", "2001:db8:1:2:9:9:9:9")),
            "any address of the same /64"
        );
        assert!(!limiter.is_locked(&soap("EA", "2001:db8:1:3::1")));
    }
}
