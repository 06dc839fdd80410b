//! [`AuthError`]: why a flow of the [`AuthService`](super::AuthService) failed.
//!
//! Backend errors are logged here, once, and reach the caller only as
//! [`AuthError::Unavailable`]: their text may name keys or hosts.

use std::time::Duration;

use kailash_core::state::StateError;

use crate::password::PasswordError;
use crate::refresh::RefreshError;
use crate::session::SessionError;
use crate::users::UserStoreError;

/// Why an authentication call failed. Maps one-to-one to an HTTP answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Unknown user, wrong password or disabled account (deliberately one case).
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The password was right but a second factor is missing or wrong.
    #[error("a valid one-time code is required")]
    MfaRequired,
    /// Too many failed logins; retry later.
    #[error("account locked")]
    Locked {
        /// Time until the lock ends.
        retry_after: Duration,
    },
    /// Too many login attempts from this address.
    #[error("too many login attempts")]
    Throttled {
        /// Time until the next attempt is allowed.
        retry_after: Duration,
    },
    /// The user's tenant is inactive.
    #[error("tenant is inactive")]
    TenantInactive,
    /// The concurrent-session limit refused a new session.
    #[error("concurrent session limit reached")]
    SessionLimit,
    /// The refresh token is invalid, expired, reused or revoked.
    #[error("invalid refresh token")]
    InvalidGrant,
    /// The enrolment-only token is missing, invalid or expired, or its user
    /// may no longer enrol with it.
    #[error("invalid enrolment token")]
    InvalidEnrolmentToken,
    /// The request is malformed (e.g. a new password that violates the policy).
    #[error("{0}")]
    BadRequest(String),
    /// The request is well formed but the account's state does not allow
    /// it now (no second-factor enrolment in progress, or it was just
    /// completed by another request).
    #[error("{0}")]
    Conflict(&'static str),
    /// No such session of the caller.
    #[error("no such session")]
    NotFound,
    /// A backend (state, user directory) is unavailable: fail closed.
    #[error("authentication backend unavailable")]
    Unavailable,
    /// Every password-hashing slot stayed busy (`auth.max_concurrent_hashes`);
    /// nothing was checked or counted. Retry later.
    #[error("authentication is busy")]
    Busy {
        /// When a retry is worthwhile.
        retry_after: Duration,
    },
    /// A single sign-on was refused (a forged, expired or replayed answer
    /// of the identity provider, a state mismatch, a disabled account, a
    /// second factor the provider did not assert). The text says which,
    /// without echoing anything the caller sent.
    #[error("sign-in refused: {0}")]
    SignInRefused(&'static str),
    /// An internal error (signing failed); details are logged, not returned.
    #[error("internal error")]
    Internal,
}

impl From<StateError> for AuthError {
    fn from(e: StateError) -> Self {
        tracing::warn!(error = %e, "auth state unavailable");
        AuthError::Unavailable
    }
}
impl From<SessionError> for AuthError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::LimitReached => AuthError::SessionLimit,
            SessionError::Field(e) => {
                tracing::error!(error = %e, "a sealed session field does not open");
                AuthError::Internal
            }
            other => {
                tracing::warn!(error = %other, "session store unavailable");
                AuthError::Unavailable
            }
        }
    }
}
impl From<RefreshError> for AuthError {
    fn from(e: RefreshError) -> Self {
        tracing::warn!(error = %e, "refresh store unavailable");
        AuthError::Unavailable
    }
}
impl From<UserStoreError> for AuthError {
    fn from(e: UserStoreError) -> Self {
        tracing::warn!(error = %e, "user directory unavailable");
        AuthError::Unavailable
    }
}
impl From<PasswordError> for AuthError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Busy { retry_after } => AuthError::Busy { retry_after },
            PasswordError::TooLong { max } => {
                AuthError::BadRequest(format!("a password is longer than {max} bytes"))
            }
            other => {
                tracing::error!(error = %other, "password hashing failed");
                AuthError::Internal
            }
        }
    }
}
impl From<crate::bounds::TooLong> for AuthError {
    fn from(e: crate::bounds::TooLong) -> Self {
        AuthError::BadRequest(e.to_string())
    }
}
