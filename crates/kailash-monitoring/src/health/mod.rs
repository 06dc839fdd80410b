//! Liveness and readiness.
//!
//! A [`HealthRegistry`] holds named checks, each *required* (a readiness
//! check: its failure makes the service not ready, `/health/ready` answers
//! 503) or *optional* (reported, but the service stays ready — the report
//! says `degraded`; external APIs and the execution rate belong here, so a
//! shared dependency never takes every instance out of the load balancer
//! at once). Checks run concurrently, each bounded by a timeout, so one
//! hung dependency cannot hang a round.
//!
//! [`HealthRegistry::report`] runs every check once. A served instance uses
//! a [`HealthRunner`] instead: it runs the checks in the background on an
//! interval, flips a check to failing only after `failure_threshold`
//! consecutive failures (back after `recovery_threshold` successes), and
//! answers `/health/ready` from that stored state — a probe never runs a
//! check. Built-in checks: [`system::MemoryCheck`], [`system::DiskCheck`].
//!
//! ```
//! use kailash_monitoring::health::{HealthRegistry, from_fn};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let registry = HealthRegistry::new()
//!     .required("state", from_fn(|| async { Ok(()) }))
//!     .optional("mail", from_fn(|| async { Err("smtp relay refused".to_owned()) }));
//! let report = registry.report().await;
//! assert!(report.is_ready());
//! assert_eq!(report.status, "degraded");
//! # });
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

mod runner;
pub mod system;

pub use runner::{HealthPolicy, HealthRunner, PolicyError};

/// The longest error text a report carries (longer ones are cut).
pub const MAX_ERROR_CHARS: usize = 200;

/// One run of a check: its outcome and, for a measuring check, the value
/// it measured and the threshold it compared against.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// `Ok` when healthy; otherwise a short reason.
    pub result: Result<(), String>,
    /// The measured value (a fraction, a rate), when the check measures one.
    pub value: Option<f64>,
    /// The threshold the value is compared against.
    pub threshold: Option<f64>,
}

impl From<Result<(), String>> for Probe {
    fn from(result: Result<(), String>) -> Self {
        Self {
            result,
            value: None,
            threshold: None,
        }
    }
}

impl Probe {
    /// A measurement: healthy while `value <= threshold`.
    pub fn at_most(what: &str, value: f64, threshold: f64) -> Self {
        let result = if value <= threshold {
            Ok(())
        } else {
            Err(format!("{what} {value:.3} above threshold {threshold:.3}"))
        };
        Self {
            result,
            value: Some(value),
            threshold: Some(threshold),
        }
    }
}

/// One dependency check.
#[async_trait]
pub trait HealthCheck: Send + Sync + 'static {
    /// `Ok` when healthy; otherwise a short reason (shown in the readiness
    /// report, so keep secrets and connection strings out of it).
    async fn check(&self) -> Result<(), String>;

    /// The check with its measured value and threshold, for a check that
    /// measures one; by default [`check`](Self::check) without a value.
    async fn probe(&self) -> Probe {
        Probe::from(self.check().await)
    }

    /// Whether [`probe`](Self::probe) reports a value (then the value is a
    /// signal under the check's own name, for alert rules). Default `false`.
    fn measures(&self) -> bool {
        false
    }
}

/// `error` cut to [`MAX_ERROR_CHARS`] characters.
pub(crate) fn short_error(mut error: String) -> String {
    if let Some((at, _)) = error.char_indices().nth(MAX_ERROR_CHARS) {
        error.truncate(at);
        error.push('…');
    }
    error
}

struct FnCheck<F>(F);

#[async_trait]
impl<F, Fut> HealthCheck for FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    async fn check(&self) -> Result<(), String> {
        (self.0)().await
    }
}

/// A check from an async closure.
pub fn from_fn<F, Fut>(f: F) -> impl HealthCheck
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    FnCheck(f)
}

