//! The gateway's built-in health checks beyond the host's
//! ([`health::system`](crate::health::system)): an external API answering,
//! the workflow runtime's failure rate and the count of active sessions.
//! All are meant as *optional* checks (reported, alerted on, never taking
//! an instance out of the load balancer: every instance shares the same
//! external API, workload and sessions).
//!
//! ```
//! use kailash::health::HealthCheck;
//! use kailash::health_checks::ExternalApiCheck;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // Nothing listens on port 9 of the loopback: the check fails, briefly.
//! let check = ExternalApiCheck::new("http://127.0.0.1:9/health", std::time::Duration::from_secs(1)).unwrap();
//! let error = check.check().await.unwrap_err();
//! assert!(error.starts_with("connect"));
//! assert!(ExternalApiCheck::new("ftp://example.com", std::time::Duration::from_secs(1)).is_err());
//! # });
//! ```

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use kailash_auth::session::SessionStore;
use kailash_monitoring::health::{HealthCheck, Probe};
use kailash_monitoring::outbound::Target;
use kailash_runtime::runtime::{AccessControlledRuntime, RunStats};

/// The names of the checks the gateway registers itself: `state` (the
/// state backend — memory or Redis — answers a ping), `pubsub` (its
/// pub/sub connection is subscribed), `audit` (the audit sink writes),
/// `memory_usage`, `disk_usage`, `workflow_failure_rate`,
/// `active_sessions` and `database` (PostgreSQL, when configured).
pub const BUILTIN_CHECKS: [&str; 9] = [
    "state",
    "pubsub",
    "audit",
    "memory_usage",
    "disk_usage",
    "workflow_failure_rate",
    "active_sessions",
    "database",
    "database_replica",
];

/// An external API answering a `GET` with a 2xx status within a timeout.
/// Plain `http://` or `https://` (rustls with aws-lc-rs, the system's
/// roots; [`kailash_monitoring::outbound`]). The URL never appears in the
/// check's errors (it may carry a key in its query).
#[derive(Debug, Clone)]
pub struct ExternalApiCheck {
    target: Target,
}

impl ExternalApiCheck {
    /// A check of `url` (`http://` or `https://`), each request bounded by
    /// `timeout` (connect, handshake, response head).
    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            target: Target::new(url, timeout)?,
        })
    }

    /// The same check drawing its connection from `pool` (the gateway's
    /// outbound pool).
    #[must_use]
    pub fn with_pool(mut self, pool: &kailash_core::outbound::ConnectionPool) -> Self {
        self.target = self.target.with_pool(pool);
        self
    }
}

#[async_trait]
impl HealthCheck for ExternalApiCheck {
    async fn check(&self) -> Result<(), String> {
        match self.target.get_status("kailash-health").await {
            Err(e) => Err(e.message),
            Ok(status) if (200..300).contains(&status) => Ok(()),
            Ok(status) => Err(format!("status {status}")),
        }
    }
}

/// The workflow runtime's failure ratio over the last check interval:
/// runs that ended `failed` or `timed_out` among all that ended since the
/// previous check (0 when none ended). Fails above the threshold (the
/// seed's `workflow_failure_rate > 0.05`). Register it as
/// `workflow_failure_rate` so alert rules name it so. It also records the
/// gauge `kailash_health_workflow_runs_per_minute` (runs ended per minute
/// over the same interval).
pub struct ExecutionRateCheck {
    runtime: AccessControlledRuntime,
    threshold: f64,
    last: Mutex<Option<(RunStats, tokio::time::Instant)>>,
}

impl std::fmt::Debug for ExecutionRateCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutionRateCheck")
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

impl ExecutionRateCheck {
    /// Watches `runtime`'s run counts; fails above `threshold` (a fraction).
    pub fn new(runtime: AccessControlledRuntime, threshold: f64) -> Self {
        Self {
            runtime,
            threshold,
            last: Mutex::new(None),
        }
    }

    /// The failure ratio and runs ended per minute since the previous call
    /// (both 0 on the first).
    pub fn sample(&self) -> (f64, f64) {
        let now = (self.runtime.stats(), tokio::time::Instant::now());
        let mut last = match self.last.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        let previous = last.replace(now);
        let Some((before, at)) = previous else {
            return (0.0, 0.0);
        };
        let (stats, when) = now;
        let ended = stats.finished().saturating_sub(before.finished());
        let failed = stats.failed.saturating_sub(before.failed);
        #[allow(clippy::cast_precision_loss)] // ratios of counts
        let ratio = if ended == 0 {
            0.0
        } else {
            failed as f64 / ended as f64
        };
        let minutes = when.duration_since(at).as_secs_f64() / 60.0;
        #[allow(clippy::cast_precision_loss)]
        let per_minute = if minutes > 0.0 {
            ended as f64 / minutes
        } else {
            0.0
        };
        (ratio, per_minute)
    }
}

