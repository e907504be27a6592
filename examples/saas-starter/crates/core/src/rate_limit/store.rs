//! Where request counts are kept: the [`RateLimitStore`] contract and the in-process
//! [`InMemoryStore`].
//!
//! The store is hand-written rather than taken from `governor`: that crate adds 24 crates to the
//! build (6 without its default features), and its keyed limiter lives in the process too, so it
//! would not let several instances share one count either. What sharing needs is another
//! [`RateLimitStore`] (Redis), and the algorithm below is short enough to re-implement there.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use crate::error::BoxError;

/// At most `limit` requests per `period`, for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: NonZeroU32,
    pub period: Duration,
}

impl Quota {
    pub fn per_minute(limit: NonZeroU32) -> Self {
        Self {
            limit,
            period: Duration::from_secs(60),
        }
    }

    pub fn per_hour(limit: NonZeroU32) -> Self {
        Self {
            limit,
            period: Duration::from_secs(3600),
        }
    }

    /// The time one request uses up: the quota refills by one request every `interval`.
    pub fn interval(&self) -> Duration {
        self.period / self.limit.get()
    }

    /// Whether a request fits while the key's theoretical arrival time is `wait` ahead of now.
    pub fn fits(&self, wait: Duration) -> bool {
        wait + self.interval() <= self.period
    }
}

/// What a store answers for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is allowed (and was counted).
    pub allowed: bool,
    /// The quota's `limit`.
    pub limit: u32,
    /// How many more requests the key is allowed right now, this one counted.
    pub remaining: u32,
    /// How long until the key has its whole quota again.
    pub reset_after: Duration,
    /// Zero when allowed; otherwise how long until one request will be allowed again.
    pub retry_after: Duration,
}

impl Decision {
    /// The answer for a key whose theoretical arrival time was `wait` ahead of now (zero when it
    /// had passed), once the store has let the request in or not ([`Quota::fits`], decided
    /// where the count is kept): the formulas of the contract below, for every store.
    pub fn from_wait(quota: Quota, wait: Duration, allowed: bool) -> Self {
        let interval = quota.interval();
        let next = wait + interval;
        if allowed {
            let left = quota.period.saturating_sub(next);
            let remaining = left.as_nanos() / interval.as_nanos().max(1);
            Self {
                allowed,
                limit: quota.limit.get(),
                // At most `limit - 1`: the division can exceed it when `interval` was rounded down.
                remaining: u32::try_from(remaining)
                    .unwrap_or(u32::MAX)
                    .min(quota.limit.get() - 1),
                reset_after: next,
                retry_after: Duration::ZERO,
            }
        } else {
            Self {
                allowed,
                limit: quota.limit.get(),
                remaining: 0,
                reset_after: wait,
                retry_after: next.saturating_sub(quota.period),
            }
        }
    }
}

/// Counts requests per key against a [`Quota`].
///
/// The contract, which every implementation keeps so that one can replace another (the default
/// [`InMemoryStore`] by a Redis one, to share the counts between the instances of a service):
///
/// - The algorithm is GCRA (the one of redis-cell's `CL.THROTTLE`). Each key has a *theoretical
///   arrival time* `tat`, initially in the past. With `interval = period / limit`, a request at
///   `now` computes `next = max(tat, now) + interval`. It is allowed when
///   `next - now <= period`; then `tat` becomes `next`. A refused request changes nothing.
///   So a key may spend its whole `limit` at once, then gets one request back every `interval`.
/// - The answer: allowed `remaining = floor((period - (next - now)) / interval)`,
///   `reset_after = next - now`, `retry_after = 0`; refused `remaining = 0`,
///   `reset_after = max(tat, now) - now`, `retry_after = next - now - period`.
/// - Checking and counting are one atomic step per key: two concurrent requests never both take
///   the last unit (in Redis: one Lua script, `SET key <tat> PX <reset_after>`).
/// - A key whose `tat` has passed is the same as a key never seen, so its entry may be dropped
///   then (the Redis key expires): memory is bounded by the keys used in the last `period`.
/// - Keys are opaque and already namespaced (`auth:ip:203.0.113.7`, `auth:email:ada@example.com`);
///   a key is always used with the same quota. A store shared with other data may prefix them.
/// - An error (the store is unreachable) is returned, not hidden: the caller decides what a
///   request does without a count.
/// - Besides counts, a store remembers keys for a while ([`RateLimitStore::remember`]), such as
///   the clients that signed in to an account: a remembered key is forgotten (dropped, or
///   expired in Redis) once its time is over, like a count whose `tat` has passed. Remembered
///   keys and counted keys never share a name.
pub trait RateLimitStore: Send + Sync + 'static {
    /// Counts one request for `key` if `quota` allows it.
    fn hit<'a>(&'a self, key: &'a str, quota: Quota) -> BoxFuture<'a, Result<Decision, BoxError>>;

    /// Remembers `key` for `ttl` (from now, whether it was remembered before or not).
    fn remember<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, Result<(), BoxError>>;

    /// Whether `key` is remembered now.
    fn remembers<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, BoxError>>;
}

/// Counts in this process: each instance of a service counts on its own.
#[derive(Debug, Default)]
pub struct InMemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The theoretical arrival time of each counted key, and the end of each remembered one:
    /// either is of no use once passed.
    tats: HashMap<String, Instant>,
    /// The size at which expired keys are dropped next.
    prune_at: usize,
}

