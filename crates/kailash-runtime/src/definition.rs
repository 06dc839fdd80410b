//! The workflow definition: nodes, the connections between their ports,
//! and the workflow's own inputs and outputs.
//!
//! A definition is plain data (what a caller sends and the store keeps);
//! [`compile`](crate::compile()) checks it against a tenant and a
//! [`NodeRegistry`](crate::NodeRegistry) and turns it into a runnable
//! [`CompiledWorkflow`](crate::CompiledWorkflow).
//!
//! ```
//! use kailash_runtime::definition::{Definition, InputRef, Source};
//!
//! let def: Definition = serde_json::from_value(serde_json::json!({
//!     "inputs": ["order"],
//!     "nodes": [
//!         { "id": "total", "type": "transform", "config": { "expression": "order.qty" } }
//!     ],
//!     "connections": [
//!         { "from": { "input": "order" }, "to": { "node": "total", "input": "order" } }
//!     ],
//!     "outputs": { "qty": { "node": "total", "output": "result" } }
//! }))?;
//! assert_eq!(def.connections[0].from, Source::Input(InputRef { input: "order".into() }));
//!
//! // A stored workflow from before connections existed still reads.
//! let old: Definition = serde_json::from_str(r#"{"nodes": [{"id": "a", "type": "transform"}]}"#)?;
//! assert!(old.connections.is_empty() && old.nodes[0].config.is_null());
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The most nodes any workflow may have (a tenant's `max_workflow_nodes`
/// may lower it).
pub const MAX_NODES: usize = 256;
/// The most connections any workflow may have.
pub const MAX_CONNECTIONS: usize = 1024;
/// The longest node id, port name or workflow input/output name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// The largest node `config`, in bytes of serialized JSON.
pub const MAX_CONFIG_BYTES: usize = 16 * 1024;
/// The most declared workflow inputs, and the most declared outputs.
pub const MAX_WORKFLOW_PORTS: usize = 64;

/// One node: its id, its type and its type-specific configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NodeDef {
    /// Unique within the workflow: 1 to [`MAX_NAME_BYTES`] bytes of ASCII
    /// letters, digits, `_` and `-`.
    #[cfg_attr(
        feature = "axum",
        schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")
    )]
    pub id: String,
    /// The registered node type (`"transform"`, a user type, …).
    #[serde(rename = "type")]
    #[cfg_attr(
        feature = "axum",
        schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")
    )]
    pub node_type: String,
    /// The type's configuration; `null` when absent (at most
    /// [`MAX_CONFIG_BYTES`] serialized: a size JSON Schema cannot state,
    /// checked by validation).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub config: Value,
}

/// Where a connection's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum Source {
    /// An output port of a node (`{"node": …, "output": …}`).
    Node(OutputRef),
    /// A workflow input declared in [`Definition::inputs`] (`{"input": …}`).
    Input(InputRef),
}

/// Output port `output` of node `node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OutputRef {
    /// The producing node's id.
    #[cfg_attr(
        feature = "axum",
        schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")
    )]
    pub node: String,
    /// Its output port.
    #[cfg_attr(
        feature = "axum",
        schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")
    )]
    pub output: String,
}

/// The workflow input `input`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct InputRef {
    /// The workflow input's name.
    #[cfg_attr(
        feature = "axum",
        schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")
    )]
    pub input: String,
}

/// Where a connection's value goes: input port `input` of node `node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The consuming node's id.
    #[cfg_attr(
        feature = "axum",
        schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")
    )]
    pub node: String,
    /// Its input port (each port takes at most one connection).
    #[cfg_attr(
        feature = "axum",
        schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")
    )]
    pub input: String,
}

/// One edge of the graph: a value flows from `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// The producer.
    pub from: Source,
    /// The consumer.
    pub to: Target,
}

/// A workflow's graph. Every field but `nodes` may be absent.
///
/// Unknown fields are ignored here, because a stored
/// [`Workflow`](crate::Workflow) embeds the definition beside its own
/// fields; the request to create one ([`NewWorkflow`](crate::NewWorkflow))
/// refuses them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
pub struct Definition {
    /// The nodes.
    pub nodes: Vec<NodeDef>,
    /// The edges; none means every node runs on its own with an empty input.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<Connection>,
    /// The names a run's inputs object must carry (no others).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "axum", schema(schema_with = names_schema))]
    pub inputs: Vec<String>,
    /// The run's outputs by name. When empty, the run's outputs are the
    /// outputs of every node no connection reads from, keyed by node id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[cfg_attr(feature = "axum", schema(schema_with = outputs_schema))]
    pub outputs: BTreeMap<String, Source>,
}

/// The schema of the names a definition lists (`inputs`): at most
/// [`MAX_WORKFLOW_PORTS`] of them, each as [`is_valid_name`] accepts.
#[cfg(feature = "axum")]
pub(crate) fn names_schema() -> utoipa::openapi::Array {
    use utoipa::openapi::schema::ArrayBuilder;
    ArrayBuilder::new()
        .items(name_schema())
        .max_items(Some(MAX_WORKFLOW_PORTS))
        .description(Some("Names: 1-64 ASCII letters, digits, `_` or `-`"))
        .build()
}

/// The schema of one name, as [`is_valid_name`] accepts it.
#[cfg(feature = "axum")]
pub(crate) fn name_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_NAME_BYTES))
        .pattern(Some("^[A-Za-z0-9_-]+$"))
        .build()
}

/// The schema of the outputs by name: at most [`MAX_WORKFLOW_PORTS`],
/// each name as [`is_valid_name`] accepts, each value a [`Source`].
#[cfg(feature = "axum")]
pub(crate) fn outputs_schema() -> utoipa::openapi::Object {
    use utoipa::PartialSchema;
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(name_schema()))
        .max_properties(Some(MAX_WORKFLOW_PORTS))
        .additional_properties(Some(AdditionalProperties::RefOr(Source::schema())))
        .build()
}

/// Whether `name` is an acceptable id or port name: 1 to
/// [`MAX_NAME_BYTES`] bytes of ASCII letters, digits, `_` and `-`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
