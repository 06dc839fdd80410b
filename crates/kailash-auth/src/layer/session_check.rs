//! [`SessionCheck`]: the server-side answer to "is this principal's session
//! still alive?", asked after a token verifies.
//!
//! A signature proves who issued a token, not that its session was not
//! revoked since: without a check, a logged-out or stolen token stays good
//! until it expires.

use async_trait::async_trait;
use kailash_core::Principal;

/// Why a session check refused a principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionCheckError {
    /// The session was revoked (logout, admin action): 401.
    #[error("session revoked")]
    Revoked,
    /// The session expired or was idle too long: 401.
    #[error("session expired or idle")]
    Expired,
    /// The session store cannot answer: 503 (fail closed).
    #[error("session store unavailable")]
    Unavailable,
}

/// Decides whether a verified principal's server-side session is still alive.
#[async_trait]
pub trait SessionCheck: Send + Sync + 'static {
    /// Checks the session of `principal`.
    async fn check(&self, principal: &Principal) -> Result<(), SessionCheckError>;

    /// Answers synchronously when the store is in process; `None` (the
    /// default) means "ask [`check`](Self::check)". Lets the layer skip
    /// boxing a future on the request path.
    fn check_now(&self, principal: &Principal) -> Option<Result<(), SessionCheckError>> {
        let _ = principal;
        None
    }
}
