//! What an [`AccessControlledRuntime`](super::AccessControlledRuntime) is
//! configured with: the seed's `audit_enabled`, `session_isolation` and
//! `resource_limits`, plus the lease and retention times of its runs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The most concurrent runs in each of three scopes; `None` leaves a scope
/// unlimited.
///
/// Each slot is a lease in the state backend that expires with its run's
/// lease, so an instance that dies never keeps a slot beyond
/// [`RuntimeConfig::lease_secs`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyLimits {
    /// Runs at once on this instance (this process).
    #[serde(default)]
    pub process: Option<usize>,
    /// Runs at once in one tenant, across every instance sharing the state.
    #[serde(default)]
    pub tenant: Option<usize>,
    /// Runs at once by one user (in their tenant), across every instance.
    #[serde(default)]
    pub user: Option<usize>,
}

/// The seed's `resource_limits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceLimits {
    /// `max_concurrent_workflows`, one value per scope.
    #[serde(default)]
    pub max_concurrent_workflows: ConcurrencyLimits,
    /// `max_execution_time`, in seconds (default 300): the run is cancelled
    /// at the deadline with status `timed_out`. A tenant's own lower
    /// `max_execution_time_secs` applies instead.
    #[serde(default = "default_execution_secs")]
    pub max_execution_time_secs: Option<u64>,
    /// `max_memory_mb` (default 64): the byte budget of one run's data —
    /// its inputs, each running node's input and each completed node's
    /// output, measured as compact JSON (see [`crate::executor`]). A
    /// tenant's own lower `max_memory_mb` applies instead.
    #[serde(default = "default_memory_mb")]
    pub max_memory_mb: Option<u64>,
    /// No new run starts while the process's resident memory (Linux
    /// `VmRSS`) is above this many MiB (503 with `Retry-After`); `None`
    /// (the default) admits regardless.
    #[serde(default)]
    pub process_memory_watermark_mb: Option<u64>,
}

fn default_execution_secs() -> Option<u64> {
    Some(300)
}

fn default_memory_mb() -> Option<u64> {
    Some(64)
}

impl Default for ResourceLimits {
    fn default() -> Self {
        Self {
            max_concurrent_workflows: ConcurrencyLimits::default(),
            max_execution_time_secs: default_execution_secs(),
            max_memory_mb: default_memory_mb(),
            process_memory_watermark_mb: None,
        }
    }
}

/// The runtime's configuration (the gateway's `[runtime]` section).
///
/// ```
/// use kailash_runtime::runtime::RuntimeConfig;
///
/// let config: RuntimeConfig = serde_json::from_str(r#"{
///     "resource_limits": {
///         "max_concurrent_workflows": {"process": 64, "tenant": 16, "user": 4},
///         "max_execution_time_secs": 60
///     }
/// }"#)?;
/// assert!(config.audit_enabled && config.session_isolation);
/// config.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Every run decision, node decision and run outcome is written to the
    /// audit trail (default `true`; the runtime then needs an audit sink).
    #[serde(default = "yes")]
    pub audit_enabled: bool,
    /// Runs and agent sessions belong to the user who started them: nobody
    /// else in the tenant sees or cancels them without
    /// [`MANAGE_PERMISSION`](super::MANAGE_PERMISSION) (default `true`).
    /// When `false`, every holder of `workflow:execute` in the tenant does.
    #[serde(default = "yes")]
    pub session_isolation: bool,
    /// The seed's `resource_limits`.
    #[serde(default)]
    pub resource_limits: ResourceLimits,
    /// A running run's lease, in seconds (default 15, at least 3): renewed
    /// every third of it by the instance running it; a run whose lease
    /// lapsed is `abandoned`, and its concurrency slots are free again.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u64,
    /// How long a finished run's record is kept, in seconds (default 86400).
    #[serde(default = "default_retention_secs")]
    pub retention_secs: u64,
    /// How long an agent session lives, in seconds (default 28800).
    #[serde(default = "default_session_secs")]
    pub session_ttl_secs: u64,
    /// Agent sessions one user may hold at once (default 10).
    #[serde(default = "default_sessions_per_user")]
    pub max_sessions_per_user: usize,
    /// Run records kept in one user's index, newest first (default 200);
    /// older ones drop out of `GET /api/executions` but stay readable by id
    /// until their retention ends.
    #[serde(default = "default_runs_per_user")]
    pub max_runs_per_user: usize,
}

