//! The background runner: checks on an interval, thresholds, stored state.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::watch;

use super::{CheckResult, HealthRegistry, HealthReport, Probe, worse};
use crate::signal::{SignalSource, Signals};

/// How a [`HealthRunner`] runs its checks: the seed's
/// `check_interval_seconds = 30`, `failure_threshold = 3`,
/// `recovery_threshold = 2` by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// How often every check runs.
    pub interval: Duration,
    /// Consecutive failures that flip a passing check to failing.
    pub failure_threshold: u32,
    /// Consecutive successes that flip a failing check back to passing.
    pub recovery_threshold: u32,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            failure_threshold: 3,
            recovery_threshold: 2,
        }
    }
}

/// Why a [`HealthPolicy`] was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// The interval is zero.
    ZeroInterval,
    /// A threshold is zero.
    ZeroThreshold,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ZeroInterval => "the health check interval must be positive",
            Self::ZeroThreshold => "health check thresholds must be at least 1",
        })
    }
}

impl std::error::Error for PolicyError {}

impl HealthPolicy {
    /// Refuses a zero interval or threshold.
    pub fn check(&self) -> Result<(), PolicyError> {
        if self.interval.is_zero() {
            return Err(PolicyError::ZeroInterval);
        }
        if self.failure_threshold == 0 || self.recovery_threshold == 0 {
            return Err(PolicyError::ZeroThreshold);
        }
        Ok(())
    }
}

/// What the runner knows about one check.
#[derive(Debug, Clone, Default)]
struct CheckState {
    /// `None` until the first run: the first result decides the state.
    up: Option<bool>,
    failures: u32,
    successes: u32,
    last_error: Option<String>,
    value: Option<f64>,
    threshold: Option<f64>,
    duration_ms: u64,
}

impl CheckState {
    fn record(&mut self, probe: Probe, elapsed: Duration, policy: &HealthPolicy) {
        self.value = probe.value;
        self.threshold = probe.threshold;
        self.duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        match probe.result {
            Ok(()) => {
                self.successes = self.successes.saturating_add(1);
                self.failures = 0;
                match self.up {
                    None => self.up = Some(true),
                    Some(false) if self.successes >= policy.recovery_threshold => {
                        self.up = Some(true);
                        self.last_error = None;
                    }
                    _ => {}
                }
                if self.up == Some(true) {
                    self.last_error = None;
                }
            }
            Err(error) => {
                self.failures = self.failures.saturating_add(1);
                self.successes = 0;
                self.last_error = Some(error);
                match self.up {
                    None => self.up = Some(false),
                    Some(true) if self.failures >= policy.failure_threshold => {
                        self.up = Some(false);
                    }
                    _ => {}
                }
            }
        }
    }
}

struct Inner {
    registry: HealthRegistry,
    policy: HealthPolicy,
    states: Mutex<Vec<CheckState>>,
    rounds: crate::rounds::Rounds,
}

/// Runs a [`HealthRegistry`]'s checks in the background and keeps their
/// state; cheap to clone (clones share the state).
///
/// Every `interval` all checks run concurrently, each bounded by the
/// registry's timeout. A passing check flips to failing only after
/// `failure_threshold` consecutive failures, and back after
/// `recovery_threshold` consecutive successes. **The first result after the
/// start decides at once** (there is no earlier state to keep), so a fresh
/// instance is ready only once its readiness checks have actually passed,
/// and a dependency down at start makes it not ready at once.
///
/// [`report`](Self::report) reads the stored state and never runs a
/// check. After each round every check's state is recorded as the gauge
/// `kailash_health_check_up{check}` (1 or 0) and, for a measuring check,
/// `kailash_health_check_value{check}`. As a [`SignalSource`] the runner
/// reports `<check>_health` for every check that has run, and its value
/// under the check's own name for a measuring check (`memory_usage`).
///
/// The task stops on [`stop`](Self::stop), or when every clone is dropped.
///
/// ```
/// use std::time::Duration;
/// use kailash_monitoring::health::{HealthPolicy, HealthRegistry, HealthRunner, from_fn};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let registry = HealthRegistry::new()
///     .required("state", from_fn(|| async { Ok(()) }))
///     .optional("payments_api", from_fn(|| async { Err("503 from upstream".to_owned()) }));
/// let runner = HealthRunner::new(registry, HealthPolicy::default()).unwrap();
/// runner.start();
/// runner.wait_for_round(1).await;
/// let report = runner.report();
/// assert!(report.is_ready());
/// assert_eq!(report.status, "degraded");
/// runner.stop();
/// # });
/// ```
#[derive(Clone)]
pub struct HealthRunner {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HealthRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthRunner")
            .field("registry", &self.inner.registry)
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

impl HealthRunner {
    /// A runner for `registry` (not started yet); refuses an invalid policy.
    pub fn new(registry: HealthRegistry, policy: HealthPolicy) -> Result<Self, PolicyError> {
        policy.check()?;
        let states = vec![CheckState::default(); registry.names().len()];
        Ok(Self {
            inner: Arc::new(Inner {
                registry,
                policy,
                states: Mutex::new(states),
                rounds: crate::rounds::Rounds::new(),
            }),
        })
    }

