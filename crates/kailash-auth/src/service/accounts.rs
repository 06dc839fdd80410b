//! Account administration: disabling and re-enabling an account, and
//! resetting its second factor — as a library call, or by an administrator
//! over HTTP ([`administer`](AuthService::administer)).
//!
//! The flags live in the shared state (every instance sees them at once)
//! and override the directory. Disabling an account and resetting its
//! second factor end every session of the user immediately; after a reset
//! a user whose role requires a second factor enrols a new one at their
//! next login (an enrolment-only token).
//!
//! Whether the caller may administer accounts at all (`user:manage`) is the
//! access control's decision, taken in front of the route; this file
//! confines a tenant's administrator to the users of that tenant.

use bytes::Bytes;
use kailash_core::Principal;
use kailash_core::audit::{AuditDecision, AuditSeverity};
use kailash_core::context::RequestContext;

use super::overrides::disabled_key;
use super::{AuthError, AuthService};
use crate::bounds::{MAX_USERNAME_CHARS, check};
use crate::lockout::normalize_username;
use crate::users::UserRecord;

/// What an administrator does to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccountAction {
    /// Disable the account and end its sessions.
    Disable,
    /// Enable a disabled account.
    Enable,
    /// Forget the second factor (secret, recovery codes, pending enrolment)
    /// and end the user's sessions.
    ResetMfa,
}

impl AccountAction {
    fn audit_action(self) -> &'static str {
        match self {
            Self::Disable | Self::Enable => "auth.account",
            Self::ResetMfa => "auth.mfa.reset",
        }
    }
}

impl AuthService {
    /// Disables or re-enables an account (shared across instances); disabling
    /// ends every session at once. A library call for operators' tools; over
    /// HTTP administrators use [`administer`](Self::administer).
    pub async fn set_account_active(&self, subject: &str, active: bool) -> Result<(), AuthError> {
        let user = match self.user_by_subject(subject).await? {
            Some(user) => user,
            // An external user whose record expired can still be disabled
            // ahead of their next sign-in.
            None if subject.starts_with(super::external::EXTERNAL_SUBJECT_PREFIX) => {
                super::external::unrecorded(subject)
            }
            None => return Err(AuthError::NotFound),
        };
        self.write_account_active(&user, active).await?;
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
        .await?;
        Ok(())
    }

    /// The principal a login of `username` would carry (subject, tenant,
    /// roles, attributes — what access tokens are issued with), or `None`
    /// for an unknown user or a name longer than the bound. For tooling
    /// that explains another user's access decisions; it does not check
    /// the password or whether the account is enabled, and audits nothing
    /// (its caller audits what it does with the principal).
    pub async fn principal_of(&self, username: &str) -> Result<Option<Principal>, AuthError> {
        if check("username", username, MAX_USERNAME_CHARS).is_err() {
            return Ok(None);
        }
        Ok(self
            .user_by_username(&normalize_username(username))
            .await?
            .map(|u| u.principal_builder().build()))
    }

    /// `admin` applies `action` to the account `username`.
    ///
    /// The caller must already hold `user:manage` (the route checks it). An
    /// administrator of a tenant reaches only that tenant's users: another
    /// tenant's user answers [`AuthError::NotFound`] exactly like an unknown
    /// one. Nobody disables their own account or resets their own second
    /// factor here (a stolen administrator token would otherwise strip the
    /// second factor of the account it belongs to); that is a
    /// [`BadRequest`](AuthError::BadRequest). Audited with the
    /// administrator as actor and the user as resource.
    pub async fn administer(
        &self,
        admin: &Principal,
        username: &str,
        action: AccountAction,
        ctx: &RequestContext,
    ) -> Result<(), AuthError> {
        let audit_action = action.audit_action();
        let refuse = |reason: &'static str| {
            Self::event(audit_action, AuditDecision::Deny, Some(ctx))
                .principal(admin)
                .reason(reason)
                .severity(AuditSeverity::Warning)
        };
        if let Err(e) = check("username", username, MAX_USERNAME_CHARS) {
            self.audit(refuse("username too long")).await?;
            return Err(e.into());
        }
        // External (single sign-on) users are named by their subject,
        // `ext:<provider>:<sub>`; one whose record expired only by an
        // administrator of no tenant (their tenant is not known any more).
        let found = if username.starts_with(super::external::EXTERNAL_SUBJECT_PREFIX) {
            match self.user_by_subject(username).await? {
                Some(u) => Some(u),
                None if admin.tenant().is_none() => Some(super::external::unrecorded(username)),
                None => None,
            }
        } else {
            self.user_by_username(&normalize_username(username)).await?
        };
        let target = match found {
            Some(u) if admin.tenant().is_none() || admin.tenant() == u.tenant.as_ref() => u,
            Some(_) | None => {
                // Another tenant's user is recorded exactly like an unknown
                // name (neither name nor subject): the caller's tenant reads
                // this entry, and must not learn who exists elsewhere.
                self.audit(refuse("unknown user")).await?;
                return Err(AuthError::NotFound);
            }
        };
        if target.subject == admin.subject() && action != AccountAction::Enable {
            self.audit(refuse("own account").resource(resource(&target)))
                .await?;
            return Err(AuthError::BadRequest(
                "administrators cannot disable their own account or reset their own second factor"
                    .into(),
            ));
        }
        let reason = match action {
            AccountAction::Disable => {
                self.write_account_active(&target, false).await?;
                "account disabled by an administrator; sessions revoked"
            }
            AccountAction::Enable => {
                self.write_account_active(&target, true).await?;
                "account enabled by an administrator"
            }
            AccountAction::ResetMfa => {
                self.clear_second_factor(&target).await?;
                self.end_all_sessions(&target).await?;
                "second factor reset by an administrator; sessions revoked"
            }
        };
        self.audit(
            Self::event(audit_action, AuditDecision::Success, Some(ctx))
                .actor(admin.subject().to_owned())
                .tenant(target.tenant.clone())
                .resource(resource(&target))
                .reason(reason)
                .severity(AuditSeverity::Warning),
        )
        .await?;
        Ok(())
    }

    /// Sets or clears `user`'s disabled flag; disabling ends every session.
    async fn write_account_active(&self, user: &UserRecord, active: bool) -> Result<(), AuthError> {
        let key = disabled_key(user.tenant.as_ref(), &user.subject);
        if active {
            self.inner.state.kv.delete(&key).await?;
        } else {
            self.inner
                .state
                .kv
                .set(&key, Bytes::from_static(b"1"), None)
                .await?;
            self.end_all_sessions(user).await?;
        }
        Ok(())
    }
}

/// The audit resource naming a user account.
fn resource(user: &UserRecord) -> String {
    format!("user:{}", user.subject)
}
