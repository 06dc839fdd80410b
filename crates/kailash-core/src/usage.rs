//! Usage metering for billing: what each tenant used, told to a
//! [`UsageSink`] by the parts that see it happen.
//!
//! The workflow runtime reports each run and its duration, the realtime hub
//! the seconds its sockets were open. The sink is an async trait so a
//! backend that keeps the figures in the shared state (kailash-tenancy's
//! `Metering`, which aggregates them per tenant and UTC day, exactly across
//! instances) plugs in without the reporting crates knowing it. API calls
//! are not reported here: the tenancy layer already counts each admitted
//! call against the daily quota, and that count is the metered figure (no
//! second write on the request path).
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use kailash_core::TenantId;
//! use kailash_core::state::StateError;
//! use kailash_core::usage::{UsageMetric, UsageSink};
//!
//! /// Keeps what it is told, for a test.
//! #[derive(Default)]
//! struct Recorded(Mutex<Vec<(String, UsageMetric, u64)>>);
//!
//! #[async_trait::async_trait]
//! impl UsageSink for Recorded {
//!     async fn record(&self, tenant: &TenantId, metric: UsageMetric, amount: u64) -> Result<(), StateError> {
//!         self.0.lock().unwrap().push((tenant.to_string(), metric, amount));
//!         Ok(())
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let sink = Recorded::default();
//! let acme = TenantId::new("acme").unwrap();
//! sink.record(&acme, UsageMetric::WorkflowRuns, 1).await.unwrap();
//! assert_eq!(UsageMetric::WorkflowRuns.name(), "workflow_runs");
//! assert_eq!(sink.0.lock().unwrap().len(), 1);
//! # });
//! ```

use crate::TenantId;
use crate::state::StateError;

/// What a [`UsageSink`] is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum UsageMetric {
    /// Workflow runs that ended (completed, failed, cancelled, timed out or
    /// refused after they started), one each.
    WorkflowRuns,
    /// The running time of those runs, in milliseconds.
    WorkflowRunMillis,
    /// Seconds realtime sockets (WebSocket or SSE) were open.
    RealtimeConnectionSeconds,
}

impl UsageMetric {
    /// Every metric, in a fixed order.
    pub const ALL: [UsageMetric; 3] = [
        Self::WorkflowRuns,
        Self::WorkflowRunMillis,
        Self::RealtimeConnectionSeconds,
    ];

    /// Its name in keys and reports (`workflow_runs`, `workflow_run_ms`,
    /// `realtime_connection_seconds`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::WorkflowRuns => "workflow_runs",
            Self::WorkflowRunMillis => "workflow_run_ms",
            Self::RealtimeConnectionSeconds => "realtime_connection_seconds",
        }
    }
}

/// Takes usage as it happens. Implementations must be quick (one state
/// operation) and must not lose what they accepted; a reporter logs an
/// error and goes on (usage is never a reason to fail a run or a socket).
#[async_trait::async_trait]
pub trait UsageSink: Send + Sync + 'static {
    /// Adds `amount` of `metric` to `tenant`'s usage now.
    async fn record(
        &self,
        tenant: &TenantId,
        metric: UsageMetric,
        amount: u64,
    ) -> Result<(), StateError>;
}

/// The sink that keeps nothing (no metering configured).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoUsage;

#[async_trait::async_trait]
impl UsageSink for NoUsage {
    async fn record(&self, _: &TenantId, _: UsageMetric, _: u64) -> Result<(), StateError> {
        Ok(())
    }
}
