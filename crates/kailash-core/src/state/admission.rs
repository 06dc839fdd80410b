//! Admission: the state checks of one request, run by the backend in one
//! call.
//!
//! A request through the full stack asks the state several things after
//! authentication: is the session still live, may the tenant spend one more
//! API call, do the user's and the tenant's rate limits allow it. Asked one
//! by one, that is one round trip each on Redis. An [`Admission`] collects
//! them as [`Check`]s (in the order the layers would have asked) and the
//! backend answers all of them at once: the in-memory backend synchronously
//! ([`Admit::admit_now`]), Redis with one script. Backends without their own
//! implementation get the same semantics step by step
//! ([`SharedState::admit`]).
//!
//! # Semantics (every backend)
//!
//! Checks run in order and the first one that does not pass stops the plan:
//!
//! - [`Check::Live`] passes while the key/value entry `record` is live
//!   **and** `member` is live in the bounded set `index` (a session: its
//!   record and its user's index); a dead one charges nothing after it;
//! - [`Check::Rate`] charges a GCRA bucket exactly like
//!   [`RateLimiter::check`](super::RateLimiter::check) and stops the plan
//!   when refused;
//! - [`Check::Flag`] reads the key/value entry `key` as a switch (`1` on,
//!   `0` off, `default` when absent) and stops the plan when it is off — a
//!   kill switch such as a tenant's activation override, answered in the
//!   same call as the checks after it;
//! - [`Check::Counter`] adds like
//!   [`CounterStore::add_within`] (or
//!   [`add`](super::CounterStore::add) without a limit) and stops the plan
//!   when refused.
//!
//! When a check stops the plan, the counter additions made by earlier
//! checks are taken back (a quota counts only admitted requests); rate
//! charges made by earlier checks stay, as they would with one rate layer
//! after another. A backend error stops the plan at the check it hit
//! ([`Outcome::Failed`]); later checks are [`Outcome::NotRun`].
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use bytes::Bytes;
//! use jiff::Timestamp;
//! use kailash_core::clock::SystemClock;
//! use kailash_core::state::{
//!     Admission, BoundedSetStore, Check, KeyValueStore, Namespace, Outcome, RateQuota,
//!     SharedState, StateKey, WhenFull,
//! };
//!
//! const NS: Namespace = Namespace::new("doc");
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let state = SharedState::memory(Arc::new(SystemClock));
//! let (record, index) = (StateKey::global(NS, "s-1"), StateKey::global(NS, "alice"));
//! state.kv.set(&record, Bytes::from_static(b"{}"), Some(Duration::from_secs(60))).await?;
//! let later = Timestamp::now() + jiff::SignedDuration::from_secs(60);
//! state.sets.insert(&index, "s-1", later, 3, WhenFull::EvictOldest).await?;
//!
//! let mut plan = Admission::new();
//! plan.push(Check::Live { record, index, member: "s-1".into() })?;
//! plan.push(Check::Rate {
//!     key: StateKey::global(NS, "rl"),
//!     quota: RateQuota::per_second(10)?,
//!     cost: 1,
//! })?;
//! state.admit(&mut plan).await;
//! assert!(plan.admitted());
//! assert!(matches!(plan.outcome(0), Outcome::Live(bytes) if &bytes[..] == b"{}"));
//! # Ok::<(), kailash_core::state::StateError>(())
//! # }).unwrap();
//! ```

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{BoundedAdd, CounterStore, RateDecision, RateQuota, SharedState, StateError, StateKey};

/// The most checks one [`Admission`] holds (a session, a quota, two rate
/// limits, and room for a few of the application's own).
pub const MAX_CHECKS: usize = 6;

/// One state check of a request; see the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Check {
    /// Passes while the key/value entry `record` is live and `member` is a
    /// live member of the bounded set `index`.
    Live {
        /// The key/value entry (a session record).
        record: StateKey,
        /// The bounded set (the user's session index).
        index: StateKey,
        /// The member (the session id).
        member: Box<str>,
    },
    /// Charges `cost` to the GCRA bucket `key` under `quota`.
    Rate {
        /// The bucket.
        key: StateKey,
        /// Its rate.
        quota: RateQuota,
        /// What the request costs.
        cost: u32,
    },
    /// Passes while the key/value entry `key` is the switch value `1`, or
    /// is absent and `default` is true; `0` (or absent with `default`
    /// false) stops the plan. Any other value is corrupt
    /// ([`Outcome::Failed`]).
    Flag {
        /// The key/value entry holding `0` or `1`.
        key: StateKey,
        /// The switch's position while the entry is absent.
        default: bool,
    },
    /// Adds `delta` to the counter `key`, only within `limit` when one is given.
    Counter {
        /// The counter.
        key: StateKey,
        /// What to add (positive).
        delta: i64,
        /// The most the counter may reach.
        limit: Option<i64>,
        /// The window of a fresh counter.
        window: Option<Duration>,
    },
}

