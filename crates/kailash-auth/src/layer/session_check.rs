//! [`SessionCheck`]: the server-side answer to "is this principal's session
//! still alive?", asked after a token verifies.
//!
//! A signature proves who issued a token, not that its session was not
//! revoked since: without a check, a logged-out or stolen token stays good
//! until it expires.

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use kailash_core::Principal;
use kailash_core::state::Check;

/// A session renewal still to be written after a deferred check passed;
/// refuses with its error.
pub type SessionTouch = Pin<Box<dyn Future<Output = Result<(), SessionCheckError>> + Send>>;

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
    /// Checks the session of `principal` for a request: the request is
    /// activity, so a store with an idle timeout may renew it.
    async fn check(&self, principal: &Principal) -> Result<(), SessionCheckError>;

    /// Whether `principal`'s session is still alive, *without* counting as
    /// activity: what a holder of a long-lived connection asks while the
    /// connection merely stays open, so an unattended socket never keeps
    /// its session from idling out. The default asks
    /// [`check`](Self::check); stores that renew on a check override it.
    async fn check_live(&self, principal: &Principal) -> Result<(), SessionCheckError> {
        self.check(principal).await
    }

    /// Answers synchronously when the store is in process; `None` (the
    /// default) means "ask [`check`](Self::check)". Lets the layer skip
    /// boxing a future on the request path.
    fn check_now(&self, principal: &Principal) -> Option<Result<(), SessionCheckError>> {
        let _ = principal;
        None
    }

    /// The liveness of `principal`'s session as a state
    /// [`Check::Live`], for a layer composed with
    /// [`defer_session_check`](super::JwtAuthLayer::defer_session_check):
    /// the admission then asks it together with the other deferred checks.
    /// `None` (the default) means it cannot be deferred and
    /// [`check`](Self::check) is asked; `Some(Err)` refuses at once.
    fn admission_check(&self, principal: &Principal) -> Option<Result<Check, SessionCheckError>> {
        let _ = principal;
        None
    }

    /// After the admission found the session live, with its record's
    /// value: the checks of the record's content, and the renewal to write
    /// when one is due. Only called for checks from
    /// [`admission_check`](Self::admission_check); the default accepts.
    fn after_admission(
        &self,
        principal: &Principal,
        record: &Bytes,
    ) -> Result<Option<SessionTouch>, SessionCheckError> {
        let _ = (principal, record);
        Ok(None)
    }
}
