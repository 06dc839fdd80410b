//! [`CacheStore`]: the bounded, shared memory of stored responses.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use jiff::Timestamp;

use crate::clock::{Clock, SystemClock};

use super::config::CacheLimits;
use super::key::Key;

/// A source of the access policy's generation: a number that changes
/// whenever the policy in force changes (kailash-access's `AccessControl`
/// is one). Entries are keyed by it, so an answer made under one policy is
/// never served under another.
pub trait Generation: Send + Sync + 'static {
    /// The generation of the policy in force now.
    fn generation(&self) -> u64;
}

/// One stored response.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// The request field values its `Vary` named, in the order named.
    pub(crate) vary: Vec<(HeaderName, Option<HeaderValue>)>,
    /// When it was stored, and its age then (the response's `Age`).
    pub(crate) stored_at: Timestamp,
    pub(crate) initial_age: u64,
    /// How long it is fresh, in seconds from its generation.
    pub(crate) lifetime: u64,
    pub(crate) etag: Option<HeaderValue>,
    pub(crate) last_modified: Option<Timestamp>,
}

impl Entry {
    /// Its age at `now`, in seconds (RFC 9111 §4.2.3, with the response's
    /// own `Age` as the initial one: the origin is in process).
    pub(crate) fn age(&self, now: Timestamp) -> u64 {
        let resident = now.as_second().saturating_sub(self.stored_at.as_second());
        self.initial_age
            .saturating_add(u64::try_from(resident).unwrap_or(0))
    }

    fn weight(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 32)
            .sum();
        let vary: usize = self
            .vary
            .iter()
            .map(|(k, v)| k.as_str().len() + v.as_ref().map_or(0, HeaderValue::len) + 32)
            .sum();
        self.body.len() + headers + vary + 256
    }
}

struct Slot {
    entry: Arc<Entry>,
    tick: u64,
    weight: usize,
}

#[derive(Default)]
struct Map {
    slots: HashMap<Arc<Key>, Slot>,
    /// Least recently used first.
    order: BTreeMap<u64, Arc<Key>>,
    tick: u64,
    bytes: usize,
}

impl Map {
    fn remove(&mut self, key: &Key) {
        if let Some(slot) = self.slots.remove(key) {
            self.order.remove(&slot.tick);
            self.bytes = self.bytes.saturating_sub(slot.weight);
        }
    }

    fn evict_oldest(&mut self) -> bool {
        let Some((_, key)) = self.order.pop_first() else {
            return false;
        };
        if let Some(slot) = self.slots.remove(&*key) {
            self.bytes = self.bytes.saturating_sub(slot.weight);
        }
        metrics::counter!("kailash_cache_evictions_total").increment(1);
        true
    }
}

pub(crate) struct Shared {
    pub(crate) limits: CacheLimits,
    pub(crate) clock: Arc<dyn Clock>,
    generation: OnceLock<Arc<dyn Generation>>,
    map: Mutex<Map>,
}

/// The stored responses of a [`ResponseCacheLayer`](super::ResponseCacheLayer):
/// bounded by a total byte budget, a per-entry cap and an entry count, the
/// least recently used entry evicted first.
///
/// Cheap to clone (one `Arc`); every clone, and every layer built from it,
/// shares the entries. Lookups take a short lock, never across an
/// `.await`.
#[derive(Clone)]
pub struct CacheStore {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for CacheStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheStore")
            .field("limits", &self.shared.limits)
            .field("entries", &self.len())
            .field("bytes", &self.bytes())
            .finish_non_exhaustive()
    }
}

impl CacheStore {
    /// An empty store within `limits`, on the system clock.
    pub fn new(limits: CacheLimits) -> Self {
        Self::with_clock(limits, Arc::new(SystemClock))
    }

    /// An empty store within `limits`, ageing entries by `clock`.
    pub fn with_clock(limits: CacheLimits, clock: Arc<dyn Clock>) -> Self {
        Self {
            shared: Arc::new(Shared {
                limits,
                clock,
                generation: OnceLock::new(),
                map: Mutex::new(Map::default()),
            }),
        }
    }

    /// Keys every entry by `source`'s generation from now on (the access
    /// policy's; see [`Generation`]). Set once: returns `false`, changing
    /// nothing, when a source is already set.
    pub fn set_generation(&self, source: Arc<dyn Generation>) -> bool {
        self.shared.generation.set(source).is_ok()
    }

    /// Whether a generation source is set.
    pub fn has_generation(&self) -> bool {
        self.shared.generation.get().is_some()
    }

