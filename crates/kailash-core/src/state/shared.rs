use std::fmt;
use std::sync::Arc;

use crate::clock::Clock;

use super::{
    Admit, BoundedSetStore, CounterStore, EventLog, KeyValueStore, MemoryState, PubSub, RateLimiter,
};

/// One handle to all six state primitives of a backend, plus its clock.
///
/// Layers and services take a `SharedState` (cheap to clone) and never know
/// which backend is behind it.
///
/// ```
/// use std::sync::Arc;
/// use kailash_core::clock::SystemClock;
/// use kailash_core::state::SharedState;
///
/// let state = SharedState::memory(Arc::new(SystemClock));
/// assert_eq!(state.backend_name(), "memory");
/// ```
#[derive(Clone)]
pub struct SharedState {
    /// Key/value store.
    pub kv: Arc<dyn KeyValueStore>,
    /// Counters.
    pub counters: Arc<dyn CounterStore>,
    /// Rate limiter.
    pub rate: Arc<dyn RateLimiter>,
    /// Bounded sets.
    pub sets: Arc<dyn BoundedSetStore>,
    /// Publish/subscribe.
    pub pubsub: Arc<dyn PubSub>,
    /// Capped per-key event history.
    pub log: Arc<dyn EventLog>,
    /// The clock the backend decides expiry with.
    pub clock: Arc<dyn Clock>,
    /// Runs a whole admission at once (see [`Admit`]); `None` runs it one
    /// primitive call per check.
    pub(super) admit: Option<Arc<dyn Admit>>,
    backend: &'static str,
}

impl SharedState {
    /// Bundles one backend object that implements every primitive.
    pub fn from_backend<B>(backend: Arc<B>, clock: Arc<dyn Clock>, name: &'static str) -> Self
    where
        B: KeyValueStore + CounterStore + RateLimiter + BoundedSetStore + PubSub + EventLog,
    {
        Self {
            kv: backend.clone(),
            counters: backend.clone(),
            rate: backend.clone(),
            sets: backend.clone(),
            pubsub: backend.clone(),
            log: backend,
            clock,
            admit: None,
            backend: name,
        }
    }

    /// Runs admissions ([`SharedState::admit`]) with `admit` (one call per
    /// request) instead of one primitive call per check. `admit` must be
    /// the object behind the primitives (as `MemoryState` and `RedisState`
    /// are); while any primitive field is another object, admissions run
    /// step by step on the fields.
    #[must_use]
    pub fn with_admit(mut self, admit: Arc<dyn Admit>) -> Self {
        self.admit = Some(admit);
        self
    }

    /// The embedded in-memory backend with default limits.
    pub fn memory(clock: Arc<dyn Clock>) -> Self {
        let backend = Arc::new(MemoryState::new(clock.clone()));
        Self::from_backend(backend.clone(), clock, "memory").with_admit(backend)
    }

    /// A short name of the backend (`memory`, `redis`), for logs and health output.
    pub fn backend_name(&self) -> &'static str {
        self.backend
    }
}

impl fmt::Debug for SharedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedState")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}