fn yes() -> bool {
    true
}
fn default_lease_secs() -> u64 {
    15
}
fn default_retention_secs() -> u64 {
    86_400
}
fn default_session_secs() -> u64 {
    28_800
}
fn default_sessions_per_user() -> usize {
    10
}
fn default_runs_per_user() -> usize {
    200
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            audit_enabled: true,
            session_isolation: true,
            resource_limits: ResourceLimits::default(),
            lease_secs: default_lease_secs(),
            retention_secs: default_retention_secs(),
            session_ttl_secs: default_session_secs(),
            max_sessions_per_user: default_sessions_per_user(),
            max_runs_per_user: default_runs_per_user(),
        }
    }
}

/// A [`RuntimeConfig`] value out of range; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("runtime config `{field}`: {reason}")]
pub struct ConfigError {
    /// The field, as spelt in the config.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn err(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        reason: reason.into(),
    }
}

/// The most any duration field may say: ten years, in seconds.
const MAX_SECS: u64 = 10 * 365 * 86_400;

impl RuntimeConfig {
    /// Checks every value is in range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(3..=3600).contains(&self.lease_secs) {
            return Err(err("lease_secs", "must be 3 to 3600"));
        }
        for (field, v) in [
            ("retention_secs", self.retention_secs),
            ("session_ttl_secs", self.session_ttl_secs),
        ] {
            if v == 0 || v > MAX_SECS {
                return Err(err(field, format!("must be 1 to {MAX_SECS}")));
            }
        }
        if self.retention_secs < self.lease_secs {
            return Err(err("retention_secs", "must be at least `lease_secs`"));
        }
        if !(1..=1000).contains(&self.max_sessions_per_user) {
            return Err(err("max_sessions_per_user", "must be 1 to 1000"));
        }
        if !(1..=10_000).contains(&self.max_runs_per_user) {
            return Err(err("max_runs_per_user", "must be 1 to 10000"));
        }
        let r = &self.resource_limits;
        let c = &r.max_concurrent_workflows;
        for (field, v) in [
            (
                "resource_limits.max_concurrent_workflows.process",
                c.process,
            ),
            ("resource_limits.max_concurrent_workflows.tenant", c.tenant),
            ("resource_limits.max_concurrent_workflows.user", c.user),
        ] {
            if v.is_some_and(|v| !(1..=1_000_000).contains(&v)) {
                return Err(err(field, "must be 1 to 1000000"));
            }
        }
        if r.max_execution_time_secs
            .is_some_and(|v| v == 0 || v > MAX_SECS)
        {
            return Err(err(
                "resource_limits.max_execution_time_secs",
                format!("must be 1 to {MAX_SECS}"),
            ));
        }
        if r.max_memory_mb.is_some_and(|v| v == 0 || v > 1 << 20) {
            return Err(err("resource_limits.max_memory_mb", "must be 1 to 1048576"));
        }
        if let Some(w) = r.process_memory_watermark_mb {
            if w == 0 || w > 1 << 24 {
                return Err(err(
                    "resource_limits.process_memory_watermark_mb",
                    "must be 1 to 16777216",
                ));
            }
            if super::rss::resident_bytes().is_none() {
                return Err(err(
                    "resource_limits.process_memory_watermark_mb",
                    "this platform does not report the process's resident memory (/proc/self/status)",
                ));
            }
        }
        Ok(())
    }

    /// The lease as a duration.
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_secs)
    }
}
