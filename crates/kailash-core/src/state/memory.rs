//! The embedded in-memory backend.
//!
//! One [`MemoryState`] implements all six primitives for a single process.
//! Maps are sharded behind short-held mutexes (never held across an
//! `.await`), expired entries are dropped when touched and swept periodically,
//! and the rate limiter's key space is capped so a flood of distinct keys
//! cannot grow memory without bound.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use jiff::Timestamp;
use tokio::sync::broadcast;

use crate::clock::Clock;

use super::set_entries::SetEntries;
use super::{
    Admission, Admit, BoundedAdd, BoundedSetStore, Check, CounterStore, CounterValue, EventLog,
    KeyValueStore, LogEntry, LogId, LogRead, Namespace, Outcome, PubSub, RateDecision, RateLimiter,
    RateQuota, ScanCursor, ScanPage, SetInsert, SetMember, StateError, StateKey, Subscription,
    WhenFull, flag_outcome, log, validate,
};

const SHARDS: usize = 32;
/// Writes to a shard between two sweeps of its expired entries.
const SWEEP_EVERY: u32 = 1024;

/// Limits of the in-memory backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimits {
    /// The most rate-limiter keys held at once. When full, expired keys are
    /// dropped first, then the key closest to replenishment is evicted (which
    /// can only make that one key's limit more lenient, never stricter).
    pub max_rate_keys: usize,
    /// Messages buffered per topic for slow subscribers before they lag.
    pub topic_capacity: usize,
    /// The most event logs held at once. When full, expired logs are
    /// dropped first, then the log closest to expiry is evicted (its
    /// readers then learn their history is incomplete, never read a wrong one).
    pub max_logs: usize,
    /// The largest event-log payload accepted, in bytes (default and
    /// ceiling [`MAX_LOG_PAYLOAD`](super::log::MAX_LOG_PAYLOAD), as on Redis).
    pub max_log_payload: usize,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        Self {
            max_rate_keys: 100_000,
            topic_capacity: 1024,
            max_logs: 10_000,
            max_log_payload: log::MAX_LOG_PAYLOAD,
        }
    }
}

#[derive(Debug, Clone)]
struct Entry<T> {
    value: T,
    expires_at_ms: Option<i64>,
}

impl<T> Entry<T> {
    fn live(&self, now_ms: i64) -> bool {
        self.expires_at_ms.is_none_or(|at| at > now_ms)
    }
    fn expires_in(&self, now_ms: i64) -> Option<Duration> {
        self.expires_at_ms
            .map(|at| Duration::from_millis(u64::try_from(at - now_ms).unwrap_or(0)))
    }
}

/// Something that can tell whether it is expired at `now_ms`.
trait Expiring {
    fn expired(&self, now_ms: i64) -> bool;
}
impl<T> Expiring for Entry<T> {
    fn expired(&self, now_ms: i64) -> bool {
        !self.live(now_ms)
    }
}
impl Expiring for SetEntries {
    fn expired(&self, now_ms: i64) -> bool {
        self.all_expired(now_ms)
    }
}
/// A rate limiter entry: the theoretical arrival time in microseconds.
impl Expiring for i64 {
    fn expired(&self, now_ms: i64) -> bool {
        *self <= now_ms.saturating_mul(1000)
    }
}

/// One event log: its entries oldest first, its first-ever id, the highest
/// id the cap trimmed, its last id and its deadline.
struct Log {
    entries: VecDeque<LogEntry>,
    birth: LogId,
    trimmed: Option<LogId>,
    last: LogId,
    expires_at_ms: i64,
}
impl Expiring for Log {
    fn expired(&self, now_ms: i64) -> bool {
        self.expires_at_ms <= now_ms
    }
}

struct Shard<V> {
    map: HashMap<StateKey, V>,
    writes: u32,
}

struct Sharded<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    hasher: RandomState,
}