    /// The policy.
    pub fn policy(&self) -> HealthPolicy {
        self.inner.policy
    }

    /// The registry whose checks run.
    pub fn registry(&self) -> &HealthRegistry {
        &self.inner.registry
    }

    /// Starts the background task on the current tokio runtime (the first
    /// round runs at once). Idempotent; returns `false` (and starts
    /// nothing) outside a runtime or after [`stop`](Self::stop).
    pub fn start(&self) -> bool {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        match self.inner.rounds.begin() {
            None => return false,
            Some(false) => return true,
            Some(true) => {}
        }
        let weak = Arc::downgrade(&self.inner);
        let stop = self.inner.rounds.stop_signal();
        let interval = self.inner.policy.interval;
        handle.spawn(run(weak, stop, interval));
        true
    }

    /// Stops the background task (the stored state stays readable).
    pub fn stop(&self) {
        self.inner.rounds.stop();
    }

    /// Completed rounds so far.
    pub fn rounds(&self) -> u64 {
        self.inner.rounds.count()
    }

    /// Waits until at least `n` rounds have completed (forever if the
    /// runner never runs: bound it with a timeout).
    pub async fn wait_for_round(&self, n: u64) {
        self.inner.rounds.wait_for(n).await;
    }

    /// The report from the stored state: runs no check. A check that has
    /// not run yet fails (`not checked yet`).
    pub fn report(&self) -> HealthReport {
        let states = self
            .inner
            .states
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone());
        let mut status = "ok";
        let checks = self
            .inner
            .registry
            .registered()
            .zip(states)
            .map(|((name, required), st)| {
                let up = st.up == Some(true);
                if !up {
                    status = worse(status, required);
                }
                let error = match st.up {
                    None => Some("not checked yet".to_owned()),
                    Some(_) => st.last_error,
                };
                CheckResult {
                    name: name.to_owned(),
                    required,
                    status: if up { "pass" } else { "fail" },
                    duration_ms: st.duration_ms,
                    error,
                    consecutive_failures: Some(st.failures),
                    consecutive_successes: Some(st.successes),
                    value: st.value,
                    threshold: st.threshold,
                }
            })
            .collect();
        HealthReport { status, checks }
    }

    fn record(&self, probes: Vec<(Probe, Duration)>) {
        let policy = self.inner.policy;
        let mut states = match self.inner.states.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        for (((name, _), state), (probe, elapsed)) in self
            .inner
            .registry
            .registered()
            .zip(states.iter_mut())
            .zip(probes)
        {
            let was = state.up;
            state.record(probe, elapsed, &policy);
            if was.is_some() && was != state.up {
                tracing_state_change(name, state);
            }
            let check = name.to_owned();
            metrics::gauge!("kailash_health_check_up", "check" => check.clone())
                .set(if state.up == Some(true) { 1.0 } else { 0.0 });
            if let Some(value) = state.value {
                metrics::gauge!("kailash_health_check_value", "check" => check).set(value);
            }
        }
        drop(states);
        self.inner.rounds.finish();
    }
}

/// One log line per flip, never per run (the error is the check's own
/// short reason, already free of secrets).
fn tracing_state_change(name: &str, state: &CheckState) {
    if state.up == Some(true) {
        tracing::info!(check = name, "health check passes again");
    } else {
        tracing::warn!(check = name, error = ?state.last_error, "health check now failing");
    }
}

