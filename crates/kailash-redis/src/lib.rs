#![forbid(unsafe_code)]
// Library code must not panic on input; tests may unwrap (clippy.toml).
#![warn(clippy::unwrap_used)]
#![doc = include_str!("../README.md")]

mod admission;
mod backend;
mod connection;
mod counters;
mod error;
mod expiry;
mod keys;
mod kv;
mod log;
mod options;
mod pubsub;
mod rate;
mod reply;
mod scripts;
mod sets;
mod topology;

pub use backend::{RedisState, check_url};
pub use options::RedisOptions;
pub use pubsub::PubSubState;
