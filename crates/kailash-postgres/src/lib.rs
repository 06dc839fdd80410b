#![forbid(unsafe_code)]
// Library code must not panic on input; tests may unwrap (clippy.toml).
#![warn(clippy::unwrap_used)]
#![doc = include_str!("../README.md")]

pub mod audit;
mod db;
pub mod routing;
pub mod schema;
pub mod tenant_db;
pub mod tenants;

pub use db::{Connection, Database, DbError, DbSettings, Listener, PoolStatus};
