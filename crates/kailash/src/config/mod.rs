//! The gateway's configuration file.
//!
//! A TOML file plus environment overrides builds the whole gateway
//! ([`GatewayConfig`] → [`GatewayBuilder::from_config`](crate::GatewayBuilder::from_config)).
//! Loading is strict: an unknown key, a value of the wrong type or an
//! invalid value stops the start with a [`ConfigError`] that names the file
//! (or environment variable) and the key. Nothing is silently ignored.
//!
//! Environment overrides:
//!
//! - `KAILASH_<SECTION>__<KEY>` sets `<section>.<key>` (nested sections use
//!   more `__`, e.g. `KAILASH_SERVER__TLS__CERT`). The value is read as a
//!   TOML literal (`true`, `42`, `["a", "b"]`); where the file already has a
//!   string there, or the text is not a TOML literal, it is taken as a string.
//! - Shortcuts: `KAILASH_LISTEN` for `server.listen` and `KAILASH_REDIS_URL`
//!   for `state.redis_url`.
//!
//! The full reference is `docs/configuration.md`.
//!
//! ```
//! use kailash::config::GatewayConfig;
//!
//! let config = GatewayConfig::from_toml_str(r#"
//!     [server]
//!     listen = "127.0.0.1:8080"
//!     [rate_limit.per_ip]
//!     rate = 600
//!     per = "1m"
//!     burst = 100
//! "#, "inline.toml")?;
//! assert_eq!(config.server.listen.port(), 8080);
//!
//! let err = GatewayConfig::from_toml_str("[server]\nlisten_port = 1\n", "bad.toml").unwrap_err();
//! assert!(err.to_string().contains("bad.toml"));
//! assert!(err.to_string().contains("listen_port"));
//! # Ok::<(), kailash::config::ConfigError>(())
//! ```

mod env;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use kailash_core::context::IncomingRequestId;
use kailash_core::rate_limit::FailMode;
use serde::{Deserialize, Serialize};

pub use crate::access_config::{ReloadError, locate as locate_access_error, reload_access};
pub use kailash_core::spec::{ConfigDuration, RateConfig, parse_duration};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{origin}: {message}")]
    Syntax {
        /// The file.
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key is unknown or its value is invalid.
    #[error("{origin}: key `{key}`: {message}")]
    Invalid {
        /// The file, or `environment variable NAME` for an override.
        origin: String,
        /// The dotted key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration. Every section is optional; defaults are secure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Listener, connection limits, TLS, proxies, shutdown.
    pub server: ServerConfig,
    /// OpenAPI info, request limits and which built-in layers run.
    pub gateway: GatewaySection,
    /// Cross-origin resource sharing.
    pub cors: CorsConfig,
    /// Request rate limits.
    pub rate_limit: RateLimitConfig,
    /// Where shared state lives.
    pub state: StateConfig,
    /// The audit trail.
    pub audit: AuditConfig,
    /// Authentication; absent means the gateway authenticates nobody.
    pub auth: Option<kailash_auth::spec::AuthSpec>,
    /// Users who can log in (needs `[auth]`).
    pub users: Vec<kailash_auth::users::UserConfig>,
    /// How requests name their tenant (needs `[[tenants]]`).
    pub tenancy: TenancySection,
    /// Tenants; absent means the gateway is single-tenant.
    pub tenants: Vec<kailash_tenancy::model::TenantSpec>,
    /// Roles, ABAC policies and grants (needs `[auth]`); absent means no
    /// access control beyond authentication.
    pub access: Option<kailash_access::spec::AccessSpec>,
}

/// `[tenancy]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenancySection {
    /// Also accept `X-Tenant-ID` (it must agree with the token's tenant). Default false.
    pub header: bool,
    /// Resolve `<tenant>.<subdomain_base>` hosts (must agree with the token).
    pub subdomain_base: Option<String>,
    /// Resolve the tenants' custom `domains`. Default false.
    pub custom_domains: bool,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:8000`.
    pub listen: SocketAddr,
    /// Most connections served at once; further ones are refused at once
    /// with 503 (plain HTTP) or closed (TLS). Default 10 000.
    pub max_connections: usize,
    /// Largest request head (request line plus headers), in bytes; larger
    /// answers 431. At least 8192. Default 16 384.
    pub max_header_bytes: usize,
    /// Most request headers; more answers 431. Default 100.
    pub max_headers: usize,
    /// Time a client has to send a complete request head (slowloris
    /// defence); also bounds idle keep-alive. Default `10s`.
    pub header_read_timeout: ConfigDuration,
    /// How long in-flight requests may run after a shutdown signal. Default `30s`.
    pub shutdown_grace: ConfigDuration,
    /// Networks of your own proxies/load balancers whose `X-Forwarded-For`
    /// is believed. Default none.
    pub trusted_proxies: Vec<IpNet>,
    /// When an incoming `X-Request-Id` is kept: `never`,
    /// `from_trusted_proxies` (default) or `always`.
    pub incoming_request_id: IncomingRequestId,
    /// TLS; absent means plain HTTP.
    pub tls: Option<TlsConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            max_connections: 10_000,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            header_read_timeout: ConfigDuration(std::time::Duration::from_secs(10)),
            shutdown_grace: ConfigDuration(std::time::Duration::from_secs(30)),
            trusted_proxies: Vec::new(),
            incoming_request_id: IncomingRequestId::default(),
            tls: None,
        }
    }
}

/// `[server.tls]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Accept TLS 1.3 only. Default false (TLS 1.2 and 1.3).
    #[serde(default)]
    pub tls13_only: bool,
}