/// Expired keys are dropped whenever the map has doubled since the last pruning, and not before
/// it holds this many. A pruning costs one pass over the map, paid for by as many requests, and
/// the map never grows past twice the keys that were live at the previous pruning.
const MIN_PRUNE_AT: usize = 1024;

impl InMemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// [`RateLimitStore::hit`] at the given time, which tests choose.
    pub fn hit_at(&self, key: &str, quota: Quota, now: Instant) -> Decision {
        let mut state = self.state(now);
        let wait = state
            .tats
            .get(key)
            .map_or(Duration::ZERO, |tat| tat.saturating_duration_since(now));
        let allowed = quota.fits(wait);
        if allowed {
            state
                .tats
                .insert(key.to_owned(), now + wait + quota.interval());
        }
        Decision::from_wait(quota, wait, allowed)
    }

    /// [`RateLimitStore::remember`] at the given time.
    pub fn remember_at(&self, key: &str, ttl: Duration, now: Instant) {
        self.state(now).tats.insert(key.to_owned(), now + ttl);
    }

    /// [`RateLimitStore::remembers`] at the given time.
    pub fn remembers_at(&self, key: &str, now: Instant) -> bool {
        self.state(now).tats.get(key).is_some_and(|end| *end > now)
    }

    /// The state, locked, once expired keys are dropped if it is time to.
    fn state(&self, now: Instant) -> MutexGuard<'_, State> {
        // The map is consistent after any panic (every change is a single insert or retain),
        // so a poisoned lock is still usable.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.tats.len() >= state.prune_at.max(MIN_PRUNE_AT) {
            state.tats.retain(|_, tat| *tat > now);
            state.prune_at = state.tats.len() * 2;
        }
        state
    }
}

impl RateLimitStore for InMemoryStore {
    fn hit<'a>(&'a self, key: &'a str, quota: Quota) -> BoxFuture<'a, Result<Decision, BoxError>> {
        let decision = self.hit_at(key, quota, Instant::now());
        Box::pin(async move { Ok(decision) })
    }

    fn remember<'a>(&'a self, key: &'a str, ttl: Duration) -> BoxFuture<'a, Result<(), BoxError>> {
        self.remember_at(key, ttl, Instant::now());
        Box::pin(async { Ok(()) })
    }

    fn remembers<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, BoxError>> {
        let remembered = self.remembers_at(key, Instant::now());
        Box::pin(async move { Ok(remembered) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three requests a minute: one back every 20 seconds.
    fn quota() -> Quota {
        Quota::per_minute(NonZeroU32::new(3).unwrap())
    }

    fn secs(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn allows_up_to_the_quota() {
        let store = InMemoryStore::new();
        let now = Instant::now();

        let remaining: Vec<_> = (0..3)
            .map(|_| store.hit_at("k", quota(), now))
            .inspect(|decision| assert!(decision.allowed))
            .map(|decision| (decision.remaining, decision.reset_after))
            .collect();

        assert_eq!(remaining, [(2, secs(20)), (1, secs(40)), (0, secs(60))]);
    }

    #[test]
    fn refuses_with_the_time_until_the_next_request() {
        let store = InMemoryStore::new();
        let now = Instant::now();
        for _ in 0..3 {
            store.hit_at("k", quota(), now);
        }

        let refused = store.hit_at("k", quota(), now + secs(5));

        assert_eq!(
            refused,
            Decision {
                allowed: false,
                limit: 3,
                remaining: 0,
                reset_after: secs(55),
                retry_after: secs(15),
            }
        );
    }

    #[test]
    fn refused_requests_are_not_counted() {
        let store = InMemoryStore::new();
        let now = Instant::now();
        for _ in 0..10 {
            store.hit_at("k", quota(), now);
        }

        assert!(store.hit_at("k", quota(), now + secs(20)).allowed);
    }

    #[test]
    fn recovers_as_time_passes() {
        let store = InMemoryStore::new();
        let now = Instant::now();
        for _ in 0..3 {
            store.hit_at("k", quota(), now);
        }

        let one_back = store.hit_at("k", quota(), now + secs(20));
        let all_back = store.hit_at("k", quota(), now + secs(100));

        assert!(one_back.allowed);
        assert_eq!(one_back.remaining, 0);
        assert!(all_back.allowed);
        assert_eq!(all_back.remaining, 2);
    }

    #[test]
    fn keys_are_counted_separately() {
        let store = InMemoryStore::new();
        let now = Instant::now();
        for _ in 0..3 {
            store.hit_at("a", quota(), now);
        }

        assert!(!store.hit_at("a", quota(), now).allowed);
        assert!(store.hit_at("b", quota(), now).allowed);
    }

    #[test]
    fn remembers_keys_until_their_time_is_over() {
        let store = InMemoryStore::new();
        let now = Instant::now();

        store.remember_at("known", secs(30), now);

        assert!(store.remembers_at("known", now + secs(29)));
        assert!(!store.remembers_at("known", now + secs(30)));
        assert!(!store.remembers_at("other", now));
    }

    #[test]
    fn drops_expired_keys() {
        let store = InMemoryStore::new();
        let now = Instant::now();
        for i in 1..MIN_PRUNE_AT {
            store.hit_at(&format!("old-{i}"), quota(), now);
        }
        store.hit_at("recent", quota(), now + secs(10));

        // The old keys are whole again 20 seconds later; the recent one is not.
        store.hit_at("new", quota(), now + secs(20));

        let state = store.state.lock().unwrap();
        let mut keys: Vec<_> = state.tats.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["new", "recent"]);
    }
}
