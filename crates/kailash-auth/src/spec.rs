//! The configuration form of authentication: the gateway's `[auth]`
//! section.
//!
//! An [`AuthSpec`] is what an operator writes; [`AuthSpec::auth_config`]
//! turns it into the [`AuthConfig`] the [`AuthService`](crate::service::AuthService)
//! runs with, once [`AuthSpec::validate`] has found the values sensible.
//! Unknown fields are refused, so a misspelt key is an error
//! rather than a setting that silently does nothing. Loading the signing
//! keys it names is left to the application (the gateway reads them from
//! its data directory).
//!
//! ```
//! use std::time::Duration;
//! use kailash_auth::spec::AuthSpec;
//!
//! let spec: AuthSpec = serde_json::from_str(r#"{
//!     "issuer": "https://id.example",
//!     "audience": "api",
//!     "access_token_ttl": "15m",
//!     "mfa_required_roles": ["admin"]
//! }"#)?;
//! assert_eq!(spec.algorithm, "RS256");
//! let config = spec.auth_config()?;
//! assert_eq!(config.access_token_ttl, Duration::from_secs(900));
//! assert_eq!(config.session.absolute_lifetime, Duration::from_secs(30 * 86_400));
//! assert_eq!(config.totp_issuer, "https://id.example");
//!
//! assert!(serde_json::from_str::<AuthSpec>(r#"{ "issuer": "i", "audience": "a", "algorithim": "ES256" }"#).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::PathBuf;
use std::time::Duration;

use kailash_core::spec::{ConfigDuration, RateConfig};
use kailash_core::state::{StateError, WhenFull};
use serde::{Deserialize, Serialize};

pub use crate::ldap_spec::{InvalidLdapSpec, LdapSpec};
pub use crate::oidc_spec::{
    InvalidOidcSpec, MAX_OIDC_PROVIDERS, OidcPreset, OidcProviderSpec, validate_providers,
};
use crate::password::PasswordPolicy;
pub use crate::saml_spec::{InvalidSamlSpec, SamlSpec, claim_uri};
use crate::service::AuthConfig;

/// `[auth]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    /// `iss` of issued tokens (required on every token).
    pub issuer: String,
    /// `aud` of issued tokens (required on every token).
    pub audience: String,
    /// Signing algorithm: `RS256` (default), `ES256` or `EdDSA`.
    #[serde(default = "default_algorithm")]
    pub algorithm: String,
    /// PKCS#8 PEM private key; a relative path is under the data directory.
    /// Absent: one is generated at first start and kept in
    /// `<data-dir>/keys/` (a warning says so).
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
    /// Earlier signing-key files (PKCS#8 PEM), kept for verification only
    /// after a rotation, until the tokens they signed have expired (the
    /// refresh-token lifetime). Relative paths are under the data directory.
    #[serde(default)]
    pub previous_signing_keys: Vec<PathBuf>,
    /// Access token lifetime (default `8h`).
    #[serde(default = "default_access_ttl")]
    pub access_token_ttl: ConfigDuration,
    /// Refresh token (and session) absolute lifetime (default `30d`).
    #[serde(default = "default_refresh_ttl")]
    pub refresh_token_ttl: ConfigDuration,
    /// A rotated refresh token presented again within this time counts as a
    /// concurrent retry (refused, nothing revoked); later it is reuse (default `2s`).
    #[serde(default = "default_reuse_grace")]
    pub refresh_reuse_grace: ConfigDuration,
    /// Session idle timeout (default `60m`).
    #[serde(default = "default_idle")]
    pub session_idle_timeout: ConfigDuration,
    /// Live sessions per user (default 3).
    #[serde(default = "default_sessions")]
    pub concurrent_sessions: usize,
    /// At the limit: `evict_oldest` (default) or `reject` the new login.
    #[serde(default)]
    pub when_session_limit: WhenFull,
    /// Failed logins before the account locks (default 5).
    #[serde(default = "default_attempts")]
    pub max_login_attempts: u32,
    /// How long a lock lasts (default `15m`).
    #[serde(default = "default_lockout")]
    pub lockout_duration: ConfigDuration,
    /// Login attempts per client IP, against password spraying (default 20/min).
    #[serde(default = "default_login_rate")]
    pub login_rate_per_ip: RateConfig,
    /// Roles that must present a TOTP code at login.
    #[serde(default)]
    pub mfa_required_roles: Vec<String>,
    /// Issuer name shown in authenticator apps (default: `issuer`).
    #[serde(default)]
    pub totp_issuer: Option<String>,
    /// Complexity rules for setting and changing passwords.
    #[serde(default)]
    pub password_policy: PasswordPolicy,
    /// Also accept the access token from this cookie (a request carrying
    /// it and an `Authorization` header is refused).
    #[serde(default)]
    pub cookie: Option<String>,
    /// Argon2 computations (logins, password changes, the dummy check for
    /// unknown users) that may run at once (default: the number of cores).
    #[serde(default = "default_max_hashes")]
    pub max_concurrent_hashes: usize,
    /// How long a password check waits for a free hashing slot before it
    /// is refused with `503` and `Retry-After` (default `1s`; `0s`: no wait).
    #[serde(default = "default_hash_queue_timeout")]
    pub hash_queue_timeout: ConfigDuration,
    /// `[auth.ldap]`: users also sign in against an LDAP directory or
    /// Active Directory (after the configured `[[users]]`; needs the `ldap`
    /// feature to run).
    #[serde(default)]
    pub ldap: Option<LdapSpec>,
    /// `[[auth.oidc]]`: users also sign in with OpenID Connect providers
    /// (`/auth/oidc/{name}/login`).
    #[serde(default)]
    pub oidc: Vec<OidcProviderSpec>,
    /// `[auth.saml]`: users also sign in with a SAML 2.0 identity provider
    /// (`/auth/saml/login`; needs the `saml` feature to run).
    #[serde(default)]
    pub saml: Option<SamlSpec>,
}

