//! The async state primitives everything stateful is built on.
//!
//! Sessions, refresh-token families, lockout counters, revocations, rate
//! limits, quotas, realtime fan-out and its history all use these six traits, so the same
//! feature runs embedded (the in-memory [`MemoryState`]) or across many
//! gateway instances (the Redis implementation in `kailash-redis`):
//!
//! | primitive | trait | used for |
//! |---|---|---|
//! | key/value with TTL and compare-and-set | [`KeyValueStore`] | sessions, revocations, one-time codes |
//! | windowed counters | [`CounterStore`] | lockout, quotas, per-role execution counts |
//! | GCRA rate limiter | [`RateLimiter`] | request rate limits |
//! | per-owner set with a size cap | [`BoundedSetStore`] | concurrent sessions per user, live sessions in all |
//! | publish/subscribe | [`PubSub`] | realtime fan-out across instances |
//! | capped per-key history with TTL | [`EventLog`] | realtime resume after a reconnect |
//!
//! An [`Admission`] bundles the per-request checks (session liveness, quota,
//! rate limits) so a backend answers them in one call ([`Admit`]).
//!
//! Every operation is atomic: a backend performs it in one step (one Lua
//! script or command on Redis), never as read-then-write from the client.
//! Expiry is decided against the [`Clock`](crate::clock::Clock) the backend was
//! built with, so tests move a manual clock instead of sleeping.
//!
//! Keys are [`StateKey`]s, built either for a tenant or explicitly as global,
//! so tenant-scoped state cannot be written without naming its tenant.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use bytes::Bytes;
//! use kailash_core::clock::SystemClock;
//! use kailash_core::state::{KeyValueStore, MemoryState, Namespace, StateKey};
//! use kailash_core::TenantId;
//!
//! const SESSION: Namespace = Namespace::new("session");
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let state = MemoryState::new(Arc::new(SystemClock));
//! let acme = TenantId::new("acme").unwrap();
//! let key = StateKey::tenant(&acme, SESSION, "s-1");
//! assert_eq!(key.as_str(), "t:acme:session:s-1");
//!
//! state.set(&key, Bytes::from_static(b"alice"), Some(Duration::from_secs(3600))).await?;
//! assert_eq!(state.get(&key).await?, Some(Bytes::from_static(b"alice")));
//! // A compare-and-set that expects another value changes nothing.
//! assert!(!state.compare_and_swap(&key, Some(b"bob"), None, None).await?);
//! # Ok::<(), kailash_core::state::StateError>(())
//! # }).unwrap();
//! ```

pub mod admission;
mod key;
pub mod log;
pub mod memory;
mod set_entries;
mod shared;
pub mod validate;

#[cfg(feature = "conformance")]
pub mod conformance;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use jiff::Timestamp;

pub use admission::{Admission, Admit, Check, MAX_CHECKS, Outcome, PlanFull, flag_outcome};
pub use key::{Namespace, StateKey};
pub use log::{EventLog, LogEntry, LogId, LogIdError, LogRead};
pub use memory::MemoryState;
pub use shared::SharedState;

/// Why a state operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The backend cannot be reached (connection refused, timed out, …).
    /// Each concern decides whether this fails open or closed.
    #[error("state backend unavailable: {0}")]
    Unavailable(String),
    /// The backend answered with an error.
    #[error("state backend error: {0}")]
    Backend(String),
    /// The backend holds a value this implementation cannot read.
    #[error("stored state is corrupt: {0}")]
    Corrupt(String),
    /// The caller passed an argument the operation does not accept.
    #[error("invalid state operation: {0}")]
    InvalidArgument(&'static str),
}

