//! The sections of the configuration file other than the domain specs
//! (`[auth]`, `[[tenants]]`, `[access]`), which their crates own.

use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use kailash_core::context::IncomingRequestId;
use kailash_core::rate_limit::FailMode;
use kailash_core::spec::{ConfigDuration, RateConfig};
use serde::{Deserialize, Serialize};

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
    /// Let principals that belong to no tenant act in the tenant a header
    /// or host names. Dangerous: such a token acts in every tenant. Default
    /// false (they are refused with 403).
    pub allow_tenantless_principals: bool,
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
