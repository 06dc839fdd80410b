#![forbid(unsafe_code)]
// Library code must not panic on input; tests may unwrap (clippy.toml).
#![warn(clippy::unwrap_used)]
#![doc = include_str!("../README.md")]

pub mod database;
#[cfg(feature = "axum")]
pub mod http;
pub mod layer;
pub mod metering;
pub mod model;
pub mod quota;
pub mod registry;
pub mod workflow;
