//! The stored workflow and the request to create one.

use kailash_tenancy::workflow::WorkflowNode;
use serde::{Deserialize, Serialize};

/// The longest workflow name, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// A stored workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// Its id (`wf-` and 24 hex digits).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The subject that created it (whose `max_workflows` it counts against).
    pub owner: String,
    /// When it was created.
    pub created_at: jiff::Timestamp,
    /// Its nodes.
    pub nodes: Vec<WorkflowNode>,
}

/// What a caller asks to create: a name and the nodes.
///
/// Unknown fields are refused, so a misspelt field is an error rather than
/// a silently empty workflow.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWorkflow {
    /// The name: 1 to [`MAX_NAME_CHARS`] characters, no control characters
    /// (surrounding whitespace is trimmed).
    pub name: String,
    /// The nodes, checked against the tenant's node limits and types.
    pub nodes: Vec<WorkflowNode>,
}

impl NewWorkflow {
    /// The trimmed name, if it is acceptable.
    pub(crate) fn checked_name(&self) -> Option<&str> {
        let name = self.name.trim();
        let ok = !name.is_empty()
            && name.chars().count() <= MAX_NAME_CHARS
            && !name.chars().any(char::is_control);
        ok.then_some(name)
    }
}
