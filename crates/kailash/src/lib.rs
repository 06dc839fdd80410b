#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]

mod backends;
mod builder;
pub mod config;
mod error;
mod gateway;
mod ops;
mod server;
mod tls;
mod trace;

pub use builder::{GatewayBuilder, RateLimits, TlsSettings};
pub use error::GatewayError;
pub use gateway::{Gateway, shutdown_signal};

pub use kailash_core::{
    AttributeValue, Principal, Problem, TenantId, audit, clock, context, problem, rate_limit, state,
};
pub use kailash_monitoring::{health, metrics};
#[cfg(feature = "redis")]
pub use kailash_redis as redis;
