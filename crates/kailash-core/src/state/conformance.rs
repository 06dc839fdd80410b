//! The conformance suite every state backend passes.
//!
//! Each check is a public async function taking a [`Harness`]; the
//! [`state_conformance_tests!`](crate::state_conformance_tests) macro expands
//! to one `#[tokio::test]` per check for a backend factory. The in-memory
//! backend runs it in this crate; `kailash-redis` runs it against a real
//! Redis. Checks use keys unique to the harness, so several runs may share a
//! server, and move the harness's manual clock instead of sleeping.
//!
//! ```no_run
//! use std::sync::Arc;
//! use kailash_core::clock::ManualClock;
//! use kailash_core::state::SharedState;
//! use kailash_core::state::conformance::Harness;
//!
//! // Return None (e.g. when a server URL is not configured) to skip.
//! async fn my_backend() -> Option<Harness> {
//!     let clock = Arc::new(ManualClock::starting_now());
//!     Some(Harness::new(SharedState::memory(clock.clone()), clock))
//! }
//!
//! kailash_core::state_conformance_tests!(my_backend);
//! # fn main() {}
//! ```

// A test suite: panicking on an unexpected error is how a check fails.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::clock::{Clock, ManualClock};

use super::log::{MAX_LOG_CAP, MAX_LOG_PAYLOAD, MAX_LOG_READ};
use super::{
    Admission, BoundedAdd, Check, LogId, LogRead, Namespace, Outcome, RateQuota, SharedState,
    StateError, StateKey, WhenFull,
};

const NS: Namespace = Namespace::new("conformance");

/// A backend under test, the manual clock it decides expiry with, and a
/// run id that keeps this run's keys apart from any other's.
#[derive(Debug, Clone)]
pub struct Harness {
    /// The backend.
    pub state: SharedState,
    /// The clock given to the backend.
    pub clock: Arc<ManualClock>,
    /// A prefix unique to this harness.
    pub run_id: String,
}

impl Harness {
    /// A harness with a fresh random run id.
    pub fn new(state: SharedState, clock: Arc<ManualClock>) -> Self {
        let mut bytes = [0u8; 8];
        // Uniqueness only; a failure to read randomness falls back to time.
        let id = match getrandom::fill(&mut bytes) {
            Ok(()) => u64::from_le_bytes(bytes),
            Err(_) => clock.now().as_nanosecond() as u64,
        };
        Self {
            state,
            clock,
            run_id: format!("{id:016x}"),
        }
    }

