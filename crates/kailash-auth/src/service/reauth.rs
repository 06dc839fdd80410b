//! Proving the current password (and, where asked, the current second
//! factor) inside an authenticated flow — a password change, a second-factor
//! enrolment — with the same defences as a login.
//!
//! A stolen access token must not turn the flow into a password oracle: a
//! wrong current password, or a missing or wrong second factor where one is
//! asked, counts toward the account lockout and the per-IP login throttle
//! (`423`/`429` with `Retry-After`), and is audited. When such a guess locks
//! the account, every session of the user ends too — otherwise a thief would
//! lock the owner out while keeping their own session. Argon2 work here runs
//! under the service's hashing bound like every other password check (`503`
//! with `Retry-After` when it is full). A right answer clears the count, as
//! a login does.

use kailash_core::audit::{AuditDecision, AuditEvent, AuditSeverity};
use kailash_core::context::RequestContext;

use super::{AuthError, AuthService};
use crate::lockout::{AttemptError, AttemptPermit};
use crate::password::{Password, PasswordError};
use crate::totp::{TotpCheck, TotpSecret};
use crate::users::{Credential, UserRecord, UserStoreError};

/// The second factor a re-authentication asks for, and what came with the
/// request.
pub(super) enum SecondFactor<'a> {
    /// None is asked: the flow needs only the password (a password change),
    /// or the user has none enrolled.
    NotAsked,
    /// One is enrolled and asked for, but no code came with the request.
    Missing,
    /// A TOTP code for the enrolled secret (each step is accepted once).
    Totp(&'a TotpSecret, String),
    /// A recovery code (spent when accepted).
    Recovery(String),
}