fn default_algorithm() -> String {
    "RS256".into()
}
fn default_access_ttl() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(8 * 3600))
}
fn default_refresh_ttl() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(30 * 86_400))
}
fn default_reuse_grace() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(2))
}
fn default_idle() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(3600))
}
fn default_sessions() -> usize {
    3
}
fn default_attempts() -> u32 {
    5
}
fn default_lockout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(900))
}
fn default_max_hashes() -> usize {
    crate::password::HashLimiter::default_concurrency()
}
fn default_hash_queue_timeout() -> ConfigDuration {
    ConfigDuration(crate::password::DEFAULT_HASH_QUEUE_TIMEOUT)
}
/// The most hashing slots accepted (each may hold 19 MiB or more).
const MAX_HASH_SLOTS: usize = 1024;
/// The longest hashing queue wait accepted.
const MAX_HASH_QUEUE_TIMEOUT: Duration = Duration::from_secs(30);
fn default_login_rate() -> RateConfig {
    RateConfig {
        rate: 20,
        per: ConfigDuration(Duration::from_secs(60)),
        burst: None,
    }
}

/// Why an [`AuthSpec`] makes no sense although it parsed: the key, as
/// written in the section, and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct InvalidAuthSpec {
    /// The key in the section (`algorithm`, `login_rate_per_ip`, …).
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

impl InvalidAuthSpec {
    fn new(key: &'static str, message: impl Into<String>) -> Self {
        Self {
            key,
            message: message.into(),
        }
    }
}

