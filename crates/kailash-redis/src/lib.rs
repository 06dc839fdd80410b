#![forbid(unsafe_code)]
// Library code must not panic on input; tests may unwrap (clippy.toml).
#![warn(clippy::unwrap_used)]
#![doc = include_str!("../README.md")]

mod backend;
mod error;
mod options;
mod pubsub;
mod scripts;

pub use backend::RedisState;
pub use options::RedisOptions;