/// `[gateway]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    /// OpenAPI title.
    pub title: String,
    /// OpenAPI version of your API.
    pub version: String,
    /// OpenAPI description.
    pub description: Option<String>,
    /// Longest a request may take before 504. Default `30s`.
    pub request_timeout: ConfigDuration,
    /// Largest request body, in bytes; larger answers 413. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Negotiated response compression (zstd, br, gzip). Default on.
    pub compression: bool,
    /// A tracing span and a log line per request. Default on.
    pub tracing: bool,
    /// RED metrics and `GET /metrics`. Default on.
    pub metrics: bool,
    /// `GET /health/live` and `GET /health/ready`. Default on.
    pub health: bool,
    /// `GET /openapi.json` and `GET /docs`. Default on.
    pub docs: bool,
}

impl Default for GatewaySection {
    fn default() -> Self {
        Self {
            title: "kailash gateway".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: None,
            request_timeout: ConfigDuration(std::time::Duration::from_secs(30)),
            max_body_bytes: 1024 * 1024,
            compression: true,
            tracing: true,
            metrics: true,
            health: true,
            docs: true,
        }
    }
}

/// `[cors]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Allowed origins (`https://app.example.com`), or `["*"]` for any.
    /// Empty (the default) turns CORS off: browsers refuse cross-origin calls.
    pub origins: Vec<String>,
    /// Allow cookies/credentials; only with explicit origins, never with `*`.
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight answer. Default `10m`.
    pub max_age: ConfigDuration,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            origins: Vec::new(),
            allow_credentials: false,
            max_age: ConfigDuration(std::time::Duration::from_secs(600)),
        }
    }
}

/// `[rate_limit]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Per client IP (resolved through `server.trusted_proxies`).
    pub per_ip: Option<RateConfig>,
    /// Per authenticated user.
    pub per_user: Option<RateConfig>,
    /// Per tenant.
    pub per_tenant: Option<RateConfig>,
    /// When state is unreachable: `open` (default) lets requests through,
    /// `closed` answers 503.
    pub fail_mode: FailMode,
}

