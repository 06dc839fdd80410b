#![forbid(unsafe_code)]
// Library code must not panic on input; tests may unwrap (clippy.toml).
#![warn(clippy::unwrap_used)]
#![doc = include_str!("../README.md")]

pub mod condition;
mod control;
mod error;
pub mod explain;
#[cfg(feature = "axum")]
pub mod http;
pub mod layer;
pub mod limits;
pub mod permission;
mod policy;
pub mod rbac;
pub mod spec;

pub use control::{AUDIT_ACTION, AccessControl, MAX_PERMISSION_LABELS, forbidden};
pub use error::AccessError;
pub use policy::{
    AccessPolicy, AccessRequest, Decision, ExplainStep, Explanation, MAX_POLICY_NAME_LEN, Resource,
    ResourceLimits, StepKind,
};