impl<V: Expiring> Sharded<V> {
    fn new() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        writes: 0,
                    })
                })
                .collect(),
            hasher: RandomState::new(),
        }
    }

    /// Locks the shard of `key`, sweeping it when due. A poisoned lock only
    /// means another thread panicked mid-operation on plain data; the data is
    /// still consistent per entry, so keep serving.
    fn shard(&self, key: &StateKey, now_ms: i64) -> MutexGuard<'_, Shard<V>> {
        let idx = (self.hasher.hash_one(key) as usize) % SHARDS;
        let mut guard = self.shards[idx].lock().unwrap_or_else(|p| p.into_inner());
        guard.writes += 1;
        if guard.writes >= SWEEP_EVERY {
            guard.writes = 0;
            guard.map.retain(|_, v| !v.expired(now_ms));
        }
        guard
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).map.len())
            .sum()
    }
}

/// All six state primitives in process memory.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use kailash_core::clock::ManualClock;
/// use kailash_core::state::{CounterStore, MemoryState, Namespace, StateKey};
///
/// const FAILS: Namespace = Namespace::new("login.fail");
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let clock = Arc::new(ManualClock::starting_now());
/// let state = MemoryState::new(clock.clone());
/// let key = StateKey::global(FAILS, "alice");
/// state.add(&key, 1, Some(Duration::from_secs(900))).await?;
/// assert_eq!(state.get(&key).await?.value, 1);
/// clock.advance(Duration::from_secs(900));
/// assert_eq!(state.get(&key).await?.value, 0); // the window ended
/// # Ok::<(), kailash_core::state::StateError>(())
/// # }).unwrap();
/// ```
pub struct MemoryState {
    clock: Arc<dyn Clock>,
    limits: MemoryLimits,
    kv: Sharded<Entry<Bytes>>,
    counters: Sharded<Entry<i64>>,
    rates: Sharded<i64>,
    sets: Sharded<SetEntries>,
    logs: Sharded<Log>,
    topics: Mutex<HashMap<StateKey, broadcast::Sender<Bytes>>>,
}

impl std::fmt::Debug for MemoryState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryState")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl MemoryState {
    /// A backend with default [`MemoryLimits`].
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_limits(clock, MemoryLimits::default())
    }

    /// A backend with explicit limits.
    pub fn with_limits(clock: Arc<dyn Clock>, limits: MemoryLimits) -> Self {
        Self {
            clock,
            limits: MemoryLimits {
                max_rate_keys: limits.max_rate_keys.max(SHARDS),
                topic_capacity: limits.topic_capacity.max(1),
                max_logs: limits.max_logs.max(SHARDS),
                max_log_payload: limits.max_log_payload.min(log::MAX_LOG_PAYLOAD),
            },
            kv: Sharded::new(),
            counters: Sharded::new(),
            rates: Sharded::new(),
            sets: Sharded::new(),
            logs: Sharded::new(),
            topics: Mutex::new(HashMap::new()),
        }
    }

    /// How many rate-limiter keys are held (for tests and metrics).
    pub fn rate_key_count(&self) -> usize {
        self.rates.len()
    }

    /// How many event logs are held, expired ones not yet swept included
    /// (for tests and metrics).
    pub fn log_count(&self) -> usize {
        self.logs.len()
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_millis()
    }
}

fn deadline(now_ms: i64, ttl: Option<Duration>) -> Result<Option<i64>, StateError> {
    ttl.map(|d| validate::ttl_millis(d).map(|ms| now_ms.saturating_add(ms)))
        .transpose()
}

impl MemoryState {
    fn kv_get(&self, key: &StateKey) -> Option<Bytes> {
        let now = self.now_ms();
        let shard = self.kv.shard(key, now);
        shard
            .map
            .get(key)
            .filter(|e| e.live(now))
            .map(|e| e.value.clone())
    }

    fn set_contains(&self, owner: &StateKey, member: &str) -> bool {
        let now = self.now_ms();
        let shard = self.sets.shard(owner, now);
        shard
            .map
            .get(owner)
            .is_some_and(|e| e.contains_live(member, now))
    }

