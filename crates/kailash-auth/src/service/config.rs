//! [`AuthConfig`]: the settings every flow of the [`AuthService`](super::AuthService) reads.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::lockout::LockoutConfig;
use crate::password::PasswordPolicy;
use crate::refresh::RefreshConfig;
use crate::session::SessionConfig;
use crate::totp::TotpConfig;

/// Settings of the [`AuthService`](super::AuthService).
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
    /// Argon2 computations (hashes and verifications, the dummy one for
    /// unknown users included) that may run at once (default: the number
    /// of cores; at least 1).
    pub max_concurrent_hashes: usize,
    /// How long a password check waits for a free hashing slot before it
    /// is refused with `503` (default 1 second; zero: no waiting).
    pub hash_queue_timeout: Duration,
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
            max_concurrent_hashes: crate::password::HashLimiter::default_concurrency(),
            hash_queue_timeout: crate::password::DEFAULT_HASH_QUEUE_TIMEOUT,
        }
    }
}
