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
pub mod http;
pub mod hub;
pub mod protocol;
pub mod sse;
mod stats;
pub mod ws;

pub use config::RealtimeConfig;
pub use error::RealtimeError;
pub use hub::{Hub, HubBuilder};
pub use sse::SseEndpoint;
pub use stats::{RealtimeStats, StatsSnapshot};
pub use ws::WsEndpoint;

/// Both endpoints of `hub` (`GET <ws_path>` and `GET <sse_path>`) in one
/// router, to merge into an application's. Mount it outside the
/// application's `JwtAuthLayer`: the endpoints authenticate with the same
/// layer themselves (the WebSocket closes with 4001 instead of answering
/// 401).
pub fn router<S: Clone + Send + Sync + 'static>(hub: &Hub) -> axum::Router<S> {
    WsEndpoint::new(hub.clone())
        .router()
        .merge(SseEndpoint::new(hub.clone()).router())
}
