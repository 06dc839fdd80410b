//! Peer comparison for `benches/benches/auth.rs` in kailash-rs: RS256
//! verification by `jwt-authorizer` (its axum layer, per request) and by
//! `jsonwebtoken` 9 (`decode`), on the RSA 2048 key in `keys/`.
//!
//! ```text
//! cd benches/peers && cargo bench --bench peers
//! ```
//!
//! Kept in a workspace of its own: it pulls axum 0.7, jsonwebtoken 9 and
//! ring, none of which belong in the main workspace's lock file.