/// Key/value storage with per-key expiry and compare-and-set.
#[async_trait]
pub trait KeyValueStore: Send + Sync + 'static {
    /// The value under `key`, unless absent or expired.
    async fn get(&self, key: &StateKey) -> Result<Option<Bytes>, StateError>;

    /// Stores `value`, replacing any previous value; `ttl` of `None` means no expiry.
    async fn set(
        &self,
        key: &StateKey,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<(), StateError>;

    /// Stores `value` only if `key` is absent (or expired). Returns whether it stored.
    async fn set_if_absent(
        &self,
        key: &StateKey,
        value: Bytes,
        ttl: Option<Duration>,
    ) -> Result<bool, StateError> {
        self.compare_and_swap(key, None, Some(value), ttl).await
    }

    /// Atomically replaces the value when the current one equals `expected`.
    ///
    /// `expected: None` means "only if absent"; `new: None` deletes. `ttl`
    /// applies to the new value. Returns whether the swap happened.
    async fn compare_and_swap(
        &self,
        key: &StateKey,
        expected: Option<&[u8]>,
        new: Option<Bytes>,
        ttl: Option<Duration>,
    ) -> Result<bool, StateError>;

    /// Atomically reads and deletes the value (a one-time token is consumed once).
    async fn take(&self, key: &StateKey) -> Result<Option<Bytes>, StateError>;

    /// Deletes the value. Returns whether there was one.
    async fn delete(&self, key: &StateKey) -> Result<bool, StateError>;

    /// Gives an existing value a new time to live, counted from now. Returns
    /// whether the key existed.
    async fn expire(&self, key: &StateKey, ttl: Duration) -> Result<bool, StateError>;

    /// Checks that the backend answers (used by readiness checks).
    async fn ping(&self) -> Result<(), StateError>;

    /// One page of the live keys in `namespace`, over every tenant and the
    /// global space: what maintenance jobs (re-encryption, migrations) walk.
    ///
    /// Start with [`ScanCursor::START`] and pass each page's
    /// [`next`](ScanPage::next) until it is `None`. Like Redis `SCAN`, a key
    /// present for the whole walk is returned at least once (possibly
    /// twice); a key written or deleted during the walk may or may not be.
    /// Pages hold roughly a backend-chosen number of keys (possibly none
    /// before the end). Never use it on a request path.
    async fn scan(&self, namespace: Namespace, cursor: ScanCursor) -> Result<ScanPage, StateError>;
}

/// Where a [`KeyValueStore::scan`] goes on from; opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanCursor(pub(crate) u64);

impl ScanCursor {
    /// The start of a walk.
    pub const START: Self = Self(0);

    /// A cursor from a backend's own position (for backend implementations).
    pub fn from_backend(position: u64) -> Self {
        Self(position)
    }

    /// The backend's position (for backend implementations).
    pub fn position(self) -> u64 {
        self.0
    }
}

/// One page of a [`KeyValueStore::scan`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanPage {
    /// Keys of the namespace found on this page.
    pub keys: Vec<StateKey>,
    /// Where the walk goes on; `None` once it is complete.
    pub next: Option<ScanCursor>,
}

/// A counter's value and how long its window still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterValue {
    /// The current count (0 for an absent or expired counter).
    pub value: i64,
    /// Time until the counter expires and restarts at zero, if it expires.
    pub expires_in: Option<Duration>,
}

/// The outcome of [`CounterStore::add_within`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundedAdd {
    /// The addition stayed within the limit and was applied; the new value.
    Applied(CounterValue),
    /// The addition would have exceeded the limit; nothing changed. The current value.
    Refused(CounterValue),
}

/// Integer counters that expire a fixed time after they are created
/// (fixed windows), or never.
#[async_trait]
pub trait CounterStore: Send + Sync + 'static {
    /// Adds `delta` (which may be negative). An absent or expired counter
    /// starts at zero and expires `window` from now; an existing counter keeps
    /// its expiry.
    async fn add(
        &self,
        key: &StateKey,
        delta: i64,
        window: Option<Duration>,
    ) -> Result<CounterValue, StateError>;

    /// Adds `delta` only if the result stays `<= limit` (quotas that must be
    /// exact across instances). Window rules as for [`add`](Self::add).
    async fn add_within(
        &self,
        key: &StateKey,
        delta: i64,
        limit: i64,
        window: Option<Duration>,
    ) -> Result<BoundedAdd, StateError>;

    /// The current value (zero when absent or expired).
    async fn get(&self, key: &StateKey) -> Result<CounterValue, StateError>;

    /// Removes the counter.
    async fn reset(&self, key: &StateKey) -> Result<(), StateError>;
}

/// A rate: `burst` requests at once, refilled continuously at `rate` per `period`.
///
/// This is the Generic Cell Rate Algorithm: one request "costs" `period /
/// rate` of time; a request is allowed while the theoretical arrival time
/// stays within `burst` costs of now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateQuota {
    emission_interval_us: u64,
    burst: u32,
}

