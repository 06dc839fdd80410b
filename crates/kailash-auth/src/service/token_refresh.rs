//! Token refresh: a refresh token is exchanged for a new pair and rotated
//! out of its family.
//!
//! (The family store itself — generations, reuse detection — is
//! [`crate::refresh`]; this is the flow that uses it.) Presenting an already
//! rotated token revokes its whole family and session, audited as critical:
//! one of the two holders of that token is a thief.

use kailash_core::audit::{AuditDecision, AuditSeverity};
use kailash_core::context::RequestContext;

use super::{AuthError, AuthService, TokenPair};
use crate::jwt::Claims;
use crate::refresh::RotateOutcome;

impl AuthService {
    /// Exchanges a refresh token for a new pair. The presented token is
    /// rotated out; presenting an already rotated token revokes its whole
    /// family and session (audited as critical).
    pub async fn refresh(
        &self,
        refresh_token: &str,
        ctx: &RequestContext,
    ) -> Result<TokenPair, AuthError> {
        let fail = |reason: &'static str| {
            Self::event("auth.refresh", AuditDecision::Failure, Some(ctx)).reason(reason)
        };
        let claims = match self.inner.refresh.verify(refresh_token).await {
            Ok(c) => c,
            Err(e) => {
                self.audit(fail(e.audit_reason())).await;
                return Err(AuthError::InvalidGrant);
            }
        };
        let tenant = claims.tid.clone();
        let (Some(sid), Some((family, jti))) = (
            claims.sid.clone(),
            claims.jti.as_deref().and_then(|j| j.split_once('.')),
        ) else {
            self.audit(fail("refresh token without session or family").actor(claims.sub.clone()))
                .await;
            return Err(AuthError::InvalidGrant);
        };
        match self
            .inner
            .families
            .rotate(tenant.as_ref(), family, jti)
            .await?
        {
            RotateOutcome::Rotated(grant) => {
                let session = self.inner.sessions.get(tenant.as_ref(), &sid).await?;
                let user = self.user_by_subject(&claims.sub).await?;
                let (Some(session), Some(user)) = (session, user) else {
                    return Err(self
                        .refuse_refresh(
                            &claims,
                            family,
                            "session or user gone",
                            AuthError::InvalidGrant,
                            ctx,
                        )
                        .await);
                };
                if !user.active {
                    return Err(self
                        .refuse_refresh(
                            &claims,
                            family,
                            "account disabled",
                            AuthError::InvalidGrant,
                            ctx,
                        )
                        .await);
                }
                if !self.tenant_active(user.tenant.as_ref()).await? {
                    return Err(self
                        .refuse_refresh(
                            &claims,
                            family,
                            "tenant is inactive",
                            AuthError::TenantInactive,
                            ctx,
                        )
                        .await);
                }
                let _ = self.inner.sessions.touch(tenant.as_ref(), &sid).await?;
                let pair = self.issue_pair(
                    &user,
                    &sid,
                    session.expires_at,
                    family,
                    &grant.jti,
                    grant.expires_at,
                )?;
                self.audit(
                    Self::event("auth.refresh", AuditDecision::Success, Some(ctx))
                        .actor(claims.sub.clone())
                        .tenant(tenant),
                )
                .await;
                Ok(pair)
            }
            RotateOutcome::Concurrent => {
                self.audit(
                    fail("refresh token used concurrently")
                        .actor(claims.sub.clone())
                        .tenant(tenant),
                )
                .await;
                Err(AuthError::InvalidGrant)
            }
            RotateOutcome::Reused { session_id } => {
                let _ = self
                    .inner
                    .sessions
                    .revoke(tenant.as_ref(), &claims.sub, &session_id)
                    .await;
                self.inner.cache.remove_session(&session_id);
                self.audit(
                    Self::event("auth.refresh", AuditDecision::Deny, Some(ctx))
                        .actor(claims.sub.clone())
                        .tenant(tenant)
                        .severity(AuditSeverity::Critical)
                        .reason("refresh token reuse: token family and session revoked"),
                )
                .await;
                Err(AuthError::InvalidGrant)
            }
            RotateOutcome::Unknown => {
                self.audit(
                    fail("unknown or expired refresh token family")
                        .actor(claims.sub.clone())
                        .tenant(tenant),
                )
                .await;
                Err(AuthError::InvalidGrant)
            }
        }
    }

    /// Ends a refresh that rotated but must not be honoured: the family is
    /// revoked (so its new token dies too) and the refusal audited.
    async fn refuse_refresh(
        &self,
        claims: &Claims,
        family: &str,
        reason: &'static str,
        error: AuthError,
        ctx: &RequestContext,
    ) -> AuthError {
        let tenant = claims.tid.as_ref();
        if let Err(e) = self.inner.families.revoke_family(tenant, family).await {
            tracing::warn!(error = %e, "refresh family could not be revoked");
        }
        self.audit(
            Self::event("auth.refresh", AuditDecision::Failure, Some(ctx))
                .actor(claims.sub.clone())
                .tenant(claims.tid.clone())
                .reason(reason),
        )
        .await;
        error
    }
}