    /// A key unique to this run.
    pub fn key(&self, name: &str) -> StateKey {
        StateKey::global(NS, &format!("{}:{name}", self.run_id))
    }
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

const MIN: Duration = Duration::from_secs(60);

/// get/set/delete/set_if_absent and expiry.
pub async fn kv_basics(h: &Harness) {
    let kv = &h.state.kv;
    let k = h.key("kv");
    assert_eq!(kv.get(&k).await.unwrap(), None);
    kv.set(&k, b("one"), None).await.unwrap();
    assert_eq!(kv.get(&k).await.unwrap(), Some(b("one")));
    kv.set(&k, b("two"), None).await.unwrap();
    assert_eq!(kv.get(&k).await.unwrap(), Some(b("two")));
    assert!(!kv.set_if_absent(&k, b("three"), None).await.unwrap());
    assert!(kv.delete(&k).await.unwrap());
    assert!(!kv.delete(&k).await.unwrap());
    assert!(kv.set_if_absent(&k, b("three"), Some(MIN)).await.unwrap());
    assert_eq!(kv.get(&k).await.unwrap(), Some(b("three")));

    // Expiry follows the backend's clock.
    h.clock.advance(Duration::from_secs(59));
    assert_eq!(kv.get(&k).await.unwrap(), Some(b("three")));
    assert!(
        kv.expire(&k, MIN).await.unwrap(),
        "expire refreshes a live key"
    );
    h.clock.advance(Duration::from_secs(59));
    assert_eq!(
        kv.get(&k).await.unwrap(),
        Some(b("three")),
        "expire moved the deadline"
    );
    h.clock.advance(Duration::from_secs(2));
    assert_eq!(kv.get(&k).await.unwrap(), None, "expired");
    assert!(
        !kv.expire(&k, MIN).await.unwrap(),
        "an expired key cannot be refreshed"
    );
    assert!(
        kv.set_if_absent(&k, b("again"), None).await.unwrap(),
        "expired counts as absent"
    );

    assert_eq!(
        kv.set(&k, b("x"), Some(Duration::ZERO)).await,
        Err(StateError::InvalidArgument("ttl must be positive"))
    );
    assert_eq!(
        kv.get(&k).await.unwrap(),
        Some(b("again")),
        "a refused call changes nothing"
    );
    kv.ping().await.unwrap();
}

/// A namespace only the scan check writes.
const SCAN_NS: Namespace = Namespace::new("conformance.scan");

/// scan: every live key of the namespace, over tenants and the global
/// space, and nothing expired or from another namespace.
pub async fn kv_scan(h: &Harness) {
    use std::collections::BTreeSet;
    let kv = &h.state.kv;
    let tenants = [
        crate::TenantId::new("scan-a").unwrap(),
        crate::TenantId::new("scan-b").unwrap(),
    ];
    let mut want = BTreeSet::new();
    // Enough keys for several pages of a Redis SCAN (500 a page).
    for i in 0..1_600 {
        let id = format!("{}:{i}", h.run_id);
        let key = match i % 3 {
            0 => StateKey::global(SCAN_NS, &id),
            n => StateKey::tenant(&tenants[n - 1], SCAN_NS, &id),
        };
        kv.set(&key, b("v"), Some(MIN)).await.unwrap();
        want.insert(key);
    }
    let short = StateKey::global(SCAN_NS, &format!("{}:short", h.run_id));
    kv.set(&short, b("v"), Some(Duration::from_secs(1)))
        .await
        .unwrap();
    let gone = StateKey::global(SCAN_NS, &format!("{}:gone", h.run_id));
    kv.set(&gone, b("v"), None).await.unwrap();
    kv.delete(&gone).await.unwrap();
    kv.set(&h.key("not-scanned"), b("v"), None).await.unwrap();
    h.clock.advance(Duration::from_secs(2));

    let mut seen = BTreeSet::new();
    let mut cursor = super::ScanCursor::START;
    for _ in 0..100_000 {
        let page = kv.scan(SCAN_NS, cursor).await.unwrap();
        for key in page.keys {
            assert!(key.in_namespace(SCAN_NS), "{key} is not in the namespace");
            if key.id().starts_with(&h.run_id) {
                seen.insert(key);
            }
        }
        match page.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert_eq!(seen, want, "every live key once, no expired or deleted key");
}

/// compare_and_swap semantics.
pub async fn kv_compare_and_swap(h: &Harness) {
    let kv = &h.state.kv;
    let k = h.key("cas");
    assert!(
        !kv.compare_and_swap(&k, Some(b"x"), Some(b("y")), None)
            .await
            .unwrap()
    );
    assert!(
        kv.compare_and_swap(&k, None, Some(b("v1")), None)
            .await
            .unwrap()
    );
    assert!(
        !kv.compare_and_swap(&k, None, Some(b("v2")), None)
            .await
            .unwrap()
    );
    assert!(
        !kv.compare_and_swap(&k, Some(b"v0"), Some(b("v2")), None)
            .await
            .unwrap()
    );
    assert_eq!(kv.get(&k).await.unwrap(), Some(b("v1")));
    assert!(
        kv.compare_and_swap(&k, Some(b"v1"), Some(b("v2")), Some(MIN))
            .await
            .unwrap()
    );
    assert_eq!(kv.get(&k).await.unwrap(), Some(b("v2")));
    h.clock.advance(MIN);
    assert!(
        kv.compare_and_swap(&k, None, Some(b("v3")), None)
            .await
            .unwrap(),
        "an expired value counts as absent"
    );
    assert!(
        kv.compare_and_swap(&k, Some(b"v3"), None, None)
            .await
            .unwrap(),
        "None deletes"
    );
    assert_eq!(kv.get(&k).await.unwrap(), None);
    // Binary values survive unchanged.
    let raw = Bytes::from(vec![0u8, 255, 10, 13, 0]);
    kv.set(&k, raw.clone(), None).await.unwrap();
    assert_eq!(kv.get(&k).await.unwrap(), Some(raw));
}

/// take consumes once, also under contention; concurrent CAS has one winner.
pub async fn kv_races(h: &Harness) {
    let k = h.key("race-take");
    h.state.kv.set(&k, b("token"), Some(MIN)).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (state, k) = (h.state.clone(), k.clone());
        tasks.push(tokio::spawn(
            async move { state.kv.take(&k).await.unwrap() },
        ));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap().is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "a taken value is consumed exactly once");

    let k = h.key("race-cas");
    h.state.kv.set(&k, b("gen-0"), None).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (state, k) = (h.state.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            state
                .kv
                .compare_and_swap(
                    &k,
                    Some(b"gen-0"),
                    Some(Bytes::from(format!("next-{i}"))),
                    None,
                )
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "exactly one compare-and-swap wins");
}

/// Counters: windows, negative deltas, reset.
pub async fn counter_windows(h: &Harness) {
    let c = &h.state.counters;
    let k = h.key("counter");
    assert_eq!(c.get(&k).await.unwrap().value, 0);
    let v = c.add(&k, 1, Some(MIN)).await.unwrap();
    assert_eq!(v.value, 1);
    let ttl = v.expires_in.expect("windowed counter expires");
    assert!(ttl <= MIN && ttl >= Duration::from_secs(59), "{ttl:?}");
    h.clock.advance(Duration::from_secs(30));
    let v = c.add(&k, 2, Some(MIN)).await.unwrap();
    assert_eq!(v.value, 3);
    let ttl = v.expires_in.expect("still windowed");
    assert!(
        ttl <= Duration::from_secs(30),
        "the window does not restart: {ttl:?}"
    );
    assert_eq!(c.add(&k, -1, Some(MIN)).await.unwrap().value, 2);
    h.clock.advance(Duration::from_secs(30));
    assert_eq!(c.get(&k).await.unwrap().value, 0, "window over");
    assert_eq!(
        c.add(&k, 5, None).await.unwrap().value,
        5,
        "a new counter after expiry"
    );
    assert_eq!(c.get(&k).await.unwrap().expires_in, None);
    c.reset(&k).await.unwrap();
    assert_eq!(c.get(&k).await.unwrap().value, 0);
}

/// add_within never passes the limit, also under contention.
pub async fn counter_bounded(h: &Harness) {
    let c = &h.state.counters;
    let k = h.key("bounded");
    for expected in 1..=3 {
        match c.add_within(&k, 1, 3, Some(MIN)).await.unwrap() {
            BoundedAdd::Applied(v) => assert_eq!(v.value, expected),
            BoundedAdd::Refused(v) => panic!("refused at {v:?}"),
        }
    }
    match c.add_within(&k, 1, 3, Some(MIN)).await.unwrap() {
        BoundedAdd::Refused(v) => {
            assert_eq!(v.value, 3);
            assert!(
                v.expires_in.is_some(),
                "a refusal says when the window resets"
            );
        }
        BoundedAdd::Applied(v) => panic!("applied past the limit: {v:?}"),
    }
    assert_eq!(
        c.get(&k).await.unwrap().value,
        3,
        "a refusal changes nothing"
    );
    assert!(
        matches!(c.add_within(&k, -2, 3, None).await.unwrap(), BoundedAdd::Applied(v) if v.value == 1)
    );

    let k = h.key("bounded-race");
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (state, k) = (h.state.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            state
                .counters
                .add_within(&k, 1, 10, Some(MIN))
                .await
                .unwrap()
        }));
    }
    let mut applied = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), BoundedAdd::Applied(_)) {
            applied += 1;
        }
    }
    assert_eq!(applied, 10, "exactly the limit is admitted");
    assert_eq!(c.get(&k).await.unwrap().value, 10);
}