/// `[state]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Redis URL (`redis://host:6379/0`); absent keeps state in memory.
    /// Needs the `redis` feature.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key. Default `kailash:`.
    pub key_prefix: String,
    /// In-memory backend: most rate-limit keys held at once. Default 100 000.
    pub max_rate_limit_keys: usize,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            key_prefix: "kailash:".to_owned(),
            max_rate_limit_keys: 100_000,
        }
    }
}

/// `[audit]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// JSON-lines file; a relative path is under the data directory.
    /// Default `audit.jsonl`.
    pub file: PathBuf,
    /// How many of the newest events each instance keeps in memory for
    /// queries (`GET /api/audit`); at least 1. Default 10 000.
    pub recent_events: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            file: PathBuf::from("audit.jsonl"),
            recent_events: 10_000,
        }
    }
}

impl GatewayConfig {
    /// Reads `path`, applies the process environment's overrides and validates.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_with_env(&text, &path.display().to_string(), std::env::vars())
    }

    /// Parses TOML text (no environment overrides) and validates.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, ConfigError> {
        Self::from_toml_with_env(text, origin, std::iter::empty())
    }

    /// Parses TOML text, applies overrides from `vars` and validates.
    pub fn from_toml_with_env(
        text: &str,
        origin: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    origin: origin.to_owned(),
                    message: e.to_string().trim_end().to_owned(),
                })?;
        let overrides = env::apply(&mut table, vars)?;
        let config: GatewayConfig = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let key = e.path().to_string();
                let origin = overrides
                    .origin_of(&key)
                    .unwrap_or_else(|| origin.to_owned());
                ConfigError::Invalid {
                    origin,
                    key,
                    message: e.into_inner().to_string(),
                }
            })?;
        config
            .validate()
            .map_err(|(key, message)| ConfigError::Invalid {
                origin: overrides
                    .origin_of(&key)
                    .unwrap_or_else(|| origin.to_owned()),
                key: key.into_owned(),
                message,
            })?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    fn validate(&self) -> Result<(), (Cow<'static, str>, String)> {
        let s = &self.server;
        if s.max_connections == 0 {
            return Err(("server.max_connections".into(), "must be at least 1".into()));
        }
        if s.max_header_bytes < 8192 {
            return Err((
                "server.max_header_bytes".into(),
                "must be at least 8192".into(),
            ));
        }
        if s.max_headers == 0 {
            return Err(("server.max_headers".into(), "must be at least 1".into()));
        }
        if s.header_read_timeout.0.is_zero() {
            return Err((
                "server.header_read_timeout".into(),
                "must be positive".into(),
            ));
        }
        if self.gateway.request_timeout.0.is_zero() {
            return Err(("gateway.request_timeout".into(), "must be positive".into()));
        }
        if self.gateway.max_body_bytes == 0 {
            return Err(("gateway.max_body_bytes".into(), "must be at least 1".into()));
        }
        crate::cors::origins(&self.cors.origins, self.cors.allow_credentials)
            .map_err(|e| ("cors.origins".into(), e.to_string()))?;
        for (key, rate) in [
            ("rate_limit.per_ip", &self.rate_limit.per_ip),
            ("rate_limit.per_user", &self.rate_limit.per_user),
            ("rate_limit.per_tenant", &self.rate_limit.per_tenant),
        ] {
            if let Some(rate) = rate {
                rate.quota().map_err(|e| (key.into(), e.to_string()))?;
            }
        }
        if self.state.key_prefix.is_empty() {
            return Err(("state.key_prefix".into(), "must not be empty".into()));
        }
        if self.state.max_rate_limit_keys == 0 {
            return Err((
                "state.max_rate_limit_keys".into(),
                "must be at least 1".into(),
            ));
        }
        if let Some(auth) = &self.auth {
            auth.validate()
                .map_err(|e| (format!("auth.{}", e.key).into(), e.message))?;
        } else if !self.users.is_empty() {
            return Err(("users".into(), "users need an [auth] section".into()));
        }
        if let Err(e) = kailash_auth::users::StaticUserStore::new(self.users.clone()) {
            return Err(("users".into(), e.to_string()));
        }
        if self.tenants.is_empty() && self.tenancy != TenancySection::default() {
            return Err(("tenancy".into(), "[tenancy] needs [[tenants]]".into()));
        }
        if !self.tenants.is_empty() && self.auth.is_none() {
            return Err((
                "tenants".into(),
                "tenants need an [auth] section (the tenant comes from the token)".into(),
            ));
        }
        for spec in &self.tenants {
            if let Err(e) = kailash_tenancy::model::Tenant::try_from(spec.clone()) {
                return Err(("tenants".into(), e.to_string()));
            }
        }
        // With tenants, every user belongs to one: a token without a tenant
        // would let a request header choose it.
        if !self.tenants.is_empty()
            && let Some(user) = self.users.iter().find(|u| u.tenant.is_none())
        {
            return Err((
                "users".into(),
                format!(
                    "user `{}` has no tenant; with [[tenants]] every user needs one",
                    user.username
                ),
            ));
        }
        if self.audit.recent_events == 0 {
            return Err(("audit.recent_events".into(), "must be at least 1".into()));
        }
        if let Some(access) = &self.access {
            let Some(auth) = &self.auth else {
                return Err((
                    "access".into(),
                    "access control needs an [auth] section (permissions belong to authenticated principals)".into(),
                ));
            };
            let defined = |role: &str| access.roles.iter().any(|r| r.name == role);
            for user in &self.users {
                if let Some(role) = user.roles.iter().find(|r| !defined(r)) {
                    return Err((
                        "users".into(),
                        format!(
                            "user `{}` has role `{role}`, which [[access.roles]] does not define",
                            user.username
                        ),
                    ));
                }
            }
            if let Some(role) = auth.mfa_required_roles.iter().find(|r| !defined(r)) {
                return Err((
                    "auth.mfa_required_roles".into(),
                    format!("role `{role}` is not defined in [[access.roles]]"),
                ));
            }
        }
        if (self.rate_limit.per_user.is_some() || self.rate_limit.per_tenant.is_some())
            && self.auth.is_none()
        {
            return Err((
                "rate_limit.per_user".into(),
                "per-user and per-tenant limits need an [auth] section".into(),
            ));
        }
        if self.state.redis_url.is_some() && !cfg!(feature = "redis") {
            return Err((
                "state.redis_url".into(),
                "this build has no Redis support (enable the `redis` feature of kailash)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, vars: &[(&str, &str)]) -> Result<GatewayConfig, ConfigError> {
        GatewayConfig::from_toml_with_env(
            text,
            "test.toml",
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn empty_file_gives_secure_defaults() {
        let c = load("", &[]).unwrap();
        assert_eq!(c, GatewayConfig::default());
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8000");
        assert!(c.cors.origins.is_empty());
        assert!(c.server.trusted_proxies.is_empty());
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_file() {
        let e = load("[gateway]\ncompresion = true\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("test.toml: key `gateway.compresion`"), "{e}");
        let e = load("[nope]\n", &[]).unwrap_err().to_string();
        assert!(e.contains("`nope`"), "{e}");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let e = load("[server]\nmax_connections = \"many\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `server.max_connections`"), "{e}");
        let e = load("[gateway]\nrequest_timeout = \"30 seconds\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `gateway.request_timeout`"), "{e}");
        let e = load("[server]\nmax_header_bytes = 100\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("key `server.max_header_bytes`: must be at least 8192"),
            "{e}"
        );
        let e = load("[cors]\norigins = [\"*\"]\nallow_credentials = true\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `cors.origins`"), "{e}");
        let e = load("[rate_limit.per_ip]\nrate = 0\nper = \"1s\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `rate_limit.per_ip`"), "{e}");
        let e = load("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `server.trusted_proxies"), "{e}");
    }

    #[test]
    fn syntax_errors_name_the_file_and_line() {
        let e = load("[server\n", &[]).unwrap_err().to_string();
        assert!(e.starts_with("test.toml:"), "{e}");
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn environment_overrides_win_and_are_named_in_errors() {
        let c = load(
            "[server]\nlisten = \"127.0.0.1:8000\"\n",
            &[
                ("KAILASH_LISTEN", "0.0.0.0:9000"),
                ("KAILASH_GATEWAY__COMPRESSION", "false"),
                ("KAILASH_SERVER__TRUSTED_PROXIES", "[\"10.0.0.0/8\"]"),
                ("KAILASH_TEST_REDIS_URL", "ignored: not a config override"),
            ],
        )
        .unwrap();
        assert_eq!(c.server.listen.to_string(), "0.0.0.0:9000");
        assert!(!c.gateway.compression);
        assert_eq!(c.server.trusted_proxies.len(), 1);

        let e = load("", &[("KAILASH_SERVER__MAX_CONECTIONS", "5")])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "environment variable KAILASH_SERVER__MAX_CONECTIONS: key `server.max_conections`"
            ),
            "{e}"
        );
        let e = load("", &[("KAILASH_LISTEN", "not-an-address")])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("environment variable KAILASH_LISTEN: key `server.listen`"),
            "{e}"
        );
    }

    const AUTH: &str = "[auth]\nissuer = \"i\"\naudience = \"a\"\n";
    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$fP2XnF/Jdfk2pTqw48EqiA$CROXYRm9f+vQm4BHYy4wAwAlCl6JWZqyYsOgumK7zCw";

    #[test]
    fn access_roles_must_cover_the_users_and_need_auth() {
        let access = "[[access.roles]]\nname = \"reader\"\npermissions = [\"report:view\"]\n";
        let user = |role: &str| {
            format!(
                "[[users]]\nusername = \"u\"\nroles = [\"{role}\"]\npassword_hash = \"{HASH}\"\n"
            )
        };
        assert!(load(&format!("{AUTH}{}{access}", user("reader")), &[]).is_ok());
        let e = load(&format!("{AUTH}{}{access}", user("writer")), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `users`") && e.contains("`writer`"), "{e}");
        let e = load(access, &[]).unwrap_err().to_string();
        assert!(e.contains("key `access`") && e.contains("[auth]"), "{e}");
        let e = load(
            &format!("{AUTH}[[access.roles]]\nname = \"r\"\npermissions = [\"Report:View\"]\n"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("access.roles[0].permissions"), "{e}");
    }

    #[test]
    fn auth_errors_name_the_key_under_auth() {
        let e = load(&format!("{AUTH}algorithm = \"HS256\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("key `auth.algorithm`: must be RS256, ES256 or EdDSA"),
            "{e}"
        );
        let e = load(&format!("{AUTH}lockout_duration = \"0s\"\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("key `auth.lockout_duration`"), "{e}");
        let e = load(
            AUTH,
            &[(
                "KAILASH_AUTH__LOGIN_RATE_PER_IP",
                "{ rate = 0, per = \"1s\" }",
            )],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(
                "environment variable KAILASH_AUTH__LOGIN_RATE_PER_IP: key `auth.login_rate_per_ip`"
            ),
            "{e}"
        );
    }

    #[test]
    fn with_tenants_every_user_has_one() {
        let tenant = "[[tenants]]\nid = \"acme\"\n";
        let user = format!("[[users]]\nusername = \"u\"\npassword_hash = \"{HASH}\"\n");
        let e = load(&format!("{AUTH}{user}{tenant}"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("user `u` has no tenant"), "{e}");
        let with = user.replace("username = \"u\"", "username = \"u\"\ntenant = \"acme\"");
        assert!(load(&format!("{AUTH}{with}{tenant}"), &[]).is_ok());
    }
}