impl AuthSpec {
    /// Checks values that parse but make no sense: an unknown algorithm, an
    /// empty issuer or audience, zero limits or durations, an invalid rate.
    pub fn validate(&self) -> Result<(), InvalidAuthSpec> {
        if !matches!(self.algorithm.as_str(), "RS256" | "ES256" | "EdDSA") {
            return Err(InvalidAuthSpec::new(
                "algorithm",
                "must be RS256, ES256 or EdDSA",
            ));
        }
        if self.issuer.is_empty() || self.audience.is_empty() {
            return Err(InvalidAuthSpec::new(
                "issuer",
                "issuer and audience must not be empty",
            ));
        }
        if self.concurrent_sessions == 0 {
            return Err(InvalidAuthSpec::new(
                "concurrent_sessions",
                "must be at least 1",
            ));
        }
        if self.max_login_attempts == 0 {
            return Err(InvalidAuthSpec::new(
                "max_login_attempts",
                "must be at least 1",
            ));
        }
        for (key, d) in [
            ("access_token_ttl", self.access_token_ttl),
            ("refresh_token_ttl", self.refresh_token_ttl),
            ("session_idle_timeout", self.session_idle_timeout),
            ("lockout_duration", self.lockout_duration),
        ] {
            if d.0.is_zero() {
                return Err(InvalidAuthSpec::new(key, "must be positive"));
            }
        }
        self.login_rate_per_ip
            .quota()
            .map_err(|e| InvalidAuthSpec::new("login_rate_per_ip", e.to_string()))?;
        if !(1..=MAX_HASH_SLOTS).contains(&self.max_concurrent_hashes) {
            return Err(InvalidAuthSpec::new(
                "max_concurrent_hashes",
                format!("must be between 1 and {MAX_HASH_SLOTS}"),
            ));
        }
        if self.hash_queue_timeout.0 > MAX_HASH_QUEUE_TIMEOUT {
            return Err(InvalidAuthSpec::new(
                "hash_queue_timeout",
                "must be at most 30s (a login should not wait longer for a hashing slot)",
            ));
        }
        if let Some(ldap) = &self.ldap {
            ldap.validate()
                .map_err(|e| InvalidAuthSpec::new(e.key, e.message))?;
        }
        validate_providers(&self.oidc).map_err(|e| InvalidAuthSpec::new(e.key, e.message))?;
        if let Some(saml) = &self.saml {
            saml.validate()
                .map_err(|e| InvalidAuthSpec::new(e.key, e.message))?;
        }
        Ok(())
    }

    /// The service settings this section describes; settings it does not
    /// name keep [`AuthConfig::default`]'s values.
    ///
    /// The session's absolute lifetime is the refresh-token lifetime: a
    /// session cannot outlive the last token that could renew it.
    ///
    /// Fails only when `login_rate_per_ip` is not a valid rate, which
    /// [`validate`](Self::validate) reports too.
    pub fn auth_config(&self) -> Result<AuthConfig, StateError> {
        let mut config = AuthConfig {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            access_token_ttl: self.access_token_ttl.0,
            password_policy: self.password_policy.clone(),
            mfa_required_roles: self.mfa_required_roles.iter().cloned().collect(),
            totp_issuer: self
                .totp_issuer
                .clone()
                .unwrap_or_else(|| self.issuer.clone()),
            max_concurrent_hashes: self.max_concurrent_hashes,
            hash_queue_timeout: self.hash_queue_timeout.0,
            ..AuthConfig::default()
        };
        config.refresh.lifetime = self.refresh_token_ttl.0;
        config.refresh.reuse_grace = self.refresh_reuse_grace.0;
        config.session.idle_timeout = self.session_idle_timeout.0;
        config.session.absolute_lifetime = self.refresh_token_ttl.0;
        config.session.concurrent_limit = self.concurrent_sessions;
        config.session.when_full = self.when_session_limit;
        config.lockout.max_attempts = self.max_login_attempts;
        config.lockout.lockout_duration = self.lockout_duration.0;
        config.lockout.per_ip = Some(self.login_rate_per_ip.quota()?);
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use kailash_core::state::RateQuota;

    use super::*;

    fn spec(json: serde_json::Value) -> AuthSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = spec(serde_json::json!({ "issuer": "i", "audience": "a" }))
            .auth_config()
            .unwrap();
        assert_eq!(c.access_token_ttl, Duration::from_secs(8 * 3600));
        assert_eq!(c.refresh.lifetime, Duration::from_secs(30 * 86_400));
        assert_eq!(c.refresh.reuse_grace, Duration::from_secs(2));
        assert_eq!(c.session.idle_timeout, Duration::from_secs(3600));
        assert_eq!(c.session.absolute_lifetime, c.refresh.lifetime);
        assert_eq!(c.session.concurrent_limit, 3);
        assert_eq!(c.session.when_full, WhenFull::default());
        assert_eq!(c.lockout.max_attempts, 5);
        assert_eq!(c.lockout.lockout_duration, Duration::from_secs(900));
        assert_eq!(c.lockout.per_ip, Some(RateQuota::per_minute(20).unwrap()));
        assert_eq!(c.totp_issuer, "i");
        assert!(c.mfa_required_roles.is_empty());
        assert_eq!(
            c.max_concurrent_hashes,
            crate::password::HashLimiter::default_concurrency()
        );
        assert_eq!(c.hash_queue_timeout, Duration::from_secs(1));
    }

