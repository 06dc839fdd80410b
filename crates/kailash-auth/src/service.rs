//! The authentication service: login, refresh, logout, sessions, MFA
//! enrolment and password changes, on top of the key set, the user store
//! and the state-backed session, refresh-family and lockout stores.
//!
//! Every outcome is audited; no event, error or log line carries a
//! password, token, secret or code. Unknown users and wrong passwords are
//! indistinguishable to the caller (same error, comparable time: an unknown
//! user still costs one argon2id verification).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kailash_core::audit::{AuditDecision, AuditEvent, AuditSeverity, AuditSink};
use kailash_core::clock::Clock;
use kailash_core::context::RequestContext;
use kailash_core::state::{Namespace, SharedState, StateError, StateKey};
use kailash_core::{Principal, TenantId};
use serde::{Deserialize, Serialize};

use crate::jwt::{Claims, KeySet, TokenCache, TokenType, Verifier};
use crate::lockout::{AttemptError, Lockout, LockoutConfig, normalize_username};
use crate::password::{Password, PasswordHash, PasswordHasher, PasswordPolicy};
use crate::refresh::{RefreshConfig, RefreshError, RefreshFamilies, RotateOutcome};
use crate::session::{SessionConfig, SessionError, SessionStore};
use crate::totp::{RecoveryCode, RecoveryCodes, TotpCheck, TotpConfig, TotpGuard, TotpSecret};
use crate::users::{UserRecord, UserStore, UserStoreError};

const NS_PASSWORD: Namespace = Namespace::new("user.password");
const NS_DISABLED: Namespace = Namespace::new("user.disabled");
const NS_MFA: Namespace = Namespace::new("mfa.secret");
const NS_MFA_PENDING: Namespace = Namespace::new("mfa.pending");
const NS_RECOVERY: Namespace = Namespace::new("mfa.recovery");

/// How long an MFA enrolment waits for its first code.
const ENROLMENT_TTL: Duration = Duration::from_secs(600);

/// Tells the login path whether a tenant may act at all. Implemented by the
/// gateway over its tenant registry (kailash-auth does not depend on
/// tenancy); deactivation takes effect at the next login or refresh.
#[async_trait::async_trait]
pub trait TenantGate: Send + Sync + 'static {
    /// Whether `tenant` is active; `Err` when it cannot be told (fail closed).
    async fn is_active(&self, tenant: &TenantId) -> Result<bool, String>;
}

/// Settings of the [`AuthService`].
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `iss` of issued tokens, required on verification.
    pub issuer: String,
    /// `aud` of issued tokens, required on verification.
    pub audience: String,
    /// Lifetime of access tokens (capped by the session's absolute lifetime).
    pub access_token_ttl: Duration,
    /// Refresh tokens.
    pub refresh: RefreshConfig,
    /// Sessions.
    pub session: SessionConfig,
    /// Lockout and per-IP login throttling.
    pub lockout: LockoutConfig,
    /// Complexity rules for new passwords.
    pub password_policy: PasswordPolicy,
    /// Roles that must present a TOTP code at login.
    pub mfa_required_roles: BTreeSet<String>,
    /// TOTP parameters.
    pub totp: TotpConfig,
    /// The issuer shown in authenticator apps.
    pub totp_issuer: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: "kailash".into(),
            audience: "kailash-api".into(),
            access_token_ttl: Duration::from_secs(8 * 3600),
            refresh: RefreshConfig::default(),
            session: SessionConfig::default(),
            lockout: LockoutConfig::default(),
            password_policy: PasswordPolicy::default(),
            mfa_required_roles: BTreeSet::new(),
            totp: TotpConfig::default(),
            totp_issuer: "kailash".into(),
        }
    }
}

/// A login request.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Username (normalised before lookup).
    pub username: String,
    /// Password.
    pub password: String,
    /// TOTP code, when MFA applies.
    #[serde(default)]
    pub totp: Option<String>,
    /// A recovery code instead of a TOTP code.
    #[serde(default)]
    pub recovery_code: Option<String>,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Tokens handed to a client.
