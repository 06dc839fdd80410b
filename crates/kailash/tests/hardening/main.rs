//! The hardening end-to-end tests (issue 10): each defence against the
//! gateway over HTTP, on memory and on Redis (when `KAILASH_TEST_REDIS_URL`
//! is set) where state is involved. One module per defence.

mod anomaly;
mod audit;
mod auth;
mod cache;
mod dlp;
mod encryption;
mod input;
mod mfa;
mod network;
mod server;
#[path = "../support/mod.rs"]
mod support;
mod tenant;
mod transport;