async fn run(weak: Weak<Inner>, mut stop: watch::Receiver<bool>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            _ = ticker.tick() => {}
        }
        let Some(inner) = weak.upgrade() else { return };
        let runner = HealthRunner { inner };
        let registry = runner.inner.registry.clone();
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            probes = registry.round() => runner.record(probes),
        }
    }
}

impl SignalSource for HealthRunner {
    fn collect(&self, out: &mut Signals) {
        let Ok(states) = self.inner.states.lock() else {
            return;
        };
        for ((name, _), st) in self.inner.registry.registered().zip(states.iter()) {
            if let Some(up) = st.up {
                out.flag(format!("{name}_health"), up);
            }
            if let Some(value) = st.value {
                out.number(name, value);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use super::*;
    use crate::health::from_fn;
    use crate::signal::SignalValue;

    /// A readiness check whose outcome the test sets, counting its runs.
    fn switch() -> (Arc<AtomicBool>, Arc<AtomicU32>, HealthRegistry) {
        let (ok, runs) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicU32::new(0)));
        let (o, r) = (ok.clone(), runs.clone());
        let registry = HealthRegistry::new().required(
            "db",
            from_fn(move || {
                r.fetch_add(1, Ordering::SeqCst);
                let ok = o.load(Ordering::SeqCst);
                async move {
                    if ok {
                        Ok(())
                    } else {
                        Err("connection refused".to_owned())
                    }
                }
            }),
        );
        (ok, runs, registry)
    }

    fn db(runner: &HealthRunner) -> CheckResult {
        runner.report().checks.remove(0)
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_crosses_its_thresholds_both_ways() {
        let (ok, runs, registry) = switch();
        let runner = HealthRunner::new(registry, HealthPolicy::default()).unwrap();
        // Not run yet: not ready, said so.
        assert_eq!(db(&runner).error.as_deref(), Some("not checked yet"));
        assert!(!runner.report().is_ready());
        assert!(runner.start());
        runner.wait_for_round(1).await;
        assert!(runner.report().is_ready());

        ok.store(false, Ordering::SeqCst);
        for round in 2..=3 {
            runner.wait_for_round(round).await;
            let c = db(&runner);
            assert_eq!(
                c.status, "pass",
                "round {round}: below the failure threshold"
            );
            assert_eq!(
                c.consecutive_failures,
                Some(u32::try_from(round).unwrap() - 1)
            );
            assert_eq!(c.error.as_deref(), Some("connection refused"));
        }
        runner.wait_for_round(4).await;
        let c = db(&runner);
        assert_eq!((c.status, c.consecutive_failures), ("fail", Some(3)));
        assert_eq!(runner.report().status, "fail");

        ok.store(true, Ordering::SeqCst);
        runner.wait_for_round(5).await;
        let c = db(&runner);
        assert_eq!((c.status, c.consecutive_successes), ("fail", Some(1)));
        runner.wait_for_round(6).await;
        let c = db(&runner);
        assert_eq!(
            (c.status, c.consecutive_successes, c.error),
            ("pass", Some(2), None)
        );
        assert_eq!(runs.load(Ordering::SeqCst), 6);

        // Reading the state runs nothing.
        for _ in 0..50 {
            let _ = runner.report();
        }
        assert_eq!(runs.load(Ordering::SeqCst), 6);
        runner.stop();
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_result_decides_at_once() {
        let (ok, _, registry) = switch();
        ok.store(false, Ordering::SeqCst);
        let runner = HealthRunner::new(registry, HealthPolicy::default()).unwrap();
        runner.start();
        runner.wait_for_round(1).await;
        assert_eq!(db(&runner).status, "fail");
        ok.store(true, Ordering::SeqCst);
        runner.wait_for_round(2).await;
        assert_eq!(db(&runner).status, "fail", "recovery needs two successes");
        runner.wait_for_round(3).await;
        assert_eq!(db(&runner).status, "pass");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_check_times_out_and_counts_as_a_failure() {
        let registry = HealthRegistry::new()
            .timeout(Duration::from_secs(2))
            .required("hung", from_fn(std::future::pending));
        let runner = HealthRunner::new(registry, HealthPolicy::default()).unwrap();
        runner.start();
        runner.wait_for_round(1).await;
        let c = runner.report().checks.remove(0);
        assert_eq!(c.status, "fail");
        assert_eq!(c.error.as_deref(), Some("timed out after 2000 ms"));
        assert_eq!(c.consecutive_failures, Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn an_optional_check_failing_leaves_the_instance_ready_and_degraded() {
        let registry = HealthRegistry::new()
            .required("state", from_fn(|| async { Ok(()) }))
            .optional(
                "payments_api",
                from_fn(|| async { Err("HTTP 503".to_owned()) }),
            );
        let runner = HealthRunner::new(registry, HealthPolicy::default()).unwrap();
        runner.start();
        runner.wait_for_round(1).await;
        let report = runner.report();
        assert!(report.is_ready());
        assert_eq!(report.status, "degraded");
        assert_eq!(report.checks[1].status, "fail");
    }

    struct Valued(f64);
    #[async_trait::async_trait]
    impl crate::health::HealthCheck for Valued {
        async fn check(&self) -> Result<(), String> {
            self.probe().await.result
        }
        async fn probe(&self) -> Probe {
            Probe::at_most("memory usage", self.0, 0.9)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn signals_carry_flags_and_values() {
        let registry = HealthRegistry::new()
            .optional("memory_usage", Valued(0.73))
            .required("database", from_fn(|| async { Err("down".to_owned()) }));
        let runner = HealthRunner::new(registry, HealthPolicy::default()).unwrap();
        let mut signals = Signals::default();
        runner.collect(&mut signals);
        assert!(signals.is_empty(), "nothing before the first run");
        runner.start();
        runner.wait_for_round(1).await;
        let mut signals = Signals::default();
        runner.collect(&mut signals);
        assert_eq!(signals.get("memory_usage"), Some(SignalValue::Number(0.73)));
        assert_eq!(
            signals.get("memory_usage_health"),
            Some(SignalValue::Flag(true))
        );
        assert_eq!(
            signals.get("database_health"),
            Some(SignalValue::Flag(false))
        );
        assert_eq!(signals.get("database"), None);
        let c = &runner.report().checks[0];
        assert_eq!((c.value, c.threshold), (Some(0.73), Some(0.9)));
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_the_rounds_and_bad_policies_are_refused() {
        let (_, runs, registry) = switch();
        let runner = HealthRunner::new(registry.clone(), HealthPolicy::default()).unwrap();
        runner.start();
        runner.wait_for_round(2).await;
        runner.stop();
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(!runner.start());
        for bad in [
            HealthPolicy {
                interval: Duration::ZERO,
                ..HealthPolicy::default()
            },
            HealthPolicy {
                failure_threshold: 0,
                ..HealthPolicy::default()
            },
            HealthPolicy {
                recovery_threshold: 0,
                ..HealthPolicy::default()
            },
        ] {
            assert!(HealthRunner::new(registry.clone(), bad).is_err());
        }
    }

    /// A recorder keeping the last value of each gauge, by name and labels.
    #[derive(Default)]
    struct Gauges(Arc<Mutex<Vec<(String, f64)>>>);

    struct Slot(String, Arc<Mutex<Vec<(String, f64)>>>);

    impl metrics::GaugeFn for Slot {
        fn increment(&self, _: f64) {}
        fn decrement(&self, _: f64) {}
        fn set(&self, value: f64) {
            let mut all = self.1.lock().unwrap();
            all.retain(|(k, _)| *k != self.0);
            all.push((self.0.clone(), value));
        }
    }

    impl metrics::Recorder for Gauges {
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
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Counter {
            metrics::Counter::noop()
        }
        fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            metrics::Gauge::from_arc(Arc::new(Slot(name, self.0.clone())))
        }
        fn register_histogram(
            &self,
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Histogram {
            metrics::Histogram::noop()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_round_records_the_checks_state_as_gauges() {
        let registry = HealthRegistry::new()
            .optional("memory_usage", Valued(0.95))
            .required("database", from_fn(|| async { Ok(()) }));
        let runner = HealthRunner::new(registry.clone(), HealthPolicy::default()).unwrap();
        let probes = registry.round().await;
        let recorder = Gauges::default();
        metrics::with_local_recorder(&recorder, || runner.record(probes));
        let mut seen = recorder.0.lock().unwrap().clone();
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            seen,
            [
                ("kailash_health_check_up{check=database}".to_owned(), 1.0),
                (
                    "kailash_health_check_up{check=memory_usage}".to_owned(),
                    0.0
                ),
                (
                    "kailash_health_check_value{check=memory_usage}".to_owned(),
                    0.95
                ),
            ]
        );
        assert_eq!(runner.rounds(), 1);
    }
}