#[derive(Clone, Serialize)]
pub struct TokenPair {
    /// The access token (`at+jwt`).
    pub access_token: String,
    /// The refresh token (`rt+jwt`), rotated on every use.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// What an MFA enrolment returns once: the secret, for the authenticator app.
#[derive(Serialize)]
pub struct Enrolment {
    /// The secret in base32.
    pub secret: String,
    /// The `otpauth://` URI (for a QR code).
    pub otpauth_uri: String,
}

/// Why an authentication call failed. Maps one-to-one to an HTTP answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Unknown user, wrong password or disabled account (deliberately one case).
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The password was right but a second factor is missing or wrong.
    #[error("a valid one-time code is required")]
    MfaRequired,
    /// Too many failed logins; retry later.
    #[error("account locked")]
    Locked {
        /// Time until the lock ends.
        retry_after: Duration,
    },
    /// Too many login attempts from this address.
    #[error("too many login attempts")]
    Throttled {
        /// Time until the next attempt is allowed.
        retry_after: Duration,
    },
    /// The user's tenant is inactive.
    #[error("tenant is inactive")]
    TenantInactive,
    /// The concurrent-session limit refused a new session.
    #[error("concurrent session limit reached")]
    SessionLimit,
    /// The refresh token is invalid, expired, reused or revoked.
    #[error("invalid refresh token")]
    InvalidGrant,
    /// The request is malformed (e.g. a new password that violates the policy).
    #[error("{0}")]
    BadRequest(String),
    /// No such session of the caller.
    #[error("no such session")]
    NotFound,
    /// A backend (state, user directory) is unavailable: fail closed.
    #[error("authentication backend unavailable")]
    Unavailable,
    /// An internal error (signing failed); details are logged, not returned.
    #[error("internal error")]
    Internal,
}

impl From<StateError> for AuthError {
    fn from(e: StateError) -> Self {
        tracing::warn!(error = %e, "auth state unavailable");
        AuthError::Unavailable
    }
}
impl From<SessionError> for AuthError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::LimitReached => AuthError::SessionLimit,
            other => {
                tracing::warn!(error = %other, "session store unavailable");
                AuthError::Unavailable
            }
        }
    }
}
impl From<RefreshError> for AuthError {
    fn from(e: RefreshError) -> Self {
        tracing::warn!(error = %e, "refresh store unavailable");
        AuthError::Unavailable
    }
}
impl From<UserStoreError> for AuthError {
    fn from(e: UserStoreError) -> Self {
        tracing::warn!(error = %e, "user directory unavailable");
        AuthError::Unavailable
    }
}

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
    cache: Arc<TokenCache>,
    state: SharedState,
    clock: Arc<dyn Clock>,
    sessions: SessionStore,
    families: RefreshFamilies,
    lockout: Lockout,
    totp: TotpGuard,
    hasher: PasswordHasher,
    audit: Arc<dyn AuditSink>,
    tenants: Option<Arc<dyn TenantGate>>,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService")
            .field("issuer", &self.inner.config.issuer)
            .finish_non_exhaustive()
    }
}

