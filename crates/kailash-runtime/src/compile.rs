//! Validating a [`Definition`] for a tenant and turning it into a runnable
//! [`CompiledWorkflow`].
//!
//! Checks, in order, each refusal naming the node: the global size bounds
//! (node, connection, input/output counts), the tenant's rules
//! ([`validate_workflow`]: not empty, `max_workflow_nodes`, unique ids,
//! allowed node types), then per node its id, its config size, its type
//! (registered, and the tenant has the feature it needs) and its config
//! (the type builds the node, compiling what it must once); then every
//! connection and workflow output (known nodes and ports, one connection
//! per input port, declared workflow inputs) and finally that the graph
//! has no cycle.
//!
//! ```
//! use kailash_runtime::{compile, DefinitionError, NodeRegistry, definition::Definition};
//! use kailash_tenancy::model::{Tenant, TenantSpec};
//!
//! let tenant = Tenant::try_from(serde_json::from_str::<TenantSpec>(r#"{"id": "acme"}"#)?)?;
//! let def: Definition = serde_json::from_value(serde_json::json!({
//!     "nodes": [{"id": "a", "type": "transform"}, {"id": "b", "type": "transform"}],
//!     "connections": [
//!         {"from": {"node": "a", "output": "result"}, "to": {"node": "b", "input": "x"}},
//!         {"from": {"node": "b", "output": "result"}, "to": {"node": "a", "input": "y"}}
//!     ]
//! }))?;
//! let err = compile(&def, &tenant, &NodeRegistry::builtin()).unwrap_err();
//! assert!(matches!(err, DefinitionError::Cycle { .. }));
//! assert!(err.node().is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use kailash_tenancy::model::Tenant;
use kailash_tenancy::workflow::{WorkflowNode, validate_workflow};
use serde_json::Value;

use crate::definition::{
    Definition, MAX_CONFIG_BYTES, MAX_CONNECTIONS, MAX_NAME_BYTES, MAX_NODES, MAX_WORKFLOW_PORTS,
    Source, is_valid_name,
};
use crate::error::DefinitionError;
use crate::executor::budget::json_size;
use crate::node::{Node, Ports};
use crate::registry::NodeRegistry;

/// Where a value is read from, resolved to indices.
#[derive(Debug, Clone)]
pub(crate) enum Slot {
    /// Output `port` of node `node` (an index into the nodes).
    Node { node: usize, port: String },
    /// The workflow input of this name.
    Input(String),
}

pub(crate) struct CompiledNode {
    pub(crate) id: String,
    pub(crate) node_type: String,
    pub(crate) config: Value,
    pub(crate) node: Arc<dyn Node>,
    /// Input port ← where it comes from.
    pub(crate) inputs: Vec<(String, Slot)>,
    /// Output ports some connection or workflow output reads.
    pub(crate) needed_outputs: Vec<String>,
    /// Nodes that read from this one (each once).
    pub(crate) dependents: Vec<usize>,
    /// How many distinct nodes this one reads from.
    pub(crate) upstream: usize,
}

/// A validated workflow, its nodes built: what the
/// [`Executor`](crate::Executor) runs. Cheap to share behind an `Arc`.
pub struct CompiledWorkflow {
    pub(crate) nodes: Vec<CompiledNode>,
    pub(crate) inputs: Vec<String>,
    /// The run's outputs by name; `None` means the default (every node no
    /// one reads from, by node id).
    pub(crate) outputs: Option<Vec<(String, Slot)>>,
}

impl fmt::Debug for CompiledWorkflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledWorkflow")
            .field(
                "nodes",
                &self
                    .nodes
                    .iter()
                    .map(|n| (&n.id, &n.node_type))
                    .collect::<Vec<_>>(),
            )
            .field("inputs", &self.inputs)
            .finish_non_exhaustive()
    }
}

/// Why a run's inputs are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The inputs are not a JSON object.
    #[error("the inputs must be a JSON object")]
    NotAnObject,
    /// A declared input is missing.
    #[error("input {0:?} is missing")]
    Missing(String),
    /// An input the workflow does not declare.
    #[error("input {0:?} is not declared by the workflow")]
    Unknown(String),
}

impl CompiledWorkflow {
    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes (never true for a compiled workflow).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The declared workflow input names.
    pub fn inputs(&self) -> &[String] {
        &self.inputs
    }