impl AuthService {
    /// Checks that `password` is `user`'s current password and that
    /// `second` passes, audited under `action`. `InvalidCredentials` when the
    /// password is wrong and `MfaRequired` when the second factor is missing
    /// or wrong (both counted); `Locked` or `Throttled` before any hashing
    /// when the lockout refuses; `Busy` when no hashing slot frees up, and
    /// `Unavailable` when the second factor cannot be checked (nothing
    /// counted).
    pub(super) async fn reauthenticate(
        &self,
        user: &UserRecord,
        password: &Password,
        second: SecondFactor<'_>,
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
        let permit = self.begin_attempt(user, ctx, &fail).await?;
        let matched = match self.check_password(user, password).await {
            Ok(m) => m,
            Err(e) => {
                // Not checked, so not counted either way.
                self.release(permit).await;
                return Err(self.check_refused(action, e, ctx).await);
            }
        };
        if !matched {
            let locked = self.count_failure(permit).await;
            self.audit(fail("current password wrong")).await?;
            if locked {
                self.end_sessions_after_lock(
                    user,
                    "account locked by wrong current passwords; sessions revoked",
                    ctx,
                )
                .await?;
            }
            return Err(AuthError::InvalidCredentials);
        }
        let passed = match second {
            SecondFactor::NotAsked => true,
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
                        // Not the caller's failure: give the slot back, uncounted.
                        self.release(permit).await;
                        tracing::warn!(error = %e, "TOTP guard unavailable");
                        return Err(AuthError::Unavailable);
                    }
                }
            }
            SecondFactor::Recovery(code) => match self.consume_recovery_code(user, &code).await {
                Ok(spent) => spent,
                Err(e) => {
                    self.release(permit).await;
                    return Err(e);
                }
            },
        };
        if !passed {
            let locked = self.count_failure(permit).await;
            self.audit(fail("second factor missing or invalid")).await?;
            if locked {
                self.end_sessions_after_lock(
                    user,
                    "account locked by wrong second factors; sessions revoked",
                    ctx,
                )
                .await?;
            }
            return Err(AuthError::MfaRequired);
        }
        if let Err(e) = self.inner.lockout.succeeded(permit).await {
            tracing::warn!(error = ?e, "lockout counter could not be cleared");
        }
        Ok(())
    }

    /// Takes an attempt of the account lockout and the per-IP throttle for
    /// a guess about `user` (a password or a code); refused — and audited
    /// through `fail` — when the account is locked (`423`) or the address
    /// throttled (`429`), both with `Retry-After`.
    pub(super) async fn begin_attempt(
        &self,
        user: &UserRecord,
        ctx: &RequestContext,
        fail: &(dyn Fn(&'static str) -> AuditEvent + Sync),
    ) -> Result<AttemptPermit, AuthError> {
        match self
            .inner
            .lockout
            .begin(&user.username, ctx.client_ip())
            .await
        {
            Ok(p) => Ok(p),
            Err(AttemptError::Locked { retry_after }) => {
                self.audit(fail("account locked")).await?;
                Err(AuthError::Locked { retry_after })
            }
            Err(AttemptError::Throttled { retry_after }) => {
                self.audit(fail("attempts from this address throttled"))
                    .await?;
                Err(AuthError::Throttled { retry_after })
            }
            Err(AttemptError::Unavailable(e)) => Err(e.into()),
        }
    }

    /// Counts a failed re-authentication; `true` when the account is now
    /// locked.
    pub(super) async fn count_failure(&self, permit: AttemptPermit) -> bool {
        match self.inner.lockout.failed(permit).await {
            Ok(locked) => locked,
            Err(e) => {
                tracing::warn!(error = ?e, "failed attempt could not be counted");
                false
            }
        }
    }

    /// The guesses came through one of the user's sessions and locked the
    /// account: end them all, so the guesser does not keep theirs while the
    /// owner is locked out.
    pub(super) async fn end_sessions_after_lock(
        &self,
        user: &UserRecord,
        reason: &'static str,
        ctx: &RequestContext,
    ) -> Result<(), AuthError> {
        self.end_all_sessions(user).await?;
        self.audit(
            Self::event("auth.account", AuditDecision::Success, Some(ctx))
                .actor(user.subject.clone())
                .tenant(user.tenant.clone())
                .severity(AuditSeverity::Critical)
                .reason(reason),
        )
        .await?;
        Ok(())
    }

    /// Gives back the attempt slot of a password that was not checked.
    pub(super) async fn release(&self, permit: AttemptPermit) {
        if let Err(e) = self.inner.lockout.release(permit).await {
            tracing::warn!(error = ?e, "attempt slot could not be given back");
        }
    }

    /// Checks `password` against `user`'s credential: the argon2id hash
    /// (under the hashing bound), or the directory the user came from.
    pub(super) async fn check_password(
        &self,
        user: &UserRecord,
        password: &Password,
    ) -> Result<bool, CheckFailed> {
        match &user.credential {
            Credential::Hash(hash) => self
                .inner
                .hasher
                .verify_async(password, hash)
                .await
                .map_err(CheckFailed::Hashing),
            Credential::Directory(directory) => directory
                .verify(password)
                .await
                .map_err(CheckFailed::Directory),
            // Signs in only through its identity provider: no password is
            // right, and checking one costs what a wrong one costs.
            Credential::External(_) => self
                .inner
                .hasher
                .verify_dummy_async(password)
                .await
                .map(|_| false)
                .map_err(CheckFailed::Hashing),
        }
    }

    /// A password check that did not run (every hashing slot busy, the
    /// task failed, or the directory could not answer): audited under
    /// `action`, and the answer for the caller.
    pub(super) async fn check_refused(
        &self,
        action: &'static str,
        error: CheckFailed,
        ctx: &RequestContext,
    ) -> AuthError {
        let (reason, answer) = match error {
            CheckFailed::Hashing(e @ PasswordError::Busy { .. }) => {
                ("password hashing busy", e.into())
            }
            CheckFailed::Hashing(e) => ("password hashing failed", e.into()),
            CheckFailed::Directory(e) => {
                tracing::warn!(error = %e, "the user directory could not check a password");
                ("user directory unavailable", AuthError::Unavailable)
            }
        };
        self.audit(
            Self::event(action, AuditDecision::Error, Some(ctx))
                .severity(AuditSeverity::Warning)
                .reason(reason),
        )
        .await
        .err()
        .unwrap_or(answer)
    }
}

/// Why a password could not be checked (neither right nor wrong).
#[derive(Debug)]
pub(super) enum CheckFailed {
    /// The argon2id check did not run.
    Hashing(PasswordError),
    /// The directory did not answer (fail closed: 503).
    Directory(UserStoreError),
}
