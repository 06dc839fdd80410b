//! The evaluator: rules over signals on an interval, pending → firing →
//! resolved, grouped notifications, one evaluating instance (a lease).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;
use kailash_core::clock::{Clock, SystemClock};
use kailash_core::state::{Namespace, SharedState, StateKey};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::channel::{RetryPolicy, Route, deliver_queue, enqueue};
use super::rule::{AlertRule, AlertStatus, Notification};
use crate::signal::{SignalSource, Signals};

const NAMESPACE: Namespace = Namespace::new("alerting");

/// How the evaluator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertPolicy {
    /// How often the rules are evaluated (default 15 s).
    pub interval: Duration,
    /// How often a still-firing alert is sent again (default 4 h).
    pub repeat_interval: Duration,
    /// Retries of a failed delivery.
    pub retry: RetryPolicy,
    /// Groups waiting per channel before new ones are dropped (counted).
    pub queue: usize,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            repeat_interval: Duration::from_secs(4 * 3600),
            retry: RetryPolicy::default(),
            queue: 256,
        }
    }
}

/// Why [`AlertingBuilder::build`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AlertingError {
    /// Two rules share a name.
    #[error("two rules are named `{0}`")]
    DuplicateRule(String),
    /// Two channels share a name.
    #[error("two channels are named `{0}`")]
    DuplicateChannel(String),
    /// The interval is zero, or the repeat interval shorter than it.
    #[error("the interval must be positive and the repeat interval at least as long")]
    Interval,
    /// The queue or the retry policy is zero.
    #[error("the queue and the retry attempts must be at least 1")]
    Bounds,
}

/// Where a rule stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "lowercase")]
pub enum Phase {
    /// The condition does not hold.
    Inactive,
    /// The condition holds, not yet for the rule's duration.
    Pending {
        /// When it started to hold (ms since the epoch).
        since_ms: i64,
    },
    /// The alert fires.
    Firing {
        /// When the condition started to hold (ms since the epoch).
        since_ms: i64,
        /// When it was last notified (ms since the epoch).
        sent_ms: i64,
    },
}

/// A rule's name and phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleState {
    /// The rule.
    pub rule: String,
    /// Its phase.
    #[serde(flatten)]
    pub phase: Phase,
}

/// Builds an [`Alerting`].
pub struct AlertingBuilder {
    source: String,
    rules: Vec<AlertRule>,
    sources: Vec<Arc<dyn SignalSource>>,
    routes: Vec<Route>,
    policy: AlertPolicy,
    clock: Arc<dyn Clock>,
    lease: Option<(SharedState, String)>,
}