    /// Checks that `inputs` is an object carrying exactly the declared
    /// inputs (an API checks this before accepting a run; the executor
    /// checks again).
    pub fn check_inputs(&self, inputs: &Value) -> Result<(), InputError> {
        let obj = inputs.as_object().ok_or(InputError::NotAnObject)?;
        if let Some(name) = self.inputs.iter().find(|n| !obj.contains_key(n.as_str())) {
            return Err(InputError::Missing(name.clone()));
        }
        if let Some(name) = obj.keys().find(|k| !self.inputs.contains(k)) {
            return Err(InputError::Unknown(cut(name)));
        }
        Ok(())
    }
}

/// Cuts untrusted names to [`MAX_NAME_BYTES`] for error messages.
fn cut(s: &str) -> String {
    let mut end = s.len().min(MAX_NAME_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Validates `def` for `tenant` against `registry` and builds its nodes.
pub fn compile(
    def: &Definition,
    tenant: &Tenant,
    registry: &NodeRegistry,
) -> Result<CompiledWorkflow, DefinitionError> {
    if def.nodes.len() > MAX_NODES {
        return Err(DefinitionError::TooManyNodes {
            count: def.nodes.len(),
            max: MAX_NODES,
        });
    }
    if def.connections.len() > MAX_CONNECTIONS {
        return Err(DefinitionError::TooManyConnections {
            count: def.connections.len(),
            max: MAX_CONNECTIONS,
        });
    }
    for (what, count) in [("inputs", def.inputs.len()), ("outputs", def.outputs.len())] {
        if count > MAX_WORKFLOW_PORTS {
            return Err(DefinitionError::TooManyPorts {
                what,
                count,
                max: MAX_WORKFLOW_PORTS,
            });
        }
    }
    let plain: Vec<WorkflowNode> = def
        .nodes
        .iter()
        .map(|n| WorkflowNode {
            id: n.id.clone(),
            node_type: n.node_type.clone(),
        })
        .collect();
    validate_workflow(&tenant.config, &plain)?;

    // Nodes: id, config size, type and feature, then the node itself.
    let mut nodes = Vec::with_capacity(def.nodes.len());
    let mut ports: Vec<Ports> = Vec::with_capacity(def.nodes.len());
    for n in &def.nodes {
        if !is_valid_name(&n.id) {
            return Err(DefinitionError::InvalidNodeId { node: cut(&n.id) });
        }
        let bytes = usize::try_from(json_size(&n.config)).unwrap_or(usize::MAX);
        if bytes > MAX_CONFIG_BYTES {
            return Err(DefinitionError::ConfigTooLarge {
                node: n.id.clone(),
                bytes,
                max: MAX_CONFIG_BYTES,
            });
        }
        let entry = registry
            .get(&n.node_type)
            .ok_or_else(|| DefinitionError::UnknownNodeType {
                node: n.id.clone(),
                node_type: n.node_type.clone(),
            })?;
        let needs = |feature: &str| -> Result<(), DefinitionError> {
            if tenant.config.has_feature(feature) {
                Ok(())
            } else {
                Err(DefinitionError::FeatureRequired {
                    node: n.id.clone(),
                    node_type: n.node_type.clone(),
                    feature: feature.to_owned(),
                })
            }
        };
        if let Some(feature) = &entry.feature {
            needs(feature)?;
        }
        let node =
            entry
                .node_type
                .build(&n.config)
                .map_err(|e| DefinitionError::InvalidConfig {
                    node: n.id.clone(),
                    reason: e.to_string(),
                })?;
        if let Some(feature) = node.required_feature() {
            needs(feature)?;
        }
        ports.push(node.ports());
        nodes.push(CompiledNode {
            id: n.id.clone(),
            node_type: n.node_type.clone(),
            config: n.config.clone(),
            node,
            inputs: Vec::new(),
            needed_outputs: Vec::new(),
            dependents: Vec::new(),
            upstream: 0,
        });
    }
    let index: HashMap<&str, usize> = def
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();

    let mut declared = HashSet::with_capacity(def.inputs.len());
    for name in &def.inputs {
        if !is_valid_name(name) || !declared.insert(name.as_str()) {
            return Err(DefinitionError::BadWorkflowPort {
                name: cut(name),
                place: "inputs".to_owned(),
            });
        }
    }

    // Resolves a source, checking the node and its output port exist.
    let resolve = |from: &Source, place: &dyn Fn() -> String| -> Result<Slot, DefinitionError> {
        match from {
            Source::Node(r) => {
                let &i =
                    index
                        .get(r.node.as_str())
                        .ok_or_else(|| DefinitionError::UnknownNode {
                            node: cut(&r.node),
                            place: place(),
                        })?;
                if !is_valid_name(&r.output) || !ports[i].outputs.contains(&r.output) {
                    return Err(DefinitionError::UnknownPort {
                        node: r.node.clone(),
                        direction: "output",
                        port: cut(&r.output),
                        place: place(),
                    });
                }
                Ok(Slot::Node {
                    node: i,
                    port: r.output.clone(),
                })
            }
            Source::Input(r) => {
                if declared.contains(r.input.as_str()) {
                    Ok(Slot::Input(r.input.clone()))
                } else {
                    Err(DefinitionError::BadWorkflowPort {
                        name: cut(&r.input),
                        place: place(),
                    })
                }
            }
        }
    };

    let mut edges: HashSet<(usize, usize)> = HashSet::new();
    for (c, conn) in def.connections.iter().enumerate() {
        let place = || format!("connection {c}");
        let &to = index
            .get(conn.to.node.as_str())
            .ok_or_else(|| DefinitionError::UnknownNode {
                node: cut(&conn.to.node),
                place: place(),
            })?;
        if !is_valid_name(&conn.to.input) || !ports[to].inputs.contains(&conn.to.input) {
            return Err(DefinitionError::UnknownPort {
                node: conn.to.node.clone(),
                direction: "input",
                port: cut(&conn.to.input),
                place: place(),
            });
        }
        if nodes[to].inputs.iter().any(|(p, _)| *p == conn.to.input) {
            return Err(DefinitionError::InputConnectedTwice {
                node: conn.to.node.clone(),
                input: conn.to.input.clone(),
            });
        }
        let slot = resolve(&conn.from, &place)?;
        if let Slot::Node { node: from, port } = &slot {
            if !nodes[*from].needed_outputs.contains(port) {
                nodes[*from].needed_outputs.push(port.clone());
            }
            if edges.insert((*from, to)) {
                nodes[*from].dependents.push(to);
                nodes[to].upstream += 1;
            }
        }
        nodes[to].inputs.push((conn.to.input.clone(), slot));
    }

    let outputs = if def.outputs.is_empty() {
        None
    } else {
        let mut out = Vec::with_capacity(def.outputs.len());
        for (name, from) in &def.outputs {
            let place = || format!("output {:?}", cut(name));
            if !is_valid_name(name) {
                return Err(DefinitionError::BadWorkflowPort {
                    name: cut(name),
                    place: "outputs".to_owned(),
                });
            }
            let slot = resolve(from, &place)?;
            if let Slot::Node { node, port } = &slot
                && !nodes[*node].needed_outputs.contains(port)
            {
                nodes[*node].needed_outputs.push(port.clone());
            }
            out.push((name.clone(), slot));
        }
        Some(out)
    };

    check_acyclic(&nodes)?;
    Ok(CompiledWorkflow {
        nodes,
        inputs: def.inputs.clone(),
        outputs,
    })
}

/// Kahn's algorithm; when nodes are left over, walks upstream from one of
/// them until a node repeats, which lies on a cycle.
fn check_acyclic(nodes: &[CompiledNode]) -> Result<(), DefinitionError> {
    let mut upstream: Vec<usize> = nodes.iter().map(|n| n.upstream).collect();
    let mut ready: Vec<usize> = (0..nodes.len()).filter(|&i| upstream[i] == 0).collect();
    let mut done = vec![false; nodes.len()];
    while let Some(i) = ready.pop() {
        done[i] = true;
        for &d in &nodes[i].dependents {
            upstream[d] -= 1;
            if upstream[d] == 0 {
                ready.push(d);
            }
        }
    }
    let Some(start) = done.iter().position(|d| !d) else {
        return Ok(());
    };
    // Every node left over has a left-over node upstream.
    let mut predecessors: BTreeMap<usize, usize> = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for &d in &n.dependents {
            if !done[i] && !done[d] {
                predecessors.entry(d).or_insert(i);
            }
        }
    }
    let mut seen = vec![false; nodes.len()];
    let mut at = start;
    while !seen[at] {
        seen[at] = true;
        match predecessors.get(&at) {
            Some(&p) => at = p,
            None => break,
        }
    }
    Err(DefinitionError::Cycle {
        node: nodes[at].id.clone(),
    })
}
