//! Sign-in vouched for by an identity provider (OpenID Connect; SAML
//! later): the provider checked the credentials, this service applies its
//! own rules — disabled accounts, the tenant's state, the second factor
//! its roles require, the session cap — and opens the same session and
//! token pair as a password login.
//!
//! Such users exist only as the provider describes them at each sign-in,
//! so the service keeps a record of the last description (just in time,
//! in the shared state under [`NS_EXTERNAL_USER`], expiring a configured
//! time after the last sign-in): refreshes and step-up checks read their
//! roles and tenant from it. With field keys set, the record's attributes
//! (names, e-mail, department) are sealed, bound to the record's key.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kailash_core::audit::{AuditDecision, AuditSeverity};
use kailash_core::context::RequestContext;
use kailash_core::field_encryption::{FieldError, FieldKeys, ReencryptStats, is_sealed};
use kailash_core::state::{Namespace, SharedState, StateKey};
use kailash_core::{AttributeValue, TenantId};
use serde::{Deserialize, Serialize};

use super::overrides::disabled_key;
use super::{AuthError, AuthService, TokenPair};
use crate::users::{Credential, UserRecord};

/// Where external users' records live (global keys by subject).
pub const NS_EXTERNAL_USER: Namespace = Namespace::new("user.external");

/// The prefix of every external user's subject: `ext:<provider>:<sub>`,
/// so two providers' (or a provider's and a configured user's) subjects
/// never collide.
pub const EXTERNAL_SUBJECT_PREFIX: &str = "ext:";

/// The subject of the user `sub` of `provider`.
pub fn external_subject(provider: &str, sub: &str) -> String {
    format!("{EXTERNAL_SUBJECT_PREFIX}{provider}:{sub}")
}

/// A user as an identity provider vouched for them.
#[derive(Clone)]
pub struct ExternalIdentity {
    /// The provider's configured name (`corp`, `google`).
    pub provider: String,
    /// How the provider was reached (`oidc`, `saml`), for the audit trail.
    pub protocol: &'static str,
    /// The user's subject here ([`external_subject`]).
    pub subject: String,
    /// The username (normalised).
    pub username: String,
    /// The user's tenant.
    pub tenant: Option<TenantId>,
    /// Roles, mapped from the provider's groups plus its default roles.
    pub roles: Vec<String>,
    /// Attributes for ABAC, mapped from the provider's claims.
    pub attributes: BTreeMap<String, AttributeValue>,
    /// Whether the provider asserted a second factor this service trusts.
    pub mfa: bool,
    /// How long the record is kept after this sign-in.
    pub record_ttl: Duration,
    /// A fingerprint of the provider's settings that shaped this identity:
    /// once the provider is reconfigured (or removed), records made under
    /// the old settings stop serving refreshes
    /// ([`AuthService::set_external_providers`]).
    pub mapping: String,
}

impl std::fmt::Debug for ExternalIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalIdentity")
            .field("provider", &self.provider)
            .field("subject", &self.subject)
            .field("tenant", &self.tenant)
            .field("roles", &self.roles)
            .field("mfa", &self.mfa)
            .finish_non_exhaustive()
    }
}

