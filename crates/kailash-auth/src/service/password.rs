//! Password changes by their owner, and the stored hash that replaces the
//! directory's.
//!
//! The current password is proved like a login (`reauthenticate` in
//! `reauth.rs`: lockout, per-IP throttle, hashing bound; a guess that locks
//! the account ends every session); a new password must satisfy the policy;
//! a change ends every session of the user.

use bytes::Bytes;
use kailash_core::Principal;
use kailash_core::audit::AuditDecision;
use kailash_core::context::RequestContext;

use super::overrides::{NS_PASSWORD, key_for};
use super::reauth::SecondFactor;
use super::{AuthError, AuthService};
use crate::password::Password;
use crate::users::UserRecord;

impl AuthService {
    /// Changes the caller's password (the current one is required and the
    /// new one must satisfy the policy); every session of the user ends.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: String,
        new: String,
        ctx: &RequestContext,
    ) -> Result<(), AuthError> {
        use crate::bounds::{MAX_PASSWORD_CHARS, check};
        check("current_password", &current, MAX_PASSWORD_CHARS)?;
        check("new_password", &new, MAX_PASSWORD_CHARS)?;
        let Some(user) = self.user_by_subject(principal.subject()).await? else {
            return Err(AuthError::InvalidCredentials);
        };
        if !user.active {
            return Err(AuthError::InvalidCredentials);
        }
        if user.credential.hash().is_none() {
            return Err(AuthError::Conflict(
                "the password is managed by the user directory or identity provider",
            ));
        }
        let current = Password::new(current);
        self.reauthenticate(
            &user,
            &current,
            SecondFactor::NotAsked,
            "auth.password.change",
            ctx,
        )
        .await?;
        let new = Password::new(new);
        if let Err(violations) = self
            .inner
            .config
            .password_policy
            .validate(&new, &user.username)
        {
            self.audit(
                Self::event("auth.password.change", AuditDecision::Failure, Some(ctx))
                    .principal(principal)
                    .reason("new password violates the policy"),
            )
            .await?;
            return Err(AuthError::BadRequest(violations.to_string()));
        }
        self.write_password_hash(&user, &new).await?;
        self.end_all_sessions(&user).await?;
        self.audit(
            Self::event("auth.password.change", AuditDecision::Success, Some(ctx))
                .principal(principal)
                .reason("password changed; all sessions revoked"),
        )
        .await?;
        Ok(())
    }

    /// Stores a new hash of `password` for `user` (shared by every instance).
    /// Best effort on login: a failure leaves the old, still valid hash.
    pub(super) async fn store_password_hash(&self, user: &UserRecord, password: &Password) {
        if let Err(e) = self.write_password_hash(user, password).await {
            tracing::warn!(error = %e, "password hash upgrade failed; the old hash stays");
        }
    }

    /// Hashes `password` and stores it as `user`'s, overriding the directory.
    async fn write_password_hash(
        &self,
        user: &UserRecord,
        password: &Password,
    ) -> Result<(), AuthError> {
        let hash = self.inner.hasher.hash_async(password).await?;
        let key = key_for(user.tenant.as_ref(), NS_PASSWORD, &user.subject);
        self.inner
            .state
            .kv
            .set(&key, Bytes::from(hash.as_str().to_owned()), None)
            .await?;
        Ok(())
    }
}