    /// The limits it keeps to.
    pub fn limits(&self) -> &CacheLimits {
        &self.shared.limits
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes its entries are counted as (bodies, header fields and a
    /// fixed overhead per entry).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Drops every entry.
    pub fn clear(&self) {
        let mut map = self.lock();
        map.slots.clear();
        map.order.clear();
        map.bytes = 0;
    }

    pub(crate) fn generation(&self) -> u64 {
        self.shared.generation.get().map_or(0, |g| g.generation())
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Map> {
        self.shared.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry under `key`, if fresh at `now`, marked recently used; a
    /// stale one is dropped.
    pub(crate) fn get(&self, key: &Key, now: Timestamp) -> Option<Arc<Entry>> {
        let mut map = self.lock();
        let map = &mut *map;
        let slot = map.slots.get_mut(key)?;
        if slot.entry.age(now) >= slot.entry.lifetime {
            map.remove(key);
            return None;
        }
        map.tick += 1;
        let tick = map.tick;
        if let Some(k) = map.order.remove(&slot.tick) {
            map.order.insert(tick, k);
        }
        slot.tick = tick;
        Some(slot.entry.clone())
    }

    /// Drops every entry of `target` (host, path and query), whoever it
    /// belongs to: what a successful unsafe request to it leaves stale
    /// (RFC 9111 §4.4). A scan of the entries, made only after writes.
    pub(crate) fn invalidate(&self, target: &str) {
        let mut map = self.lock();
        let doomed: Vec<Arc<Key>> = map
            .slots
            .keys()
            .filter(|k| &*k.target == target)
            .cloned()
            .collect();
        for key in doomed {
            map.remove(&key);
        }
    }

    /// Stores `entry` under `key` (replacing what was there), evicting the
    /// least recently used entries until it fits; an entry over the
    /// per-entry cap or the whole budget is not stored.
    pub(crate) fn insert(&self, key: Key, entry: Entry) -> bool {
        let limits = &self.shared.limits;
        let weight = entry.weight() + key.weight();
        if entry.body.len() > limits.max_entry_bytes || weight > limits.max_bytes {
            return false;
        }
        let mut map = self.lock();
        map.remove(&key);
        while map.bytes + weight > limits.max_bytes || map.slots.len() >= limits.max_entries {
            if !map.evict_oldest() {
                break;
            }
        }
        if map.slots.len() >= limits.max_entries {
            return false;
        }
        map.tick += 1;
        let tick = map.tick;
        let key = Arc::new(key);
        map.order.insert(tick, key.clone());
        map.slots.insert(
            key,
            Slot {
                entry: Arc::new(entry),
                tick,
                weight,
            },
        );
        map.bytes += weight;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Principal, TenantId};
    use proptest::prelude::*;

    fn entry(body: &str, at: Timestamp) -> Entry {
        Entry {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
            vary: Vec::new(),
            stored_at: at,
            initial_age: 0,
            lifetime: 60,
            etag: None,
            last_modified: None,
        }
    }

    fn key(tenant: Option<&str>, who: Option<(&str, &str)>, target: &str) -> Key {
        Key {
            target: target.into(),
            tenant: tenant.map(|t| TenantId::new(t).unwrap()),
            principal: who.map(|(s, sess)| {
                let mut b = Principal::builder(s).session_id(sess);
                if let Some(t) = tenant {
                    b = b.tenant(TenantId::new(t).unwrap());
                }
                b.build()
            }),
            generation: 0,
        }
    }

    #[test]
    fn least_recently_used_goes_first_and_bounds_hold() {
        let now = Timestamp::UNIX_EPOCH;
        let store = CacheStore::new(CacheLimits {
            max_bytes: 1 << 20,
            max_entry_bytes: 1000,
            max_entries: 2,
        });
        assert!(store.insert(key(None, None, "/a"), entry("a", now)));
        assert!(store.insert(key(None, None, "/b"), entry("b", now)));
        assert!(store.get(&key(None, None, "/a"), now).is_some());
        assert!(store.insert(key(None, None, "/c"), entry("c", now)));
        assert_eq!(store.len(), 2);
        assert!(
            store.get(&key(None, None, "/b"), now).is_none(),
            "/b was least recently used"
        );
        assert!(store.get(&key(None, None, "/a"), now).is_some());
        // Over the per-entry cap: not stored.
        assert!(!store.insert(key(None, None, "/big"), entry(&"x".repeat(1001), now)));
        // Stale entries are not served and are dropped.
        let later = now + jiff::SignedDuration::from_secs(60);
        assert!(store.get(&key(None, None, "/a"), later).is_none());
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn the_byte_budget_evicts() {
        let now = Timestamp::UNIX_EPOCH;
        let store = CacheStore::new(CacheLimits {
            max_bytes: 2000,
            max_entry_bytes: 1000,
            max_entries: 100,
        });
        for i in 0..10 {
            assert!(store.insert(
                key(None, None, &format!("/{i}")),
                entry(&"x".repeat(500), now)
            ));
            assert!(store.bytes() <= 2000);
        }
        assert!(store.len() < 4);
        assert!(store.get(&key(None, None, "/9"), now).is_some());
    }

    proptest! {
        /// Whatever the tenants, callers and paths, a lookup only ever
        /// finds the entry stored under its own full key.
        #[test]
        fn entries_never_cross_owners(
            owners in proptest::collection::vec(
                (proptest::option::of("[a-c]{1,2}"),
                 proptest::option::of(("[a-c]{1,2}", "[a-c]{0,2}")),
                 "/[a-c]{0,3}(\\?[a-c=]{0,3})?"),
                1..24,
            )
        ) {
            let now = Timestamp::UNIX_EPOCH;
            let store = CacheStore::new(CacheLimits::default());
            let label = |(t, w, p): &(Option<String>, Option<(String, String)>, String)| {
                format!("{t:?}|{w:?}|{p}")
            };
            let key_of = |(t, w, p): &(Option<String>, Option<(String, String)>, String)| {
                key(t.as_deref(), w.as_ref().map(|(s, x)| (s.as_str(), x.as_str())), p)
            };
            for owner in &owners {
                store.insert(key_of(owner), entry(&label(owner), now));
            }
            for owner in &owners {
                let found = store.get(&key_of(owner), now);
                let found = found.expect("every owner's entry is there");
                let expected = label(owner);
                prop_assert_eq!(&found.body[..], expected.as_bytes());
            }
            // Keys are equal exactly when the owners are: the lookup's
            // comparison, not the hash, keeps owners apart.
            for a in &owners {
                for b in &owners {
                    prop_assert_eq!(key_of(a) == key_of(b), a == b);
                }
            }
            // A caller that stored nothing finds nothing.
            let stranger = (Some("zz".to_owned()), Some(("zz".to_owned(), "z".to_owned())), "/a".to_owned());
            prop_assert!(store.get(&key_of(&stranger), now).is_none());
        }
    }
}