/// The stored record of an external user.
#[derive(Serialize, Deserialize)]
struct Record {
    provider: String,
    username: String,
    #[serde(default)]
    tenant: Option<TenantId>,
    #[serde(default)]
    roles: Vec<String>,
    /// Clear attributes, or the sealed JSON of them.
    attributes: StoredAttributes,
    /// The provider settings' fingerprint at sign-in.
    #[serde(default)]
    mapping: String,
    /// When the record expires (Unix seconds), so a rewrite keeps it.
    expires: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StoredAttributes {
    Sealed(String),
    Clear(BTreeMap<String, AttributeValue>),
}

/// An external user known only by subject (their record expired): enough
/// to set their disabled flag.
pub(super) fn unrecorded(subject: &str) -> UserRecord {
    let provider = subject
        .strip_prefix(EXTERNAL_SUBJECT_PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .map_or("", |(p, _)| p);
    UserRecord {
        subject: subject.to_owned(),
        username: subject.to_owned(),
        tenant: None,
        roles: Vec::new(),
        attributes: BTreeMap::new(),
        credential: Credential::External(provider.to_owned()),
        active: true,
        totp_secret: None,
    }
}

fn record_key(subject: &str) -> StateKey {
    StateKey::global(NS_EXTERNAL_USER, subject)
}

impl AuthService {
    /// The identity providers configured now, by name, with the
    /// fingerprint of their settings ([`ExternalIdentity::mapping`]): an
    /// external user's record made by a provider not listed, or under other
    /// settings, no longer serves refreshes or step-up checks. Set once per
    /// service (`false` when already set); unset, every record is honoured
    /// (a service without a registry of providers). The gateway sets it,
    /// empty when no provider is configured.
    pub fn set_external_providers(
        &self,
        providers: impl IntoIterator<Item = (String, String)>,
    ) -> bool {
        self.inner
            .external_providers
            .set(providers.into_iter().collect())
            .is_ok()
    }

    /// Signs in a user an identity provider vouched for: refused (audited,
    /// no session) when the account is disabled, the tenant inactive, or a
    /// role requires a second factor the provider did not assert; else the
    /// user's record is stored and a session opened, as after a password
    /// login.
    pub async fn sign_in_external(
        &self,
        identity: ExternalIdentity,
        ctx: &RequestContext,
    ) -> Result<TokenPair, AuthError> {
        let result = self.sign_in_external_inner(&identity, ctx).await;
        let outcome = match &result {
            Ok(_) => "success",
            Err(AuthError::Unavailable | AuthError::Internal) => "error",
            Err(_) => "failure",
        };
        metrics::counter!("kailash_auth_logins_total", "outcome" => outcome).increment(1);
        result
    }

    async fn sign_in_external_inner(
        &self,
        id: &ExternalIdentity,
        ctx: &RequestContext,
    ) -> Result<TokenPair, AuthError> {
        let how = match id.protocol {
            "saml" => "single sign-on (SAML)",
            _ => "single sign-on (OpenID Connect)",
        };
        let refuse = |decision: AuditDecision, reason: &'static str| {
            Self::event("auth.login", decision, Some(ctx))
                .actor(id.subject.clone())
                .tenant(id.tenant.clone())
                .reason(reason)
                .severity(AuditSeverity::Warning)
        };
        if id.subject.len() > 512 || !id.subject.starts_with(EXTERNAL_SUBJECT_PREFIX) {
            return Err(AuthError::Internal);
        }
        let kv = &self.inner.state.kv;
        if kv
            .get(&disabled_key(id.tenant.as_ref(), &id.subject))
            .await?
            .is_some()
        {
            self.audit(refuse(AuditDecision::Failure, "account disabled"))
                .await?;
            return Err(AuthError::SignInRefused("the account is disabled"));
        }
        if !self.tenant_active(id.tenant.as_ref()).await? {
            self.audit(refuse(AuditDecision::Deny, "tenant is inactive"))
                .await?;
            return Err(AuthError::TenantInactive);
        }
        let mfa_required = id
            .roles
            .iter()
            .any(|r| self.inner.config.mfa_required_roles.contains(r));
        if mfa_required && !id.mfa {
            self.audit(refuse(
                AuditDecision::Failure,
                "a role requires a second factor the identity provider did not assert",
            ))
            .await?;
            return Err(AuthError::SignInRefused(
                "a role requires a second factor, and the identity provider did not assert one",
            ));
        }
        let user = UserRecord {
            subject: id.subject.clone(),
            username: id.username.clone(),
            tenant: id.tenant.clone(),
            roles: id.roles.clone(),
            attributes: id.attributes.clone(),
            credential: Credential::External(id.provider.clone()),
            active: true,
            totp_secret: None,
        };
        self.store_external(id).await?;
        let pair = self.open_session(&user, ctx, id.mfa).await?;
        self.audit(
            Self::event("auth.login", AuditDecision::Success, Some(ctx))
                .actor(user.subject.clone())
                .tenant(user.tenant.clone())
                .reason(if id.mfa {
                    match id.protocol {
                        "saml" => "single sign-on (SAML) with the provider's second factor",
                        _ => "single sign-on (OpenID Connect) with the provider's second factor",
                    }
                } else {
                    how
                }),
        )
        .await?;
        Ok(pair)
    }

    /// Audits a single sign-on refused before the service saw an identity
    /// (a forged answer, a state mismatch, a provider outage); fails closed
    /// like every audit of the service.
    pub async fn audit_sign_in_refusal(
        &self,
        decision: AuditDecision,
        reason: String,
        ctx: &RequestContext,
    ) -> Result<(), AuthError> {
        self.audit(
            Self::event("auth.login", decision, Some(ctx))
                .reason(reason)
                .severity(AuditSeverity::Warning),
        )
        .await
    }

    async fn store_external(&self, id: &ExternalIdentity) -> Result<(), AuthError> {
        let key = record_key(&id.subject);
        let attributes = match self.inner.field_keys.get() {
            Some(keys) => {
                let json = serde_json::to_vec(&id.attributes).map_err(|_| AuthError::Internal)?;
                StoredAttributes::Sealed(keys.seal(&json, key.as_str().as_bytes()).await.map_err(
                    |e| {
                        tracing::warn!(error = %e, "external user's attributes not sealed");
                        AuthError::Unavailable
                    },
                )?)
            }
            None => StoredAttributes::Clear(id.attributes.clone()),
        };
        let ttl = id.record_ttl.max(Duration::from_secs(1));
        let expires = self
            .inner
            .clock
            .now()
            .as_second()
            .saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        let record = Record {
            provider: id.provider.clone(),
            username: id.username.clone(),
            tenant: id.tenant.clone(),
            roles: id.roles.clone(),
            attributes,
            expires,
            mapping: id.mapping.clone(),
        };
        let bytes = serde_json::to_vec(&record).map_err(|_| AuthError::Internal)?;
        self.inner
            .state
            .kv
            .set(&key, Bytes::from(bytes), Some(ttl))
            .await?;
        Ok(())
    }

    /// The record of an external user, by subject.
    pub(super) async fn external_user(
        &self,
        subject: &str,
    ) -> Result<Option<UserRecord>, AuthError> {
        let key = record_key(subject);
        let Some(bytes) = self.inner.state.kv.get(&key).await? else {
            return Ok(None);
        };
        let record: Record = serde_json::from_slice(&bytes).map_err(|_| {
            tracing::error!("an external user's record is unreadable");
            AuthError::Internal
        })?;
        if let Some(providers) = self.inner.external_providers.get()
            && providers.get(&record.provider) != Some(&record.mapping)
        {
            // Made under settings that no longer hold (the provider was
            // removed or reconfigured): not a user any more until the next
            // sign-in under the current rules.
            return Ok(None);
        }
        let attributes = match record.attributes {
            StoredAttributes::Clear(a) => a,
            StoredAttributes::Sealed(sealed) => {
                let Some(keys) = self.inner.field_keys.get() else {
                    tracing::error!(
                        "an external user's attributes are sealed and no field keys are set"
                    );
                    return Err(AuthError::Unavailable);
                };
                let json = keys
                    .open(&sealed, key.as_str().as_bytes())
                    .await
                    .map_err(|e| {
                        tracing::error!(error = %e, "an external user's attributes do not open");
                        AuthError::Unavailable
                    })?;
                serde_json::from_slice(&json).map_err(|_| AuthError::Internal)?
            }
        };
        Ok(Some(UserRecord {
            subject: subject.to_owned(),
            username: record.username,
            tenant: record.tenant,
            roles: record.roles,
            attributes,
            credential: Credential::External(record.provider),
            active: true,
            totp_secret: None,
        }))
    }
}

/// Re-seals external users' attributes under the current field key (and
/// seals those stored in clear), keeping each record's expiry.
pub(super) struct ExternalReencryption {
    pub(super) state: SharedState,
}

#[async_trait::async_trait]
impl kailash_core::field_encryption::Reencrypt for ExternalReencryption {
    fn name(&self) -> &'static str {
        "external_users"
    }

