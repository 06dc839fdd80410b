//! Login: the lockout and per-IP throttle, the password, the account and
//! tenant state, the second factor, a new session and a fresh token pair.
//!
//! Unknown users and wrong passwords are indistinguishable to the caller
//! (same error, comparable time: an unknown user still costs one argon2id
//! verification, under the same hashing bound). Every field is bounded
//! ([`crate::bounds`]) before any other work, and an unknown username
//! reaches the audit trail only as a keyed tag.

use kailash_core::audit::{AuditDecision, AuditSeverity};
use kailash_core::context::RequestContext;
use serde::{Deserialize, Serialize};

use super::reauth::CheckFailed;
use super::{AuthError, AuthService, EnrolmentGrant, TokenPair};
use crate::lockout::{AttemptError, normalize_username};
use crate::password::Password;
use crate::session::SessionError;
use crate::totp::TotpCheck;

/// The body of `POST /auth/login`.
#[derive(Clone, Deserialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Username (normalised before lookup); at most 256 characters.
    #[cfg_attr(feature = "axum", schema(max_length = 256))]
    pub username: String,
    /// Password; at most 1024 characters.
    #[cfg_attr(feature = "axum", schema(max_length = 1024, format = Password))]
    pub password: String,
    /// TOTP code, when MFA applies; at most 64 characters.
    #[serde(default)]
    #[cfg_attr(feature = "axum", schema(max_length = 64))]
    pub totp: Option<String>,
    /// A recovery code instead of a TOTP code; at most 64 characters.
    #[serde(default)]
    #[cfg_attr(feature = "axum", schema(max_length = 64))]
    pub recovery_code: Option<String>,
}

