//! What a node is: the [`NodeType`] a registry holds (it turns a node's
//! `config` into a ready [`Node`] once, at validation) and the [`Node`] the
//! executor runs.
//!
//! Users implement both to add their own node types:
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use kailash_runtime::node::{ConfigError, Node, NodeContext, NodeError, NodeType, Ports, Values};
//! use serde_json::Value;
//!
//! /// Adds `config.by` to its input `n`.
//! struct Add(i64);
//!
//! #[async_trait]
//! impl Node for Add {
//!     fn ports(&self) -> Ports {
//!         Ports::named(&["n"], &["sum"])
//!     }
//!     async fn run(&self, _ctx: &NodeContext<'_>, input: Values) -> Result<Values, NodeError> {
//!         let n = input.get("n").and_then(Value::as_i64).ok_or_else(|| NodeError::new("`n` must be an integer"))?;
//!         let sum = n.checked_add(self.0).ok_or_else(|| NodeError::new("overflow"))?;
//!         Ok(Values::from_iter([("sum".to_owned(), Value::from(sum))]))
//!     }
//! }
//!
//! struct AddType;
//!
//! impl NodeType for AddType {
//!     fn build(&self, config: &Value) -> Result<Arc<dyn Node>, ConfigError> {
//!         let by = config.get("by").and_then(Value::as_i64).ok_or_else(|| ConfigError::new("`by` must be an integer"))?;
//!         Ok(Arc::new(Add(by)))
//!     }
//! }
//! # let _ = AddType.build(&serde_json::json!({"by": 1})).map_err(|e| e.to_string()).unwrap();
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::executor::RunContext;

/// A node's named values: its input ports going in, its output ports coming out.
pub type Values = serde_json::Map<String, Value>;

/// The port names a node takes or gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortNames {
    /// Any valid port name ([`is_valid_name`](crate::definition::is_valid_name)).
    Any,
    /// Only these.
    Only(Vec<String>),
}

impl PortNames {
    /// Whether `name` is one of them.
    pub fn contains(&self, name: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Only(names) => names.iter().any(|n| n == name),
        }
    }
}

/// A node's input and output ports; connections to any other port are
/// refused at validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports {
    /// The input ports.
    pub inputs: PortNames,
    /// The output ports.
    pub outputs: PortNames,
}

impl Ports {
    /// Exactly these input and output ports.
    pub fn named(inputs: &[&str], outputs: &[&str]) -> Self {
        let own = |names: &[&str]| names.iter().map(|&n| n.to_owned()).collect();
        Self {
            inputs: PortNames::Only(own(inputs)),
            outputs: PortNames::Only(own(outputs)),
        }
    }
}

/// Why a node's `config` is refused at validation. The message is shown to
/// the workflow's author: it must not carry secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// A refusal saying `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// Why a node failed while running. The message goes into the run record
/// and its events: it must not carry secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NodeError(String);

impl NodeError {
    /// A failure saying `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// What a running node may know about its run.
#[derive(Debug, Clone, Copy)]
pub struct NodeContext<'a> {
    /// The run (tenant, principal, ids).
    pub run: &'a RunContext,
    /// This node's id.
    pub node_id: &'a str,
    /// The size of this node's input, in bytes of serialized JSON.
    pub input_bytes: u64,
    /// What is left of the run's byte budget (`u64::MAX` when unlimited).
    /// A node that builds large values should stop before producing more
    /// than this; the executor fails the run when an output exceeds it anyway.
    pub budget_remaining: u64,
}

/// A configured node, ready to run any number of times (concurrently too).
#[async_trait]
pub trait Node: Send + Sync + 'static {
    /// The ports this node takes and gives (asked once, at validation).
    fn ports(&self) -> Ports;

    /// A tenant feature this configured node needs besides its type's,
    /// if any: a node whose config reaches something gated (for example
    /// an analytics database) names the feature here, and validation
    /// refuses it for a tenant without it.
    fn required_feature(&self) -> Option<&str> {
        None
    }

    /// Runs the node on `input` (one value per connected input port) and
    /// returns one value per output port. Every output port some
    /// connection reads must be present, or the run fails naming the node.
    ///
    /// The executor may drop this future at any await point (cancellation,
    /// deadline, another node failing): hold no state that needs cleanup
    /// beyond `Drop`.
    async fn run(&self, ctx: &NodeContext<'_>, input: Values) -> Result<Values, NodeError>;
}

/// A node type: validates a node's `config` and builds the [`Node`] once.
pub trait NodeType: Send + Sync + 'static {
    /// Builds the node for `config` (`null` when the definition has none),
    /// or says what is wrong with it. Called at validation, never per run
    /// of the node, so expensive preparation (compiling an expression)
    /// belongs here.
    fn build(&self, config: &Value) -> Result<Arc<dyn Node>, ConfigError>;
}

impl<F> NodeType for F
where
    F: Fn(&Value) -> Result<Arc<dyn Node>, ConfigError> + Send + Sync + 'static,
{
    fn build(&self, config: &Value) -> Result<Arc<dyn Node>, ConfigError> {
        self(config)
    }
}
