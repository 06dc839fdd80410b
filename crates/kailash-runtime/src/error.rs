//! Why the workflow store refused.

use kailash_access::limits::LimitError;
use kailash_core::state::StateError;
use kailash_tenancy::workflow::WorkflowViolation;

/// Why a workflow could not be created, read or deleted.
///
/// Each variant is one answer the caller gives (an HTTP service: the
/// problem in brackets), so the store never decides a status itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkflowError {
    /// The principal acts in another tenant than the one resolved for the
    /// request (403): limits, quotas and keys would otherwise disagree.
    #[error("tenant mismatch")]
    TenantMismatch,
    /// The name is empty, too long or has control characters (400).
    #[error("`name` must be 1-{max_chars} characters without control characters")]
    InvalidName {
        /// The longest name allowed.
        max_chars: usize,
    },
    /// The nodes break the tenant's workflow rules (403 or 400, by kind).
    #[error(transparent)]
    Violation(#[from] WorkflowViolation),
    /// The owner's role limit (`max_workflows`) refused, or its accounting
    /// is unavailable ([`LimitError::to_problem`]).
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// The tenant's workflow quota is exhausted (403).
    #[error("the tenant's workflows quota is exhausted: at most {limit}")]
    QuotaExhausted {
        /// The tenant's `max_workflows`.
        limit: u64,
    },
    /// Quota accounting is unavailable (503).
    #[error("quota accounting unavailable: {0}")]
    Quota(#[source] StateError),
    /// No randomness for a workflow id (503).
    #[error("no randomness for a workflow id")]
    IdGenerator,
    /// The state backend holding the workflows failed, or holds a workflow
    /// it cannot read (503).
    #[error("the workflow store failed: {0}")]
    Store(#[source] StateError),
}