    #[test]
    fn every_setting_reaches_the_service() {
        let s = spec(serde_json::json!({
            "issuer": "i", "audience": "a",
            "access_token_ttl": "5m", "refresh_token_ttl": "1d",
            "refresh_reuse_grace": "5s", "session_idle_timeout": "10m",
            "concurrent_sessions": 7, "when_session_limit": "reject",
            "max_login_attempts": 9, "lockout_duration": "1h",
            "login_rate_per_ip": { "rate": 3, "per": "1s", "burst": 6 },
            "mfa_required_roles": ["admin"], "totp_issuer": "Example",
            "cookie": "at",
            "max_concurrent_hashes": 3, "hash_queue_timeout": "250ms",
        }));
        let c = s.auth_config().unwrap();
        assert_eq!((c.issuer.as_str(), c.audience.as_str()), ("i", "a"));
        assert_eq!(c.access_token_ttl, Duration::from_secs(300));
        assert_eq!(c.refresh.lifetime, Duration::from_secs(86_400));
        assert_eq!(c.session.absolute_lifetime, Duration::from_secs(86_400));
        assert_eq!(c.refresh.reuse_grace, Duration::from_secs(5));
        assert_eq!(c.session.idle_timeout, Duration::from_secs(600));
        assert_eq!(c.session.concurrent_limit, 7);
        assert_eq!(c.session.when_full, WhenFull::Reject);
        assert_eq!(c.lockout.max_attempts, 9);
        assert_eq!(c.lockout.lockout_duration, Duration::from_secs(3600));
        assert_eq!(
            c.lockout.per_ip,
            Some(RateQuota::new(3, Duration::from_secs(1), 6).unwrap())
        );
        assert!(c.mfa_required_roles.contains("admin"));
        assert_eq!(c.totp_issuer, "Example");
        assert_eq!(c.max_concurrent_hashes, 3);
        assert_eq!(c.hash_queue_timeout, Duration::from_millis(250));
    }

    #[test]
    fn validate_names_the_key() {
        let base = serde_json::json!({ "issuer": "i", "audience": "a" });
        assert_eq!(spec(base.clone()).validate(), Ok(()));
        for (key, value, named) in [
            ("algorithm", serde_json::json!("HS256"), "algorithm"),
            ("audience", serde_json::json!(""), "issuer"),
            (
                "concurrent_sessions",
                serde_json::json!(0),
                "concurrent_sessions",
            ),
            (
                "max_login_attempts",
                serde_json::json!(0),
                "max_login_attempts",
            ),
            (
                "access_token_ttl",
                serde_json::json!("0s"),
                "access_token_ttl",
            ),
            (
                "lockout_duration",
                serde_json::json!("0m"),
                "lockout_duration",
            ),
            (
                "login_rate_per_ip",
                serde_json::json!({ "rate": 0, "per": "1s" }),
                "login_rate_per_ip",
            ),
            (
                "max_concurrent_hashes",
                serde_json::json!(0),
                "max_concurrent_hashes",
            ),
            (
                "max_concurrent_hashes",
                serde_json::json!(5000),
                "max_concurrent_hashes",
            ),
            (
                "hash_queue_timeout",
                serde_json::json!("31s"),
                "hash_queue_timeout",
            ),
        ] {
            let mut json = base.clone();
            json[key] = value;
            assert_eq!(spec(json).validate().unwrap_err().key, named, "{key}");
        }
    }

    #[test]
    fn an_invalid_login_rate_is_an_error() {
        let s = spec(serde_json::json!({
            "issuer": "i", "audience": "a",
            "login_rate_per_ip": { "rate": 0, "per": "1s" },
        }));
        assert!(s.auth_config().is_err());
    }
}