#[async_trait]
impl HealthCheck for ExecutionRateCheck {
    async fn check(&self) -> Result<(), String> {
        self.probe().await.result
    }

    async fn probe(&self) -> Probe {
        let (ratio, per_minute) = self.sample();
        metrics::gauge!("kailash_health_workflow_runs_per_minute").set(per_minute);
        Probe::at_most("workflow failure rate", ratio, self.threshold)
    }

    fn measures(&self) -> bool {
        true
    }
}

/// The number of live sessions across every instance sharing the state
/// ([`SessionStore::active_count`]: one cheap read, idle sessions counted
/// out at their deadline). Fails above the threshold — a capacity signal
/// (state memory, a login flood), never a readiness one. Register it as
/// `active_sessions` so alert rules name it so. It also sets the gauge
/// `kailash_sessions_active`.
///
/// ```
/// use std::sync::Arc;
/// use kailash::health::HealthCheck;
/// use kailash::auth::session::{SessionConfig, SessionStore};
/// use kailash::clock::SystemClock;
/// use kailash::health_checks::ActiveSessionsCheck;
/// use kailash::state::SharedState;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let sessions = SessionStore::new(SharedState::memory(Arc::new(SystemClock)), SessionConfig::default());
/// let check = ActiveSessionsCheck::new(sessions.clone(), 1);
/// sessions.create("alice", None, None).await.unwrap();
/// assert_eq!(check.probe().await.value, Some(1.0));
/// sessions.create("bob", None, None).await.unwrap();
/// assert!(check.check().await.is_err(), "2 sessions, above 1");
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct ActiveSessionsCheck {
    sessions: SessionStore,
    threshold: u64,
}

impl ActiveSessionsCheck {
    /// Counts `sessions`' live sessions; fails above `threshold`.
    pub fn new(sessions: SessionStore, threshold: u64) -> Self {
        Self {
            sessions,
            threshold,
        }
    }
}

#[async_trait]
impl HealthCheck for ActiveSessionsCheck {
    async fn check(&self) -> Result<(), String> {
        self.probe().await.result
    }

    async fn probe(&self) -> Probe {
        let count = match self.sessions.active_count().await {
            Ok(n) => u64::try_from(n).unwrap_or(u64::MAX),
            Err(e) => return Probe::from(Err(e.to_string())),
        };
        #[allow(clippy::cast_precision_loss)] // exact below 2^53 sessions
        let (value, threshold) = (count as f64, self.threshold as f64);
        metrics::gauge!("kailash_sessions_active").set(value);
        Probe {
            result: if count <= self.threshold {
                Ok(())
            } else {
                Err(format!(
                    "{count} active sessions, above the threshold of {}",
                    self.threshold
                ))
            },
            value: Some(value),
            threshold: Some(threshold),
        }
    }

    fn measures(&self) -> bool {
        true
    }
}

/// The PostgreSQL database answering `SELECT 1` (a pooled connection,
/// within the check's timeout). Registered as `database` when the gateway
/// uses one (the seed's `database_health`), as an optional check: the
/// audit trail spools to local files while the database is away, so an
/// outage is alerted on, never a reason to take every instance out of the
/// load balancer. The error names the cause, never the URL.
#[cfg(feature = "postgres")]
#[derive(Debug, Clone)]
pub struct DatabaseCheck {
    db: kailash_postgres::Database,
}

#[cfg(feature = "postgres")]
impl DatabaseCheck {
    /// A check of `db`.
    pub fn new(db: kailash_postgres::Database) -> Self {
        Self { db }
    }
}

#[cfg(feature = "postgres")]
#[async_trait]
impl HealthCheck for DatabaseCheck {
    async fn check(&self) -> Result<(), String> {
        self.db.ping().await.map_err(|e| e.to_string())
    }
}

/// `database_replica`: the streaming replica of `[database.replica]` is
/// reachable and within `database.max_replica_lag`. Optional: while it
/// fails, reads go to the primary (or fail, with
/// `fallback_to_primary = false`), and instances stay ready.
#[cfg(feature = "postgres")]
#[derive(Debug, Clone)]
pub struct ReplicaCheck {
    dbs: kailash_postgres::routing::Databases,
}

#[cfg(feature = "postgres")]
impl ReplicaCheck {
    /// A check of `dbs`' replica.
    pub fn new(dbs: kailash_postgres::routing::Databases) -> Self {
        Self { dbs }
    }
}

#[cfg(feature = "postgres")]
#[async_trait]
impl HealthCheck for ReplicaCheck {
    async fn check(&self) -> Result<(), String> {
        self.dbs.refresh().await;
        match self.dbs.replica_status() {
            None => Ok(()),
            Some(s) if !s.reachable => Err("the replica is unreachable".into()),
            Some(s) if !s.serving => Err(format!(
                "the replica lags {:.1} s ({} bytes of WAL)",
                s.lag_seconds, s.lag_bytes
            )),
            Some(_) => Ok(()),
        }
    }
}