    async fn reencrypt(&self, keys: &FieldKeys) -> Result<ReencryptStats, FieldError> {
        kailash_core::field_encryption::reencrypt_namespace(
            &self.state,
            NS_EXTERNAL_USER,
            "an external user",
            |key| self.reseal_one(keys, key),
        )
        .await
    }
}

impl ExternalReencryption {
    async fn reseal_one(&self, keys: &FieldKeys, key: StateKey) -> Result<bool, FieldError> {
        let (kv, key) = (&self.state.kv, &key);
        for _ in 0..kailash_core::field_encryption::RESEAL_ATTEMPTS {
            let Some(stored) = kv.get(key).await? else {
                return Ok(false);
            };
            let mut record: Record =
                serde_json::from_slice(&stored).map_err(|_| FieldError::Malformed)?;
            let context = key.as_str().as_bytes();
            record.attributes = match &record.attributes {
                StoredAttributes::Sealed(text) if is_sealed(text) => {
                    match keys.reseal(text, context).await? {
                        Some(new) => StoredAttributes::Sealed(new),
                        None => return Ok(false),
                    }
                }
                StoredAttributes::Sealed(_) => return Err(FieldError::Malformed),
                StoredAttributes::Clear(a) => {
                    let json = serde_json::to_vec(a).map_err(|_| FieldError::Malformed)?;
                    StoredAttributes::Sealed(keys.seal(&json, context).await?)
                }
            };
            let left = record
                .expires
                .saturating_sub(self.state.clock.now().as_second());
            if left <= 0 {
                return Ok(false);
            }
            let ttl = Duration::from_secs(u64::try_from(left).unwrap_or(1));
            let new = serde_json::to_vec(&record).map_err(|_| FieldError::Malformed)?;
            if kv
                .compare_and_swap(key, Some(&stored), Some(Bytes::from(new)), Some(ttl))
                .await?
            {
                return Ok(true);
            }
        }
        Err(FieldError::KeySet(
            "an external user's record kept changing under its re-encryption".into(),
        ))
    }
}
