//! The stored workflow and the request to create one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::definition::{Connection, Definition, NodeDef, Source};

/// The longest workflow name, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// A stored workflow: who made it when, and its [`Definition`] (whose
/// fields sit beside these in the JSON form).
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
    /// Its nodes, connections, inputs and outputs.
    #[serde(flatten)]
    pub definition: Definition,
}

/// What a caller asks to create: a name and the workflow's graph.
///
/// Unknown fields are refused, so a misspelt field is an error rather than
/// a silently empty workflow. `connections`, `inputs` and `outputs` may be
/// absent (see [`Definition`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWorkflow {
    /// The name: 1 to [`MAX_NAME_CHARS`] characters, no control characters
    /// (surrounding whitespace is trimmed).
    pub name: String,
    /// The nodes.
    pub nodes: Vec<NodeDef>,
    /// The connections between node ports.
    #[serde(default)]
    pub connections: Vec<Connection>,
    /// The workflow's declared inputs.
    #[serde(default)]
    pub inputs: Vec<String>,
    /// The workflow's outputs by name.
    #[serde(default)]
    pub outputs: BTreeMap<String, Source>,
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

    /// The graph part of the request.
    pub fn into_definition(self) -> Definition {
        Definition {
            nodes: self.nodes,
            connections: self.connections,
            inputs: self.inputs,
            outputs: self.outputs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflows_stored_before_connections_still_read_and_keep_their_shape() {
        let old = r#"{"id":"wf-1","name":"etl","owner":"dave","created_at":"2026-01-01T00:00:00Z","nodes":[{"id":"a","type":"transform"}]}"#;
        let w: Workflow = serde_json::from_str(old).unwrap();
        assert_eq!(w.definition.nodes.len(), 1);
        assert!(w.definition.nodes[0].config.is_null());
        assert!(w.definition.connections.is_empty() && w.definition.outputs.is_empty());
        let again: serde_json::Value = serde_json::to_value(&w).unwrap();
        assert_eq!(
            again,
            serde_json::from_str::<serde_json::Value>(old).unwrap()
        );
    }

    #[test]
    fn a_create_request_refuses_unknown_fields() {
        let bad = r#"{"name":"x","nodes":[{"id":"a","type":"transform"}],"conections":[]}"#;
        assert!(serde_json::from_str::<NewWorkflow>(bad).is_err());
        let bad_node = r#"{"name":"x","nodes":[{"id":"a","type":"transform","cfg":{}}]}"#;
        assert!(serde_json::from_str::<NewWorkflow>(bad_node).is_err());
        let bad_source = r#"{"name":"x","nodes":[],"connections":[{"from":{"node":"a"},"to":{"node":"b","input":"x"}}]}"#;
        assert!(serde_json::from_str::<NewWorkflow>(bad_source).is_err());
    }
}
