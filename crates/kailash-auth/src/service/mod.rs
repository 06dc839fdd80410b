//! The authentication service: login, refresh, logout, sessions, MFA
//! enrolment, password changes and account administration, on top of the
//! key set, the user store and the state-backed session, refresh-family and
//! lockout stores.
//!
//! Every outcome is audited; no event, error or log line carries a
//! password, token, secret or code. Unknown users and wrong passwords are
//! indistinguishable to the caller (same error, comparable time: an unknown
//! user still costs one argon2id verification).
//!
//! One file per flow, each with its request and response types:
//! [`login`](AuthService::login) (`login.rs`),
//! [`refresh`](AuthService::refresh) (`token_refresh.rs`; the family store
//! it rotates is [`crate::refresh`]), [`logout`](AuthService::logout),
//! the caller's [sessions](AuthService::list_sessions), the
//! [second factor](AuthService::mfa_enroll) (`mfa.rs`; re-authentication
//! in `reauth.rs`, the first enrolment of a user whose role requires one in
//! `mfa_bootstrap.rs`),
//! [password changes](AuthService::change_password) and
//! [account administration](AuthService::administer)
//! (`accounts.rs`). This file holds the service and what every flow shares.

mod accounts;
mod config;
mod error;
mod external;
mod login;
mod logout;
mod mfa;
mod mfa_bootstrap;
mod overrides;
mod password;
mod reauth;
mod sessions;
mod tenant_gate;
mod token_refresh;
mod tokens;
mod username_tag;

use std::sync::Arc;

use kailash_core::audit::{AuditDecision, AuditEvent, AuditSink};
use kailash_core::clock::Clock;
use kailash_core::context::RequestContext;
use kailash_core::state::SharedState;

pub use accounts::AccountAction;
pub use config::AuthConfig;
pub use error::AuthError;
pub use external::{EXTERNAL_SUBJECT_PREFIX, ExternalIdentity, NS_EXTERNAL_USER, external_subject};
pub use login::{LoginOutcome, LoginRequest};
pub use mfa::{EnrolRequest, Enrolment};
pub use mfa_bootstrap::{ENROLMENT_TOKEN_TTL, EnrolmentGrant};
pub use sessions::SessionView;
pub use tenant_gate::TenantGate;
pub use tokens::TokenPair;

use crate::jwt::{KeySet, TokenCache, TokenType, Verifier};
use crate::lockout::Lockout;
use crate::password::{HashLimiter, PasswordHasher};
use crate::refresh::RefreshFamilies;
use crate::session::SessionStore;
use crate::totp::TotpGuard;
use crate::users::UserStore;

/// The authentication service. Cheap to clone.
#[derive(Clone)]
pub struct AuthService {
    inner: Arc<Inner>,
}

struct Inner {
    config: AuthConfig,
    users: Arc<dyn UserStore>,
    keys: Arc<KeySet>,
    access: Verifier,
    refresh: Verifier,
    enrolment: Verifier,
    cache: Arc<TokenCache>,
    state: SharedState,
    clock: Arc<dyn Clock>,
    sessions: SessionStore,
    families: RefreshFamilies,
    lockout: Lockout,
    totp: TotpGuard,
    hasher: PasswordHasher,
    tags: username_tag::UsernameTags,
    audit: Arc<dyn AuditSink>,
    tenants: Option<Arc<dyn TenantGate>>,
    field_keys: std::sync::OnceLock<Arc<kailash_core::field_encryption::FieldKeys>>,
    external_providers: std::sync::OnceLock<std::collections::BTreeMap<String, String>>,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService")
            .field("issuer", &self.inner.config.issuer)
            .finish_non_exhaustive()
    }
}