/// GCRA: burst, pacing, retry-after, independent keys, exact under contention.
pub async fn rate_limiter(h: &Harness) {
    let rl = &h.state.rate;
    let quota = RateQuota::new(2, Duration::from_secs(1), 3).unwrap();
    let k = h.key("rate");
    for _ in 0..3 {
        assert!(rl.check(&k, &quota, 1).await.unwrap().allowed);
    }
    let denied = rl.check(&k, &quota, 1).await.unwrap();
    assert!(!denied.allowed);
    assert_eq!(denied.remaining, 0);
    assert!(
        denied.retry_after > Duration::ZERO && denied.retry_after <= Duration::from_millis(500)
    );
    assert!(
        rl.check(&h.key("rate-other"), &quota, 1)
            .await
            .unwrap()
            .allowed,
        "keys are independent"
    );
    h.clock.advance(denied.retry_after);
    assert!(
        rl.check(&k, &quota, 1).await.unwrap().allowed,
        "allowed after retry_after"
    );
    assert!(!rl.check(&k, &quota, 1).await.unwrap().allowed);
    h.clock.advance(Duration::from_secs(2));
    let fresh = rl.check(&k, &quota, 1).await.unwrap();
    assert!(fresh.allowed);
    assert_eq!(fresh.remaining, 2, "fully replenished");

    let k = h.key("rate-race");
    let quota = RateQuota::new(1, Duration::from_secs(60), 5).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (state, k) = (h.state.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            state.rate.check(&k, &quota, 1).await.unwrap()
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        if t.await.unwrap().allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 5, "exactly the burst is admitted");
}

/// Bounded sets: cap, eviction order, reject policy, expiry, removal.
pub async fn bounded_sets(h: &Harness) {
    let sets = &h.state.sets;
    let owner = h.key("sessions");
    let now = h.clock.now();
    let at = |secs: i64| now + jiff::SignedDuration::from_secs(secs);
    for (m, secs) in [("s1", 100), ("s2", 200), ("s3", 300)] {
        let r = sets
            .insert(&owner, m, at(secs), 3, WhenFull::EvictOldest)
            .await
            .unwrap();
        assert!(r.inserted && r.evicted.is_empty());
    }
    let r = sets
        .insert(&owner, "s4", at(400), 3, WhenFull::EvictOldest)
        .await
        .unwrap();
    assert_eq!((r.inserted, r.evicted), (true, vec!["s1".to_owned()]));
    let r = sets
        .insert(&owner, "s5", at(500), 3, WhenFull::Reject)
        .await
        .unwrap();
    assert_eq!((r.inserted, r.evicted.len()), (false, 0));
    let r = sets
        .insert(&owner, "s2", at(600), 3, WhenFull::Reject)
        .await
        .unwrap();
    assert!(r.inserted, "re-inserting a member only moves its expiry");
    let names: Vec<_> = sets
        .members(&owner)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.member)
        .collect();
    assert_eq!(names, ["s3", "s4", "s2"], "soonest-expiring first");
    assert!(sets.contains(&owner, "s3").await.unwrap());

    h.clock.advance(Duration::from_secs(301));
    assert!(
        !sets.contains(&owner, "s3").await.unwrap(),
        "expired members leave"
    );
    let r = sets
        .insert(&owner, "s6", at(700), 3, WhenFull::Reject)
        .await
        .unwrap();
    assert!(r.inserted, "expired members do not count against the cap");

    assert!(sets.remove(&owner, "s4").await.unwrap());
    assert!(!sets.remove(&owner, "s4").await.unwrap());
    let mut left = sets.clear(&owner).await.unwrap();
    left.sort();
    assert_eq!(left, ["s2", "s6"]);
    assert!(sets.members(&owner).await.unwrap().is_empty());
    assert_eq!(
        sets.insert(&owner, "x", at(-1), 3, WhenFull::EvictOldest)
            .await,
        Err(StateError::InvalidArgument(
            "member expiry must be in the future"
        ))
    );
    assert_eq!(
        sets.insert(&owner, "x", at(10), 0, WhenFull::EvictOldest)
            .await,
        Err(StateError::InvalidArgument("set cap must be at least 1"))
    );
}

