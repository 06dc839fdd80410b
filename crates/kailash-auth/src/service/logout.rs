//! Logout: the caller's own session ends, and its cached tokens with it.

use kailash_core::Principal;
use kailash_core::audit::AuditDecision;
use kailash_core::context::RequestContext;

use super::{AuthError, AuthService};

impl AuthService {
    fn session_of(principal: &Principal) -> Result<&str, AuthError> {
        principal.session_id().ok_or(AuthError::NotFound)
    }

    /// Ends the caller's session.
    pub async fn logout(
        &self,
        principal: &Principal,
        ctx: &RequestContext,
    ) -> Result<(), AuthError> {
        let sid = Self::session_of(principal)?;
        self.inner
            .sessions
            .revoke(principal.token_tenant(), principal.subject(), sid)
            .await?;
        self.inner.cache.remove_session(sid);
        self.audit(
            Self::event("auth.logout", AuditDecision::Success, Some(ctx)).principal(principal),
        )
        .await?;
        Ok(())
    }
}