impl std::fmt::Debug for AlertingBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertingBuilder")
            .field("source", &self.source)
            .field("rules", &self.rules.len())
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl AlertingBuilder {
    /// Adds a rule.
    pub fn rule(mut self, rule: AlertRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Adds a source of signals, asked at every evaluation.
    pub fn signals(mut self, source: impl SignalSource) -> Self {
        self.sources.push(Arc::new(source));
        self
    }

    /// Adds a shared source of signals.
    pub fn shared_signals(mut self, source: Arc<dyn SignalSource>) -> Self {
        self.sources.push(source);
        self
    }

    /// Adds a channel.
    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    /// The evaluation and delivery policy.
    pub fn policy(mut self, policy: AlertPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The clock (tests use a manual one).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// With several instances sharing `state`: only the holder of a lease
    /// in it evaluates and notifies, and the rules' phases live there too,
    /// so a new holder neither repeats what the last one sent nor misses a
    /// resolution. `instance` names this instance (unique per process).
    pub fn lease(mut self, state: SharedState, instance: &str) -> Self {
        self.lease = Some((state, instance.to_owned()));
        self
    }

    /// Checks the rules, channels and policy.
    pub fn build(self) -> Result<Alerting, AlertingError> {
        let p = self.policy;
        if p.interval.is_zero() || p.repeat_interval < p.interval {
            return Err(AlertingError::Interval);
        }
        if p.queue == 0 || p.retry.attempts == 0 {
            return Err(AlertingError::Bounds);
        }
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.rules {
            if !seen.insert(r.name()) {
                return Err(AlertingError::DuplicateRule(r.name().to_owned()));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.routes {
            if !seen.insert(r.name()) {
                return Err(AlertingError::DuplicateChannel(r.name().to_owned()));
            }
        }
        let mut queues = Vec::new();
        let mut receivers = Vec::new();
        for _ in &self.routes {
            let (tx, rx) = mpsc::channel(p.queue);
            queues.push(tx);
            receivers.push(rx);
        }
        let phases = vec![Phase::Inactive; self.rules.len()];
        Ok(Alerting {
            inner: Arc::new(Inner {
                source: self.source,
                rules: self.rules,
                sources: self.sources,
                routes: self.routes,
                policy: p,
                clock: self.clock,
                lease: self.lease,
                round: tokio::sync::Mutex::new(Round {
                    phases,
                    leader: false,
                }),
                queues: Mutex::new(Some(queues)),
                receivers: Mutex::new(Some(receivers)),
                workers: Mutex::new(Vec::new()),
                rounds: crate::rounds::Rounds::new(),
            }),
        })
    }
}

struct Round {
    phases: Vec<Phase>,
    leader: bool,
}

type Queues = Vec<mpsc::Sender<Vec<Notification>>>;

struct Inner {
    source: String,
    rules: Vec<AlertRule>,
    sources: Vec<Arc<dyn SignalSource>>,
    routes: Vec<Route>,
    policy: AlertPolicy,
    clock: Arc<dyn Clock>,
    lease: Option<(SharedState, String)>,
    round: tokio::sync::Mutex<Round>,
    queues: Mutex<Option<Queues>>,
    receivers: Mutex<Option<Vec<mpsc::Receiver<Vec<Notification>>>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    rounds: crate::rounds::Rounds,
}

/// The alert evaluator (the seed's `AlertManager`); cheap to clone.
///
/// Every [`interval`](AlertPolicy::interval) it collects the signals of
/// its sources and evaluates each rule: a condition that starts to hold
/// makes the rule *pending*; once it has held for the rule's duration the
/// alert *fires* and every channel taking its severity is notified; while
/// it keeps firing it is notified again every repeat interval; when the
/// condition stops holding a *resolved* notification follows. The
/// notifications of one round are grouped per channel. Each channel has a
/// bounded queue and its own delivery task with retries, so a receiver
/// that is down or slow never blocks an evaluation (or a request); every
/// delivery is counted in `kailash_alert_notifications_total{channel,
/// outcome}` (`sent`, `retried`, `failed`, `dropped`). A firing rule is the
/// gauge `kailash_alert_firing{rule}`.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use kailash_monitoring::alert::{AlertRule, Alerting, RuleState, Phase, Severity};
/// use kailash_monitoring::signal::Signals;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let healthy = Arc::new(AtomicBool::new(true));
/// let h = healthy.clone();
/// let alerting = Alerting::builder("billing")
///     .rule(AlertRule::new("database_down", "database_health == false", Severity::Critical).unwrap())
///     .signals(move |out: &mut Signals| out.flag("database_health", h.load(Ordering::SeqCst)))
///     .build()
///     .unwrap();
/// assert!(alerting.evaluate().await.is_empty());
/// healthy.store(false, Ordering::SeqCst);
/// let sent = alerting.evaluate().await;
/// assert_eq!(sent[0].rule, "database_down");
/// assert!(matches!(alerting.states().await[0].phase, Phase::Firing { .. }));
/// # });
/// ```
#[derive(Clone)]
pub struct Alerting {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Alerting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerting")
            .field("source", &self.inner.source)
            .field("rules", &self.inner.rules.len())
            .field("routes", &self.inner.routes)
            .finish_non_exhaustive()
    }
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Alerting {
    /// A builder; `source` names the service in notifications.
    pub fn builder(source: &str) -> AlertingBuilder {
        AlertingBuilder {
            source: source.to_owned(),
            rules: Vec::new(),
            sources: Vec::new(),
            routes: Vec::new(),
            policy: AlertPolicy::default(),
            clock: Arc::new(SystemClock),
            lease: None,
        }
    }

    /// The rules.
    pub fn rules(&self) -> &[AlertRule] {
        &self.inner.rules
    }

    /// The policy.
    pub fn policy(&self) -> AlertPolicy {
        self.inner.policy
    }

    /// Completed evaluation rounds (on this instance, leading or not).
    pub fn rounds(&self) -> u64 {
        self.inner.rounds.count()
    }

    /// Waits until at least `n` rounds have completed.
    pub async fn wait_for_round(&self, n: u64) {
        self.inner.rounds.wait_for(n).await;
    }

    /// Whether this instance evaluated the last round (always, without a
    /// lease).
    pub async fn is_leader(&self) -> bool {
        self.inner.lease.is_none() || self.inner.round.lock().await.leader
    }

    /// Every rule's phase as this instance knows it.
    pub async fn states(&self) -> Vec<RuleState> {
        let round = self.inner.round.lock().await;
        self.inner
            .rules
            .iter()
            .zip(&round.phases)
            .map(|(r, p)| RuleState {
                rule: r.name().to_owned(),
                phase: *p,
            })
            .collect()
    }

    /// Starts the evaluation loop and the delivery tasks on the current
    /// tokio runtime. Idempotent; `false` outside a runtime or once stopped.
    pub fn start(&self) -> bool {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        match self.inner.rounds.begin() {
            None => return false,
            Some(false) => return true,
            Some(true) => {}
        }
        let receivers = lock(&self.inner.receivers).take().unwrap_or_default();
        let mut workers = lock(&self.inner.workers);
        for (route, rx) in self.inner.routes.iter().zip(receivers) {
            workers.push(handle.spawn(deliver_queue(route.clone(), rx, self.inner.policy.retry)));
        }
        drop(workers);
        let this = self.clone();
        handle.spawn(async move { this.run().await });
        true
    }

    async fn run(self) {
        let mut stop = self.inner.rounds.stop_signal();
        let mut ticker = tokio::time::interval(self.inner.policy.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                _ = ticker.tick() => {}
            }
            self.evaluate().await;
        }
    }

    /// Stops evaluating, gives the lease up (so another instance takes
    /// over at once), and lets queued notifications go out for at most
    /// `grace`; what is still undelivered then is counted as dropped.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.rounds.stop();
        // Waits for a round in progress.
        let mut round = self.inner.round.lock().await;
        if let (Some((state, instance)), true) = (&self.inner.lease, round.leader) {
            let _ = state
                .kv
                .compare_and_swap(&leader_key(), Some(instance.as_bytes()), None, None)
                .await;
            round.leader = false;
        }
        drop(round);
        // Closing the queues ends each delivery task once it is drained.
        drop(lock(&self.inner.queues).take());
        let workers: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.inner.workers));
        let deadline = tokio::time::Instant::now() + grace;
        for worker in workers {
            let abort = worker.abort_handle();
            if tokio::time::timeout_at(deadline, worker).await.is_err() {
                abort.abort();
                tracing::warn!("alert deliveries still pending at shutdown were abandoned");
            }
        }
    }

    /// Runs one evaluation round now (the loop calls this every interval)
    /// and returns the notifications it made (empty when another instance
    /// holds the lease).
    pub async fn evaluate(&self) -> Vec<Notification> {
        let inner = &self.inner;
        let mut round = inner.round.lock().await;
        if !self.lead(&mut round).await {
            drop(round);
            inner.rounds.finish();
            return Vec::new();
        }
        let mut signals = Signals::default();
        for source in &inner.sources {
            source.collect(&mut signals);
        }
        let now = inner.clock.now();
        let now_ms = ms(now);
        let repeat = millis(inner.policy.repeat_interval);
        let mut out = Vec::new();
        let mut changed = false;
        for (rule, phase) in inner.rules.iter().zip(round.phases.iter_mut()) {
            let holds = rule.condition().holds(&signals);
            let notify = |status, since_ms: i64| Notification {
                status,
                rule: rule.name().to_owned(),
                severity: rule.severity(),
                summary: rule.summary_text(),
                condition: rule.condition().to_string(),
                value: signals.get(rule.condition().signal()),
                starts_at: at(since_ms),
                ends_at: (status == AlertStatus::Resolved).then_some(now),
                dedup_key: format!("kailash/{}", rule.name()),
                source: inner.source.clone(),
            };
            let next = match (*phase, holds) {
                (Phase::Inactive, false) => Phase::Inactive,
                (Phase::Pending { .. }, false) => Phase::Inactive,
                (Phase::Firing { since_ms, .. }, false) => {
                    out.push(notify(AlertStatus::Resolved, since_ms));
                    Phase::Inactive
                }
                (Phase::Inactive, true) => Phase::Pending { since_ms: now_ms },
                (p @ Phase::Pending { .. }, true) => p,
                (Phase::Firing { since_ms, sent_ms }, true) => {
                    if now_ms.saturating_sub(sent_ms) >= repeat {
                        out.push(notify(AlertStatus::Firing, since_ms));
                        Phase::Firing {
                            since_ms,
                            sent_ms: now_ms,
                        }
                    } else {
                        Phase::Firing { since_ms, sent_ms }
                    }
                }
            };
            // Pending long enough (or a rule without a duration): fire.
            let next = match next {
                Phase::Pending { since_ms }
                    if now_ms.saturating_sub(since_ms) >= millis(rule.duration()) =>
                {
                    out.push(notify(AlertStatus::Firing, since_ms));
                    Phase::Firing {
                        since_ms,
                        sent_ms: now_ms,
                    }
                }
                p => p,
            };
            changed |= next != *phase;
            *phase = next;
            metrics::gauge!("kailash_alert_firing", "rule" => rule.name().to_owned()).set(
                if matches!(next, Phase::Firing { .. }) {
                    1.0
                } else {
                    0.0
                },
            );
        }
        if changed {
            self.save(&round.phases).await;
        }
        drop(round);
        for n in &out {
            tracing::info!(rule = %n.rule, severity = %n.severity, status = n.status.as_str(), "alert notification");
        }
        self.dispatch(&out);
        inner.rounds.finish();
        out
    }

    /// Groups `out` per channel and queues each group.
    fn dispatch(&self, out: &[Notification]) {
        if out.is_empty() {
            return;
        }
        let queues = lock(&self.inner.queues);
        let Some(queues) = queues.as_ref() else {
            return;
        };
        for (route, tx) in self.inner.routes.iter().zip(queues) {
            let group: Vec<Notification> = out
                .iter()
                .filter(|n| route.takes(n.severity))
                .cloned()
                .collect();
            if !group.is_empty() {
                enqueue(route, tx, group);
            }
        }
    }

    /// Takes or keeps the lease; on taking it, loads the phases the last
    /// holder stored. Without a lease, always leads.
    async fn lead(&self, round: &mut Round) -> bool {
        let Some((state, instance)) = &self.inner.lease else {
            return true;
        };
        let ttl = self.inner.policy.interval.saturating_mul(3);
        let me = Bytes::from(instance.clone());
        let result = if round.leader {
            state
                .kv
                .compare_and_swap(
                    &leader_key(),
                    Some(instance.as_bytes()),
                    Some(me),
                    Some(ttl),
                )
                .await
        } else {
            state.kv.set_if_absent(&leader_key(), me, Some(ttl)).await
        };
        let was = round.leader;
        match result {
            Ok(held) => round.leader = held,
            // The backend cannot say: a holder keeps evaluating (alerts
            // about that very outage still go out), others keep waiting.
            Err(error) => {
                tracing::warn!(%error, leader = round.leader, "alerting lease could not be renewed or taken");
            }
        }
        metrics::gauge!("kailash_alert_leader").set(if round.leader { 1.0 } else { 0.0 });
        if round.leader && !was {
            tracing::info!(instance = %instance, "this instance now evaluates the alert rules");
            self.load(round).await;
        } else if was && !round.leader {
            tracing::info!(instance = %instance, "another instance evaluates the alert rules now");
        }
        round.leader
    }

    async fn load(&self, round: &mut Round) {
        let Some((state, _)) = &self.inner.lease else {
            return;
        };
        let stored = match state.kv.get(&phases_key()).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "could not read the alert rules' stored phases");
                return;
            }
        };
        let Ok(stored) = serde_json::from_slice::<Vec<RuleState>>(&stored) else {
            tracing::warn!("the alert rules' stored phases do not parse; starting inactive");
            return;
        };
        for (rule, phase) in self.inner.rules.iter().zip(round.phases.iter_mut()) {
            *phase = stored
                .iter()
                .find(|s| s.rule == rule.name())
                .map_or(Phase::Inactive, |s| s.phase);
        }
    }

    async fn save(&self, phases: &[Phase]) {
        let Some((state, _)) = &self.inner.lease else {
            return;
        };
        let stored: Vec<RuleState> = self
            .inner
            .rules
            .iter()
            .zip(phases)
            .filter(|(_, p)| **p != Phase::Inactive)
            .map(|(r, p)| RuleState {
                rule: r.name().to_owned(),
                phase: *p,
            })
            .collect();
        let Ok(bytes) = serde_json::to_vec(&stored) else {
            return;
        };
        if let Err(error) = state.kv.set(&phases_key(), Bytes::from(bytes), None).await {
            tracing::warn!(%error, "could not store the alert rules' phases");
        }
    }
}

