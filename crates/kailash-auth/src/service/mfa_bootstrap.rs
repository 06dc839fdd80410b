//! The first second factor of a user whose role requires one: instead of
//! refusing their login forever, a login with the right password hands out
//! an enrolment-only token ([`EnrolmentGrant`]) and no session.
//!
//! The token is a JWS of its own type (`typ: mfa-enrol+jwt`) and audience
//! (`<audience>/mfa-enrolment`), without roles, attributes or session: the
//! [`JwtAuthLayer`](crate::layer::JwtAuthLayer), the refresh endpoint and
//! any verifier of access tokens refuse it. Only
//! [`mfa_bootstrap_enroll`](AuthService::mfa_bootstrap_enroll) and
//! [`mfa_bootstrap_verify`](AuthService::mfa_bootstrap_verify) accept it,
//! for [`ENROLMENT_TOKEN_TTL`], and only while the user still has no second
//! factor: once one is confirmed the token is dead and the user logs in
//! with a code like everyone else. The token stands for the password login
//! that just happened, so no password is asked again.

use std::time::Duration;

use kailash_core::audit::{AuditDecision, AuditSeverity};
use kailash_core::context::RequestContext;
use serde::Serialize;

use super::mfa::Enrolment;
use super::{AuthError, AuthService};
use crate::bounds::{MAX_CODE_CHARS, check};
use crate::jwt::{Claims, TokenType};
use crate::totp::RecoveryCode;
use crate::users::UserRecord;

/// How long an enrolment-only token lives.
pub const ENROLMENT_TOKEN_TTL: Duration = Duration::from_secs(600);

/// The audience of enrolment-only tokens, for the service's `audience`.
pub(super) fn enrolment_audience(audience: &str) -> String {
    format!("{audience}/mfa-enrolment")
}

/// What a login answers, instead of a token pair, for a user whose role
/// requires a second factor they have not enrolled.
#[derive(Clone, Serialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema))]
pub struct EnrolmentGrant {
    /// Always `true`: the client must enrol a second factor.
    #[cfg_attr(feature = "axum", schema(schema_with = super::schemas::always_true))]
    pub mfa_enrolment_required: bool,
    /// The enrolment-only token, for `Authorization: Bearer` on
    /// `/auth/mfa/bootstrap/enroll` and `/auth/mfa/bootstrap/verify`.
    pub enrolment_token: String,
    /// Always `Bearer`.
    #[cfg_attr(feature = "axum", schema(schema_with = super::schemas::bearer))]
    pub token_type: &'static str,
    /// Seconds until the enrolment token expires.
    pub expires_in: u64,
}

impl std::fmt::Debug for EnrolmentGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolmentGrant")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

impl AuthService {
    /// Signs an enrolment-only token for `user` (the password was right,
    /// the second factor is required and none is enrolled).
    pub(super) fn enrolment_grant(&self, user: &UserRecord) -> Result<EnrolmentGrant, AuthError> {
        let c = &self.inner.config;
        let now = self.inner.clock.now().as_second();
        let ttl = i64::try_from(ENROLMENT_TOKEN_TTL.as_secs()).unwrap_or(i64::MAX);
        let mut claims = Claims::new(
            c.issuer.clone(),
            user.subject.clone(),
            enrolment_audience(&c.audience),
            now,
            now.saturating_add(ttl),
        );
        claims.jti = Some(crate::ids::random().ok_or(AuthError::Unavailable)?);
        claims.tid = user.tenant.clone();
        let token = self
            .inner
            .keys
            .issue(&claims, TokenType::MfaEnrolment)
            .map_err(|e| {
                tracing::error!(error = %e, "token signing failed");
                AuthError::Internal
            })?;
        Ok(EnrolmentGrant {
            mfa_enrolment_required: true,
            enrolment_token: token,
            token_type: "Bearer",
            expires_in: ENROLMENT_TOKEN_TTL.as_secs(),
        })
    }

    /// Starts enrolment with an enrolment-only token.
    pub async fn mfa_bootstrap_enroll(
        &self,
        token: &str,
        ctx: &RequestContext,
    ) -> Result<Enrolment, AuthError> {
        let user = self.bootstrap_user(token, "auth.mfa.enroll", ctx).await?;
        let enrolment = self.start_enrolment(&user).await?;
        self.audit(
            Self::event("auth.mfa.enroll", AuditDecision::Success, Some(ctx))
                .actor(user.subject.clone())
                .tenant(user.tenant.clone())
                .reason("first enrolment started with an enrolment-only token"),
        )
        .await?;
        Ok(enrolment)
    }

    /// Confirms an enrolment started with an enrolment-only token; returns
    /// the recovery codes. The token is dead from then on.
    pub async fn mfa_bootstrap_verify(
        &self,
        token: &str,
        code: &str,
        ctx: &RequestContext,
    ) -> Result<Vec<RecoveryCode>, AuthError> {
        check("code", code, MAX_CODE_CHARS)?;
        let user = self.bootstrap_user(token, "auth.mfa.verify", ctx).await?;
        self.confirm_enrolment(&user, code, ctx).await
    }

    /// The user an enrolment-only token names, while it may still enrol:
    /// the token verifies, the account is active, its tenant is active and
    /// no second factor is enrolled.
    async fn bootstrap_user(
        &self,
        token: &str,
        action: &'static str,
        ctx: &RequestContext,
    ) -> Result<UserRecord, AuthError> {
        let refuse = |reason: &'static str| {
            Self::event(action, AuditDecision::Failure, Some(ctx))
                .reason(reason)
                .severity(AuditSeverity::Warning)
        };
        let claims = match self.inner.enrolment.verify(token).await {
            Ok(c) => c,
            Err(_) => {
                self.audit(refuse("invalid or expired enrolment token"))
                    .await?;
                return Err(AuthError::InvalidEnrolmentToken);
            }
        };
        let user = match self.user_by_subject(&claims.sub).await? {
            Some(u) if u.active && u.tenant == claims.tid => u,
            _ => {
                self.audit(refuse("account unknown or disabled").actor(claims.sub))
                    .await?;
                return Err(AuthError::InvalidEnrolmentToken);
            }
        };
        let who = |e: kailash_core::audit::AuditEvent| {
            e.actor(user.subject.clone()).tenant(user.tenant.clone())
        };
        if !self.tenant_active(user.tenant.as_ref()).await? {
            self.audit(who(refuse("tenant is inactive"))).await?;
            return Err(AuthError::TenantInactive);
        }
        if self.totp_secret(&user).await?.is_some() {
            self.audit(who(refuse("a second factor is already enrolled")))
                .await?;
            return Err(AuthError::InvalidEnrolmentToken);
        }
        Ok(user)
    }
}
