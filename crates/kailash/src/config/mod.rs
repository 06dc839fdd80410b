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

pub mod alerting;
mod cache;
mod env;
pub(crate) mod load;
mod outbound;
mod sections;
#[cfg(test)]
mod tests;
mod validate;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use sections::{
    AnomalySection, AuditConfig, AuditSinkKind, BillingConfig, CorsConfig, DatabaseEndpoint,
    DatabaseSection, ExternalApiConfig, FieldEncryptionConfig, FsyncMode, GatewaySection,
    HealthConfig, MAX_EXTERNAL_APIS, MAX_WORKER_THREADS, RateLimitConfig, SecuritySection,
    ServerConfig, StateConfig, TelemetryConfig, TenancySection, TenantDatabasesConfig,
    TenantRegistryKind, TlsConfig,
};

pub use crate::access_config::{ReloadError, locate as locate_access_error, reload_access};
pub use cache::CacheSection;
pub use kailash_core::spec::{ConfigDuration, RateConfig, parse_duration};
pub use outbound::{MAX_IDLE_TIMEOUT, OutboundSection};

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
    /// IP allow-lists.
    pub security: SecuritySection,
    /// Where shared state lives.
    pub state: StateConfig,
    /// The PostgreSQL server.
    pub database: DatabaseSection,
    /// The audit trail.
    pub audit: AuditConfig,
    /// The background health checks behind `/health/ready`.
    pub health: HealthConfig,
    /// Alert rules and notification channels.
    pub alerting: alerting::AlertingConfig,
    /// OpenTelemetry trace export.
    pub telemetry: TelemetryConfig,
    /// The response cache (`enabled = false` by default).
    pub cache: CacheSection,
    /// The connection pool every outbound call draws from.
    pub outbound: OutboundSection,
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
    /// Authenticated WebSocket (`/ws`) and SSE (`/events`) endpoints and
    /// `POST /api/events` (needs `[auth]`); absent means none.
    pub realtime: Option<kailash_realtime::RealtimeConfig>,
    /// The access-controlled workflow runtime and its execution API
    /// (`/api/sessions`, `/api/executions`; needs `[auth]`, `[access]` and
    /// `[[tenants]]`); absent means none.
    pub runtime: Option<kailash_runtime::runtime::RuntimeConfig>,
    /// Outside services workflow nodes may call (`http_request`, `llm`),
    /// by name; a tenant's `allowed_integrations` names the ones it may use.
    pub integrations: Vec<kailash_runtime::outbound::IntegrationSpec>,
    /// Usage metering per tenant and day, reported as signed
    /// `billing.usage` webhooks (needs `[[tenants]]`); absent means none.
    pub billing: Option<BillingConfig>,
}
