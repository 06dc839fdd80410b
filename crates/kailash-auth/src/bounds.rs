//! Size limits of the free-text fields a client sends to the
//! authentication flows, in characters (Unicode scalar values, what JSON
//! Schema's `maxLength` counts), checked before any other work.
//!
//! Over HTTP the published request schemas carry the same limits, and the
//! extractor refuses a field over its limit with `422` before the handler
//! runs. The service checks them again for its other callers: a field over
//! its limit is refused with `400` before it reaches the lockout store, a
//! hash, a log line or the audit trail, so no request can make one audit
//! entry (or one state key) large. The limits are far above any legitimate
//! value, and every value within them also passes the byte limits below
//! them (the password hashing limit is
//! [`MAX_PASSWORD_BYTES`](crate::password::MAX_PASSWORD_BYTES), four bytes a
//! character).
//!
//! ```
//! use kailash_auth::bounds::{MAX_USERNAME_CHARS, check};
//!
//! assert!(check("username", "alice", MAX_USERNAME_CHARS).is_ok());
//! assert!(check("username", &"é".repeat(MAX_USERNAME_CHARS), MAX_USERNAME_CHARS).is_ok());
//! let err = check("username", &"a".repeat(MAX_USERNAME_CHARS + 1), MAX_USERNAME_CHARS).unwrap_err();
//! assert_eq!(err.to_string(), "`username` is longer than 256 characters");
//! ```

/// The longest username accepted, in characters (before normalisation).
pub const MAX_USERNAME_CHARS: usize = 256;
/// The longest password accepted, in characters; at four bytes a
/// character at most, always within the hashing limit
/// ([`MAX_PASSWORD_BYTES`](crate::password::MAX_PASSWORD_BYTES)).
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// The longest one-time or recovery code accepted, in characters.
pub const MAX_CODE_CHARS: usize = 64;
/// The longest token accepted, in characters (the verifier's size limit,
/// in bytes, refuses longer encodings of a token as invalid).
pub const MAX_TOKEN_CHARS: usize = crate::jwt::DEFAULT_MAX_TOKEN_SIZE;

// The published schemas state these numbers as literals (utoipa's
// attributes take no constants); `http`'s tests compare them.
const _: () = assert!(MAX_PASSWORD_CHARS * 4 <= crate::password::MAX_PASSWORD_BYTES);

/// A field over its limit: names the field and the limit, never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` is longer than {max} characters")]
pub struct TooLong {
    /// The field, as the request names it.
    pub field: &'static str,
    /// Its limit in characters.
    pub max: usize,
}

/// `Ok` when `value` is at most `max` characters long.
pub fn check(field: &'static str, value: &str, max: usize) -> Result<(), TooLong> {
    // A string of at most `max` bytes has at most `max` characters; only a
    // longer one is counted (and the count stops past the limit).
    if value.len() <= max || value.chars().nth(max).is_none() {
        Ok(())
    } else {
        Err(TooLong { field, max })
    }
}
