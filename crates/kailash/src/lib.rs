#![forbid(unsafe_code)]
// Library code must not panic on input; tests may unwrap (clippy.toml).
#![warn(clippy::unwrap_used)]
#![doc = include_str!("../README.md")]

mod access_config;
mod access_directory;
mod alerting;
mod backends;
pub mod billing;
mod builder;
mod client;
pub mod config;
mod contract;
mod cors;
mod error;
mod explorer;
mod gateway;
pub mod health_checks;
pub mod jwks;
pub mod oidc;
mod ops;
pub mod ops_access;
mod realtime_hooks;
mod runtime_hooks;
#[cfg(feature = "saml")]
mod saml;
mod server;
mod stack;
#[cfg(feature = "otel")]
pub mod telemetry;
#[cfg(feature = "postgres")]
mod tenant_admin;
mod tenant_gate;
mod tls;
mod trace;

pub use builder::{GatewayBuilder, RateLimits, TenancySettings, TlsSettings};
pub use error::GatewayError;
pub use gateway::{Gateway, shutdown_signal};

pub use kailash_access as access;
pub use kailash_auth as auth;
pub use kailash_core::{
    AttributeValue, Principal, Problem, TenantId, admission, audit, cache, clock, context, dlp,
    envelope, grpc, guard, ip_allow, json_limits, outbound, pii, problem, public, rate_limit,
    schema, state, trace_context, transport,
};
pub use kailash_monitoring::{alert, anomaly, health, log, metrics, signal};
#[cfg(feature = "postgres")]
pub use kailash_postgres as postgres;
pub use kailash_realtime as realtime;
#[cfg(feature = "redis")]
pub use kailash_redis as redis;
pub use kailash_runtime as runtime;
pub use kailash_tenancy as tenancy;
/// The utoipa this crate's documents are built with: derive your routes'
/// documents with it so they merge.
pub use utoipa;

/// The workspace README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct WorkspaceReadme;
