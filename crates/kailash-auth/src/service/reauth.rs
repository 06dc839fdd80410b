//! Re-authentication of a caller who already holds a token, before an
//! action a stolen token must not be enough for (changing the second
//! factor).
//!
//! It is a login attempt in all but the session: the per-IP login throttle
//! and the account lockout apply first (`429`/`423` with `Retry-After`), a
//! wrong password or a missing or wrong second factor counts as a failed
//! attempt, a right one clears the count. When such failures lock the
//! account, every session of the user ends: otherwise a thief guessing
//! with a stolen token would lock the owner out while keeping their own
//! session.

use kailash_core::audit::{AuditDecision, AuditSeverity};
use kailash_core::context::RequestContext;

use super::{AuthError, AuthService};
use crate::lockout::{AttemptError, normalize_username};
use crate::password::Password;
use crate::totp::{TotpCheck, TotpSecret};
use crate::users::UserRecord;

/// The second factor a re-authentication presents.
pub(super) enum SecondFactor<'a> {
    /// The user has none enrolled: the password is all there is.
    NotEnrolled,
    /// One is enrolled but no code came with the request.
    Missing,
    /// A TOTP code for the enrolled secret.
    Totp(&'a TotpSecret, String),
    /// A recovery code.
    Recovery(String),
}

impl AuthService {
    /// Checks `password` and `second` for `user` under the login throttle
    /// and lockout; failures are audited as `action` and count toward the
    /// lock.
    pub(super) async fn reauthenticate(
        &self,
        user: &UserRecord,
        password: Password,
        second: SecondFactor<'_>,
        action: &'static str,
        ctx: &RequestContext,
    ) -> Result<(), AuthError> {
        let fail = |reason: &'static str| {
            Self::event(action, AuditDecision::Failure, Some(ctx))
                .actor(user.subject.clone())
                .tenant(user.tenant.clone())
                .reason(reason)
                .severity(AuditSeverity::Warning)
        };
        let username = normalize_username(&user.username);
        let lockout = &self.inner.lockout;
        let permit = match lockout.begin(&username, ctx.client_ip()).await {
            Ok(p) => p,
            Err(AttemptError::Locked { retry_after }) => {
                self.audit(fail("account locked")).await;
                return Err(AuthError::Locked { retry_after });
            }
            Err(AttemptError::Throttled { retry_after }) => {
                self.audit(fail("attempts from this address throttled"))
                    .await;
                return Err(AuthError::Throttled { retry_after });
            }
            Err(AttemptError::Unavailable(e)) => return Err(e.into()),
        };
        if !self
            .inner
            .hasher
            .verify_async(&password, &user.password_hash)
            .await
        {
            let _ = lockout.failed(permit).await;
            self.audit(fail("current password wrong")).await;
            self.end_sessions_if_locked(user, &username, action, ctx)
                .await?;
            return Err(AuthError::InvalidCredentials);
        }
        let passed = match second {
            SecondFactor::NotEnrolled => true,
            SecondFactor::Missing => false,
            SecondFactor::Totp(secret, code) => {
                match self
                    .inner
                    .totp
                    .verify(user.tenant.as_ref(), &user.subject, secret, &code)
                    .await
                {
                    Ok(TotpCheck::Accepted { .. }) => true,
                    Ok(_) => false,
                    Err(e) => {
                        // Not the caller's failure: the permit keeps its slot, uncounted.
                        drop(permit);
                        tracing::warn!(error = %e, "TOTP guard unavailable");
                        return Err(AuthError::Unavailable);
                    }
                }
            }
            SecondFactor::Recovery(code) => match self.consume_recovery_code(user, &code).await {
                Ok(spent) => spent,
                Err(e) => {
                    drop(permit);
                    return Err(e);
                }
            },
        };
        if !passed {
            let _ = lockout.failed(permit).await;
            self.audit(fail("second factor missing or invalid")).await;
            self.end_sessions_if_locked(user, &username, action, ctx)
                .await?;
            return Err(AuthError::MfaRequired);
        }
        if let Err(e) = lockout.succeeded(permit).await {
            tracing::warn!(error = ?e, "lockout counter could not be cleared");
        }
        Ok(())
    }

    /// After a counted failure: when the account is now locked, ends every
    /// session of `user`, the caller's included.
    async fn end_sessions_if_locked(
        &self,
        user: &UserRecord,
        username: &str,
        action: &'static str,
        ctx: &RequestContext,
    ) -> Result<(), AuthError> {
        let locked = match self.inner.lockout.status(username).await {
            Ok(status) => status.is_some(),
            Err(AttemptError::Unavailable(e)) => return Err(e.into()),
            Err(_) => true,
        };
        if locked {
            self.end_all_sessions(user).await?;
            self.audit(
                Self::event(action, AuditDecision::Deny, Some(ctx))
                    .actor(user.subject.clone())
                    .tenant(user.tenant.clone())
                    .reason("account locked by failed re-authentication; all sessions revoked")
                    .severity(AuditSeverity::Critical),
            )
            .await;
        }
        Ok(())
    }
}