/// `len` counts live members only: expiry (by the backend's clock),
/// removals, evictions and `clear` all count out; an absent set is empty.
pub async fn bounded_set_len(h: &Harness) {
    let sets = &h.state.sets;
    let owner = h.key("len");
    let now = h.clock.now();
    let at = |secs: i64| now + jiff::SignedDuration::from_secs(secs);
    assert_eq!(sets.len(&owner).await.unwrap(), 0, "absent set");
    for (m, secs) in [("a", 100), ("b", 200), ("c", 300), ("d", 400)] {
        sets.insert(&owner, m, at(secs), 10, WhenFull::EvictOldest)
            .await
            .unwrap();
    }
    assert_eq!(sets.len(&owner).await.unwrap(), 4);
    // Moving a member's expiry does not add one.
    sets.insert(&owner, "a", at(500), 10, WhenFull::EvictOldest)
        .await
        .unwrap();
    assert_eq!(sets.len(&owner).await.unwrap(), 4);
    assert!(sets.remove(&owner, "d").await.unwrap());
    assert_eq!(sets.len(&owner).await.unwrap(), 3);
    // Expiry counts out without any write: b (200 s) goes, a moved to 500 s.
    h.clock.advance(Duration::from_secs(201));
    assert_eq!(sets.len(&owner).await.unwrap(), 2, "b expired");
    assert!(sets.contains(&owner, "a").await.unwrap());
    h.clock.advance(Duration::from_secs(100));
    assert_eq!(sets.len(&owner).await.unwrap(), 1, "c expired at 300 s");
    // At the cap an eviction replaces a member: the count stays.
    let now = h.clock.now();
    let at = |secs: i64| now + jiff::SignedDuration::from_secs(secs);
    let r = sets
        .insert(&owner, "e", at(50), 2, WhenFull::EvictOldest)
        .await
        .unwrap();
    assert!(r.inserted && r.evicted.is_empty());
    let r = sets
        .insert(&owner, "f", at(60), 2, WhenFull::EvictOldest)
        .await
        .unwrap();
    assert_eq!(r.evicted, ["e"]);
    assert_eq!(sets.len(&owner).await.unwrap(), 2);
    let r = sets
        .insert(&owner, "g", at(70), 2, WhenFull::Reject)
        .await
        .unwrap();
    assert!(!r.inserted);
    assert_eq!(
        sets.len(&owner).await.unwrap(),
        2,
        "a refused insert adds none"
    );
    sets.clear(&owner).await.unwrap();
    assert_eq!(sets.len(&owner).await.unwrap(), 0);
    // Sets are independent.
    let other = h.key("len-other");
    sets.insert(&other, "x", at(10), 1, WhenFull::EvictOldest)
        .await
        .unwrap();
    assert_eq!(sets.len(&owner).await.unwrap(), 0);
    assert_eq!(sets.len(&other).await.unwrap(), 1);
}

/// A set of hundreds of members (every live session of a deployment)
/// behaves like a small one: eviction order by expiry then member, moves,
/// removals, expiry, the cap and `len`, before and after it shrinks again.
pub async fn bounded_set_large(h: &Harness) {
    const N: i64 = 300;
    let sets = &h.state.sets;
    let owner = h.key("large");
    let now = h.clock.now();
    let at = |secs: i64| now + jiff::SignedDuration::from_secs(secs);
    let name = |i: i64| format!("m{i:03}");
    // Member i expires at 1000 + i seconds; inserted in a scrambled order.
    for k in 0..N {
        let i = (k * 7) % N;
        let r = sets
            .insert(&owner, &name(i), at(1000 + i), 1000, WhenFull::Reject)
            .await
            .unwrap();
        assert!(r.inserted);
    }
    assert_eq!(sets.len(&owner).await.unwrap(), 300);
    let names: Vec<_> = sets
        .members(&owner)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.member)
        .collect();
    assert_eq!(names, (0..N).map(name).collect::<Vec<_>>(), "soonest first");
    // A smaller cap evicts the soonest-expiring, in order.
    let cap = 250usize;
    let r = sets
        .insert(&owner, "late", at(5000), cap, WhenFull::EvictOldest)
        .await
        .unwrap();
    assert_eq!(r.evicted, (0..=50).map(name).collect::<Vec<_>>());
    assert_eq!(sets.len(&owner).await.unwrap(), cap);
    // Ties in expiry are evicted by member name; a moved member is not
    // evicted at its old expiry.
    for (member, grown_cap) in [("tie-b", 251), ("tie-a", 252), ("tie-c", 253)] {
        let r = sets
            .insert(&owner, member, at(1), grown_cap, WhenFull::EvictOldest)
            .await
            .unwrap();
        assert!(r.inserted && r.evicted.is_empty());
    }
    sets.insert(&owner, "tie-c", at(5000), 253, WhenFull::Reject)
        .await
        .unwrap();
    let r = sets
        .insert(&owner, "new", at(3000), 252, WhenFull::EvictOldest)
        .await
        .unwrap();
    assert_eq!(r.evicted, ["tie-a", "tie-b"]);
    assert!(sets.contains(&owner, "tie-c").await.unwrap());
    assert!(sets.remove(&owner, "m299").await.unwrap());
    assert!(!sets.contains(&owner, "m299").await.unwrap());
    assert_eq!(sets.len(&owner).await.unwrap(), 251);
    // Expiry: m051 to m279 are over at 1279 s; m280 to m298, `new`,
    // `late` and `tie-c` remain.
    h.clock.advance(Duration::from_secs(1279));
    assert_eq!(sets.len(&owner).await.unwrap(), 19 + 3);
    assert!(!sets.contains(&owner, "m279").await.unwrap());
    assert!(sets.contains(&owner, "m280").await.unwrap());
    let names: Vec<_> = sets
        .members(&owner)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.member)
        .collect();
    let mut expected: Vec<_> = (280..299).map(name).collect();
    expected.extend(["new", "late", "tie-c"].map(String::from));
    assert_eq!(names, expected);
    // Small again: removals and the count still agree.
    for i in 280..290 {
        assert!(sets.remove(&owner, &name(i)).await.unwrap());
    }
    assert_eq!(sets.len(&owner).await.unwrap(), 12);
    let left = sets.clear(&owner).await.unwrap();
    let mut expected: Vec<_> = (290..299).map(name).collect();
    expected.extend(["new", "late", "tie-c"].map(String::from));
    assert_eq!(
        left, expected,
        "clear returns the live members soonest first"
    );
    assert_eq!(sets.len(&owner).await.unwrap(), 0);
}

