#![forbid(unsafe_code)]
// Library code must not panic on input; tests may unwrap (clippy.toml).
#![warn(clippy::unwrap_used)]
#![doc = include_str!("../README.md")]

mod error;
mod store;
mod workflow;

pub use error::WorkflowError;
pub use store::WorkflowStore;
pub use workflow::{MAX_NAME_CHARS, NewWorkflow, Workflow};
