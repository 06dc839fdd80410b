use std::path::PathBuf;

/// Why a gateway could not be built or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The configuration file is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A CORS setting is invalid.
    #[error("invalid CORS configuration: {0}")]
    Cors(String),
    /// A connection or request limit is invalid.
    #[error("invalid limit: {0}")]
    Limit(&'static str),
    /// A security setting (transport policy, headers) is invalid.
    #[error("invalid security setting: {0}")]
    Security(String),
    /// A rate limit is invalid.
    #[error("invalid rate limit: {0}")]
    RateLimit(String),
    /// The TLS certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// The audit file could not be opened.
    #[error("cannot open audit file {path}: {source}")]
    Audit {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Authentication could not be set up (keys, users, settings).
    #[error("authentication: {0}")]
    Auth(String),
    /// Tenancy could not be set up (tenants, settings).
    #[error("tenancy: {0}")]
    Tenancy(String),
    /// Billing could not be set up (webhook URL, signing secret).
    #[error("billing: {0}")]
    Billing(String),
    /// The access policy was refused.
    #[error("access policy: {0}")]
    Access(#[from] kailash_access::AccessError),
    /// The PostgreSQL database could not be reached or set up (the
    /// message never holds the URL or a password).
    #[error("database: {0}")]
    Database(String),
    /// The state backend could not be set up.
    #[error("state backend: {0}")]
    State(String),
    /// The OpenAPI documents of the routes do not fit together (two
    /// describe one operation, or two schemas share a name).
    #[error("OpenAPI document: {0}")]
    OpenApi(String),
    /// The health checks' settings are invalid.
    #[error("health checks: {0}")]
    Health(String),
    /// Alerting could not be set up (a rule, a channel, a secret).
    #[error("alerting: {0}")]
    Alerting(String),
    /// The realtime endpoints could not be set up.
    #[error("realtime: {0}")]
    Realtime(String),
    /// The operational routes' access could not be set up (the operations
    /// listener's address, the operations token).
    #[error("operations access: {0}")]
    Ops(String),
    /// The workflow runtime could not be set up.
    #[error("workflow runtime: {0}")]
    Runtime(String),
    /// The listener could not be bound or failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}
