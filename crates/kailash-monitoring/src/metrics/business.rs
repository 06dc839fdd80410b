//! The seed's business metrics, as a small typed helper: call it where
//! your workflow ends, and the figures appear in `/metrics` (through the
//! [`metrics`] facade, so the gateway's registry must be the global one —
//! it is, unless your application installed another recorder).
//!
//! Label values (`department`, `workflow`) must come from a bounded set —
//! your departments and workflow names, never user input.
//!
//! ```
//! use std::time::Duration;
//! use kailash_monitoring::metrics::business::{BusinessMetrics, sla_compliance};
//!
//! let business = BusinessMetrics;
//! business.workflow_completed("finance");
//! business.revenue("quarterly-report", 1_250.0);
//! business.satisfaction(4.6);
//! // Took 90 s against a 60 s SLA: 0.67 compliant.
//! business.sla("quarterly-report", Duration::from_secs(60), Duration::from_secs(90));
//! assert!((sla_compliance(Duration::from_secs(60), Duration::from_secs(90)) - 0.6667).abs() < 1e-3);
//! assert_eq!(sla_compliance(Duration::from_secs(60), Duration::from_secs(10)), 1.0);
//! ```

use std::time::Duration;

/// Counter: workflows completed, by department.
pub const WORKFLOWS_COMPLETED: &str = "workflows_completed_by_department";
/// Histogram: revenue generated per workflow run.
pub const REVENUE: &str = "revenue_generated_by_workflow";
/// Gauge: the latest user-satisfaction score.
pub const SATISFACTION: &str = "user_satisfaction_score";
/// Histogram: `min(1, sla_limit / execution_time)` per run.
pub const SLA_COMPLIANCE: &str = "sla_compliance_rate";

/// Records the seed's business metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct BusinessMetrics;

impl BusinessMetrics {
    /// One more workflow completed for `department`.
    pub fn workflow_completed(&self, department: &str) {
        metrics::counter!(WORKFLOWS_COMPLETED, "department" => department.to_owned()).increment(1);
    }

    /// A run of `workflow` generated `amount` (negative and non-finite
    /// amounts are ignored: a histogram of revenue has no use for them).
    pub fn revenue(&self, workflow: &str, amount: f64) {
        if amount.is_finite() && amount >= 0.0 {
            metrics::histogram!(REVENUE, "workflow" => workflow.to_owned()).record(amount);
        }
    }

    /// The latest user-satisfaction score (non-finite scores are ignored).
    pub fn satisfaction(&self, score: f64) {
        if score.is_finite() {
            metrics::gauge!(SATISFACTION).set(score);
        }
    }

    /// A run of `workflow` took `execution_time` against `sla_limit`.
    pub fn sla(&self, workflow: &str, sla_limit: Duration, execution_time: Duration) {
        metrics::histogram!(SLA_COMPLIANCE, "workflow" => workflow.to_owned())
            .record(sla_compliance(sla_limit, execution_time));
    }
}

/// `min(1, sla_limit / execution_time)`; 1 for an instant run.
pub fn sla_compliance(sla_limit: Duration, execution_time: Duration) -> f64 {
    if execution_time.is_zero() {
        return 1.0;
    }
    (sla_limit.as_secs_f64() / execution_time.as_secs_f64()).min(1.0)
}
