#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]

pub mod audit;
pub mod clock;
pub mod context;
#[cfg(feature = "axum")]
pub mod extract;
pub mod principal;
pub mod problem;
pub mod rate_limit;
pub mod state;
pub mod tenant;

pub use principal::{AttributeValue, Principal, PrincipalBuilder};
pub use problem::Problem;
pub use tenant::{TenantId, TenantIdError};