/// Publish/subscribe delivers to subscribers of the topic only.
pub async fn pubsub(h: &Harness) {
    let ps = &h.state.pubsub;
    let topic = h.key("topic");
    let other = h.key("topic-other");
    // Publishing with nobody listening is fine.
    ps.publish(&topic, b("lost")).await.unwrap();
    let mut a = ps.subscribe(&topic).await.unwrap();
    let mut b2 = ps.subscribe(&topic).await.unwrap();
    let mut c = ps.subscribe(&other).await.unwrap();
    ps.publish(&topic, b("hello")).await.unwrap();
    ps.publish(&topic, b("world")).await.unwrap();
    let wait = Duration::from_secs(5);
    for sub in [&mut a, &mut b2] {
        let mut first = tokio::time::timeout(wait, sub.recv())
            .await
            .unwrap()
            .unwrap();
        // Published before the subscription: it may still arrive (a
        // cluster forwards publishes between nodes asynchronously), but
        // only first, never after what was published later.
        if first == b("lost") {
            first = tokio::time::timeout(wait, sub.recv())
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(first, b("hello"));
        assert_eq!(
            tokio::time::timeout(wait, sub.recv())
                .await
                .unwrap()
                .unwrap(),
            b("world")
        );
    }
    ps.publish(&other, b("for-c")).await.unwrap();
    assert_eq!(
        tokio::time::timeout(wait, c.recv()).await.unwrap().unwrap(),
        b("for-c")
    );
    drop(a);
    ps.publish(&topic, b("after-drop")).await.unwrap();
    assert_eq!(
        tokio::time::timeout(wait, b2.recv())
            .await
            .unwrap()
            .unwrap(),
        b("after-drop")
    );
}

/// A whole admission: session liveness, a bounded counter and a rate
/// limit in one call, with the documented stop-and-take-back semantics —
/// and the same outcomes from the backend's own [`Admit`](super::Admit)
/// as from the step-by-step default.
pub async fn admission(h: &Harness) {
    for stepwise in [false, true] {
        admission_case(h, stepwise).await;
        flag_case(h, stepwise).await;
    }
}

/// A switch ([`Check::Flag`]) in front of a counter: off stops the plan
/// before the charge, the default answers while the entry is absent, and a
/// value other than `0`/`1` fails rather than guessing.
async fn flag_case(h: &Harness, stepwise: bool) {
    let mode = if stepwise { "stepwise" } else { "admit" };
    let (switch, counter) = (
        h.key(&format!("{mode}:flag")),
        h.key(&format!("{mode}:fctr")),
    );
    let plan_of = |default: bool| {
        let mut plan = Admission::new();
        plan.push(Check::Flag {
            key: switch.clone(),
            default,
        })
        .unwrap();
        plan.push(Check::Counter {
            key: counter.clone(),
            delta: 1,
            limit: Some(100),
            window: Some(MIN),
        })
        .unwrap();
        plan
    };
    let counted = || async { h.state.counters.get(&counter).await.unwrap().value };

    // Absent: the default decides.
    let mut plan = plan_of(true);
    run(h, &mut plan, stepwise).await;
    assert!(plan.admitted(), "{mode}: {plan:?}");
    assert_eq!(plan.outcome(0), &Outcome::Flag(true), "{mode}");
    let mut plan = plan_of(false);
    run(h, &mut plan, stepwise).await;
    assert_eq!(plan.outcome(0), &Outcome::Flag(false), "{mode}");
    assert_eq!(plan.outcome(1), &Outcome::NotRun, "{mode}");
    assert_eq!(counted().await, 1, "{mode}: only the admitted plan charged");

    // Present: the entry overrides the default either way.
    h.state.kv.set(&switch, b("0"), None).await.unwrap();
    let mut plan = plan_of(true);
    run(h, &mut plan, stepwise).await;
    assert_eq!(plan.outcome(0), &Outcome::Flag(false), "{mode}");
    assert!(!plan.admitted(), "{mode}");
    h.state.kv.set(&switch, b("1"), None).await.unwrap();
    let mut plan = plan_of(false);
    run(h, &mut plan, stepwise).await;
    assert!(plan.admitted(), "{mode}: {plan:?}");
    assert_eq!(counted().await, 2, "{mode}");

    // Anything else is corrupt: the plan fails there and charges nothing.
    h.state.kv.set(&switch, b("yes"), None).await.unwrap();
    let mut plan = plan_of(true);
    run(h, &mut plan, stepwise).await;
    assert!(
        matches!(plan.outcome(0), Outcome::Failed(StateError::Corrupt(_))),
        "{mode}: {:?}",
        plan.outcome(0)
    );
    assert!(!plan.admitted(), "{mode}");
    assert_eq!(counted().await, 2, "{mode}");
}

async fn run(h: &Harness, plan: &mut Admission, stepwise: bool) {
    if stepwise {
        plan.run_stepwise(&h.state).await;
    } else {
        h.state.admit(plan).await;
    }
    assert!(plan.ran());
}

async fn admission_case(h: &Harness, stepwise: bool) {
    let mode = if stepwise { "stepwise" } else { "admit" };
    let (record, index) = (h.key(&format!("{mode}:rec")), h.key(&format!("{mode}:idx")));
    let (counter, rate) = (h.key(&format!("{mode}:ctr")), h.key(&format!("{mode}:rl")));
    let quota = RateQuota::new(1, MIN, 2).unwrap();
    let plan_of = |limit: i64| {
        let mut plan = Admission::new();
        plan.push(Check::Live {
            record: record.clone(),
            index: index.clone(),
            member: "s-1".into(),
        })
        .unwrap();
        plan.push(Check::Counter {
            key: counter.clone(),
            delta: 1,
            limit: Some(limit),
            window: Some(MIN),
        })
        .unwrap();
        plan.push(Check::Rate {
            key: rate.clone(),
            quota,
            cost: 1,
        })
        .unwrap();
        plan
    };
    let counted = || async { h.state.counters.get(&counter).await.unwrap().value };

    // No session yet: dead, and nothing after it is charged.
    let mut plan = plan_of(10);
    run(h, &mut plan, stepwise).await;
    assert_eq!(plan.outcome(0), &Outcome::Dead, "{mode}");
    assert_eq!(plan.outcome(1), &Outcome::NotRun, "{mode}");
    assert!(!plan.admitted());
    assert_eq!(counted().await, 0, "{mode}");

    // A live session (record and index member): everything passes.
    h.state
        .kv
        .set(&record, b("{\"s\":1}"), Some(MIN))
        .await
        .unwrap();
    let until = h.clock.now() + jiff::SignedDuration::from_secs(3600);
    h.state
        .sets
        .insert(&index, "s-1", until, 3, WhenFull::EvictOldest)
        .await
        .unwrap();
    let mut plan = plan_of(10);
    run(h, &mut plan, stepwise).await;
    assert!(plan.admitted(), "{mode}: {plan:?}");
    assert_eq!(plan.outcome(0), &Outcome::Live(b("{\"s\":1}")), "{mode}");
    assert!(matches!(plan.outcome(1), Outcome::Counter(BoundedAdd::Applied(v)) if v.value == 1));
    assert!(matches!(plan.outcome(2), Outcome::Rate(d) if d.allowed && d.remaining == 1));

    // The counter at its limit refuses; the rate limit is not charged.
    let mut plan = plan_of(1);
    run(h, &mut plan, stepwise).await;
    assert!(matches!(plan.outcome(1), Outcome::Counter(BoundedAdd::Refused(v)) if v.value == 1));
    assert_eq!(plan.outcome(2), &Outcome::NotRun, "{mode}");
    assert_eq!(counted().await, 1, "{mode}");

    // The rate limit refuses after the counter was charged: the charge is
    // taken back.
    let mut plan = plan_of(10);
    run(h, &mut plan, stepwise).await;
    assert!(plan.admitted(), "{mode}: the burst of 2");
    assert_eq!(counted().await, 2, "{mode}");
    let mut plan = plan_of(10);
    run(h, &mut plan, stepwise).await;
    match plan.outcome(2) {
        Outcome::Rate(d) => {
            assert!(!d.allowed, "{mode}");
            assert!(d.retry_after > Duration::ZERO, "{mode}");
        }
        other => panic!("{mode}: {other:?}"),
    }
    assert!(matches!(
        plan.outcome(1),
        Outcome::Counter(BoundedAdd::Applied(_))
    ));
    assert_eq!(
        counted().await,
        2,
        "{mode}: the refused request's charge was taken back"
    );

    // Revoked (the index member removed): dead at once.
    h.state.sets.remove(&index, "s-1").await.unwrap();
    let mut plan = plan_of(10);
    run(h, &mut plan, stepwise).await;
    assert_eq!(plan.outcome(0), &Outcome::Dead, "{mode}");
    assert_eq!(counted().await, 2, "{mode}");

    // Back in the index, but the record idled out (by the backend's clock).
    h.state
        .sets
        .insert(&index, "s-1", until, 3, WhenFull::EvictOldest)
        .await
        .unwrap();
    h.clock.advance(MIN);
    let mut plan = plan_of(10);
    run(h, &mut plan, stepwise).await;
    assert_eq!(plan.outcome(0), &Outcome::Dead, "{mode}");

    // A plan holds at most MAX_CHECKS checks and runs once.
    let mut plan = Admission::new();
    for _ in 0..super::MAX_CHECKS {
        plan.push(Check::Rate {
            key: h.key(&format!("{mode}:many")),
            quota: RateQuota::per_second(100).unwrap(),
            cost: 1,
        })
        .unwrap();
    }
    assert!(
        plan.push(Check::Rate {
            key: rate.clone(),
            quota,
            cost: 1
        })
        .is_err()
    );
    run(h, &mut plan, stepwise).await;
    assert!(plan.admitted(), "{mode}");
}

const HOUR: Duration = Duration::from_secs(3600);

fn ids(read: &LogRead) -> Vec<LogId> {
    read.entries.iter().map(|e| e.id).collect()
}

/// Appends come back in order with increasing ids (also in one millisecond
/// and after the clock steps back), payloads unchanged.
pub async fn log_append_read(h: &Harness) {
    let log = &h.state.log;
    let k = h.key("log-order");
    let raw = Bytes::from(vec![0u8, 255, 10, 13, 0]);
    let a = log.append(&k, b("one"), 10, HOUR).await.unwrap();
    let b_ = log.append(&k, raw.clone(), 10, HOUR).await.unwrap();
    h.clock
        .set(h.clock.now() - jiff::SignedDuration::from_secs(30));
    let c = log.append(&k, b("three"), 10, HOUR).await.unwrap();
    h.clock.advance(Duration::from_secs(60));
    let d = log.append(&k, b("four"), 10, HOUR).await.unwrap();
    assert!(a < b_ && b_ < c && c < d, "{a} {b_} {c} {d}");
    assert_eq!(
        b_.ms, a.ms,
        "same millisecond: the sequence tells them apart"
    );
    assert_eq!(a.ms, u64::try_from(h.clock.now_millis()).unwrap() - 30_000);
    assert_eq!(log.last_id(&k).await.unwrap(), Some(d));

    let all = log.read_after(&k, LogId::ZERO, 100).await.unwrap();
    assert!(all.complete);
    assert_eq!(ids(&all), vec![a, b_, c, d]);
    let payloads: Vec<_> = all.entries.iter().map(|e| e.payload.clone()).collect();
    assert_eq!(payloads, vec![b("one"), raw, b("three"), b("four")]);

    let after_b = log.read_after(&k, b_, 100).await.unwrap();
    assert!(after_b.complete);
    assert_eq!(ids(&after_b), vec![c, d]);
    let after_last = log.read_after(&k, d, 100).await.unwrap();
    assert!(after_last.complete, "nothing missed after the last id");
    assert!(after_last.entries.is_empty());
}

/// The cap keeps the newest entries; `complete` is false exactly when an
/// entry after `since` was trimmed.
pub async fn log_cap_trimming(h: &Harness) {
    let log = &h.state.log;
    let k = h.key("log-cap");
    let mut all = Vec::new();
    for i in 0..5 {
        all.push(log.append(&k, b("e"), 3, HOUR).await.unwrap());
        h.clock.advance(Duration::from_millis(i + 1));
    }
    let read = log.read_after(&k, LogId::ZERO, 100).await.unwrap();
    assert_eq!(ids(&read), all[2..].to_vec());
    assert!(!read.complete, "entries 0 and 1 were trimmed");
    let read = log.read_after(&k, all[0], 100).await.unwrap();
    assert_eq!(ids(&read), all[2..].to_vec());
    assert!(!read.complete, "entry 1 came after since and was trimmed");
    let read = log.read_after(&k, all[1], 100).await.unwrap();
    assert_eq!(ids(&read), all[2..].to_vec());
    assert!(read.complete, "the last trimmed entry is since itself");
    let read = log.read_after(&k, all[2], 100).await.unwrap();
    assert_eq!(ids(&read), all[3..].to_vec());
    assert!(read.complete);

    // A smaller cap on a later append trims down to it.
    let f = log.append(&k, b("f"), 1, HOUR).await.unwrap();
    let read = log.read_after(&k, all[4], 100).await.unwrap();
    assert_eq!(ids(&read), vec![f]);
    assert!(read.complete);
    let read = log.read_after(&k, all[3], 100).await.unwrap();
    assert_eq!(ids(&read), vec![f]);
    assert!(!read.complete, "entry 4 was trimmed");
}

/// A `since` the log never reached, or older than the log itself, is
/// incomplete; a missing log is empty and complete only for `ZERO`.
pub async fn log_unknown_positions(h: &Harness) {
    let log = &h.state.log;
    let missing = h.key("log-missing");
    assert_eq!(log.last_id(&missing).await.unwrap(), None);
    let read = log.read_after(&missing, LogId::ZERO, 10).await.unwrap();
    assert!(read.entries.is_empty());
    assert!(read.complete, "nothing was ever there to miss");
    let read = log
        .read_after(&missing, LogId::new(5, 0), 10)
        .await
        .unwrap();
    assert!(read.entries.is_empty());
    assert!(!read.complete, "a position in a log that is gone");

    let k = h.key("log-newer");
    let last = log.append(&k, b("x"), 10, HOUR).await.unwrap();
    for since in [
        LogId::new(last.ms, last.seq + 1),
        LogId::new(last.ms + 1_000, 0),
        LogId::new(u64::MAX, u64::MAX),
    ] {
        let read = log.read_after(&k, since, 10).await.unwrap();
        assert!(read.entries.is_empty(), "{since}");
        assert!(!read.complete, "{since} is newer than the last id");
    }
    let older = LogId::new(last.ms - 1, 0);
    let read = log.read_after(&k, older, 10).await.unwrap();
    assert_eq!(ids(&read), vec![last]);
    assert!(!read.complete, "the log began after {older}");
}

/// `limit` pages through a long log without gaps or repeats.
pub async fn log_paging(h: &Harness) {
    let log = &h.state.log;
    let k = h.key("log-paging");
    let mut appended = Vec::new();
    for _ in 0..10 {
        appended.push(log.append(&k, b("p"), 100, HOUR).await.unwrap());
    }
    let (mut since, mut seen) = (LogId::ZERO, Vec::new());
    loop {
        let page = log.read_after(&k, since, 3).await.unwrap();
        assert!(page.complete);
        assert!(page.entries.len() <= 3);
        seen.extend(ids(&page));
        match page.entries.last() {
            Some(e) if page.entries.len() == 3 => since = e.id,
            _ => break,
        }
    }
    assert_eq!(seen, appended);
}

/// A log expires `ttl` after its last append (by the backend's clock); a new
/// append then starts a new log whose readers from the old one are told
/// they missed events.
pub async fn log_expiry(h: &Harness) {
    let log = &h.state.log;
    let k = h.key("log-ttl");
    let first = log.append(&k, b("a"), 10, MIN).await.unwrap();
    h.clock.advance(Duration::from_secs(50));
    let second = log.append(&k, b("b"), 10, MIN).await.unwrap();
    h.clock.advance(Duration::from_secs(50));
    assert_eq!(
        log.last_id(&k).await.unwrap(),
        Some(second),
        "the second append moved the deadline"
    );
    assert_eq!(
        ids(&log.read_after(&k, LogId::ZERO, 10).await.unwrap()),
        vec![first, second]
    );
    h.clock.advance(Duration::from_secs(10));
    assert_eq!(log.last_id(&k).await.unwrap(), None, "expired");
    let read = log.read_after(&k, first, 10).await.unwrap();
    assert!(read.entries.is_empty());
    assert!(!read.complete);

    let third = log.append(&k, b("c"), 10, MIN).await.unwrap();
    assert!(third > second);
    let read = log.read_after(&k, LogId::ZERO, 10).await.unwrap();
    assert_eq!(ids(&read), vec![third], "the expired entries are gone");
    assert!(read.complete);
    let read = log.read_after(&k, second, 10).await.unwrap();
    assert_eq!(ids(&read), vec![third]);
    assert!(!read.complete, "a reader of the expired log missed events");
}

/// Two logs never mix, and a log does not collide with other primitives
/// under the same key.
pub async fn log_isolation(h: &Harness) {
    let log = &h.state.log;
    let (k1, k2) = (h.key("log-iso-1"), h.key("log-iso-2"));
    let mut one = Vec::new();
    let mut two = Vec::new();
    for _ in 0..4 {
        one.push(log.append(&k1, b("1"), 2, HOUR).await.unwrap());
        two.push(log.append(&k2, b("2"), 10, HOUR).await.unwrap());
    }
    let r1 = log.read_after(&k1, LogId::ZERO, 100).await.unwrap();
    let r2 = log.read_after(&k2, LogId::ZERO, 100).await.unwrap();
    assert_eq!(ids(&r1), one[2..].to_vec());
    assert!(!r1.complete);
    assert_eq!(ids(&r2), two);
    assert!(r2.complete, "the other log's cap trimmed nothing here");
    assert!(r1.entries.iter().all(|e| e.payload == b("1")));
    assert!(r2.entries.iter().all(|e| e.payload == b("2")));

    h.state.kv.set(&k1, b("value"), None).await.unwrap();
    h.state.counters.add(&k1, 5, None).await.unwrap();
    assert_eq!(log.last_id(&k1).await.unwrap(), one.last().copied());
    assert_eq!(h.state.kv.get(&k1).await.unwrap(), Some(b("value")));
}

/// Appends racing on one log all land, with distinct increasing ids.
pub async fn log_races(h: &Harness) {
    let k = h.key("log-race");
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let (state, k) = (h.state.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            let id = state
                .log
                .append(&k, Bytes::from(vec![i]), 100, HOUR)
                .await
                .unwrap();
            (id, i)
        }));
    }
    let mut appended = Vec::new();
    for t in tasks {
        appended.push(t.await.unwrap());
    }
    appended.sort();
    let read = h.state.log.read_after(&k, LogId::ZERO, 100).await.unwrap();
    let got: Vec<_> = read.entries.iter().map(|e| (e.id, e.payload[0])).collect();
    assert_eq!(got, appended);
}

