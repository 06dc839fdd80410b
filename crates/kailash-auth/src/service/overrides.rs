//! The user as the service sees them: the directory's record with the
//! changes made through the API (new password, disabled account) applied.
//!
//! Those changes live in the shared state, not the directory, so every
//! instance sees them at once and a read-only directory still works.

use kailash_core::TenantId;
use kailash_core::state::{Namespace, StateKey};

use super::{AuthError, AuthService};
use crate::password::PasswordHash;
use crate::users::{Credential, UserRecord};

/// A password set through the API (an argon2id PHC string).
pub(super) const NS_PASSWORD: Namespace = Namespace::new("user.password");
/// Present while an account is disabled.
pub(super) const NS_DISABLED: Namespace = Namespace::new("user.disabled");

/// The state key of `id` in `ns`, under the user's tenant when they have one.
pub(super) fn key_for(tenant: Option<&TenantId>, ns: Namespace, id: &str) -> StateKey {
    match tenant {
        Some(t) => StateKey::tenant(t, ns, id),
        None => StateKey::global(ns, id),
    }
}

/// Where `subject`'s disabled flag lives: under the user's tenant, except
/// for external (single sign-on) users, whose tenant can change from one
/// sign-in to the next and whose record may be gone: theirs is global.
pub(super) fn disabled_key(tenant: Option<&TenantId>, subject: &str) -> StateKey {
    if subject.starts_with(super::external::EXTERNAL_SUBJECT_PREFIX) {
        StateKey::global(NS_DISABLED, subject)
    } else {
        key_for(tenant, NS_DISABLED, subject)
    }
}

impl AuthService {
    /// The user, with password and account-state overrides from the shared state applied.
    pub(super) async fn user_by_username(
        &self,
        username: &str,
    ) -> Result<Option<UserRecord>, AuthError> {
        match self.inner.users.find_by_username(username).await? {
            Some(u) => Ok(Some(self.apply_overrides(u).await?)),
            None => Ok(None),
        }
    }

    /// Like [`user_by_username`](Self::user_by_username), by token subject.
    pub(super) async fn user_by_subject(
        &self,
        subject: &str,
    ) -> Result<Option<UserRecord>, AuthError> {
        let found = if subject.starts_with(super::external::EXTERNAL_SUBJECT_PREFIX) {
            self.external_user(subject).await?
        } else {
            self.inner.users.find_by_subject(subject).await?
        };
        match found {
            Some(u) => Ok(Some(self.apply_overrides(u).await?)),
            None => Ok(None),
        }
    }

    async fn apply_overrides(&self, mut user: UserRecord) -> Result<UserRecord, AuthError> {
        let kv = &self.inner.state.kv;
        let tenant = user.tenant.as_ref();
        // A directory's users keep the directory's password: the API cannot
        // set one for them (see `change_password`).
        if matches!(user.credential, Credential::Hash(_))
            && let Some(hash) = kv.get(&key_for(tenant, NS_PASSWORD, &user.subject)).await?
        {
            let text = std::str::from_utf8(&hash).map_err(|_| AuthError::Internal)?;
            user.credential =
                Credential::Hash(PasswordHash::parse(text).map_err(|_| AuthError::Internal)?);
        }
        if kv
            .get(&disabled_key(tenant, &user.subject))
            .await?
            .is_some()
        {
            user.active = false;
        }
        Ok(user)
    }
}
