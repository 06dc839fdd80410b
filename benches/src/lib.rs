//! Shared helpers for the kailash-rs benches.