    /// Runs an admission in process: the same steps as
    /// [`Admission::run_stepwise`], without awaiting.
    fn admit_in_process(&self, plan: &mut Admission) {
        let mut stop = None;
        for i in 0..plan.len() {
            let Some(check) = plan.check(i) else { continue };
            let outcome = match check {
                Check::Live {
                    record,
                    index,
                    member,
                } => match self.kv_get(record) {
                    Some(bytes) if self.set_contains(index, member) => Outcome::Live(bytes),
                    _ => Outcome::Dead,
                },
                Check::Rate { key, quota, cost } => Outcome::Rate(self.gcra(key, quota, *cost)),
                Check::Flag { key, default } => flag_outcome(self.kv_get(key).as_deref(), *default),
                Check::Counter {
                    key,
                    delta,
                    limit,
                    window,
                } => match self.counter_add(key, *delta, *limit, *window) {
                    Ok(added) => Outcome::Counter(added),
                    Err(e) => Outcome::Failed(e),
                },
            };
            let passed = outcome.passed();
            plan.set_outcome(i, outcome);
            if !passed {
                stop = Some(i);
                break;
            }
        }
        for i in 0..stop.unwrap_or(0) {
            if let (
                Some(Check::Counter {
                    key, delta, window, ..
                }),
                Outcome::Counter(BoundedAdd::Applied(_)),
            ) = (plan.check(i), plan.outcome(i))
            {
                // Same key and window as the charge: cannot fail.
                let _ = self.counter_add(key, -delta, None, *window);
            }
        }
        plan.mark_ran();
    }
}

#[async_trait]
impl Admit for MemoryState {
    async fn admit(&self, plan: &mut Admission) {
        self.admit_in_process(plan);
    }

    fn admit_now(&self, plan: &mut Admission) -> bool {
        self.admit_in_process(plan);
        true
    }
}

#[async_trait]
impl KeyValueStore for MemoryState {
    async fn get(&self, key: &StateKey) -> Result<Option<Bytes>, StateError> {
        Ok(self.kv_get(key))
    }

    async fn set(
        &self,
        key: &StateKey,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), StateError> {
        let now = self.now_ms();
        let expires_at_ms = deadline(now, ttl)?;
        let mut shard = self.kv.shard(key, now);
        shard.map.insert(
            key.clone(),
            Entry {
                value,
                expires_at_ms,
            },
        );
        Ok(())
    }