fn key_for(tenant: Option<&TenantId>, ns: Namespace, id: &str) -> StateKey {
    match tenant {
        Some(t) => StateKey::tenant(t, ns, id),
        None => StateKey::global(ns, id),
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
                hasher: PasswordHasher::default(),
                config,
                users,
                keys,
                access,
                refresh,
                state,
                clock,
                audit,
                tenants: None,
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

    async fn tenant_active(&self, tenant: Option<&TenantId>) -> Result<bool, AuthError> {
        match (&self.inner.tenants, tenant) {
            (Some(gate), Some(t)) => gate.is_active(t).await.map_err(|e| {
                tracing::warn!(error = %e, "tenant registry unavailable");
                AuthError::Unavailable
            }),
            _ => Ok(true),
        }
    }

    /// Uses `hasher` for new password hashes (and the dummy verification).
    #[must_use]
    pub fn with_hasher(mut self, hasher: PasswordHasher) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.hasher = hasher;
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

    async fn audit(&self, event: AuditEvent) {
        if let Err(error) = self
            .inner
            .audit
            .record(event.at(self.inner.clock.now()))
            .await
        {
            tracing::error!(%error, "auth audit event could not be recorded");
        }
    }

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

    /// The user, with password and account-state overrides from the shared state applied.
    async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>, AuthError> {
        match self.inner.users.find_by_username(username).await? {
            Some(u) => Ok(Some(self.apply_overrides(u).await?)),
            None => Ok(None),
        }
    }

    async fn user_by_subject(&self, subject: &str) -> Result<Option<UserRecord>, AuthError> {
        match self.inner.users.find_by_subject(subject).await? {
            Some(u) => Ok(Some(self.apply_overrides(u).await?)),
            None => Ok(None),
        }
    }

    async fn apply_overrides(&self, mut user: UserRecord) -> Result<UserRecord, AuthError> {
        let kv = &self.inner.state.kv;
        let tenant = user.tenant.as_ref();
        if let Some(hash) = kv.get(&key_for(tenant, NS_PASSWORD, &user.subject)).await? {
            let text = std::str::from_utf8(&hash).map_err(|_| AuthError::Internal)?;
            user.password_hash = PasswordHash::parse(text).map_err(|_| AuthError::Internal)?;
        }
        if kv
            .get(&key_for(tenant, NS_DISABLED, &user.subject))
            .await?
            .is_some()
        {
            user.active = false;
        }
        Ok(user)
    }

    /// The TOTP secret enrolled for `user`: one enrolled through the API
    /// wins over one from configuration.
    async fn totp_secret(&self, user: &UserRecord) -> Result<Option<TotpSecret>, AuthError> {
        let key = key_for(user.tenant.as_ref(), NS_MFA, &user.subject);
        match self.inner.state.kv.get(&key).await? {
            Some(b) => {
                let text = std::str::from_utf8(&b).map_err(|_| AuthError::Internal)?;
                Ok(Some(
                    TotpSecret::from_base32(text).map_err(|_| AuthError::Internal)?,
                ))
            }
            None => Ok(user.totp_secret.clone()),
        }
    }

    /// Logs a user in: lockout and per-IP throttle, password, account state,
    /// second factor, a new session (the oldest evicted or the login refused
    /// at the limit), and a fresh token pair.
    pub async fn login(
        &self,
        req: LoginRequest,
        ctx: &RequestContext,
    ) -> Result<TokenPair, AuthError> {
        let username = normalize_username(&req.username);
        // The attempted username is named only once it is known to be a
        // user: an unknown "username" may be a password typed in the wrong field.
        let fail = |reason: &'static str| {
            Self::event("auth.login", AuditDecision::Failure, Some(ctx))
                .reason(reason)
                .severity(AuditSeverity::Warning)
        };
        let permit = match self.inner.lockout.begin(&username, ctx.client_ip()).await {
            Ok(p) => p,
            Err(AttemptError::Locked { retry_after }) => {
                // Locking needs failures against an existing account, so the name is a user's.
                self.audit(fail("account locked").actor(username.clone()))
                    .await;
                return Err(AuthError::Locked { retry_after });
            }
            Err(AttemptError::Throttled { retry_after }) => {
                self.audit(fail("login attempts from this address throttled"))
                    .await;
                return Err(AuthError::Throttled { retry_after });
            }
            Err(AttemptError::Unavailable(e)) => return Err(e.into()),
        };
        let password = Password::new(req.password);
        let user = match self.user_by_username(&username).await {
            Ok(u) => u,
            Err(e) => {
                // A backend outage is not the user's failure: the dropped
                // permit keeps its slot until the window ends, uncounted.
                drop(permit);
                return Err(e);
            }
        };
        let Some(user) = user else {
            // Same work as a wrong password, so timing does not tell.
            let _ = self.inner.hasher.verify_dummy_async(&password).await;
            let _ = self.inner.lockout.failed(permit).await;
            self.audit(fail("invalid credentials")).await;
            return Err(AuthError::InvalidCredentials);
        };
        let ok = self
            .inner
            .hasher
            .verify_async(&password, &user.password_hash)
            .await;
        if !ok || !user.active {
            let _ = self.inner.lockout.failed(permit).await;
            let reason = if ok {
                "account disabled"
            } else {
                "invalid credentials"
            };
            self.audit(
                fail(reason)
                    .actor(user.subject.clone())
                    .tenant(user.tenant.clone()),
            )
            .await;
            return Err(AuthError::InvalidCredentials);
        }
        // The password was right: an inactive tenant may be named (403).
        match self.tenant_active(user.tenant.as_ref()).await {
            Ok(true) => {}
            Ok(false) => {
                let _ = self.inner.lockout.succeeded(permit).await;
                self.audit(
                    Self::event("auth.login", AuditDecision::Deny, Some(ctx))
                        .actor(user.subject.clone())
                        .tenant(user.tenant.clone())
                        .reason("tenant is inactive"),
                )
                .await;
                return Err(AuthError::TenantInactive);
            }
            Err(e) => {
                drop(permit);
                return Err(e);
            }
        }
        // Second factor: required by role, or because the user enrolled.
        let secret = match self.totp_secret(&user).await {
            Ok(s) => s,
            Err(e) => {
                drop(permit);
                return Err(e);
            }
        };
        let mfa_required = secret.is_some()
            || user
                .roles
                .iter()
                .any(|r| self.inner.config.mfa_required_roles.contains(r));
        if mfa_required {
            let passed = match (&secret, req.totp.as_deref(), req.recovery_code.as_deref()) {
                (Some(secret), Some(code), _) => {
                    match self
                        .inner
                        .totp
                        .verify(user.tenant.as_ref(), &user.subject, secret, code)
                        .await
                    {
                        Ok(TotpCheck::Accepted { .. }) => true,
                        Ok(_) => false,
                        Err(e) => {
                            drop(permit);
                            tracing::warn!(error = %e, "TOTP guard unavailable");
                            return Err(AuthError::Unavailable);
                        }
                    }
                }
                (_, None, Some(code)) => self.consume_recovery_code(&user, code).await?,
                _ => false,
            };
            if !passed {
                let _ = self.inner.lockout.failed(permit).await;
                self.audit(
                    fail("second factor missing or invalid")
                        .actor(user.subject.clone())
                        .tenant(user.tenant.clone()),
                )
                .await;
                return Err(AuthError::MfaRequired);
            }
        }
        if let Err(e) = self.inner.lockout.succeeded(permit).await {
            tracing::warn!(error = ?e, "lockout counter could not be cleared");
        }
        if self.inner.hasher.needs_rehash(&user.password_hash) {
            // Upgrade a hash made with weaker parameters while the password is at hand.
            self.store_password_hash(&user, &password).await;
        }
        let created = self
            .inner
            .sessions
            .create(&user.subject, user.tenant.as_ref(), Some(ctx.client_ip()))
            .await;
        let created = match created {
            Ok(c) => c,
            Err(SessionError::LimitReached) => {
                self.audit(
                    Self::event("auth.login", AuditDecision::Deny, Some(ctx))
                        .actor(user.subject.clone())
                        .tenant(user.tenant.clone())
                        .reason("concurrent session limit reached"),
                )
                .await;
                return Err(AuthError::SessionLimit);
            }
            Err(e) => return Err(e.into()),
        };
        for evicted in &created.evicted {
            self.inner.cache.remove_session(evicted);
            self.audit(
                Self::event("auth.session.evicted", AuditDecision::Success, Some(ctx))
                    .actor(user.subject.clone())
                    .tenant(user.tenant.clone())
                    .reason("concurrent session limit: oldest session evicted"),
            )
            .await;
        }
        let session = created.session;
        let grant = self
            .inner
            .families
            .start(user.tenant.as_ref(), &session.id)
            .await?;
        let pair = self.issue_pair(
            &user,
            &session.id,
            session.expires_at,
            &grant.family,
            &grant.jti,
            grant.expires_at,
        )?;
        self.audit(
            Self::event("auth.login", AuditDecision::Success, Some(ctx))
                .actor(user.subject.clone())
                .tenant(user.tenant.clone())
                .reason(if mfa_required {
                    "password and second factor"
                } else {
                    "password"
                }),
        )
        .await;
        Ok(pair)
    }

    /// Stores a new hash of `password` for `user` (shared by every instance).
    /// Best effort on login: a failure leaves the old, still valid hash.
    async fn store_password_hash(&self, user: &UserRecord, password: &Password) {
        let result = async {
            let hash = self
                .inner
                .hasher
                .hash_async(password)
                .await
                .map_err(|_| AuthError::Internal)?;
            let key = key_for(user.tenant.as_ref(), NS_PASSWORD, &user.subject);
            self.inner
                .state
                .kv
                .set(&key, Bytes::from(hash.as_str().to_owned()), None)
                .await?;
            Ok::<(), AuthError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "password hash upgrade failed; the old hash stays");
        }
    }

    async fn consume_recovery_code(
        &self,
        user: &UserRecord,
        code: &str,
    ) -> Result<bool, AuthError> {
        let key = key_for(user.tenant.as_ref(), NS_RECOVERY, &user.subject);
        let kv = &self.inner.state.kv;
        // Compare-and-swap so two logins cannot spend the same code.
        for _ in 0..8 {
            let Some(stored) = kv.get(&key).await? else {
                return Ok(false);
            };
            let mut codes: RecoveryCodes =
                serde_json::from_slice(&stored).map_err(|_| AuthError::Internal)?;
            if !codes.consume(code) {
                return Ok(false);
            }
            let updated = serde_json::to_vec(&codes).map_err(|_| AuthError::Internal)?;
            if kv
                .compare_and_swap(&key, Some(&stored), Some(Bytes::from(updated)), None)
                .await?
            {
                return Ok(true);
            }
        }
        Err(AuthError::Unavailable)
    }

    #[allow(clippy::too_many_arguments)]
    fn issue_pair(
        &self,
        user: &UserRecord,
        session_id: &str,
        session_expires: jiff::Timestamp,
        family: &str,
        refresh_jti: &str,
        refresh_expires: jiff::Timestamp,
    ) -> Result<TokenPair, AuthError> {
        let c = &self.inner.config;
        let now = self.inner.clock.now().as_second();
        let ttl = i64::try_from(c.access_token_ttl.as_secs()).unwrap_or(i64::MAX);
        let exp = now.saturating_add(ttl).min(session_expires.as_second());
        let mut access = Claims::new(
            c.issuer.clone(),
            user.subject.clone(),
            c.audience.clone(),
            now,
            exp,
        );
        access.jti = Some(crate::ids::random().ok_or(AuthError::Unavailable)?);
        access.tid = user.tenant.clone();
        access.roles = user.roles.clone();
        access.attrs = user.attributes.clone();
        access.sid = Some(session_id.to_owned());
        let mut refresh = Claims::new(
            c.issuer.clone(),
            user.subject.clone(),
            c.audience.clone(),
            now,
            refresh_expires.as_second().min(session_expires.as_second()),
        );
        // The refresh token names its family and generation: `<family>.<jti>`.
        refresh.jti = Some(format!("{family}.{refresh_jti}"));
        refresh.tid = user.tenant.clone();
        refresh.sid = Some(session_id.to_owned());
        let sign = |claims: &Claims, t: TokenType| {
            self.inner.keys.issue(claims, t).map_err(|e| {
                tracing::error!(error = %e, "token signing failed");
                AuthError::Internal
            })
        };
        Ok(TokenPair {
            access_token: sign(&access, TokenType::Access)?,
            refresh_token: sign(&refresh, TokenType::Refresh)?,
            token_type: "Bearer",
            expires_in: u64::try_from(exp - now).unwrap_or(0),
        })
    }

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
            .revoke(principal.tenant(), principal.subject(), sid)
            .await?;
        self.inner.cache.remove_session(sid);
        self.audit(
            Self::event("auth.logout", AuditDecision::Success, Some(ctx)).principal(principal),
        )
        .await;
        Ok(())
    }

    /// The caller's live sessions.
    pub async fn list_sessions(
        &self,
        principal: &Principal,
    ) -> Result<Vec<SessionView>, AuthError> {
        let current = principal.session_id();
        let sessions = self
            .inner
            .sessions
            .list(principal.tenant(), principal.subject())
            .await?;
        Ok(sessions
            .into_iter()
            .map(|s| SessionView {
                current: Some(s.id.as_str()) == current,
                id: s.id,
                created_at: s.created_at,
                last_seen: s.last_seen,
                expires_at: s.expires_at,
                client_ip: s.client_ip,
            })
            .collect())
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
            .revoke(principal.tenant(), principal.subject(), id)
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
        .await;
        Ok(())
    }

    /// Starts TOTP enrolment: a new secret, valid for 10 minutes until
    /// confirmed with [`mfa_verify`](Self::mfa_verify).
    ///
    /// Refused while a secret is enrolled: replacing it would let a stolen
    /// access token disable the second factor. (Re-enrolment with a current
    /// code is not offered yet.)
    pub async fn mfa_enroll(
        &self,
        principal: &Principal,
        ctx: &RequestContext,
    ) -> Result<Enrolment, AuthError> {
        if let Some(user) = self.user_by_subject(principal.subject()).await?
            && self.totp_secret(&user).await?.is_some()
        {
            self.audit(
                Self::event("auth.mfa.enroll", AuditDecision::Deny, Some(ctx))
                    .principal(principal)
                    .reason("already enrolled"),
            )
            .await;
            return Err(AuthError::BadRequest(
                "a second factor is already enrolled".into(),
            ));
        }
        let secret = TotpSecret::generate().map_err(|_| AuthError::Internal)?;
        let encoded = secret.to_base32();
        let key = key_for(principal.tenant(), NS_MFA_PENDING, principal.subject());
        self.inner
            .state
            .kv
            .set(&key, Bytes::from(encoded.clone()), Some(ENROLMENT_TTL))
            .await?;
        let uri = self.inner.config.totp.provisioning_uri(
            &secret,
            &self.inner.config.totp_issuer,
            principal.subject(),
        );
        self.audit(
            Self::event("auth.mfa.enroll", AuditDecision::Success, Some(ctx)).principal(principal),
        )
        .await;
        Ok(Enrolment {
            secret: encoded,
            otpauth_uri: uri,
        })
    }

    /// Confirms an enrolment with a code from the new secret; returns the
    /// recovery codes (shown once; only their hashes are kept).
    pub async fn mfa_verify(
        &self,
        principal: &Principal,
        code: &str,
        ctx: &RequestContext,
    ) -> Result<Vec<RecoveryCode>, AuthError> {
        let tenant = principal.tenant();
        let pending_key = key_for(tenant, NS_MFA_PENDING, principal.subject());
        let kv = &self.inner.state.kv;
        let Some(pending) = kv.get(&pending_key).await? else {
            return Err(AuthError::BadRequest("no enrolment in progress".into()));
        };
        let text = std::str::from_utf8(&pending).map_err(|_| AuthError::Internal)?;
        let secret = TotpSecret::from_base32(text).map_err(|_| AuthError::Internal)?;
        let accepted = matches!(
            self.inner
                .totp
                .verify(tenant, principal.subject(), &secret, code)
                .await,
            Ok(TotpCheck::Accepted { .. })
        );
        if !accepted {
            self.audit(
                Self::event("auth.mfa.verify", AuditDecision::Failure, Some(ctx))
                    .principal(principal)
                    .reason("invalid one-time code"),
            )
            .await;
            return Err(AuthError::MfaRequired);
        }
        // Only the request that consumes the pending secret activates it.
        if !kv
            .compare_and_swap(&pending_key, Some(&pending), None, None)
            .await?
        {
            return Err(AuthError::BadRequest("enrolment already completed".into()));
        }
        let (codes, plain) = RecoveryCodes::generate_default().map_err(|_| AuthError::Internal)?;
        let hashes = serde_json::to_vec(&codes).map_err(|_| AuthError::Internal)?;
        kv.set(
            &key_for(tenant, NS_RECOVERY, principal.subject()),
            Bytes::from(hashes),
            None,
        )
        .await?;
        kv.set(
            &key_for(tenant, NS_MFA, principal.subject()),
            Bytes::from(secret.to_base32()),
            None,
        )
        .await?;
        self.audit(
            Self::event("auth.mfa.verify", AuditDecision::Success, Some(ctx)).principal(principal),
        )
        .await;
        Ok(plain)
    }

    /// Changes the caller's password (the current one is required and the
    /// new one must satisfy the policy); every session of the user ends.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: String,
        new: String,
        ctx: &RequestContext,
    ) -> Result<(), AuthError> {
        let Some(user) = self.user_by_subject(principal.subject()).await? else {
            return Err(AuthError::InvalidCredentials);
        };
        if !user.active {
            return Err(AuthError::InvalidCredentials);
        }
        let current = Password::new(current);
        if !self
            .inner
            .hasher
            .verify_async(&current, &user.password_hash)
            .await
        {
            self.audit(
                Self::event("auth.password.change", AuditDecision::Failure, Some(ctx))
                    .principal(principal)
                    .reason("current password wrong"),
            )
            .await;
            return Err(AuthError::InvalidCredentials);
        }
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
            .await;
            return Err(AuthError::BadRequest(violations.to_string()));
        }
        let hash = self
            .inner
            .hasher
            .hash_async(&new)
            .await
            .map_err(|_| AuthError::Internal)?;
        let key = key_for(user.tenant.as_ref(), NS_PASSWORD, &user.subject);
        self.inner
            .state
            .kv
            .set(&key, Bytes::from(hash.as_str().to_owned()), None)
            .await?;
        self.end_all_sessions(&user).await?;
        self.audit(
            Self::event("auth.password.change", AuditDecision::Success, Some(ctx))
                .principal(principal)
                .reason("password changed; all sessions revoked"),
        )
        .await;
        Ok(())
    }

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

    async fn end_all_sessions(&self, user: &UserRecord) -> Result<(), AuthError> {
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

/// One of the caller's sessions, as `GET /auth/sessions` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    /// Session id (for `DELETE /auth/sessions/{id}`).
    pub id: String,
    /// Whether it is the session of the calling token.
    pub current: bool,
    /// When it started.
    pub created_at: jiff::Timestamp,
    /// Last activity.
    pub last_seen: jiff::Timestamp,
    /// Absolute expiry.
    pub expires_at: jiff::Timestamp,
    /// Address it was opened from.
    pub client_ip: Option<IpAddr>,
}
