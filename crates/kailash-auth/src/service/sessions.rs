//! The caller's sessions: listing and revoking them, and ending all of a
//! user's sessions when their password changes or their account is disabled.

use std::net::IpAddr;

use kailash_core::Principal;
use kailash_core::audit::AuditDecision;
use kailash_core::context::RequestContext;
use serde::Serialize;

use super::{AuthError, AuthService};
use crate::users::UserRecord;

/// One of the caller's sessions, as `GET /auth/sessions` shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "axum", derive(utoipa::ToSchema), schema(as = Session))]
pub struct SessionView {
    /// Session id (for `DELETE /auth/sessions/{id}`).
    pub id: String,
    /// Whether it is the session of the calling token.
    pub current: bool,
    /// When it started.
    #[cfg_attr(feature = "axum", schema(value_type = String, format = DateTime))]
    pub created_at: jiff::Timestamp,
    /// Last activity.
    #[cfg_attr(feature = "axum", schema(value_type = String, format = DateTime))]
    pub last_seen: jiff::Timestamp,
    /// Absolute expiry.
    #[cfg_attr(feature = "axum", schema(value_type = String, format = DateTime))]
    pub expires_at: jiff::Timestamp,
    /// Address it was opened from.
    #[cfg_attr(feature = "axum", schema(value_type = Option<String>))]
    pub client_ip: Option<IpAddr>,
}

impl AuthService {
    /// The caller's live sessions.
    pub async fn list_sessions(
        &self,
        principal: &Principal,
    ) -> Result<Vec<SessionView>, AuthError> {
        let current = principal.session_id();
        let sessions = self
            .inner
            .sessions
            .list(principal.token_tenant(), principal.subject())
            .await?;
        let mut views = Vec::with_capacity(sessions.len());
        for s in sessions {
            // One record that does not open hides its address, not the
            // caller's whole list.
            let client_ip = match self.inner.sessions.client_ip(&s).await {
                Ok(ip) => ip,
                Err(e) => {
                    tracing::error!(error = %e, "a session's address does not open");
                    None
                }
            };
            views.push(SessionView {
                current: Some(s.id.as_str()) == current,
                id: s.id,
                created_at: s.created_at,
                last_seen: s.last_seen,
                expires_at: s.expires_at,
                client_ip,
            });
        }
        Ok(views)
    }

    /// Revokes one of the caller's own sessions.
    pub async fn revoke_session(
        &self,
        principal: &Principal,
        id: &str,
        ctx: &RequestContext,
    ) -> Result<(), AuthError> {
        if !self
            .inner
            .sessions
            .revoke(principal.token_tenant(), principal.subject(), id)
            .await?
        {
            return Err(AuthError::NotFound);
        }
        self.inner.cache.remove_session(id);
        self.audit(
            Self::event("auth.session.revoke", AuditDecision::Success, Some(ctx))
                .principal(principal)
                .reason("revoked by its owner"),
        )
        .await?;
        Ok(())
    }

    /// Ends every session of `user` and drops their cached tokens.
    pub(super) async fn end_all_sessions(&self, user: &UserRecord) -> Result<(), AuthError> {
        for sid in self
            .inner
            .sessions
            .revoke_all(user.tenant.as_ref(), &user.subject)
            .await?
        {
            self.inner.cache.remove_session(&sid);
        }
        Ok(())
    }
}