fn leader_key() -> StateKey {
    StateKey::global(NAMESPACE, "leader")
}

fn phases_key() -> StateKey {
    StateKey::global(NAMESPACE, "phases")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

    use async_trait::async_trait;
    use kailash_core::clock::ManualClock;

    use super::*;
    use crate::alert::channel::{Channel, DeliveryError};
    use crate::alert::rule::Severity;

    /// A signal the test sets (`u64::MAX` bits: absent).
    #[derive(Clone, Default)]
    struct Knob(Arc<AtomicU64>);
    impl Knob {
        fn set(&self, v: f64) {
            self.0.store(v.to_bits(), Ordering::SeqCst);
        }
        fn clear(&self) {
            self.0.store(u64::MAX, Ordering::SeqCst);
        }
        fn source(&self) -> impl SignalSource {
            let k = self.0.clone();
            move |out: &mut Signals| {
                let bits = k.load(Ordering::SeqCst);
                if bits != u64::MAX {
                    out.number("failure_rate", f64::from_bits(bits));
                }
            }
        }
    }

    /// Keeps what it gets; fails the first `fail` deliveries.
    #[derive(Clone, Default)]
    struct Inbox {
        got: Arc<Mutex<Vec<Vec<Notification>>>>,
        fail: Arc<AtomicU32>,
        permanent: bool,
        calls: Arc<AtomicU32>,
    }
    #[async_trait]
    impl Channel for Inbox {
        fn kind(&self) -> &'static str {
            "inbox"
        }
        async fn deliver(&self, group: &[Notification]) -> Result<(), DeliveryError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self
                .fail
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(if self.permanent {
                    DeliveryError::Permanent("HTTP status 404".into())
                } else {
                    DeliveryError::Retry("connect: ConnectionRefused".into())
                });
            }
            lock(&self.got).push(group.to_vec());
            Ok(())
        }
    }

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(
            Timestamp::from_second(1_800_000_000).unwrap(),
        ))
    }

    fn rule(duration: u64) -> AlertRule {
        AlertRule::new("failures", "failure_rate > 0.05", Severity::Critical)
            .unwrap()
            .for_duration(Duration::from_secs(duration))
            .unwrap()
    }

    fn policy() -> AlertPolicy {
        AlertPolicy {
            interval: Duration::from_secs(15),
            repeat_interval: Duration::from_secs(3600),
            ..AlertPolicy::default()
        }
    }

    fn statuses(n: &[Notification]) -> Vec<(&str, AlertStatus)> {
        n.iter().map(|n| (n.rule.as_str(), n.status)).collect()
    }

    #[tokio::test]
    async fn pending_then_firing_after_the_duration_then_repeated_then_resolved() {
        let (knob, clock) = (Knob::default(), clock());
        let start = clock.now();
        let a = Alerting::builder("svc")
            .rule(rule(60))
            .signals(knob.source())
            .policy(policy())
            .clock(clock.clone())
            .build()
            .unwrap();
        knob.set(0.01);
        assert!(a.evaluate().await.is_empty());
        knob.set(0.2);
        assert!(a.evaluate().await.is_empty());
        assert_eq!(
            a.states().await[0].phase,
            Phase::Pending {
                since_ms: ms(start)
            }
        );
        // Held 45 s: still pending.
        for _ in 0..3 {
            clock.advance(Duration::from_secs(15));
            assert!(a.evaluate().await.is_empty());
        }
        // A dip resets the wait.
        knob.set(0.0);
        clock.advance(Duration::from_secs(15));
        assert!(a.evaluate().await.is_empty());
        assert_eq!(a.states().await[0].phase, Phase::Inactive);
        knob.set(0.2);
        let since = clock.now();
        assert!(a.evaluate().await.is_empty());
        clock.advance(Duration::from_secs(60));
        let fired = a.evaluate().await;
        assert_eq!(statuses(&fired), [("failures", AlertStatus::Firing)]);
        let n = &fired[0];
        assert_eq!(n.starts_at, since);
        assert_eq!(n.value, Some(crate::signal::SignalValue::Number(0.2)));
        assert_eq!(
            (n.dedup_key.as_str(), n.source.as_str()),
            ("kailash/failures", "svc")
        );
        assert_eq!(n.ends_at, None);
        // Not again until the repeat interval.
        clock.advance(Duration::from_secs(3599));
        assert!(a.evaluate().await.is_empty());
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            statuses(&a.evaluate().await),
            [("failures", AlertStatus::Firing)]
        );
        // The signal vanishing resolves it, like an absent series.
        knob.clear();
        clock.advance(Duration::from_secs(15));
        let resolved = a.evaluate().await;
        assert_eq!(statuses(&resolved), [("failures", AlertStatus::Resolved)]);
        assert_eq!(resolved[0].starts_at, since);
        assert_eq!(resolved[0].ends_at, Some(clock.now()));
        assert_eq!(resolved[0].value, None);
        assert!(a.evaluate().await.is_empty());
    }

    #[tokio::test]
    async fn a_rule_without_duration_fires_at_once_and_routes_follow_severity() {
        let (knob, clock) = (Knob::default(), clock());
        let (pager, chat) = (Inbox::default(), Inbox::default());
        let a = Alerting::builder("svc")
            .rule(rule(0))
            .rule(AlertRule::new("slow", "failure_rate > 0.01", Severity::Warning).unwrap())
            .signals(knob.source())
            .route(Route::new("pager", &[Severity::Critical], pager.clone()))
            .route(Route::new("chat", &[], chat.clone()))
            .policy(policy())
            .clock(clock.clone())
            .build()
            .unwrap();
        a.start();
        knob.set(0.5);
        let fired = a.evaluate().await;
        assert_eq!(fired.len(), 2);
        a.shutdown(Duration::from_secs(5)).await;
        let pager = lock(&pager.got).clone();
        let chat = lock(&chat.got).clone();
        assert_eq!(pager.len(), 1, "one group");
        assert_eq!(statuses(&pager[0]), [("failures", AlertStatus::Firing)]);
        assert_eq!(chat.len(), 1, "both alerts in one group");
        assert_eq!(chat[0].len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_deliveries_are_retried_with_backoff_and_permanent_ones_are_not() {
        let (knob, clock) = (Knob::default(), clock());
        let flaky = Inbox {
            fail: Arc::new(AtomicU32::new(2)),
            ..Inbox::default()
        };
        let gone = Inbox {
            fail: Arc::new(AtomicU32::new(100)),
            permanent: true,
            ..Inbox::default()
        };
        let a = Alerting::builder("svc")
            .rule(rule(0))
            .signals(knob.source())
            .route(Route::new("flaky", &[], flaky.clone()))
            .route(Route::new("gone", &[], gone.clone()))
            .policy(policy())
            .clock(clock.clone())
            .build()
            .unwrap();
        a.start();
        knob.set(0.5);
        let t0 = tokio::time::Instant::now();
        a.evaluate().await;
        // 1 s then 2 s of backoff; the shutdown grace covers them.
        a.shutdown(Duration::from_secs(30)).await;
        assert!(t0.elapsed() >= Duration::from_secs(3));
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
        assert_eq!(lock(&flaky.got).len(), 1);
        assert_eq!(gone.calls.load(Ordering::SeqCst), 1, "a 4xx is not retried");
        assert!(lock(&gone.got).is_empty());
    }

    /// Counts counter increments by `name{label=value,…}` (this thread only).
    #[derive(Default)]
    struct Counts(Arc<Mutex<std::collections::BTreeMap<String, u64>>>);

    struct Slot(String, Arc<Mutex<std::collections::BTreeMap<String, u64>>>);

    impl metrics::CounterFn for Slot {
        fn increment(&self, n: u64) {
            *lock(&self.1).entry(self.0.clone()).or_default() += n;
        }
        fn absolute(&self, _: u64) {}
    }

    impl metrics::Recorder for Counts {
        fn describe_counter(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_gauge(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_histogram(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn register_counter(
            &self,
            key: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Counter {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            metrics::Counter::from_arc(Arc::new(Slot(name, self.0.clone())))
        }
        fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::noop()
        }
        fn register_histogram(
            &self,
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Histogram {
            metrics::Histogram::noop()
        }
    }

    // Current-thread runtime: the local recorder sees the enqueueing.
    #[tokio::test(start_paused = true)]
    async fn a_stuck_receiver_never_blocks_evaluation_and_overflow_is_dropped() {
        struct Stuck;
        #[async_trait]
        impl Channel for Stuck {
            fn kind(&self) -> &'static str {
                "stuck"
            }
            async fn deliver(&self, _: &[Notification]) -> Result<(), DeliveryError> {
                std::future::pending().await
            }
        }
        let counts = Counts::default();
        let _recorder = metrics::set_default_local_recorder(&counts);
        let (knob, clock) = (Knob::default(), clock());
        let a = Alerting::builder("svc")
            .rule(rule(0))
            .signals(knob.source())
            .route(Route::new("stuck", &[], Stuck))
            .policy(AlertPolicy {
                queue: 2,
                repeat_interval: Duration::from_secs(15),
                ..policy()
            })
            .clock(clock.clone())
            .build()
            .unwrap();
        a.start();
        knob.set(0.5);
        assert_eq!(a.evaluate().await.len(), 1);
        // The delivery task takes that group and hangs on it (the loop's
        // own first round finds nothing due).
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        for _ in 0..9 {
            // Every round notifies (the repeat interval is one round) and
            // returns at once, whatever the receiver does.
            clock.advance(Duration::from_secs(15));
            assert_eq!(a.evaluate().await.len(), 1);
        }
        // One group taken by the hung delivery, two queued, seven dropped.
        let dropped = lock(&counts.0)
            .get("kailash_alert_notifications_total{channel=stuck,outcome=dropped}")
            .copied();
        assert_eq!(dropped, Some(7), "{:?}", lock(&counts.0));
        a.shutdown(Duration::from_secs(1)).await;
    }

    #[tokio::test]
    async fn with_a_lease_exactly_one_instance_notifies_and_a_successor_carries_on() {
        let (knob, clock) = (Knob::default(), clock());
        let state = SharedState::memory(clock.clone());
        let inboxes: Vec<Inbox> = (0..3).map(|_| Inbox::default()).collect();
        let instances: Vec<Alerting> = inboxes
            .iter()
            .enumerate()
            .map(|(i, inbox)| {
                Alerting::builder("svc")
                    .rule(rule(30))
                    .signals(knob.source())
                    .route(Route::new("ops", &[], inbox.clone()))
                    .policy(policy())
                    .clock(clock.clone())
                    .lease(state.clone(), &format!("instance-{i}"))
                    .build()
                    .unwrap()
            })
            .collect();
        for a in &instances {
            a.start();
        }
        knob.set(0.5);
        let mut sent = Vec::new();
        for _ in 0..4 {
            for a in &instances {
                sent.extend(a.evaluate().await);
            }
            clock.advance(Duration::from_secs(15));
        }
        assert_eq!(
            statuses(&sent),
            [("failures", AlertStatus::Firing)],
            "one copy"
        );
        let mut leaders = Vec::new();
        for a in &instances {
            leaders.push(a.is_leader().await);
        }
        assert_eq!(leaders, [true, false, false]);

        // The leader goes away; the next to evaluate takes over with the
        // stored phases: no second "firing", and the resolution is sent.
        instances[0].shutdown(Duration::from_secs(5)).await;
        let mut sent = Vec::new();
        for a in &instances[1..] {
            sent.extend(a.evaluate().await);
        }
        assert!(sent.is_empty(), "{sent:?}");
        assert!(instances[1].is_leader().await);
        knob.set(0.0);
        clock.advance(Duration::from_secs(15));
        for a in &instances[1..] {
            sent.extend(a.evaluate().await);
        }
        assert_eq!(statuses(&sent), [("failures", AlertStatus::Resolved)]);
        for a in &instances[1..] {
            a.shutdown(Duration::from_secs(5)).await;
        }
        let delivered: usize = inboxes.iter().map(|i| lock(&i.got).len()).sum();
        assert_eq!(
            delivered, 2,
            "one firing, one resolved, across all instances"
        );

        // A lapsed lease (the holder died without giving it up) is taken
        // once its time to live runs out.
        let state = SharedState::memory(clock.clone());
        let a = Alerting::builder("svc")
            .rule(rule(0))
            .policy(policy())
            .clock(clock.clone())
            .lease(state.clone(), "a")
            .build()
            .unwrap();
        let b = Alerting::builder("svc")
            .rule(rule(0))
            .policy(policy())
            .clock(clock.clone())
            .lease(state, "b")
            .build()
            .unwrap();
        a.evaluate().await;
        b.evaluate().await;
        assert!(!b.is_leader().await);
        clock.advance(Duration::from_secs(46));
        b.evaluate().await;
        assert!(b.is_leader().await);
    }

    #[test]
    fn nonsense_is_refused_at_build() {
        let b = || Alerting::builder("svc");
        assert_eq!(
            b().rule(rule(0)).rule(rule(5)).build().unwrap_err(),
            AlertingError::DuplicateRule("failures".into())
        );
        assert_eq!(
            b().route(Route::new("x", &[], Inbox::default()))
                .route(Route::new("x", &[], Inbox::default()))
                .build()
                .unwrap_err(),
            AlertingError::DuplicateChannel("x".into())
        );
        for p in [
            AlertPolicy {
                interval: Duration::ZERO,
                ..policy()
            },
            AlertPolicy {
                repeat_interval: Duration::from_secs(1),
                ..policy()
            },
        ] {
            assert_eq!(b().policy(p).build().unwrap_err(), AlertingError::Interval);
        }
        assert_eq!(
            b().policy(AlertPolicy {
                queue: 0,
                ..policy()
            })
            .build()
            .unwrap_err(),
            AlertingError::Bounds
        );
    }
}