impl RateQuota {
    /// `rate` requests per `period`, allowing bursts of `burst`.
    ///
    /// Fails when `rate` or `burst` is zero or `period` is shorter than `rate`
    /// microseconds.
    pub fn new(rate: u32, period: Duration, burst: u32) -> Result<Self, StateError> {
        if rate == 0 || burst == 0 {
            return Err(StateError::InvalidArgument(
                "rate and burst must be positive",
            ));
        }
        let period_us = u64::try_from(period.as_micros()).unwrap_or(u64::MAX);
        let emission_interval_us = period_us / u64::from(rate);
        if emission_interval_us == 0 {
            return Err(StateError::InvalidArgument("rate too high for the period"));
        }
        Ok(Self {
            emission_interval_us,
            burst,
        })
    }

    /// `n` per second with a burst of `n`.
    pub fn per_second(n: u32) -> Result<Self, StateError> {
        Self::new(n, Duration::from_secs(1), n)
    }

    /// `n` per minute with a burst of `n`.
    pub fn per_minute(n: u32) -> Result<Self, StateError> {
        Self::new(n, Duration::from_secs(60), n)
    }

    /// The time one request costs, in microseconds.
    pub fn emission_interval_micros(&self) -> u64 {
        self.emission_interval_us
    }

    /// The burst size.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The GCRA step shared by every backend, so they agree to the microsecond.
    ///
    /// `tat` is the stored theoretical arrival time (µs since the epoch) or
    /// `None`; returns the decision and the TAT to store when allowed.
    pub fn decide(&self, now_us: i64, tat: Option<i64>, cost: u32) -> (RateDecision, Option<i64>) {
        let t = i64::try_from(self.emission_interval_us).unwrap_or(i64::MAX);
        let tau = t.saturating_mul(i64::from(self.burst));
        let tat = tat.unwrap_or(now_us).max(now_us);
        let new_tat = tat.saturating_add(t.saturating_mul(i64::from(cost)));
        let allow_at = new_tat.saturating_sub(tau);
        let micros = |us: i64| Duration::from_micros(u64::try_from(us.max(0)).unwrap_or(0));
        if allow_at <= now_us {
            let remaining = (tau - (new_tat - now_us)) / t;
            let decision = RateDecision {
                allowed: true,
                remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
                retry_after: Duration::ZERO,
                reset_after: micros(new_tat - now_us),
            };
            (decision, Some(new_tat))
        } else {
            let remaining = (tau - (tat - now_us)) / t;
            let decision = RateDecision {
                allowed: false,
                remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
                retry_after: micros(allow_at - now_us),
                reset_after: micros(tat - now_us),
            };
            (decision, None)
        }
    }
}

/// The answer of a [`RateLimiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Requests that could still be made right now.
    pub remaining: u32,
    /// When denied, how long until this request would be allowed.
    pub retry_after: Duration,
    /// How long until the limiter is back to a full burst.
    pub reset_after: Duration,
}

/// A GCRA rate limiter keyed by [`StateKey`].
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Charges `cost` requests to `key` under `quota`, if allowed.
    async fn check(
        &self,
        key: &StateKey,
        quota: &RateQuota,
        cost: u32,
    ) -> Result<RateDecision, StateError>;

    /// The same decision without awaiting, for backends that decide in
    /// process; `None` (the default) means "ask [`check`](Self::check)".
    ///
    /// A backend answers either always or never, so a caller charging
    /// several keys never charges one twice. Layers use it to skip boxing a
    /// future on the request path.
    fn check_now(
        &self,
        key: &StateKey,
        quota: &RateQuota,
        cost: u32,
    ) -> Option<Result<RateDecision, StateError>> {
        let _ = (key, quota, cost);
        None
    }
}

/// What [`BoundedSetStore::insert`] does when the set is at its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Evict the member that expires soonest, then insert.
    #[default]
    EvictOldest,
    /// Refuse the insert.
    Reject,
}

/// The outcome of [`BoundedSetStore::insert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetInsert {
    /// Whether the member is now in the set.
    pub inserted: bool,
    /// Members evicted to make room.
    pub evicted: Vec<String>,
}

/// A member of a bounded set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetMember {
    /// The member.
    pub member: String,
    /// When it leaves the set by itself.
    pub expires_at: Timestamp,
}

/// The expiry of a bounded-set member that should stay until it is removed
/// (a workflow owned by a user): a century from `now`. Backends store
/// expiries as numbers, so "never" is a far but finite time.
pub fn until_removed(now: Timestamp) -> Timestamp {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(CENTURY).unwrap_or(Timestamp::MAX)
}