#[derive(Clone)]
struct Registered {
    name: Arc<str>,
    required: bool,
    check: Arc<dyn HealthCheck>,
}

/// The registered checks; cheap to clone.
#[derive(Clone)]
pub struct HealthRegistry {
    checks: Arc<[Registered]>,
    timeout: Duration,
}

impl std::fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.checks.iter().map(|c| &*c.name).collect();
        f.debug_struct("HealthRegistry")
            .field("checks", &names)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Default for HealthRegistry {
    fn default() -> Self {
        Self::new()
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// Whether the check gates readiness.
    pub required: bool,
    /// `pass` or `fail`.
    #[cfg_attr(feature = "axum", schema(schema_with = check_status_schema))]
    pub status: &'static str,
    /// How long it took.
    pub duration_ms: u64,
    /// Why it failed (its last failure, for a [`HealthRunner`]'s report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Consecutive failed runs up to the last one (a [`HealthRunner`]'s report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    /// Consecutive successful runs up to the last one (a [`HealthRunner`]'s report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_successes: Option<u32>,
    /// The last measured value, for a check that measures one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The threshold the value is compared against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

/// The outcome of every check.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
pub struct HealthReport {
    /// `ok` (all pass), `degraded` (an optional check fails) or `fail` (a required check fails).
    #[cfg_attr(feature = "axum", schema(schema_with = report_status_schema))]
    pub status: &'static str,
    /// Each check.
    pub checks: Vec<CheckResult>,
}

/// The statuses a [`CheckResult`] carries.
pub const CHECK_STATUSES: [&str; 2] = ["pass", "fail"];
/// The statuses a [`HealthReport`] carries.
pub const REPORT_STATUSES: [&str; 3] = ["ok", "degraded", "fail"];

#[cfg(feature = "axum")]
fn enum_schema(values: &[&str], description: &str) -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(values.iter().copied()))
        .description(Some(description))
        .into()
}

#[cfg(feature = "axum")]
fn check_status_schema() -> utoipa::openapi::schema::Schema {
    enum_schema(&CHECK_STATUSES, "`pass` or `fail`")
}

#[cfg(feature = "axum")]
fn report_status_schema() -> utoipa::openapi::schema::Schema {
    enum_schema(
        &REPORT_STATUSES,
        "`ok` (all pass), `degraded` (an optional check fails) or `fail` (a required check fails)",
    )
}

impl HealthReport {
    /// Whether every required check passed.
    pub fn is_ready(&self) -> bool {
        self.status != "fail"
    }
}

impl HealthRegistry {
    /// No checks; a 2 s timeout per check.
    pub fn new() -> Self {
        Self {
            checks: Arc::from(Vec::new()),
            timeout: Duration::from_secs(2),
        }
    }

    fn with(self, name: &str, required: bool, check: impl HealthCheck) -> Self {
        let mut checks: Vec<Registered> = self.checks.iter().cloned().collect();
        checks.retain(|c| &*c.name != name);
        checks.push(Registered {
            name: Arc::from(name),
            required,
            check: Arc::new(check),
        });
        Self {
            checks: checks.into(),
            timeout: self.timeout,
        }
    }

    /// Adds (or replaces) a check whose failure makes the service not ready.
    #[must_use]
    pub fn required(self, name: &str, check: impl HealthCheck) -> Self {
        self.with(name, true, check)
    }

    /// Adds (or replaces) a check that is reported but does not gate readiness.
    #[must_use]
    pub fn optional(self, name: &str, check: impl HealthCheck) -> Self {
        self.with(name, false, check)
    }

    /// Sets the per-check timeout (a check that takes longer fails).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The per-check timeout.
    pub fn check_timeout(&self) -> Duration {
        self.timeout
    }

    /// The names of the registered checks.
    pub fn names(&self) -> Vec<&str> {
        self.checks.iter().map(|c| &*c.name).collect()
    }