/// What one [`Check`] found.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub enum Outcome {
    /// Not run: the plan stopped before it (or has not run yet).
    #[default]
    NotRun,
    /// [`Check::Live`] passed; the record's value.
    Live(Bytes),
    /// [`Check::Live`] found the record or the member gone.
    Dead,
    /// [`Check::Rate`]'s decision (allowed or not).
    Rate(RateDecision),
    /// [`Check::Flag`]'s switch position (on passes).
    Flag(bool),
    /// [`Check::Counter`]'s result (applied or refused). An applied addition
    /// is taken back when a later check stops the plan; the outcome still
    /// says `Applied` then.
    Counter(BoundedAdd),
    /// The backend could not answer.
    Failed(StateError),
}

impl Outcome {
    /// Whether the check passed (a live record, an allowed rate, an applied addition).
    pub fn passed(&self) -> bool {
        match self {
            Outcome::Live(_) => true,
            Outcome::Rate(d) => d.allowed,
            Outcome::Flag(on) => *on,
            Outcome::Counter(BoundedAdd::Applied(_)) => true,
            Outcome::NotRun | Outcome::Dead | Outcome::Counter(_) | Outcome::Failed(_) => false,
        }
    }
}

/// The checks of one request and, once run, their outcomes. Fixed inline
/// storage: building and running a plan allocates nothing beyond its keys.
#[derive(Debug, Clone, Default)]
pub struct Admission {
    checks: [Option<Check>; MAX_CHECKS],
    outcomes: [Outcome; MAX_CHECKS],
    len: usize,
    ran: bool,
}

/// [`Admission::push`] on a full plan: the check is handed back.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("an admission holds at most {MAX_CHECKS} checks")]
pub struct PlanFull(pub Check);

impl From<PlanFull> for StateError {
    fn from(_: PlanFull) -> Self {
        StateError::InvalidArgument("an admission holds at most 6 checks")
    }
}

impl Admission {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a check; returns its index. Fails once [`MAX_CHECKS`] are held
    /// or after the plan ran.
    pub fn push(&mut self, check: Check) -> Result<usize, PlanFull> {
        if self.len == MAX_CHECKS || self.ran {
            return Err(PlanFull(check));
        }
        self.checks[self.len] = Some(check);
        self.len += 1;
        Ok(self.len - 1)
    }

    /// How many checks the plan holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the plan holds no check.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The checks, in order.
    pub fn checks(&self) -> impl Iterator<Item = &Check> {
        self.checks[..self.len].iter().flatten()
    }

    /// The check at `index`.
    pub fn check(&self, index: usize) -> Option<&Check> {
        self.checks.get(index).and_then(Option::as_ref)
    }

    /// The outcome of check `index` ([`Outcome::NotRun`] before the plan
    /// ran, or for an index past the end).
    pub fn outcome(&self, index: usize) -> &Outcome {
        const NOT_RUN: Outcome = Outcome::NotRun;
        self.outcomes.get(index).unwrap_or(&NOT_RUN)
    }

    /// Whether the plan ran.
    pub fn ran(&self) -> bool {
        self.ran
    }

    /// Whether the plan ran and every check passed.
    pub fn admitted(&self) -> bool {
        self.ran && self.outcomes[..self.len].iter().all(Outcome::passed)
    }

    /// Records the outcome of check `index` (for backends).
    pub fn set_outcome(&mut self, index: usize, outcome: Outcome) {
        if let Some(slot) = self.outcomes.get_mut(index) {
            *slot = outcome;
        }
    }

    /// Marks the plan as run (for backends, after the outcomes are set).
    pub fn mark_ran(&mut self) {
        self.ran = true;
    }

