#![forbid(unsafe_code)]
// Library code must not panic on input; tests may unwrap (clippy.toml).
#![warn(clippy::unwrap_used)]
#![doc = include_str!("../README.md")]

pub mod bus;
pub mod channel;
pub mod close;
mod config;
mod error;
pub mod event;
pub mod filter;
pub mod hub;
pub mod protocol;
mod stats;
pub mod ws;

pub use config::RealtimeConfig;
pub use error::RealtimeError;
pub use hub::{Hub, HubBuilder};
pub use stats::{RealtimeStats, StatsSnapshot};
pub use ws::WsEndpoint;
