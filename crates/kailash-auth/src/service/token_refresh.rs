//! Token refresh: a refresh token is exchanged for a new pair and rotated
//! out of its family.
//!
//! (The family store itself — generations, reuse detection — is
//! [`crate::refresh`]; this is the flow that uses it.) Presenting an already
//! rotated token revokes its whole family and session, audited as critical:
//! one of the two holders of that token is a thief — unless it comes within
//! the reuse grace of its rotation: a retry, answered with that rotation's
//! generation again. A refresh re-applies the second-factor requirement: a
//! session created without one ends once the user's roles require it.

use kailash_core::audit::{AuditDecision, AuditSeverity};
use kailash_core::context::RequestContext;

use super::{AuthError, AuthService, TokenPair};
use crate::jwt::Claims;
use crate::refresh::{RefreshGrant, RotateOutcome};

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
        if let Err(e) = crate::bounds::check(
            "refresh_token",
            refresh_token,
            crate::bounds::MAX_TOKEN_CHARS,
        ) {
            self.audit(fail("malformed request: a field is too long"))
                .await?;
            return Err(e.into());
        }
        let claims = match self.inner.refresh.verify(refresh_token).await {
            Ok(c) => c,
            Err(e) => {
                self.audit(fail(e.audit_reason())).await?;
                return Err(AuthError::InvalidGrant);
            }
        };
        let tenant = claims.tid.clone();
        let (Some(sid), Some((family, jti))) = (
            claims.sid.clone(),
            claims.jti.as_deref().and_then(|j| j.split_once('.')),
        ) else {
            self.audit(fail("refresh token without session or family").actor(claims.sub.clone()))
                .await?;
            return Err(AuthError::InvalidGrant);
        };
        match self
            .inner
            .families
            .rotate(tenant.as_ref(), family, jti)
            .await?
        {
            RotateOutcome::Rotated(grant) => {
                self.honour_rotation(&claims, &sid, family, grant, false, ctx)
                    .await
            }
            RotateOutcome::Retried(grant) => {
                self.honour_rotation(&claims, &sid, family, grant, true, ctx)
                    .await
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
                .await?;
                Err(AuthError::InvalidGrant)
            }
            RotateOutcome::Unknown => {
                self.audit(
                    fail("unknown or expired refresh token family")
                        .actor(claims.sub.clone())
                        .tenant(tenant),
                )
                .await?;
                Err(AuthError::InvalidGrant)
            }
        }
    }

    /// Answers a rotation (or a retry of one within the grace) with a new
    /// pair, unless the session, user, tenant or second factor says no.
    async fn honour_rotation(
        &self,
        claims: &Claims,
        sid: &str,
        family: &str,
        grant: RefreshGrant,
        retried: bool,
        ctx: &RequestContext,
    ) -> Result<TokenPair, AuthError> {
        let tenant = claims.tid.clone();
        let session = self.inner.sessions.get(tenant.as_ref(), sid).await?;
        let user = self.user_by_subject(&claims.sub).await?;
        let (Some(session), Some(user)) = (session, user) else {
            return Err(self
                .refuse_refresh(
                    claims,
                    family,
                    "session or user gone",
                    AuthError::InvalidGrant,
                    ctx,
                )
                .await);
        };
        if user.tenant != tenant {
            // The user moved to another tenant (an identity provider's
            // claims said so at a later sign-in): this family was minted
            // for the old one.
            return Err(self
                .refuse_refresh(
                    claims,
                    family,
                    "the user's tenant changed",
                    AuthError::InvalidGrant,
                    ctx,
                )
                .await);
        }
        if !user.active {
            return Err(self
                .refuse_refresh(
                    claims,
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
                    claims,
                    family,
                    "tenant is inactive",
                    AuthError::TenantInactive,
                    ctx,
                )
                .await);
        }
        // The second factor is re-applied: a session made without one
        // ends once the user's roles require it, or once the user has
        // enrolled one (an owner who enrols because they suspect theft
        // must not leave the thief's password-only session refreshing).
        let mfa_required = !session.mfa
            && (user
                .roles
                .iter()
                .any(|r| self.inner.config.mfa_required_roles.contains(r))
                || self.totp_secret(&user).await?.is_some());
        if mfa_required {
            if let Err(e) = self
                .inner
                .sessions
                .revoke(tenant.as_ref(), &claims.sub, sid)
                .await
            {
                tracing::warn!(error = %e, "session could not be revoked");
            }
            self.inner.cache.remove_session(sid);
            return Err(self
                .refuse_refresh(
                    claims,
                    family,
                    "second factor required: session created without one; session revoked",
                    AuthError::MfaRequired,
                    ctx,
                )
                .await);
        }
        let _ = self.inner.sessions.touch(tenant.as_ref(), sid).await?;
        let pair = self.issue_pair(
            &user,
            sid,
            session.expires_at,
            family,
            &grant.jti,
            grant.expires_at,
        )?;
        let mut event = Self::event("auth.refresh", AuditDecision::Success, Some(ctx))
            .actor(claims.sub.clone())
            .tenant(tenant);
        if retried {
            event = event.reason("retry within the reuse grace: same generation again");
        }
        self.audit(event).await?;
        Ok(pair)
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
        .await
        .err()
        .unwrap_or(error)
    }
}