impl LoginRequest {
    /// Checks every field against its [bound](crate::bounds) (`400`
    /// otherwise), before the request does anything else.
    pub fn check_bounds(&self) -> Result<(), crate::bounds::TooLong> {
        use crate::bounds::{MAX_CODE_CHARS, MAX_PASSWORD_CHARS, MAX_USERNAME_CHARS, check};
        check("username", &self.username, MAX_USERNAME_CHARS)?;
        check("password", &self.password, MAX_PASSWORD_CHARS)?;
        if let Some(code) = &self.totp {
            check("totp", code, MAX_CODE_CHARS)?;
        }
        if let Some(code) = &self.recovery_code {
            check("recovery_code", code, MAX_CODE_CHARS)?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// What a successful login hands out.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum LoginOutcome {
    /// A new session and its token pair.
    Tokens(TokenPair),
    /// No session: one of the user's roles requires a second factor and
    /// none is enrolled, so the user gets an enrolment-only token.
    MfaEnrolment(EnrolmentGrant),
}

impl AuthService {
    /// Logs a user in: lockout and per-IP throttle, password, account state,
    /// second factor, a new session (the oldest evicted or the login refused
    /// at the limit), and a fresh token pair.
    pub async fn login(
        &self,
        req: LoginRequest,
        ctx: &RequestContext,
    ) -> Result<LoginOutcome, AuthError> {
        let result = self.login_inner(req, ctx).await;
        let outcome = match &result {
            Ok(LoginOutcome::Tokens(_)) => "success",
            Ok(LoginOutcome::MfaEnrolment(_)) | Err(AuthError::MfaRequired) => "mfa_required",
            Err(AuthError::Locked { .. }) => "locked",
            Err(AuthError::Throttled { .. }) => "throttled",
            Err(AuthError::Unavailable | AuthError::Busy { .. } | AuthError::Internal) => "error",
            Err(_) => "failure",
        };
        metrics::counter!("kailash_auth_logins_total", "outcome" => outcome).increment(1);
        result
    }

    async fn login_inner(
        &self,
        req: LoginRequest,
        ctx: &RequestContext,
    ) -> Result<LoginOutcome, AuthError> {
        // The attempted username is named only once it is known to be a
        // user: an unknown "username" may be a password typed in the wrong
        // field. Unknown ones are recorded as a keyed tag.
        let fail = |reason: &'static str| {
            Self::event("auth.login", AuditDecision::Failure, Some(ctx))
                .reason(reason)
                .severity(AuditSeverity::Warning)
        };
        if let Err(e) = req.check_bounds() {
            self.audit(fail("malformed request: a field is too long"))
                .await?;
            return Err(e.into());
        }
        let username = normalize_username(&req.username);
        let permit = match self.inner.lockout.begin(&username, ctx.client_ip()).await {
            Ok(p) => p,
            Err(AttemptError::Locked { retry_after }) => {
                // Unknown names are counted (and locked) too: tag them.
                let actor = match self.inner.users.find_by_username(&username).await {
                    Ok(Some(user)) => user.subject,
                    _ => self.inner.tags.tag(&username),
                };
                self.audit(fail("account locked").actor(actor)).await?;
                return Err(AuthError::Locked { retry_after });
            }
            Err(AttemptError::Throttled { retry_after }) => {
                self.audit(fail("login attempts from this address throttled"))
                    .await?;
                return Err(AuthError::Throttled { retry_after });
            }
            Err(AttemptError::Unavailable(e)) => return Err(e.into()),
        };
        let password = Password::new(req.password);
        let user = match self.user_by_username(&username).await {
            Ok(u) => u,
            Err(e) => {
                // A backend outage is not the user's failure: the dropped
                // permit keeps its slot until the window ends, uncounted.
                drop(permit);
                return Err(e);
            }
        };
        let Some(user) = user else {
            // Same work (under the same bound) as a wrong password, so
            // timing does not tell.
            if let Err(e) = self.inner.hasher.verify_dummy_async(&password).await {
                self.release(permit).await;
                return Err(self
                    .check_refused("auth.login", CheckFailed::Hashing(e), ctx)
                    .await);
            }
            let _ = self.inner.lockout.failed(permit).await;
            self.audit(fail("invalid credentials").actor(self.inner.tags.tag(&username)))
                .await?;
            return Err(AuthError::InvalidCredentials);
        };
        let ok = match self.check_password(&user, &password).await {
            Ok(ok) => ok,
            Err(e) => {
                // Not checked, so not counted either way (a directory that
                // cannot answer refuses the login: 503, never a fallback).
                self.release(permit).await;
                return Err(self.check_refused("auth.login", e, ctx).await);
            }
        };
        if !ok || !user.active {
            let _ = self.inner.lockout.failed(permit).await;
            let reason = if ok {
                "account disabled"
            } else {
                "invalid credentials"
            };
            self.audit(
                fail(reason)
                    .actor(user.subject.clone())
                    .tenant(user.tenant.clone()),
            )
            .await?;
            return Err(AuthError::InvalidCredentials);
        }
        // The password was right: an inactive tenant may be named (403).
        match self.tenant_active(user.tenant.as_ref()).await {
            Ok(true) => {}
            Ok(false) => {
                let _ = self.inner.lockout.succeeded(permit).await;
                self.audit(
                    Self::event("auth.login", AuditDecision::Deny, Some(ctx))
                        .actor(user.subject.clone())
                        .tenant(user.tenant.clone())
                        .reason("tenant is inactive"),
                )
                .await?;
                return Err(AuthError::TenantInactive);
            }
            Err(e) => {
                drop(permit);
                return Err(e);
            }
        }
        // Second factor: required by role, or because the user enrolled.
        let secret = match self.totp_secret(&user).await {
            Ok(s) => s,
            Err(e) => {
                drop(permit);
                return Err(e);
            }
        };
        let mfa_required = secret.is_some()
            || user
                .roles
                .iter()
                .any(|r| self.inner.config.mfa_required_roles.contains(r));
        if mfa_required && secret.is_none() {
            // A role requires a second factor that was never enrolled (or
            // was reset): the password is all there is, so no session, only
            // an enrolment-only token.
            if let Err(e) = self.inner.lockout.succeeded(permit).await {
                tracing::warn!(error = ?e, "lockout counter could not be cleared");
            }
            let grant = self.enrolment_grant(&user)?;
            self.audit(
                Self::event("auth.login", AuditDecision::Success, Some(ctx))
                    .actor(user.subject.clone())
                    .tenant(user.tenant.clone())
                    .reason("password; enrolment-only token for a required second factor"),
            )
            .await?;
            return Ok(LoginOutcome::MfaEnrolment(grant));
        }
        if mfa_required {
            let passed = match (&secret, req.totp.as_deref(), req.recovery_code.as_deref()) {
                (Some(secret), Some(code), _) => {
                    match self
                        .inner
                        .totp
                        .verify(user.tenant.as_ref(), &user.subject, secret, code)
                        .await
                    {
                        Ok(TotpCheck::Accepted { .. }) => true,
                        Ok(_) => false,
                        Err(e) => {
                            drop(permit);
                            tracing::warn!(error = %e, "TOTP guard unavailable");
                            return Err(AuthError::Unavailable);
                        }
                    }
                }
                (_, None, Some(code)) => self.consume_recovery_code(&user, code).await?,
                _ => false,
            };
            if !passed {
                let _ = self.inner.lockout.failed(permit).await;
                self.audit(
                    fail("second factor missing or invalid")
                        .actor(user.subject.clone())
                        .tenant(user.tenant.clone()),
                )
                .await?;
                return Err(AuthError::MfaRequired);
            }
        }
        if let Err(e) = self.inner.lockout.succeeded(permit).await {
            tracing::warn!(error = ?e, "lockout counter could not be cleared");
        }
        if let Some(hash) = user.credential.hash()
            && self.inner.hasher.needs_rehash(hash)
        {
            // Upgrade a hash made with weaker parameters while the password is at hand.
            self.store_password_hash(&user, &password).await;
        }
        let pair = self.open_session(&user, ctx, mfa_required).await?;
        self.audit(
            Self::event("auth.login", AuditDecision::Success, Some(ctx))
                .actor(user.subject.clone())
                .tenant(user.tenant.clone())
                .reason(if mfa_required {
                    "password and second factor"
                } else {
                    "password"
                }),
        )
        .await?;
        Ok(LoginOutcome::Tokens(pair))
    }
}

impl AuthService {
    /// A new session for `user` (the oldest evicted, or refused at the
    /// limit), its refresh family and a fresh token pair; evictions and a
    /// refusal are audited. `mfa_required` records that a second factor
    /// was passed.
    pub(super) async fn open_session(
        &self,
        user: &crate::users::UserRecord,
        ctx: &RequestContext,
        mfa_required: bool,
    ) -> Result<TokenPair, AuthError> {
        let created = self
            .inner
            .sessions
            .create_with_mfa(
                &user.subject,
                user.tenant.as_ref(),
                Some(ctx.client_ip()),
                mfa_required,
            )
            .await;
        let created = match created {
            Ok(c) => c,
            Err(SessionError::LimitReached) => {
                self.audit(
                    Self::event("auth.login", AuditDecision::Deny, Some(ctx))
                        .actor(user.subject.clone())
                        .tenant(user.tenant.clone())
                        .reason("concurrent session limit reached"),
                )
                .await?;
                return Err(AuthError::SessionLimit);
            }
            Err(e) => return Err(e.into()),
        };
        for evicted in &created.evicted {
            metrics::counter!("kailash_auth_session_evictions_total").increment(1);
            self.inner.cache.remove_session(evicted);
            self.audit(
                Self::event("auth.session.evicted", AuditDecision::Success, Some(ctx))
                    .actor(user.subject.clone())
                    .tenant(user.tenant.clone())
                    .reason("concurrent session limit: oldest session evicted"),
            )
            .await?;
        }
        let session = created.session;
        let grant = self
            .inner
            .families
            .start(user.tenant.as_ref(), &session.id)
            .await?;
        self.issue_pair(
            user,
            &session.id,
            session.expires_at,
            &grant.family,
            &grant.jti,
            grant.expires_at,
        )
    }
}
