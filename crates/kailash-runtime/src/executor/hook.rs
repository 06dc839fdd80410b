//! The check the executor makes before each node: where an access
//! controlled runtime puts its per-node permission check and audit.

use async_trait::async_trait;
use serde_json::Value;

use crate::executor::RunContext;
use crate::node::Values;

/// The node about to run.
#[derive(Debug, Clone, Copy)]
pub struct NodeInfo<'a> {
    /// Its id.
    pub id: &'a str,
    /// Its type.
    pub node_type: &'a str,
    /// Its config (`null` when none).
    pub config: &'a Value,
    /// The input it is about to get (for checks on the data it touches).
    pub input: &'a Values,
}

/// Why a node may not run. The reason goes into the run record: it must
/// not carry secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    /// Why.
    pub reason: String,
}

impl Refusal {
    /// A refusal saying `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

/// Called before every node; a refusal ends the run `refused`, naming the
/// node, and no later node runs.
///
/// ```
/// use async_trait::async_trait;
/// use kailash_runtime::{NodeHook, NodeInfo, Refusal, RunContext};
///
/// /// No `transform` for subjects named "mallory".
/// struct NoMallory;
///
/// #[async_trait]
/// impl NodeHook for NoMallory {
///     async fn before_node(&self, ctx: &RunContext, node: &NodeInfo<'_>) -> Result<(), Refusal> {
///         if ctx.principal.subject() == "mallory" && node.node_type == "transform" {
///             return Err(Refusal::new("node:transform:execute denied"));
///         }
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait NodeHook: Send + Sync + 'static {
    /// Allows `node` to run in `ctx`'s run, or refuses it.
    async fn before_node(&self, ctx: &RunContext, node: &NodeInfo<'_>) -> Result<(), Refusal>;
}

/// The hook that allows every node (the executor's default).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

#[async_trait]
impl NodeHook for AllowAll {
    async fn before_node(&self, _: &RunContext, _: &NodeInfo<'_>) -> Result<(), Refusal> {
        Ok(())
    }
}
