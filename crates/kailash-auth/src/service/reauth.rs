//! Proving the current password inside an authenticated flow (a password
//! change), with the same defences as a login.
//!
//! A stolen access token must not turn the flow into a password oracle: a
//! wrong current password counts toward the account lockout and the per-IP
//! login throttle (`423`/`429` with `Retry-After`), and is audited. When
//! such a guess locks the account, every session of the user ends too —
//! otherwise a thief would lock the owner out while keeping their own
//! session. Argon2 work here runs under the service's hashing bound like
//! every other password check (`503` with `Retry-After` when it is full).

use kailash_core::audit::{AuditDecision, AuditSeverity};
use kailash_core::context::RequestContext;

use super::{AuthError, AuthService};
use crate::lockout::AttemptError;
use crate::password::{Password, PasswordError};
use crate::users::UserRecord;

impl AuthService {
    /// Checks that `password` is `user`'s current password, audited under
    /// `action`. `InvalidCredentials` when it is wrong (counted); `Locked`
    /// or `Throttled` before any hashing when the lockout refuses;
    /// `Busy` when no hashing slot frees up (nothing counted).
    pub(super) async fn reauthenticate(
        &self,
        user: &UserRecord,
        password: &Password,
        action: &'static str,
        ctx: &RequestContext,
    ) -> Result<(), AuthError> {
        let fail = |reason: &'static str| {
            Self::event(action, AuditDecision::Failure, Some(ctx))
                .actor(user.subject.clone())
                .tenant(user.tenant.clone())
                .severity(AuditSeverity::Warning)
                .reason(reason)
        };
        let permit = match self
            .inner
            .lockout
            .begin(&user.username, ctx.client_ip())
            .await
        {
            Ok(p) => p,
            Err(AttemptError::Locked { retry_after }) => {
                self.audit(fail("account locked")).await;
                return Err(AuthError::Locked { retry_after });
            }
            Err(AttemptError::Throttled { retry_after }) => {
                self.audit(fail("password attempts from this address throttled"))
                    .await;
                return Err(AuthError::Throttled { retry_after });
            }
            Err(AttemptError::Unavailable(e)) => return Err(e.into()),
        };
        let matched = match self
            .inner
            .hasher
            .verify_async(password, &user.password_hash)
            .await
        {
            Ok(m) => m,
            Err(e) => {
                // Not checked, so not counted either way.
                self.release(permit).await;
                return Err(self.hashing_refused(action, e, ctx).await);
            }
        };
        if matched {
            if let Err(e) = self.inner.lockout.succeeded(permit).await {
                tracing::warn!(error = ?e, "lockout counter could not be cleared");
            }
            return Ok(());
        }
        let locked = match self.inner.lockout.failed(permit).await {
            Ok(locked) => locked,
            Err(e) => {
                tracing::warn!(error = ?e, "failed attempt could not be counted");
                false
            }
        };
        self.audit(fail("current password wrong")).await;
        if locked {
            // The guesses came through one of the user's sessions: end them
            // all, so the guesser does not keep theirs while the owner is
            // locked out.
            self.end_all_sessions(user).await?;
            self.audit(
                Self::event("auth.account", AuditDecision::Success, Some(ctx))
                    .actor(user.subject.clone())
                    .tenant(user.tenant.clone())
                    .severity(AuditSeverity::Critical)
                    .reason("account locked by wrong current passwords; sessions revoked"),
            )
            .await;
        }
        Err(AuthError::InvalidCredentials)
    }

    /// Gives back the attempt slot of a password that was not checked.
    pub(super) async fn release(&self, permit: crate::lockout::AttemptPermit) {
        if let Err(e) = self.inner.lockout.release(permit).await {
            tracing::warn!(error = ?e, "attempt slot could not be given back");
        }
    }

    /// A password check that did not run (every hashing slot busy, or the
    /// task failed): audited under `action`, and the answer for the caller.
    pub(super) async fn hashing_refused(
        &self,
        action: &'static str,
        error: PasswordError,
        ctx: &RequestContext,
    ) -> AuthError {
        let reason = match error {
            PasswordError::Busy { .. } => "password hashing busy",
            _ => "password hashing failed",
        };
        self.audit(
            Self::event(action, AuditDecision::Error, Some(ctx))
                .severity(AuditSeverity::Warning)
                .reason(reason),
        )
        .await;
        error.into()
    }
}
