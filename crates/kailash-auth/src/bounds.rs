//! Size limits of the free-text fields a client sends to the
//! authentication flows, checked before any other work.
//!
//! A field over its limit is refused with `400` before it reaches the
//! lockout store, a hash, a log line or the audit trail, so no request can
//! make one audit entry (or one state key) large. The limits are far above
//! any legitimate value.
//!
//! ```
//! use kailash_auth::bounds::{MAX_USERNAME_BYTES, check};
//!
//! assert!(check("username", "alice", MAX_USERNAME_BYTES).is_ok());
//! let err = check("username", &"a".repeat(MAX_USERNAME_BYTES + 1), MAX_USERNAME_BYTES).unwrap_err();
//! assert_eq!(err.to_string(), "`username` is longer than 256 bytes");
//! ```

/// The longest username accepted, in bytes (before normalisation).
pub const MAX_USERNAME_BYTES: usize = 256;
/// The longest password accepted, in bytes (also the hashing limit).
pub const MAX_PASSWORD_BYTES: usize = crate::password::MAX_PASSWORD_BYTES;
/// The longest one-time or recovery code accepted, in bytes.
pub const MAX_CODE_BYTES: usize = 64;
/// The longest token accepted, in bytes (the verifier's size limit).
pub const MAX_TOKEN_BYTES: usize = crate::jwt::DEFAULT_MAX_TOKEN_SIZE;

/// A field over its limit: names the field and the limit, never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` is longer than {max} bytes")]
pub struct TooLong {
    /// The field, as the request names it.
    pub field: &'static str,
    /// Its limit in bytes.
    pub max: usize,
}

/// `Ok` when `value` is at most `max` bytes long.
pub fn check(field: &'static str, value: &str, max: usize) -> Result<(), TooLong> {
    if value.len() > max {
        Err(TooLong { field, max })
    } else {
        Ok(())
    }
}