/// Per-owner sets with a size cap whose members expire (sessions per user).
#[async_trait]
pub trait BoundedSetStore: Send + Sync + 'static {
    /// Adds `member` (or moves its expiry if present) to `owner`'s set, which
    /// holds at most `cap` live members. Members past their expiry do not
    /// count and are removed.
    async fn insert(
        &self,
        owner: &StateKey,
        member: &str,
        expires_at: Timestamp,
        cap: usize,
        when_full: WhenFull,
    ) -> Result<SetInsert, StateError>;

    /// Removes a member. Returns whether it was present.
    async fn remove(&self, owner: &StateKey, member: &str) -> Result<bool, StateError>;

    /// Live members, soonest-expiring first.
    async fn members(&self, owner: &StateKey) -> Result<Vec<SetMember>, StateError>;

    /// Whether `member` is live in the set.
    async fn contains(&self, owner: &StateKey, member: &str) -> Result<bool, StateError>;

    /// How many live members the set has (0 for an absent set), without
    /// reading them: cheap also for a set of millions (logarithmic in its
    /// size on every backend; members past their expiry do not count).
    async fn len(&self, owner: &StateKey) -> Result<usize, StateError>;

    /// Removes the whole set, returning the live members it had.
    async fn clear(&self, owner: &StateKey) -> Result<Vec<String>, StateError>;
}

/// Why a [`Subscription`] yielded no message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// The subscriber fell behind and this many messages were skipped.
    #[error("subscriber lagged; {0} messages skipped")]
    Lagged(u64),
    /// The subscription ended (backend closed).
    #[error("subscription closed")]
    Closed,
}

/// A live subscription to one topic. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    rx: tokio::sync::broadcast::Receiver<Bytes>,
}

impl Subscription {
    /// Wraps a broadcast receiver (used by backends).
    pub fn from_receiver(rx: tokio::sync::broadcast::Receiver<Bytes>) -> Self {
        Self { rx }
    }

    /// Waits for the next message.
    pub async fn recv(&mut self) -> Result<Bytes, RecvError> {
        use tokio::sync::broadcast::error::RecvError as B;
        self.rx.recv().await.map_err(|e| match e {
            B::Lagged(n) => RecvError::Lagged(n),
            B::Closed => RecvError::Closed,
        })
    }
}

/// Topic-based publish/subscribe (fire-and-forget; no persistence).
#[async_trait]
pub trait PubSub: Send + Sync + 'static {
    /// Publishes `payload` to every current subscriber of `topic` (on every instance).
    async fn publish(&self, topic: &StateKey, payload: Bytes) -> Result<(), StateError>;

    /// Subscribes to `topic`; messages published after this returns are delivered.
    ///
    /// A message published shortly *before* may still arrive (a Redis
    /// Cluster forwards a publish from the node that took it to the other
    /// nodes asynchronously), never out of order with later ones from the
    /// same publisher.
    async fn subscribe(&self, topic: &StateKey) -> Result<Subscription, StateError>;

    /// Whether subscriptions currently receive what is published, answered
    /// without a round trip (cheap enough for every readiness probe).
    ///
    /// `Err(Unavailable)` while a backend's subscription connection is lost
    /// and being re-established: messages published meanwhile are lost
    /// (pub/sub is at-most-once; [`EventLog`] keeps the history to catch up
    /// from). The default, for backends that cannot lose subscribers (in
    /// process), is `Ok`.
    fn health(&self) -> Result<(), StateError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_a_burst_then_paces() {
        let q = RateQuota::new(10, Duration::from_secs(1), 3).unwrap();
        let mut tat = None;
        let now = 1_000_000_000;
        for expected_remaining in [2, 1, 0] {
            let (d, new_tat) = q.decide(now, tat, 1);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected_remaining);
            tat = new_tat;
        }
        let (d, none) = q.decide(now, tat, 1);
        assert!(!d.allowed);
        assert!(none.is_none());
        assert_eq!(d.retry_after, Duration::from_millis(100));
        // One emission interval later exactly one more is allowed.
        let (d, _) = q.decide(now + 100_000, tat, 1);
        assert!(d.allowed);
    }

    #[test]
    fn gcra_refuses_a_cost_larger_than_the_burst() {
        let q = RateQuota::new(1, Duration::from_secs(1), 2).unwrap();
        let (d, _) = q.decide(0, None, 3);
        assert!(!d.allowed);
    }

    #[test]
    fn quota_rejects_nonsense() {
        assert!(RateQuota::new(0, Duration::from_secs(1), 1).is_err());
        assert!(RateQuota::new(1, Duration::from_secs(1), 0).is_err());
        assert!(RateQuota::new(u32::MAX, Duration::from_millis(1), 1).is_err());
    }
}