impl AuthService {
    /// A service over `users`, signing with `keys`, keeping state in `state`
    /// and auditing to `audit`.
    pub fn new(
        config: AuthConfig,
        users: Arc<dyn UserStore>,
        keys: Arc<KeySet>,
        state: SharedState,
        audit: Arc<dyn AuditSink>,
    ) -> Self {
        let clock = state.clock.clone();
        let access =
            Verifier::builder(keys.clone(), config.issuer.clone(), config.audience.clone())
                .token_type(TokenType::Access)
                .clock(clock.clone())
                .build();
        let refresh =
            Verifier::builder(keys.clone(), config.issuer.clone(), config.audience.clone())
                .token_type(TokenType::Refresh)
                .clock(clock.clone())
                .build();
        let enrolment = Verifier::builder(
            keys.clone(),
            config.issuer.clone(),
            mfa_bootstrap::enrolment_audience(&config.audience),
        )
        .token_type(TokenType::MfaEnrolment)
        .clock(clock.clone())
        .build();
        Self {
            inner: Arc::new(Inner {
                cache: Arc::new(TokenCache::new(
                    crate::jwt::DEFAULT_CACHE_CAPACITY,
                    clock.clone(),
                )),
                sessions: SessionStore::new(state.clone(), config.session.clone()),
                families: RefreshFamilies::new(state.clone(), config.refresh.clone()),
                lockout: Lockout::new(state.clone(), config.lockout.clone()),
                totp: TotpGuard::from_state(config.totp, &state),
                hasher: PasswordHasher::default().with_limiter(HashLimiter::new(
                    config.max_concurrent_hashes,
                    config.hash_queue_timeout,
                )),
                tags: username_tag::UsernameTags::from_keys(&keys),
                config,
                users,
                keys,
                access,
                refresh,
                enrolment,
                state,
                clock,
                audit,
                tenants: None,
                field_keys: std::sync::OnceLock::new(),
                external_providers: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Refuses logins and refreshes of users whose tenant `gate` reports
    /// inactive (403).
    #[must_use]
    pub fn with_tenant_gate(mut self, gate: Arc<dyn TenantGate>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.tenants = Some(gate);
        }
        self
    }
    /// Seals what the service stores of its users with `keys`: sessions'
    /// client addresses and TOTP secrets (enrolled and pending), for this
    /// service and all its clones. Values stored in clear before stay
    /// readable and are sealed by the re-encryption pass
    /// ([`reencryption_targets`](Self::reencryption_targets)). One set of
    /// keys per service: `false` (and nothing changes) when keys are set
    /// already.
    pub fn set_field_keys(&self, keys: Arc<kailash_core::field_encryption::FieldKeys>) -> bool {
        if self.inner.field_keys.get().is_some()
            || !self.inner.sessions.set_field_keys(keys.clone())
        {
            return false;
        }
        self.inner.field_keys.set(keys).is_ok()
    }

    /// The field keys set with [`set_field_keys`](Self::set_field_keys).
    pub fn field_keys(&self) -> Option<&Arc<kailash_core::field_encryption::FieldKeys>> {
        self.inner.field_keys.get()
    }

    /// The records this service seals, as re-encryption targets for
    /// [`FieldKeys::maintain`](kailash_core::field_encryption::FieldKeys::maintain):
    /// sessions, TOTP secrets and external (single sign-on) users'
    /// attributes. Empty without field keys.
    pub fn reencryption_targets(&self) -> Vec<Arc<dyn kailash_core::field_encryption::Reencrypt>> {
        if self.inner.field_keys.get().is_none() {
            return Vec::new();
        }
        let mut out = Vec::new();
        out.extend(self.inner.sessions.reencryption());
        out.push(Arc::new(mfa::SecretReencryption {
            state: self.inner.state.clone(),
        }));
        out.push(Arc::new(external::ExternalReencryption {
            state: self.inner.state.clone(),
        }));
        out
    }

    /// Uses `hasher`'s parameters for new password hashes (and the dummy
    /// verification). The service keeps its own [`HashLimiter`] (from
    /// [`AuthConfig::max_concurrent_hashes`]): one bound for every hash and
    /// verification it runs.
    #[must_use]
    pub fn with_hasher(mut self, hasher: PasswordHasher) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            let limiter = inner.hasher.limiter().clone();
            inner.hasher = hasher.with_limiter(limiter);
        }
        self
    }

    /// The verifier of access tokens (for the `JwtAuthLayer`).
    pub fn access_verifier(&self) -> Verifier {
        self.inner.access.clone()
    }

    /// The verified-token cache shared with the `JwtAuthLayer`, so revoking
    /// a session also drops its cached tokens.
    pub fn token_cache(&self) -> Arc<TokenCache> {
        self.inner.cache.clone()
    }

    /// The session store (it is also the layer's `SessionCheck`).
    pub fn sessions(&self) -> &SessionStore {
        &self.inner.sessions
    }

    /// The signing keys (for the JWKS endpoint).
    pub fn keys(&self) -> &Arc<KeySet> {
        &self.inner.keys
    }

    /// The configuration.
    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    /// Records `event`, stamped with the service's clock, and returns once
    /// it is written: a flow answers only after its audit entry is in the
    /// trail, and fails closed ([`AuthError::Unavailable`], 503) when the
    /// sink refuses it.
    async fn audit(&self, event: AuditEvent) -> Result<(), AuthError> {
        let event = event.at(self.inner.clock.now());
        let action = event.action.clone();
        self.inner.audit.record(event).await.map_err(|error| {
            tracing::error!(%error, %action, "audit event refused; the request fails closed");
            AuthError::Unavailable
        })
    }

    /// Audits a request to `action` that its route refused for its shape
    /// (the body did not match the published schema) before any flow ran,
    /// like the flows audit their own refusals. Fails closed like
    /// [`audit`](Self::audit).
    #[cfg(feature = "axum")]
    pub(crate) async fn audit_malformed(
        &self,
        action: &'static str,
        ctx: &RequestContext,
    ) -> Result<(), AuthError> {
        self.audit(
            Self::event(action, AuditDecision::Failure, Some(ctx))
                .reason("malformed request: the body does not match its schema")
                .severity(kailash_core::audit::AuditSeverity::Warning),
        )
        .await
    }

    /// An event of `action`, carrying the request's context when there is one.
    fn event(
        action: &'static str,
        decision: AuditDecision,
        ctx: Option<&RequestContext>,
    ) -> AuditEvent {
        let e = AuditEvent::new(action, decision);
        match ctx {
            Some(ctx) => e.context(ctx),
            None => e,
        }
    }
}

/// Schemas of constant response fields (utoipa has no `const` attribute).
#[cfg(feature = "axum")]
mod schemas {
    use utoipa::openapi::schema::{ObjectBuilder, Type};

    /// `"Bearer"`, always.
    pub(super) fn bearer() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["Bearer"]))
            .description(Some("Always `Bearer`"))
    }

    /// `true`, always.
    pub(super) fn always_true() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::Boolean)
            .enum_values(Some([true]))
            .description(Some("Always `true`"))
    }
}
