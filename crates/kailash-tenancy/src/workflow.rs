//! Checking a workflow definition against a tenant's limits before it runs.
//!
//! ```
//! use kailash_tenancy::model::TenantConfig;
//! use kailash_tenancy::workflow::{validate_workflow, WorkflowNode, WorkflowViolation};
//!
//! let config = TenantConfig {
//!     allowed_node_types: Some(["transform".to_owned()].into()),
//!     ..TenantConfig::default()
//! };
//! let nodes: Vec<WorkflowNode> = serde_json::from_str(
//!     r#"[{"id": "a", "type": "transform"}, {"id": "b", "type": "llm"}]"#,
//! )?;
//! let err = validate_workflow(&config, &nodes).unwrap_err();
//! assert!(matches!(err, WorkflowViolation::DisallowedNodeType { .. }));
//! assert!(err.to_string().contains("\"b\""));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::model::TenantConfig;

/// One node of a workflow definition; other fields of the node are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowNode {
    /// The node's id, unique within the workflow.
    pub id: String,
    /// The node's type (`"http_request"`, `"llm"`, …).
    #[serde(rename = "type")]
    pub node_type: String,
}

/// Why a workflow is refused for a tenant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkflowViolation {
    /// The workflow has more nodes than the tenant's `max_workflow_nodes`.
    #[error("workflow has {count} nodes; the tenant allows at most {limit}")]
    TooManyNodes {
        /// The tenant's limit.
        limit: u32,
        /// The workflow's node count.
        count: usize,
    },
    /// A node's type is not in the tenant's `allowed_node_types`.
    #[error("node {node_id:?} has type {node_type:?}, which the tenant may not use")]
    DisallowedNodeType {
        /// The offending node.
        node_id: String,
        /// Its type.
        node_type: String,
    },
    /// Two nodes share an id.
    #[error("node id {node_id:?} is used more than once")]
    DuplicateNodeId {
        /// The repeated id.
        node_id: String,
    },
    /// The workflow has no nodes.
    #[error("workflow has no nodes")]
    Empty,
}

/// Checks `nodes` against `config`: not empty, at most `max_workflow_nodes`
/// nodes, unique ids, and only allowed node types. Reports the first violation.
pub fn validate_workflow(
    config: &TenantConfig,
    nodes: &[WorkflowNode],
) -> Result<(), WorkflowViolation> {
    if nodes.is_empty() {
        return Err(WorkflowViolation::Empty);
    }
    if let Some(limit) = config.max_workflow_nodes
        && nodes.len() > usize::try_from(limit).unwrap_or(usize::MAX)
    {
        return Err(WorkflowViolation::TooManyNodes {
            limit,
            count: nodes.len(),
        });
    }
    let mut seen = HashSet::with_capacity(nodes.len());
    for node in nodes {
        if !seen.insert(node.id.as_str()) {
            return Err(WorkflowViolation::DuplicateNodeId {
                node_id: node.id.clone(),
            });
        }
        if !config.allows_node_type(&node.node_type) {
            return Err(WorkflowViolation::DisallowedNodeType {
                node_id: node.id.clone(),
                node_type: node.node_type.clone(),
            });
        }
    }
    Ok(())
}
