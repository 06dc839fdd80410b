//! Why the runtime refused or failed.

use std::time::Duration;

use kailash_access::limits::LimitError;
use kailash_core::Problem;
use kailash_core::audit::AuditError;
use kailash_core::state::StateError;

use crate::compile::InputError;
use crate::error::{DefinitionError, WorkflowError};
use crate::executor::RunStatus;

/// Why the runtime refused a request or could not serve it. Each variant
/// is one answer; [`to_problem`](Self::to_problem) gives its HTTP problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// No such session, run or workflow in the caller's tenant, or one the
    /// caller may not see (404: existence is not revealed).
    #[error("not found")]
    NotFound,
    /// The principal acts in another tenant than the request's (403).
    #[error("tenant mismatch")]
    TenantMismatch,
    /// The tenant is inactive (403).
    #[error("the tenant is inactive")]
    TenantInactive,
    /// The tenant holds more workflows than its quota allows (403).
    #[error("the tenant is over its workflows quota ({used} of at most {limit})")]
    OverQuota {
        /// Workflows the tenant holds.
        used: u64,
        /// Its `max_workflows`.
        limit: u64,
    },
    /// A permission was denied (403); the audit trail has the rule.
    #[error("permission `{permission}` is not granted")]
    Forbidden {
        /// The permission.
        permission: String,
    },
    /// The stored workflow no longer validates for the tenant (its rules,
    /// features or node types changed); names the node (422
    /// `workflow-invalid`, or 403 when the tenant's rules or a feature
    /// refuse it).
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    /// The run's inputs do not match the workflow's declared inputs (422).
    #[error("inputs: {0}")]
    Inputs(#[from] InputError),
    /// The role's `max_executions_per_hour` refused (429), or its
    /// accounting failed (503).
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// A `max_concurrent_workflows` scope is full (429).
    #[error("`max_concurrent_workflows` for the {scope} is reached (at most {max})")]
    Concurrency {
        /// `process`, `tenant` or `user`.
        scope: &'static str,
        /// The scope's limit.
        max: usize,
    },
    /// The process is above its memory watermark (503).
    #[error("the process is above its memory watermark")]
    MemoryPressure,
    /// The user holds `max_sessions_per_user` agent sessions (429).
    #[error("at most {max} agent sessions per user")]
    TooManySessions {
        /// The limit.
        max: usize,
    },
    /// The run has ended already (409).
    #[error("the run has ended already ({})", status_name(*.status))]
    Finished {
        /// How it ended.
        status: RunStatus,
    },
    /// Reading the workflow failed.
    #[error(transparent)]
    Workflow(WorkflowError),
    /// The audit trail refused an event, so the action was not taken (503).
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The state backend failed (503).
    #[error("the runtime's state is unavailable: {0}")]
    State(#[from] StateError),
    /// No randomness for an id (503).
    #[error("no randomness for an id")]
    NoRandomness,
}

fn status_name(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Pending => "pending",
        RunStatus::Running => "running",
        RunStatus::Completed => "completed",
        RunStatus::Failed => "failed",
        RunStatus::Cancelled => "cancelled",
        RunStatus::TimedOut => "timed_out",
        RunStatus::Refused => "refused",
        RunStatus::Abandoned => "abandoned",
    }
}

impl From<WorkflowError> for RuntimeError {
    fn from(e: WorkflowError) -> Self {
        match e {
            WorkflowError::TenantMismatch => Self::TenantMismatch,
            other => Self::Workflow(other),
        }
    }
}

/// The problem of a stored workflow that no longer validates when a run
/// starts: the tenant's rules or a feature refuse it (403, as when it is
/// created), or it is malformed for the runtime now — a semantic refusal
/// about the stored workflow, not the request's shape: 422
/// `workflow-invalid`, naming the node.
fn stored_definition_problem(d: &DefinitionError) -> Problem {
    let problem = d.to_problem();
    if problem.status() != http::StatusCode::UNPROCESSABLE_ENTITY {
        return problem;
    }
    let problem = Problem::new(
        http::StatusCode::UNPROCESSABLE_ENTITY,
        "workflow-invalid",
        "The workflow does not validate",
    )
    .with_detail(d.to_string())
    .with_extension("violation", "invalid_definition");
    match d.node() {
        Some(node) => problem.with_extension("node", node),
        None => problem,
    }
}

impl RuntimeError {
    /// A short machine-readable name of the refusal (the audit entry's reason
    /// and the problem's `reason` extension).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::TenantMismatch => "tenant_mismatch",
            Self::TenantInactive => "tenant_inactive",
            Self::OverQuota { .. } => "over_quota",
            Self::Forbidden { .. } => "forbidden",
            Self::Definition(_) => "invalid_definition",
            Self::Inputs(_) => "invalid_inputs",
            Self::Limit(LimitError::State(_)) => "unavailable",
            Self::Limit(_) => "max_executions_per_hour",
            Self::Concurrency { .. } => "max_concurrent_workflows",
            Self::MemoryPressure => "memory_watermark",
            Self::TooManySessions { .. } => "max_sessions_per_user",
            Self::Finished { .. } => "finished",
            Self::Workflow(_) => "workflow",
            Self::Audit(_) | Self::State(_) | Self::NoRandomness => "unavailable",
        }
    }

    /// The problem an HTTP service answers with.
    pub fn to_problem(&self) -> Problem {
        let problem = match self {
            Self::NotFound => Problem::not_found(),
            Self::TenantMismatch | Self::TenantInactive | Self::OverQuota { .. } => {
                Problem::forbidden(self.to_string())
            }
            Self::Forbidden { permission } => Problem::forbidden(format!(
                "permission `{permission}` is not granted for this request"
            ))
            .with_extension("permission", permission.as_str()),
            Self::Definition(d) => stored_definition_problem(d),
            Self::Inputs(_) => Problem::new(
                http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-inputs",
                "Invalid inputs",
            )
            .with_detail(self.to_string()),
            Self::Limit(l) => l.to_problem(),
            Self::Concurrency { scope, .. } => Problem::too_many_requests(Duration::from_secs(1))
                .with_detail(self.to_string())
                .with_extension("scope", *scope),
            Self::MemoryPressure => Problem::service_unavailable(
                "the runtime is above its memory watermark; retry shortly",
            )
            .with_retry_after(Duration::from_secs(5)),
            Self::TooManySessions { .. } => {
                Problem::too_many_requests(Duration::from_secs(60)).with_detail(self.to_string())
            }
            Self::Finished { .. } => Problem::new(
                http::StatusCode::CONFLICT,
                "run-finished",
                "The run has ended",
            )
            .with_detail(self.to_string()),
            Self::Workflow(w) => w.to_problem(),
            Self::Audit(a) => a.problem(),
            Self::State(_) | Self::NoRandomness => {
                Problem::service_unavailable("the workflow runtime is temporarily unavailable")
            }
        };
        problem.with_extension("reason", self.code())
    }
}
