#![forbid(unsafe_code)]
// Library code must not panic on input; tests may unwrap (clippy.toml).
#![warn(clippy::unwrap_used)]
#![doc = include_str!("../README.md")]

pub mod alert;
pub mod anomaly;
pub mod health;
#[cfg(feature = "axum")]
pub mod http;
pub mod log;
pub mod metrics;
#[cfg(feature = "outbound")]
pub mod outbound;
mod rounds;
pub mod signal;

pub use health::{HealthCheck, HealthRegistry, HealthReport};
pub use metrics::{MetricsLayer, MetricsRegistry};
