#![forbid(unsafe_code)]
// Library code must not panic on input; tests may unwrap (clippy.toml).
#![warn(clippy::unwrap_used)]
#![doc = include_str!("../README.md")]

pub mod compile;
pub mod database;
pub mod definition;
mod error;
pub mod executor;
#[cfg(feature = "axum")]
pub mod http;
pub mod node;
#[cfg(feature = "outbound")]
pub mod outbound;
pub mod registry;
pub mod runtime;
mod store;
pub mod transform;
mod workflow;

pub use compile::{CompiledWorkflow, InputError, compile};
pub use database::Database;
pub use error::{DefinitionError, WorkflowError};
pub use executor::{
    AllowAll, CancelToken, EventSink, Executor, NoEvents, NodeHook, NodeInfo, NodeRecord,
    NodeStatus, Refusal, RunContext, RunEvent, RunLimits, RunRecord, RunStatus,
};
pub use node::{Node, NodeType};
pub use registry::NodeRegistry;
pub use store::WorkflowStore;
pub use workflow::{MAX_NAME_CHARS, NewWorkflow, Workflow};
