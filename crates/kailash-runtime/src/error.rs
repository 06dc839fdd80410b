//! Why the workflow store or validation refused.

use http::StatusCode;
use kailash_access::limits::LimitError;
use kailash_core::Problem;
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
    /// The definition is malformed for the runtime: a cycle, a dangling
    /// connection, an unknown node type, a bad node config, a size bound
    /// (400; 403 for [`DefinitionError::FeatureRequired`]).
    #[error(transparent)]
    Definition(DefinitionError),
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

/// Why a workflow definition is refused. Every variant about one node
/// names it ([`DefinitionError::node`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DefinitionError {
    /// The tenant's workflow rules refuse it (no nodes, more than its
    /// `max_workflow_nodes`, a duplicate id, a node type it may not use).
    #[error(transparent)]
    Tenant(#[from] WorkflowViolation),
    /// More nodes than any workflow may have.
    #[error("workflow has {count} nodes; at most {max} are allowed")]
    TooManyNodes {
        /// The workflow's node count.
        count: usize,
        /// [`MAX_NODES`](crate::definition::MAX_NODES).
        max: usize,
    },
    /// More connections than any workflow may have.
    #[error("workflow has {count} connections; at most {max} are allowed")]
    TooManyConnections {
        /// The workflow's connection count.
        count: usize,
        /// [`MAX_CONNECTIONS`](crate::definition::MAX_CONNECTIONS).
        max: usize,
    },
    /// More declared workflow inputs or outputs than allowed.
    #[error("workflow declares {count} {what}; at most {max} are allowed")]
    TooManyPorts {
        /// `"inputs"` or `"outputs"`.
        what: &'static str,
        /// How many it declares.
        count: usize,
        /// [`MAX_WORKFLOW_PORTS`](crate::definition::MAX_WORKFLOW_PORTS).
        max: usize,
    },
    /// A node id is empty, too long or has other characters than ASCII
    /// letters, digits, `_` and `-`.
    #[error("node id {node:?} must be 1-64 ASCII letters, digits, `_` or `-`")]
    InvalidNodeId {
        /// The offending id (cut to 64 bytes at most).
        node: String,
    },
    /// A node's config is too large.
    #[error("node {node:?}: config is {bytes} bytes; at most {max} are allowed")]
    ConfigTooLarge {
        /// The node.
        node: String,
        /// Its config's serialized size.
        bytes: usize,
        /// [`MAX_CONFIG_BYTES`](crate::definition::MAX_CONFIG_BYTES).
        max: usize,
    },
    /// No node type of that name is registered.
    #[error("node {node:?} has unknown type {node_type:?}")]
    UnknownNodeType {
        /// The node.
        node: String,
        /// Its type.
        node_type: String,
    },
    /// The node's type (or its config) needs a tenant feature the tenant
    /// does not have.
    #[error("node {node:?} of type {node_type:?} needs the tenant feature {feature:?}")]
    FeatureRequired {
        /// The node.
        node: String,
        /// Its type.
        node_type: String,
        /// The missing feature.
        feature: String,
    },
    /// The node's type refused its config.
    #[error("node {node:?}: {reason}")]
    InvalidConfig {
        /// The node.
        node: String,
        /// What its type said.
        reason: String,
    },
    /// A connection or workflow output names a node that does not exist.
    #[error("{place} refers to unknown node {node:?}")]
    UnknownNode {
        /// The missing node's id (cut to 64 bytes at most).
        node: String,
        /// Where: `connection <i>` or `output <name>`.
        place: String,
    },
    /// A connection or workflow output names a port the node does not have.
    #[error("{place}: node {node:?} has no {direction} port {port:?}")]
    UnknownPort {
        /// The node.
        node: String,
        /// `"input"` or `"output"`.
        direction: &'static str,
        /// The port (cut to 64 bytes at most).
        port: String,
        /// Where: `connection <i>` or `output <name>`.
        place: String,
    },
    /// Two connections feed the same input port.
    #[error("node {node:?}: input {input:?} has more than one connection")]
    InputConnectedTwice {
        /// The node.
        node: String,
        /// The port.
        input: String,
    },
    /// A connection reads a workflow input that is not declared, or a
    /// workflow input or output name is invalid or repeated.
    #[error("{place}: workflow input or output {name:?} is undeclared, invalid or repeated")]
    BadWorkflowPort {
        /// The name (cut to 64 bytes at most).
        name: String,
        /// Where.
        place: String,
    },
    /// The connections form a cycle through this node.
    #[error("node {node:?} is part of a cycle")]
    Cycle {
        /// A node on the cycle.
        node: String,
    },
}