    /// Runs the plan one primitive call at a time, with the semantics of
    /// the [module docs](self): for backends without their own [`Admit`].
    pub async fn run_stepwise(&mut self, state: &SharedState) {
        let mut stop = None;
        for i in 0..self.len {
            let Some(check) = &self.checks[i] else {
                continue;
            };
            let outcome = match check {
                Check::Live {
                    record,
                    index,
                    member,
                } => match state.kv.get(record).await {
                    Ok(None) => Outcome::Dead,
                    Ok(Some(bytes)) => match state.sets.contains(index, member).await {
                        Ok(true) => Outcome::Live(bytes),
                        Ok(false) => Outcome::Dead,
                        Err(e) => Outcome::Failed(e),
                    },
                    Err(e) => Outcome::Failed(e),
                },
                Check::Rate { key, quota, cost } => match state.rate.check(key, quota, *cost).await
                {
                    Ok(d) => Outcome::Rate(d),
                    Err(e) => Outcome::Failed(e),
                },
                Check::Flag { key, default } => match state.kv.get(key).await {
                    Ok(value) => flag_outcome(value.as_deref(), *default),
                    Err(e) => Outcome::Failed(e),
                },
                Check::Counter {
                    key,
                    delta,
                    limit,
                    window,
                } => {
                    let result = match limit {
                        Some(limit) => {
                            state
                                .counters
                                .add_within(key, *delta, *limit, *window)
                                .await
                        }
                        None => state
                            .counters
                            .add(key, *delta, *window)
                            .await
                            .map(BoundedAdd::Applied),
                    };
                    match result {
                        Ok(added) => Outcome::Counter(added),
                        Err(e) => Outcome::Failed(e),
                    }
                }
            };
            let passed = outcome.passed();
            self.outcomes[i] = outcome;
            if !passed {
                stop = Some(i);
                break;
            }
        }
        if let Some(stop) = stop {
            self.take_back(&*state.counters, stop).await;
        }
        self.ran = true;
    }

    /// Takes back the counter additions that checks before `upto` applied
    /// (for backends: the earlier charges of a plan that stopped, as the
    /// [module docs](self) require). A failure is logged, not returned:
    /// the refusal stands either way.
    pub async fn take_back(&self, counters: &dyn CounterStore, upto: usize) {
        let upto = upto.min(self.len);
        for (check, outcome) in self.checks[..upto].iter().zip(&self.outcomes[..upto]) {
            if let (
                Some(Check::Counter {
                    key, delta, window, ..
                }),
                Outcome::Counter(BoundedAdd::Applied(_)),
            ) = (check, outcome)
                && let Err(error) = counters.add(key, -delta, *window).await
            {
                tracing::warn!(%error, "could not take back a counter charge of a refused admission");
            }
        }
    }
}

/// The outcome of a [`Check::Flag`] whose entry holds `value` (for backends
/// that read the entry themselves).
pub fn flag_outcome(value: Option<&[u8]>, default: bool) -> Outcome {
    match value {
        None => Outcome::Flag(default),
        Some(b"1") => Outcome::Flag(true),
        Some(b"0") => Outcome::Flag(false),
        Some(_) => Outcome::Failed(StateError::Corrupt(
            "a switch entry is neither 0 nor 1".into(),
        )),
    }
}

/// A backend that runs a whole [`Admission`] at once (see the
/// [module docs](self) for the semantics it must keep).
///
/// Optional: [`SharedState::admit`] runs the plan step by step on the other
/// primitives when the backend offers none. The memory backend answers in
/// process ([`admit_now`](Self::admit_now)); Redis in one script.
#[async_trait]
pub trait Admit: Send + Sync + 'static {
    /// Runs `plan`, setting every outcome and marking it as run.
    async fn admit(&self, plan: &mut Admission);

    /// Runs `plan` synchronously when the backend decides in process;
    /// returns `false` (the default) to mean "ask [`admit`](Self::admit)".
    fn admit_now(&self, plan: &mut Admission) -> bool {
        let _ = plan;
        false
    }
}

impl SharedState {
    /// Runs `plan` on this backend: in one call when it implements [`Admit`],
    /// else one primitive call per check.
    pub async fn admit(&self, plan: &mut Admission) {
        match self.admit_backend() {
            Some(admit) => {
                if !admit.admit_now(plan) {
                    admit.admit(plan).await;
                }
            }
            None => plan.run_stepwise(self).await,
        }
    }

    /// Runs `plan` synchronously when the backend decides in process;
    /// `false` means "await [`admit`](Self::admit)".
    pub fn admit_now(&self, plan: &mut Admission) -> bool {
        self.admit_backend().is_some_and(|a| a.admit_now(plan))
    }

    /// The backend's [`Admit`], while the primitives it would bypass are
    /// still its own: a primitive replaced after construction (a test's
    /// failing counter store) makes admissions run step by step on the
    /// primitives actually in place.
    fn admit_backend(&self) -> Option<&dyn Admit> {
        let admit = self.admit.as_ref()?;
        let at = Arc::as_ptr(admit).cast::<()>();
        let same = Arc::as_ptr(&self.kv).cast::<()>() == at
            && Arc::as_ptr(&self.counters).cast::<()>() == at
            && Arc::as_ptr(&self.rate).cast::<()>() == at
            && Arc::as_ptr(&self.sets).cast::<()>() == at;
        same.then_some(&**admit)
    }
}
