//! The stored workflow and the request to create one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::definition::{Connection, Definition, NodeDef, Source};

/// The longest workflow name, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// A stored workflow: who made it when, and its [`Definition`] (whose
/// fields sit beside these in the JSON form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
pub struct Workflow {
    /// Its id (`wf-` and 24 hex digits).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The subject that created it (whose `max_workflows` it counts against).
    pub owner: String,
    /// When it was created.
    #[cfg_attr(feature = "axum", schema(value_type = String, format = DateTime))]
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
///
/// Its published schema (feature `axum`) states every shape bound of
/// validation: the name, node ids, type names and port names (1-64 ASCII
/// letters, digits, `_` or `-`), 1 to [`MAX_NODES`] nodes, at most
/// [`MAX_CONNECTIONS`] connections and [`MAX_WORKFLOW_PORTS`] inputs and
/// outputs. What a schema cannot state stays with validation: duplicate
/// ids, dangling or cyclic connections, unknown node types (the registry
/// is open), a config's size ([`MAX_CONFIG_BYTES`]) and meaning, and the
/// tenant's own rules.
///
/// [`MAX_NODES`]: crate::definition::MAX_NODES
/// [`MAX_CONNECTIONS`]: crate::definition::MAX_CONNECTIONS
/// [`MAX_WORKFLOW_PORTS`]: crate::definition::MAX_WORKFLOW_PORTS
/// [`MAX_CONFIG_BYTES`]: crate::definition::MAX_CONFIG_BYTES
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewWorkflow {
    /// The name: 1 to [`MAX_NAME_CHARS`] characters, no control characters,
    /// not only whitespace (surrounding whitespace is trimmed).
    #[cfg_attr(
        feature = "axum",
        schema(
            min_length = 1,
            max_length = 128,
            pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]*[^\\x00-\\x20\\x7F-\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000][^\\x00-\\x1F\\x7F-\\x9F]*$"
        )
    )]
    pub name: String,
    /// The nodes.
    #[cfg_attr(feature = "axum", schema(min_items = 1, max_items = 256))]
    pub nodes: Vec<NodeDef>,
    /// The connections between node ports.
    #[serde(default)]
    #[cfg_attr(feature = "axum", schema(max_items = 1024))]
    pub connections: Vec<Connection>,
    /// The workflow's declared inputs.
    #[serde(default)]
    #[cfg_attr(
        feature = "axum",
        schema(schema_with = crate::definition::names_schema)
    )]
    pub inputs: Vec<String>,
    /// The workflow's outputs by name.
    #[serde(default)]
    #[cfg_attr(
        feature = "axum",
        schema(schema_with = crate::definition::outputs_schema)
    )]
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

    /// The published schema of a new workflow states the shape bounds of
    /// validation exactly: a name or id it admits passes the crate's own
    /// checks, and one it refuses does not.
    #[cfg(feature = "axum")]
    #[test]
    fn the_published_schema_is_the_shape_validation_checks() {
        use crate::definition::is_valid_name;
        let validator = kailash_core::schema::body_validator::<NewWorkflow>().unwrap();
        let check = |v: serde_json::Value| validator.validate(&mut v.clone()).is_ok();
        let long = "n".repeat(128);
        let too_long = "n".repeat(129);
        // A control character that trimming removes (`\u{85}` is both) is
        // refused by the schema though validation would trim it away: the
        // schema is the stricter, never the looser.
        for (name, published) in [
            ("etl", true),
            (" etl ", true),
            ("é", true),
            (long.as_str(), true),
            ("\u{a0}x", true),
            (too_long.as_str(), false),
            ("", false),
            (" ", false),
            ("\u{3000}", false),
            ("a\u{85}", false),
            ("a\nb", false),
            ("\u{2028}", false),
            ("\u{7f}", false),
        ] {
            let body =
                serde_json::json!({"name": name, "nodes": [{"id": "a", "type": "transform"}]});
            let parsed: NewWorkflow = serde_json::from_value(body.clone()).unwrap();
            assert_eq!(check(body), published, "{name:?}");
            assert!(!published || parsed.checked_name().is_some(), "{name:?}");
        }
        let id64 = "i".repeat(64);
        let id65 = "i".repeat(65);
        for id in [
            "a",
            "A-b_9",
            id64.as_str(),
            id65.as_str(),
            "",
            "a b",
            "é",
            "a.b",
        ] {
            let node = serde_json::json!({"name": "x", "nodes": [{"id": id, "type": "transform"}]});
            assert_eq!(check(node), is_valid_name(id), "id {id:?}");
            let kind = serde_json::json!({"name": "x", "nodes": [{"id": "a", "type": id}]});
            assert_eq!(check(kind), is_valid_name(id), "type {id:?}");
            let input = serde_json::json!({"name": "x", "inputs": [id], "nodes": [{"id": "a", "type": "t"}]});
            assert_eq!(check(input), is_valid_name(id), "input {id:?}");
            let output = serde_json::json!({"name": "x", "nodes": [{"id": "a", "type": "t"}],
                "outputs": {id: {"node": "a", "output": "result"}}});
            assert_eq!(check(output), is_valid_name(id), "output {id:?}");
        }
        let nodes = |n: usize| -> Vec<serde_json::Value> {
            (0..n)
                .map(|i| serde_json::json!({"id": format!("n{i}"), "type": "t"}))
                .collect()
        };
        assert!(!check(serde_json::json!({"name": "x", "nodes": []})));
        assert!(check(serde_json::json!({"name": "x", "nodes": nodes(256)})));
        assert!(!check(
            serde_json::json!({"name": "x", "nodes": nodes(257)})
        ));
        let wire = serde_json::json!({"from": {"input": "i"}, "to": {"node": "a", "input": "x"}});
        let both = serde_json::json!({"from": {"input": "i", "node": "a"}, "to": {"node": "a", "input": "x"}});
        assert!(check(
            serde_json::json!({"name": "x", "nodes": nodes(1), "connections": [wire]})
        ));
        assert!(!check(
            serde_json::json!({"name": "x", "nodes": nodes(1), "connections": [both]})
        ));
        assert!(!check(
            serde_json::json!({"name": "x", "nodes": nodes(1), "extra": 1})
        ));
    }
}