    /// Runs every check once, concurrently (each bounded by the timeout).
    /// A served instance answers from a [`HealthRunner`] instead.
    pub async fn report(&self) -> HealthReport {
        let probes = self.round().await;
        let mut status = "ok";
        let checks = self
            .checks
            .iter()
            .zip(probes)
            .map(|(reg, (probe, elapsed))| {
                if probe.result.is_err() {
                    status = worse(status, reg.required);
                }
                CheckResult {
                    name: reg.name.to_string(),
                    required: reg.required,
                    status: if probe.result.is_ok() { "pass" } else { "fail" },
                    duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                    error: probe.result.err(),
                    consecutive_failures: None,
                    consecutive_successes: None,
                    value: probe.value,
                    threshold: probe.threshold,
                }
            })
            .collect();
        HealthReport { status, checks }
    }

    /// Runs every check once, concurrently; one probe per check, in order.
    pub(crate) async fn round(&self) -> Vec<(Probe, Duration)> {
        let mut set = tokio::task::JoinSet::new();
        for (index, reg) in self.checks.iter().enumerate() {
            let (check, timeout) = (reg.check.clone(), self.timeout);
            set.spawn(async move {
                let start = tokio::time::Instant::now();
                let mut probe = match tokio::time::timeout(timeout, check.probe()).await {
                    Ok(probe) => probe,
                    Err(_) => {
                        Probe::from(Err(format!("timed out after {} ms", timeout.as_millis())))
                    }
                };
                probe.result = probe.result.map_err(short_error);
                (index, probe, start.elapsed())
            });
        }
        let mut outcomes: Vec<Option<(Probe, Duration)>> = vec![None; self.checks.len()];
        while let Some(joined) = set.join_next().await {
            if let Ok((index, probe, elapsed)) = joined
                && let Some(slot) = outcomes.get_mut(index)
            {
                *slot = Some((probe, elapsed));
            }
        }
        outcomes
            .into_iter()
            // A check that panicked counts as failed.
            .map(|o| {
                o.unwrap_or((
                    Probe::from(Err("check panicked".to_owned())),
                    Duration::ZERO,
                ))
            })
            .collect()
    }

    /// The names of the checks that measure a value ([`HealthCheck::measures`]).
    pub fn measuring(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| c.check.measures())
            .map(|c| &*c.name)
            .collect()
    }

    pub(crate) fn registered(&self) -> impl Iterator<Item = (&str, bool)> {
        self.checks.iter().map(|c| (&*c.name, c.required))
    }
}

/// The report status after a failing check (`required` or not) on top of `status`.
pub(crate) fn worse(status: &'static str, required: bool) -> &'static str {
    if required {
        "fail"
    } else if status == "ok" {
        "degraded"
    } else {
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_required_check_fails_readiness_and_is_named() {
        let r = HealthRegistry::new()
            .required(
                "state",
                from_fn(|| async { Err("connection refused".to_owned()) }),
            )
            .optional("mail", from_fn(|| async { Ok(()) }));
        let report = r.report().await;
        assert!(!report.is_ready());
        assert_eq!(report.status, "fail");
        assert_eq!(report.checks[0].name, "state");
        assert_eq!(
            report.checks[0].error.as_deref(),
            Some("connection refused")
        );
        assert_eq!(report.checks[1].status, "pass");
    }

    #[tokio::test]
    async fn a_hung_check_times_out() {
        let r = HealthRegistry::new()
            .timeout(Duration::from_millis(50))
            .required("hung", from_fn(std::future::pending));
        let report = r.report().await;
        assert_eq!(report.status, "fail");
        assert!(
            report.checks[0]
                .error
                .as_deref()
                .unwrap()
                .starts_with("timed out")
        );
    }

    #[tokio::test]
    async fn no_checks_is_ready() {
        assert!(HealthRegistry::new().report().await.is_ready());
    }
}
