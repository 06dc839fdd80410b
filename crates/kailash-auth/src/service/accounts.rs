//! Account administration: disabling and re-enabling an account.
//!
//! The flag lives in the shared state (every instance sees it at once) and
//! overrides the directory; disabling ends every session immediately.

use bytes::Bytes;
use kailash_core::audit::AuditDecision;

use super::overrides::{NS_DISABLED, key_for};
use super::{AuthError, AuthService};

impl AuthService {
    /// Disables or re-enables an account (shared across instances); disabling
    /// ends every session at once.
    pub async fn set_account_active(&self, subject: &str, active: bool) -> Result<(), AuthError> {
        let Some(user) = self.user_by_subject(subject).await? else {
            return Err(AuthError::NotFound);
        };
        let key = key_for(user.tenant.as_ref(), NS_DISABLED, &user.subject);
        if active {
            self.inner.state.kv.delete(&key).await?;
        } else {
            self.inner
                .state
                .kv
                .set(&key, Bytes::from_static(b"1"), None)
                .await?;
            self.end_all_sessions(&user).await?;
        }
        self.audit(
            Self::event("auth.account", AuditDecision::Success, None)
                .actor(user.subject.clone())
                .tenant(user.tenant.clone())
                .reason(if active {
                    "account enabled"
                } else {
                    "account disabled; sessions revoked"
                }),
        )
        .await;
        Ok(())
    }
}
