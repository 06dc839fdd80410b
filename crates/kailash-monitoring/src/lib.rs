#![forbid(unsafe_code)]
#![doc = include_str!("../README.md")]

pub mod health;
pub mod metrics;

pub use health::{HealthCheck, HealthRegistry, HealthReport};
pub use metrics::{MetricsLayer, MetricsRegistry};
