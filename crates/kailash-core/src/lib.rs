#![forbid(unsafe_code)]
// Library code must not panic on input; tests may unwrap (clippy.toml).
#![warn(clippy::unwrap_used)]
#![doc = include_str!("../README.md")]

mod accessors;
pub mod admission;
pub mod audit;
pub mod cache;
pub mod clock;
pub mod context;
#[cfg(feature = "pii")]
pub mod dlp;
pub mod envelope;
#[cfg(feature = "axum")]
pub mod extract;
pub mod field_encryption;
pub mod grpc;
pub mod guard;
pub mod hash;
pub mod ip_allow;
pub mod json_limits;
#[cfg(feature = "outbound")]
pub mod outbound;
#[cfg(feature = "pii")]
pub mod pii;
pub mod principal;
pub mod problem;
pub mod public;
pub mod rate_limit;
#[cfg(feature = "openapi")]
pub mod schema;
pub mod spec;
pub mod state;
pub mod tenant;
pub mod trace_context;
pub mod transport;
pub mod usage;
pub mod webhook;

pub use principal::{AttributeValue, Principal, PrincipalBuilder};
pub use problem::Problem;
pub use tenant::{TenantId, TenantIdError};
