//! The seed's business metrics, recorded on the demo's real activity: every
//! workflow run that completes counts for its user's department
//! (`workflows_completed_by_department`) and records its SLA compliance
//! (`sla_compliance_rate`, `min(1, sla / duration)`), through
//! [`BusinessMetrics`].
//!
//! Label values stay bounded: a department is one the config's `[[users]]`
//! name (`attributes.department`), any other user counts as `other`; the
//! demo's workflows are created by its users, so their names are no
//! bounded set, and every run is recorded under `workflow="all"`.
//!
//! The demo data (DEMO.md) has no revenue and no satisfaction source, so
//! `revenue_generated_by_workflow` and `user_satisfaction_score` are not
//! recorded: an application records them where it knows the figures
//! ([`BusinessMetrics::revenue`], [`BusinessMetrics::satisfaction`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kailash::config::GatewayConfig;
use kailash::metrics::business::BusinessMetrics;
use kailash::{GatewayBuilder, GatewayError};
use kailash_runtime::{EventSink, RunEvent, RunStatus};

/// The reference deployment's SLA for one workflow run.
pub const RUN_SLA: Duration = Duration::from_secs(5);

/// The `department` of users the config does not give one.
pub const OTHER_DEPARTMENT: &str = "other";

/// The `workflow` label every run is recorded under.
pub const ALL_WORKFLOWS: &str = "all";

/// Records the business metrics of completed runs; see the [module](self).
#[derive(Debug)]
pub struct RunMetrics {
    /// Subject → department, from the config's users.
    departments: HashMap<String, String>,
    sla: Duration,
}

impl RunMetrics {
    /// The departments of `config`'s users, and the SLA runs are held to.
    pub fn new(config: &GatewayConfig, sla: Duration) -> Self {
        let departments = config
            .users
            .iter()
            .filter_map(|u| {
                let department = u.attributes.get("department")?.as_str()?;
                let subject = u
                    .subject
                    .clone()
                    .unwrap_or_else(|| kailash::auth::lockout::normalize_username(&u.username));
                Some((subject, department.to_owned()))
            })
            .collect();
        Self { departments, sla }
    }

    /// Every `department` label value this recorder can produce.
    pub fn departments(&self) -> BTreeSet<&str> {
        self.departments
            .values()
            .map(String::as_str)
            .chain([OTHER_DEPARTMENT])
            .collect()
    }

    fn department(&self, subject: &str) -> &str {
        self.departments
            .get(subject)
            .map_or(OTHER_DEPARTMENT, String::as_str)
    }
}

impl EventSink for RunMetrics {
    fn publish(&self, event: &RunEvent) {
        if let RunEvent::Completed {
            subject,
            status: RunStatus::Completed,
            duration_us,
            ..
        } = event
        {
            let business = BusinessMetrics;
            business.workflow_completed(self.department(subject));
            business.sla(ALL_WORKFLOWS, self.sla, Duration::from_micros(*duration_us));
        }
    }
}

/// Records the business metrics of the runs of the builder's workflow
/// runtime (built from `config`'s `[runtime]`), against `sla`.
pub fn with_business_metrics(
    builder: GatewayBuilder,
    config: &GatewayConfig,
    sla: Duration,
) -> Result<GatewayBuilder, GatewayError> {
    builder.observe_runs(Arc::new(RunMetrics::new(config, sla)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn departments_come_from_the_config_and_stay_bounded() {
        let config = GatewayConfig::from_toml_str(
            include_str!("../config/enterprise.toml"),
            "enterprise.toml",
        )
        .unwrap();
        let metrics = RunMetrics::new(&config, RUN_SLA);
        assert_eq!(
            metrics.departments().into_iter().collect::<Vec<_>>(),
            ["engineering", "other", "research", "sales"]
        );
        assert_eq!(metrics.department("dave"), "engineering");
        assert_eq!(metrics.department("bob"), "sales");
        assert_eq!(metrics.department("someone-made-later"), "other");
    }
}