    async fn compare_and_swap(
        &self,
        key: &StateKey,
        expected: Option<&[u8]>,
        new: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<bool, StateError> {
        let now = self.now_ms();
        let expires_at_ms = deadline(now, ttl)?;
        let mut shard = self.kv.shard(key, now);
        let current = shard
            .map
            .get(key)
            .filter(|e| e.live(now))
            .map(|e| &e.value[..]);
        if current != expected {
            return Ok(false);
        }
        match new {
            Some(value) => {
                shard.map.insert(
                    key.clone(),
                    Entry {
                        value,
                        expires_at_ms,
                    },
                );
            }
            None => {
                shard.map.remove(key);
            }
        }
        Ok(true)
    }

    async fn take(&self, key: &StateKey) -> Result<Option<Bytes>, StateError> {
        let now = self.now_ms();
        let mut shard = self.kv.shard(key, now);
        Ok(shard
            .map
            .remove(key)
            .filter(|e| e.live(now))
            .map(|e| e.value))
    }

    async fn delete(&self, key: &StateKey) -> Result<bool, StateError> {
        let now = self.now_ms();
        let mut shard = self.kv.shard(key, now);
        Ok(shard.map.remove(key).is_some_and(|e| e.live(now)))
    }

    async fn expire(&self, key: &StateKey, ttl: Duration) -> Result<bool, StateError> {
        let now = self.now_ms();
        let at = deadline(now, Some(ttl))?;
        let mut shard = self.kv.shard(key, now);
        match shard.map.get_mut(key).filter(|e| e.live(now)) {
            Some(entry) => {
                entry.expires_at_ms = at;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn ping(&self) -> Result<(), StateError> {
        Ok(())
    }

    async fn scan(&self, namespace: Namespace, cursor: ScanCursor) -> Result<ScanPage, StateError> {
        // One shard per page: a key lives in one shard for its whole life,
        // so every key present throughout the walk is seen exactly once.
        let now = self.now_ms();
        let Some(shard) = usize::try_from(cursor.position())
            .ok()
            .and_then(|i| self.kv.shards.get(i))
        else {
            return Ok(ScanPage::default());
        };
        let keys = shard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .iter()
            .filter(|(k, e)| e.live(now) && k.in_namespace(namespace))
            .map(|(k, _)| k.clone())
            .collect();
        let next = cursor.position() + 1;
        Ok(ScanPage {
            keys,
            next: (next < SHARDS as u64).then(|| ScanCursor::from_backend(next)),
        })
    }
}

impl MemoryState {
    fn counter_add(
        &self,
        key: &StateKey,
        delta: i64,
        limit: Option<i64>,
        window: Option<Duration>,
    ) -> Result<BoundedAdd, StateError> {
        let now = self.now_ms();
        let fresh_deadline = deadline(now, window)?;
        let mut shard = self.counters.shard(key, now);
        let (current, expires_at_ms) = match shard.map.get(key).filter(|e| e.live(now)) {
            Some(e) => (e.value, e.expires_at_ms),
            None => (0, fresh_deadline),
        };
        let next = current.saturating_add(delta);
        let value_of = |value, at: Option<i64>| CounterValue {
            value,
            expires_in: at.map(|at| Duration::from_millis(u64::try_from(at - now).unwrap_or(0))),
        };
        if limit.is_some_and(|limit| next > limit) {
            return Ok(BoundedAdd::Refused(value_of(current, expires_at_ms)));
        }
        shard.map.insert(
            key.clone(),
            Entry {
                value: next,
                expires_at_ms,
            },
        );
        Ok(BoundedAdd::Applied(value_of(next, expires_at_ms)))
    }
}

#[async_trait]
impl CounterStore for MemoryState {
    async fn add(
        &self,
        key: &StateKey,
        delta: i64,
        window: Option<Duration>,
    ) -> Result<CounterValue, StateError> {
        match self.counter_add(key, delta, None, window)? {
            BoundedAdd::Applied(v) | BoundedAdd::Refused(v) => Ok(v),
        }
    }

    async fn add_within(
        &self,
        key: &StateKey,
        delta: i64,
        limit: i64,
        window: Option<Duration>,
    ) -> Result<BoundedAdd, StateError> {
        self.counter_add(key, delta, Some(limit), window)
    }

    async fn get(&self, key: &StateKey) -> Result<CounterValue, StateError> {
        let now = self.now_ms();
        let shard = self.counters.shard(key, now);
        Ok(match shard.map.get(key).filter(|e| e.live(now)) {
            Some(e) => CounterValue {
                value: e.value,
                expires_in: e.expires_in(now),
            },
            None => CounterValue {
                value: 0,
                expires_in: None,
            },
        })
    }

    async fn reset(&self, key: &StateKey) -> Result<(), StateError> {
        let now = self.now_ms();
        self.counters.shard(key, now).map.remove(key);
        Ok(())
    }
}

#[async_trait]
impl RateLimiter for MemoryState {
    async fn check(
        &self,
        key: &StateKey,
        quota: &RateQuota,
        cost: u32,
    ) -> Result<RateDecision, StateError> {
        Ok(self.gcra(key, quota, cost))
    }

    fn check_now(
        &self,
        key: &StateKey,
        quota: &RateQuota,
        cost: u32,
    ) -> Option<Result<RateDecision, StateError>> {
        Some(Ok(self.gcra(key, quota, cost)))
    }
}

impl MemoryState {
    fn gcra(&self, key: &StateKey, quota: &RateQuota, cost: u32) -> RateDecision {
        let now_us = self.clock.now().as_microsecond();
        let now_ms = now_us / 1000;
        let per_shard_cap = self.limits.max_rate_keys / SHARDS;
        let mut shard = self.rates.shard(key, now_ms);
        if let Some(tat) = shard.map.get_mut(key) {
            // The common case: update in place, no key clone.
            let (decision, new_tat) = quota.decide(now_us, Some(*tat), cost);
            if let Some(new_tat) = new_tat {
                *tat = new_tat;
            }
            return decision;
        }
        let (decision, new_tat) = quota.decide(now_us, None, cost);
        if let Some(tat) = new_tat {
            if shard.map.len() >= per_shard_cap {
                shard.map.retain(|_, tat| !tat.expired(now_ms));
                if shard.map.len() >= per_shard_cap {
                    let victim = shard
                        .map
                        .iter()
                        .min_by_key(|(_, tat)| **tat)
                        .map(|(k, _)| k.clone());
                    if let Some(victim) = victim {
                        shard.map.remove(&victim);
                    }
                }
            }
            shard.map.insert(key.clone(), tat);
        }
        decision
    }
}

fn set_members(live: Vec<(&str, i64)>) -> Vec<SetMember> {
    live.into_iter()
        .map(|(m, at)| SetMember {
            member: m.to_owned(),
            expires_at: Timestamp::from_millisecond(at).unwrap_or(Timestamp::MAX),
        })
        .collect()
}

#[async_trait]
impl BoundedSetStore for MemoryState {
    async fn insert(
        &self,
        owner: &StateKey,
        member: &str,
        expires_at: Timestamp,
        cap: usize,
        when_full: WhenFull,
    ) -> Result<SetInsert, StateError> {
        let now = self.now_ms();
        let at = validate::set_insert(cap, expires_at, now)?;
        let mut shard = self.sets.shard(owner, now);
        let entries = shard.map.entry(owner.clone()).or_default();
        entries.drop_expired(now);
        if entries.move_existing(member, at) {
            return Ok(SetInsert {
                inserted: true,
                evicted: Vec::new(),
            });
        }
        let mut evicted = Vec::new();
        if entries.len() >= cap {
            if when_full == WhenFull::Reject {
                return Ok(SetInsert {
                    inserted: false,
                    evicted,
                });
            }
            evicted = entries.evict_soonest(entries.len() + 1 - cap);
        }
        entries.push_new(member, at);
        Ok(SetInsert {
            inserted: true,
            evicted,
        })
    }

    async fn remove(&self, owner: &StateKey, member: &str) -> Result<bool, StateError> {
        let now = self.now_ms();
        let mut shard = self.sets.shard(owner, now);
        let Some(entries) = shard.map.get_mut(owner) else {
            return Ok(false);
        };
        let was_live = entries.remove(member, now);
        entries.drop_expired(now);
        if entries.is_empty() {
            shard.map.remove(owner);
        }
        Ok(was_live)
    }

    async fn members(&self, owner: &StateKey) -> Result<Vec<SetMember>, StateError> {
        let now = self.now_ms();
        let shard = self.sets.shard(owner, now);
        Ok(shard
            .map
            .get(owner)
            .map(|entries| set_members(entries.live_sorted(now)))
            .unwrap_or_default())
    }

    async fn contains(&self, owner: &StateKey, member: &str) -> Result<bool, StateError> {
        Ok(self.set_contains(owner, member))
    }

    async fn len(&self, owner: &StateKey) -> Result<usize, StateError> {
        let now = self.now_ms();
        let mut shard = self.sets.shard(owner, now);
        let Some(entries) = shard.map.get_mut(owner) else {
            return Ok(0);
        };
        entries.drop_expired(now);
        let n = entries.len();
        if n == 0 {
            shard.map.remove(owner);
        }
        Ok(n)
    }

    async fn clear(&self, owner: &StateKey) -> Result<Vec<String>, StateError> {
        let now = self.now_ms();
        let mut shard = self.sets.shard(owner, now);
        let entries = shard.map.remove(owner).unwrap_or_default();
        Ok(set_members(entries.live_sorted(now))
            .into_iter()
            .map(|m| m.member)
            .collect())
    }
}

#[async_trait]
impl PubSub for MemoryState {
    async fn publish(&self, topic: &StateKey, payload: Bytes) -> Result<(), StateError> {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        // Nobody listens any more: forget the topic.
        if let Some(sender) = topics.get(topic)
            && sender.send(payload).is_err()
        {
            topics.remove(topic);
        }
        Ok(())
    }

    async fn subscribe(&self, topic: &StateKey) -> Result<Subscription, StateError> {
        let mut topics = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        let sender = topics
            .entry(topic.clone())
            .or_insert_with(|| broadcast::channel(self.limits.topic_capacity).0);
        Ok(Subscription::from_receiver(sender.subscribe()))
    }
}

#[async_trait]
impl EventLog for MemoryState {
    async fn append(
        &self,
        key: &StateKey,
        payload: Bytes,
        cap: u32,
        ttl: Duration,
    ) -> Result<LogId, StateError> {
        let ttl_ms = log::check_append(payload.len(), cap, ttl, self.limits.max_log_payload)?;
        let now = self.now_ms();
        let expires_at_ms = now.saturating_add(ttl_ms);
        let clock_ms = u64::try_from(now).unwrap_or(0);
        let per_shard_cap = self.limits.max_logs / SHARDS;
        let mut shard = self.logs.shard(key, now);
        if shard.map.get(key).is_some_and(|l| l.expired(now)) {
            shard.map.remove(key);
        }
        if let Some(l) = shard.map.get_mut(key) {
            let id = l
                .last
                .next_at(clock_ms)
                .ok_or(StateError::InvalidArgument("event log ids exhausted"))?;
            l.entries.push_back(LogEntry { id, payload });
            while l.entries.len() > cap as usize {
                if let Some(gone) = l.entries.pop_front() {
                    l.trimmed = Some(gone.id);
                }
            }
            l.last = id;
            l.expires_at_ms = expires_at_ms;
            return Ok(id);
        }
        if shard.map.len() >= per_shard_cap {
            shard.map.retain(|_, l| !l.expired(now));
            if shard.map.len() >= per_shard_cap {
                let victim = shard
                    .map
                    .iter()
                    .min_by_key(|(_, l)| l.expires_at_ms)
                    .map(|(k, _)| k.clone());
                if let Some(victim) = victim {
                    shard.map.remove(&victim);
                }
            }
        }
        let id = LogId::new(clock_ms, 0);
        shard.map.insert(
            key.clone(),
            Log {
                entries: VecDeque::from([LogEntry { id, payload }]),
                birth: id,
                trimmed: None,
                last: id,
                expires_at_ms,
            },
        );
        Ok(id)
    }

    async fn read_after(
        &self,
        key: &StateKey,
        since: LogId,
        limit: u32,
    ) -> Result<LogRead, StateError> {
        log::check_read(limit)?;
        let now = self.now_ms();
        let shard = self.logs.shard(key, now);
        let Some(l) = shard.map.get(key).filter(|l| !l.expired(now)) else {
            return Ok(LogRead {
                entries: Vec::new(),
                complete: log::read_complete(since, None),
            });
        };
        let start = l.entries.partition_point(|e| e.id <= since);
        Ok(LogRead {
            entries: l
                .entries
                .range(start..)
                .take(limit as usize)
                .cloned()
                .collect(),
            complete: log::read_complete(since, Some((l.birth, l.trimmed, l.last))),
        })
    }

    async fn last_id(&self, key: &StateKey) -> Result<Option<LogId>, StateError> {
        let now = self.now_ms();
        let shard = self.logs.shard(key, now);
        Ok(shard
            .map
            .get(key)
            .filter(|l| !l.expired(now))
            .map(|l| l.last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::state::Namespace;

    const RL: Namespace = Namespace::new("rl");

    #[tokio::test]
    async fn rate_key_space_stays_bounded_under_a_flood_of_keys() {
        let clock = Arc::new(ManualClock::starting_now());
        let state = MemoryState::with_limits(
            clock,
            MemoryLimits {
                max_rate_keys: 640,
                ..MemoryLimits::default()
            },
        );
        let quota = RateQuota::per_minute(10).unwrap();
        for i in 0..20_000u32 {
            let key = StateKey::global(RL, &i.to_string());
            let d = state.check(&key, &quota, 1).await.unwrap();
            assert!(d.allowed);
        }
        assert!(state.rate_key_count() <= 640, "{}", state.rate_key_count());
    }

    const LOG: Namespace = Namespace::new("log");
    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn log_ids_increase_when_the_clock_steps_back() {
        let clock = Arc::new(ManualClock::starting_now());
        let state = MemoryState::new(clock.clone());
        let key = StateKey::global(LOG, "back");
        let a = state.append(&key, Bytes::new(), 10, HOUR).await.unwrap();
        let b = state.append(&key, Bytes::new(), 10, HOUR).await.unwrap();
        assert_eq!((b.ms, b.seq), (a.ms, 1), "same millisecond: next sequence");
        clock.set(clock.now() - jiff::SignedDuration::from_secs(10));
        let c = state.append(&key, Bytes::new(), 10, HOUR).await.unwrap();
        assert!(c > b, "{c} after {b}");
        clock.advance(Duration::from_secs(20));
        let d = state.append(&key, Bytes::new(), 10, HOUR).await.unwrap();
        assert_eq!(d.seq, 0);
        assert!(d.ms > c.ms);
        let all = state.read_after(&key, LogId::ZERO, 100).await.unwrap();
        let ids: Vec<_> = all.entries.iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![a, b, c, d]);
    }

    #[tokio::test]
    async fn log_count_stays_bounded_and_eviction_reads_as_incomplete() {
        let clock = Arc::new(ManualClock::starting_now());
        let state = MemoryState::with_limits(
            clock,
            MemoryLimits {
                max_logs: 64,
                ..MemoryLimits::default()
            },
        );
        let first = StateKey::global(LOG, "first");
        let id = state
            .append(&first, Bytes::from_static(b"x"), 5, Duration::from_secs(1))
            .await
            .unwrap();
        for i in 0..5_000u32 {
            let key = StateKey::global(LOG, &i.to_string());
            state.append(&key, Bytes::new(), 5, HOUR).await.unwrap();
        }
        assert!(state.log_count() <= 64, "{}", state.log_count());
        // The soonest-expiring log went first; its reader is told so.
        let read = state.read_after(&first, id, 10).await.unwrap();
        assert!(read.entries.is_empty());
        assert!(!read.complete);
    }

    #[tokio::test]
    async fn log_payloads_are_bounded_by_the_limits() {
        let clock = Arc::new(ManualClock::starting_now());
        let state = MemoryState::with_limits(
            clock,
            MemoryLimits {
                max_log_payload: 4,
                ..MemoryLimits::default()
            },
        );
        let key = StateKey::global(LOG, "big");
        assert_eq!(
            state
                .append(&key, Bytes::from_static(b"12345"), 5, HOUR)
                .await,
            Err(StateError::InvalidArgument("log payload too large"))
        );
        assert_eq!(state.last_id(&key).await.unwrap(), None, "nothing changed");
        state
            .append(&key, Bytes::from_static(b"1234"), 5, HOUR)
            .await
            .unwrap();
    }
}
