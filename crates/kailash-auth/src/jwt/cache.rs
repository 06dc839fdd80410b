//! A bounded cache of verified tokens.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use kailash_core::Principal;
use kailash_core::clock::Clock;

/// Default capacity of a [`TokenCache`].
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;
const SHARDS: usize = 16;

struct Entry {
    token: Box<str>,
    principal: Principal,
    exp: i64,
}

#[derive(Default)]
struct Shard {
    map: HashMap<u64, Entry>,
    last_sweep: i64,
}

enum Hashing {
    Random(RandomState),
    #[cfg(test)]
    Constant,
}

/// Verified tokens by hash: a hit compares the full token in constant time
/// (a hash collision never authenticates) and honours `exp` against the
/// [`Clock`]. Sharded; when a shard is full, expired entries are swept (at
/// most once a second) and then an arbitrary entry is evicted.
pub struct TokenCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    hashing: Hashing,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("capacity", &(self.per_shard * SHARDS))
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache of about `capacity` entries (at least one per shard).
    pub fn new(capacity: usize, clock: Arc<dyn Clock>) -> Self {
        Self::with_hashing(capacity, clock, Hashing::Random(RandomState::new()))
    }

    fn with_hashing(capacity: usize, clock: Arc<dyn Clock>, hashing: Hashing) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hashing,
            clock,
        }
    }

    fn hash(&self, token: &str) -> u64 {
        match &self.hashing {
            Hashing::Random(s) => s.hash_one(token),
            #[cfg(test)]
            Hashing::Constant => 42,
        }
    }

    fn shard(&self, hash: u64) -> std::sync::MutexGuard<'_, Shard> {
        // SHARDS is a power of two; the low bits pick the shard.
        let idx = usize::try_from(hash % SHARDS as u64).unwrap_or(0);
        self.shards[idx]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The principal of a cached, unexpired `token`.
    pub fn get(&self, token: &str) -> Option<Principal> {
        let found = self.lookup(token);
        let result = if found.is_some() { "hit" } else { "miss" };
        metrics::counter!("kailash_auth_token_cache_total", "result" => result).increment(1);
        found
    }

    fn lookup(&self, token: &str) -> Option<Principal> {
        let hash = self.hash(token);
        let now = self.clock.now().as_second();
        let mut shard = self.shard(hash);
        let entry = shard.map.get(&hash)?;
        // Constant time over the whole token (CRYPTO_memcmp, word at a time:
        // several times faster than a byte-wise compare on 700-byte RS256 tokens).
        if aws_lc_rs::constant_time::verify_slices_are_equal(
            entry.token.as_bytes(),
            token.as_bytes(),
        )
        .is_err()
        {
            return None;
        }
        if now >= entry.exp {
            shard.map.remove(&hash);
            return None;
        }
        Some(entry.principal.clone())
    }

    /// Caches a verified token until `exp` (seconds since the Unix epoch).
    pub fn insert(&self, token: &str, principal: Principal, exp: i64) {
        let hash = self.hash(token);
        let now = self.clock.now().as_second();
        if now >= exp {
            return;
        }
        let mut shard = self.shard(hash);
        if shard.map.len() >= self.per_shard && !shard.map.contains_key(&hash) {
            if shard.last_sweep != now {
                shard.last_sweep = now;
                shard.map.retain(|_, e| now < e.exp);
            }
            if shard.map.len() >= self.per_shard
                && let Some(victim) = shard.map.keys().next().copied()
            {
                shard.map.remove(&victim);
            }
        }
        shard.map.insert(
            hash,
            Entry {
                token: token.into(),
                principal,
                exp,
            },
        );
    }

    /// Drops every cached token of session `sid` (after a logout or revocation).
    pub fn remove_session(&self, sid: &str) {
        for shard in self.shards.iter() {
            shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .map
                .retain(|_, e| e.principal.session_id() != Some(sid));
        }
    }

    /// Drops everything.
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .map
                .clear();
        }
    }

    /// The number of entries (including expired ones not yet swept).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .map
                    .len()
            })
            .sum()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kailash_core::clock::ManualClock;
    use std::time::Duration;

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(
            jiff::Timestamp::from_second(1_700_000_000).unwrap(),
        ))
    }

    #[test]
    fn hit_returns_the_same_principal_until_exp() {
        let c = clock();
        let cache = TokenCache::new(100, c.clone());
        let p = Principal::builder("alice").session_id("s1").build();
        cache.insert("tok-a", p.clone(), 1_700_000_060);
        assert_eq!(cache.get("tok-a"), Some(p));
        assert_eq!(cache.get("tok-b"), None);
        c.advance(Duration::from_secs(59));
        assert!(cache.get("tok-a").is_some());
        c.advance(Duration::from_secs(1));
        assert_eq!(cache.get("tok-a"), None);
        assert!(cache.is_empty(), "expired entry is removed on lookup");
    }

    #[test]
    fn remove_session_and_clear() {
        let cache = TokenCache::new(100, clock());
        cache.insert(
            "t1",
            Principal::builder("a").session_id("s1").build(),
            i64::MAX,
        );
        cache.insert(
            "t2",
            Principal::builder("b").session_id("s2").build(),
            i64::MAX,
        );
        cache.remove_session("s1");
        assert!(cache.get("t1").is_none());
        assert!(cache.get("t2").is_some());
        cache.clear();
        assert!(cache.get("t2").is_none());
    }

    #[test]
    fn a_colliding_token_never_hits() {
        let cache = TokenCache::with_hashing(100, clock(), Hashing::Constant);
        cache.insert("real-token", Principal::builder("alice").build(), i64::MAX);
        assert_eq!(cache.hash("forged"), cache.hash("real-token"));
        assert!(cache.get("forged").is_none());
        assert!(cache.get("real-token").is_some());
        assert!(cache.get("real-toke").is_none());
    }

    #[test]
    fn stays_bounded() {
        let c = clock();
        let cache = TokenCache::new(32, c.clone());
        for i in 0..1000 {
            cache.insert(
                &format!("t{i}"),
                Principal::builder("x").build(),
                1_700_000_010,
            );
        }
        assert!(cache.len() <= 32);
        c.advance(Duration::from_secs(20));
        cache.insert("fresh", Principal::builder("y").build(), 1_700_001_000);
        assert!(cache.get("fresh").is_some());
    }
}