/// Out-of-range arguments are refused and change nothing.
pub async fn log_bad_input(h: &Harness) {
    let log = &h.state.log;
    let k = h.key("log-bad");
    let id = log.append(&k, b("ok"), 5, HOUR).await.unwrap();
    let too_big = Bytes::from(vec![0u8; MAX_LOG_PAYLOAD + 1]);
    for (payload, cap, ttl) in [
        (b("x"), 0, HOUR),
        (b("x"), MAX_LOG_CAP + 1, HOUR),
        (b("x"), u32::MAX, HOUR),
        (b("x"), 5, Duration::ZERO),
        (too_big, 5, HOUR),
    ] {
        assert!(
            matches!(
                log.append(&k, payload, cap, ttl).await,
                Err(StateError::InvalidArgument(_))
            ),
            "cap {cap} ttl {ttl:?}"
        );
    }
    for limit in [0, MAX_LOG_READ + 1, u32::MAX] {
        assert!(matches!(
            log.read_after(&k, LogId::ZERO, limit).await,
            Err(StateError::InvalidArgument(_))
        ));
    }
    let read = log.read_after(&k, LogId::ZERO, MAX_LOG_READ).await.unwrap();
    assert_eq!(ids(&read), vec![id], "refused calls changed nothing");
    assert!(read.complete);
}

/// Expands to one `#[tokio::test]` per conformance check for a backend.
///
/// `$factory` is an async function returning `Option<Harness>`; `None` skips
/// the tests (for example when `KAILASH_TEST_REDIS_URL` is unset), printing why.
#[macro_export]
macro_rules! state_conformance_tests {
    ($factory:path) => {
        $crate::state_conformance_tests!(@cases $factory;
            kv_basics, kv_scan, kv_compare_and_swap, kv_races, counter_windows, counter_bounded,
            rate_limiter, bounded_sets, bounded_set_len, bounded_set_large, pubsub, admission, log_append_read, log_cap_trimming,
            log_unknown_positions, log_paging, log_expiry, log_isolation, log_races,
            log_bad_input);
    };
    (@cases $factory:path; $($case:ident),*) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                match $factory().await {
                    Some(harness) => $crate::state::conformance::$case(&harness).await,
                    None => eprintln!(concat!("skipped conformance::", stringify!($case), ": backend not configured")),
                }
            }
        )*
    };
}