impl DefinitionError {
    /// The node this refusal is about, if it is about one.
    pub fn node(&self) -> Option<&str> {
        match self {
            Self::Tenant(WorkflowViolation::DisallowedNodeType { node_id, .. })
            | Self::Tenant(WorkflowViolation::DuplicateNodeId { node_id }) => Some(node_id),
            Self::InvalidNodeId { node }
            | Self::ConfigTooLarge { node, .. }
            | Self::UnknownNodeType { node, .. }
            | Self::FeatureRequired { node, .. }
            | Self::InvalidConfig { node, .. }
            | Self::UnknownNode { node, .. }
            | Self::UnknownPort { node, .. }
            | Self::InputConnectedTwice { node, .. }
            | Self::Cycle { node } => Some(node),
            _ => None,
        }
    }
}

impl WorkflowError {
    /// The problem an HTTP service answers with: the status each variant's
    /// doc names, with `violation`, `node`, `node_type`, `feature` or
    /// `quota` extensions where they help the client. Backend failures say
    /// only which part is unavailable.
    pub fn to_problem(&self) -> Problem {
        match self {
            Self::TenantMismatch => Problem::forbidden("tenant mismatch"),
            Self::InvalidName { .. } => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-definition",
                "Unprocessable Content",
            )
            .with_detail(self.to_string()),
            Self::Violation(v) => violation_problem(v),
            Self::Definition(d) => d.to_problem(),
            Self::Limit(l) => l.to_problem(),
            Self::QuotaExhausted { .. } => {
                Problem::forbidden(self.to_string()).with_extension("quota", "workflows")
            }
            Self::Quota(_) => {
                Problem::service_unavailable("quota accounting is temporarily unavailable")
            }
            Self::IdGenerator => {
                Problem::service_unavailable("the id generator is temporarily unavailable")
            }
            Self::Store(_) => {
                Problem::service_unavailable("the workflow store is temporarily unavailable")
            }
        }
    }
}

impl DefinitionError {
    /// A definition the runtime cannot run: 422 naming the node, or 403
    /// when the tenant's rules or a feature refuse it (extension
    /// `violation`, and `node` when it is about one).
    pub fn to_problem(&self) -> Problem {
        if let Self::Tenant(v) = self {
            return violation_problem(v);
        }
        let problem = match self {
            Self::FeatureRequired { feature, .. } => {
                Problem::forbidden(self.to_string()).with_extension("feature", feature.as_str())
            }
            // Well formed (the schema admitted it) but not runnable: an
            // unknown node type, a duplicate id, a dangling connection, a
            // cycle.
            _ => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-definition",
                "Unprocessable Content",
            )
            .with_detail(self.to_string()),
        };
        let problem = problem.with_extension("violation", "invalid_definition");
        match self.node() {
            Some(node) => problem.with_extension("node", node),
            None => problem,
        }
    }
}

fn unprocessable(v: &WorkflowViolation) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-definition",
        "Unprocessable Content",
    )
    .with_detail(v.to_string())
}

/// The problem of a tenant rule a workflow breaks.
fn violation_problem(v: &WorkflowViolation) -> Problem {
    let (problem, kind) = match v {
        WorkflowViolation::TooManyNodes { .. } => {
            (Problem::forbidden(v.to_string()), "too_many_nodes")
        }
        WorkflowViolation::DisallowedNodeType { .. } => {
            (Problem::forbidden(v.to_string()), "disallowed_node_type")
        }
        // Well formed but not a valid graph: 422, not a shape error.
        WorkflowViolation::DuplicateNodeId { .. } => (unprocessable(v), "duplicate_node_id"),
        _ => (unprocessable(v), "invalid_workflow"),
    };
    let problem = problem.with_extension("violation", kind);
    match v {
        WorkflowViolation::DisallowedNodeType { node_id, node_type } => problem
            .with_extension("node", node_id.as_str())
            .with_extension("node_type", node_type.as_str()),
        WorkflowViolation::DuplicateNodeId { node_id } => {
            problem.with_extension("node", node_id.as_str())
        }
        _ => problem,
    }
}
