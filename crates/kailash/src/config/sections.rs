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
    /// Where tenants live: `static` (default: `[[tenants]]`, fixed at
    /// start) or `postgres` (the `kailash_tenants` table of
    /// `[database.primary]`, seeded from `[[tenants]]`, changed at run time
    /// through `/api/admin/tenants`).
    pub registry: TenantRegistryKind,
}

/// `tenancy.registry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantRegistryKind {
    /// `[[tenants]]` of the file, fixed at start (activation switchable).
    #[default]
    Static,
    /// The PostgreSQL registry (`kailash_postgres::tenants`).
    Postgres,
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
    /// Most connections one peer address holds at once (IPv6 peers by
    /// their /64); further ones are refused at once with 429 (plain HTTP)
    /// or closed (TLS). Peers in `trusted_proxies` are exempt. Default 256.
    pub max_connections_per_ip: usize,
    /// Largest request head (request line plus headers), in bytes; larger
    /// answers 431. At least 8192. Default 16 384.
    pub max_header_bytes: usize,
    /// Most request headers; more answers 431. Default 100.
    pub max_headers: usize,
    /// Time a client has to send its first request head from the moment
    /// it connects (TLS handshake included), and every later head from its
    /// first byte (slowloris and silent-socket defence). Default `10s`.
    pub header_read_timeout: ConfigDuration,
    /// How long a connection with no request in flight (HTTP/1 keep-alive
    /// between requests, HTTP/2 without open streams) stays open. Default `30s`.
    pub idle_timeout: ConfigDuration,
    /// HTTP/2: a PING is sent after this long without frames from the
    /// client. Default `20s`.
    pub http2_keepalive_interval: ConfigDuration,
    /// HTTP/2: a PING not acknowledged within this closes the connection.
    /// Default `10s`.
    pub http2_keepalive_timeout: ConfigDuration,
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
    /// A second, plain-HTTP listener serving only `/health/live`,
    /// `/health/ready` (the detailed report) and `/metrics`, for the
    /// platform's probes and scrapers (bind it to a private interface).
    /// When set, the main listener no longer serves `/metrics` and its
    /// `/health/ready` answers only `{"status": …}`. Default none.
    pub ops_listen: Option<SocketAddr>,
    /// Tokio worker threads of the runtime [`ServerConfig::runtime`]
    /// builds (the seed's `worker_processes`), 1 to
    /// [`MAX_WORKER_THREADS`]. Default: the CPUs the process may use
    /// (`std::thread::available_parallelism`, which honours a cgroup CPU
    /// limit such as a Kubernetes `limits.cpu`).
    pub worker_threads: Option<usize>,
}

/// The most `server.worker_threads` accepted (`[server] worker_threads`).
pub const MAX_WORKER_THREADS: usize = 1024;

impl ServerConfig {
    /// A multi-threaded Tokio runtime with [`worker_threads`](Self::worker_threads)
    /// workers (all drivers enabled), for binaries that build their runtime
    /// from the configuration instead of `#[tokio::main]`:
    ///
    /// ```
    /// use kailash::config::GatewayConfig;
    ///
    /// let config = GatewayConfig::from_toml_str("[server]\nworker_threads = 2\n", "gateway.toml").unwrap();
    /// let runtime = config.server.runtime().unwrap();
    /// assert_eq!(runtime.metrics().num_workers(), 2);
    /// runtime.block_on(async { /* GatewayBuilder::from_config(…)?.build()?.run().await */ });
    /// ```
    ///
    /// # Errors
    ///
    /// The operating system refused a thread or the I/O driver.
    pub fn runtime(&self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.enable_all().thread_name("kailash-worker");
        if let Some(n) = self.worker_threads {
            builder.worker_threads(n.clamp(1, MAX_WORKER_THREADS));
        }
        builder.build()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            max_connections: 10_000,
            max_connections_per_ip: 256,
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            header_read_timeout: ConfigDuration(std::time::Duration::from_secs(10)),
            idle_timeout: ConfigDuration(std::time::Duration::from_secs(30)),
            http2_keepalive_interval: ConfigDuration(std::time::Duration::from_secs(20)),
            http2_keepalive_timeout: ConfigDuration(std::time::Duration::from_secs(10)),
            shutdown_grace: ConfigDuration(std::time::Duration::from_secs(30)),
            trusted_proxies: Vec::new(),
            incoming_request_id: IncomingRequestId::default(),
            tls: None,
            ops_listen: None,
            worker_threads: None,
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
    /// `[gateway.json_limits]`: the shape every JSON body must keep —
    /// nesting depth, string, array, object and number sizes — checked
    /// before it is parsed (422 naming the value's JSON pointer).
    pub json_limits: kailash_core::json_limits::JsonLimits,
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
    /// The environment variable holding the operations token: when set (or
    /// `ops_token_file`), `/metrics` and the detailed `/health/ready` need
    /// `Authorization: Bearer <token>` (at least 16 bytes; read at start).
    pub ops_token_env: Option<String>,
    /// The file holding the operations token (exclusive with `ops_token_env`).
    pub ops_token_file: Option<PathBuf>,
}

impl Default for GatewaySection {
    fn default() -> Self {
        Self {
            title: "kailash gateway".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            description: None,
            request_timeout: ConfigDuration(std::time::Duration::from_secs(30)),
            max_body_bytes: 1024 * 1024,
            json_limits: kailash_core::json_limits::JsonLimits::default(),
            compression: true,
            tracing: true,
            metrics: true,
            health: true,
            docs: true,
            ops_token_env: None,
            ops_token_file: None,
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

/// `[security]`: IP allow-lists on the client address (after the
/// trusted-proxy resolution of `[server] trusted_proxies`), the transport
/// policy (HTTPS required, HSTS) and the security headers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySection {
    /// Every request on the main listener must come from one of these
    /// networks (CIDRs or addresses, e.g. the seed's `["10.0.0.0/8",
    /// "172.16.0.0/12"]`). Absent: no global list.
    pub ip_allow: Option<kailash_core::ip_allow::IpAllowList>,
    /// Path prefix → networks: requests to the prefix and below it must
    /// also come from these (`"/api/admin" = ["10.0.0.0/8"]`).
    pub ip_allow_paths: std::collections::BTreeMap<String, kailash_core::ip_allow::IpAllowList>,
    /// Requests that did not arrive over HTTPS (neither on this server's
    /// TLS listener nor from a trusted proxy saying `X-Forwarded-Proto:
    /// https`) are redirected (`GET`/`HEAD`, 308) or refused (400
    /// `https-required`). Default off.
    pub require_ssl: bool,
    /// Path prefixes still served over plain HTTP when `require_ssl` is on
    /// (default: the health probes, which a kubelet sends without TLS).
    pub require_ssl_exempt: Vec<String>,
    /// The port redirects to HTTPS name (default 443, left out of the URL).
    pub https_port: u16,
    /// `Strict-Transport-Security` on every secure response (default on;
    /// never sent over plain HTTP).
    pub hsts: bool,
    /// HSTS `max-age` (default `365d`).
    pub hsts_max_age: ConfigDuration,
    /// HSTS `includeSubDomains` (default off: it binds every subdomain).
    pub hsts_include_subdomains: bool,
    /// HSTS `preload` (needs `hsts_include_subdomains` and at least `365d`).
    pub hsts_preload: bool,
    /// The security headers on every response that does not set its own:
    /// `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY` and the
    /// two below (default on).
    pub headers: bool,
    /// The `Content-Security-Policy` sent with `headers` (default
    /// `frame-ancestors 'none'`; empty: none). The API explorer at `/docs`
    /// always sends its own strict policy.
    pub content_security_policy: String,
    /// The `Referrer-Policy` sent with `headers` (default `no-referrer`;
    /// empty: none).
    pub referrer_policy: String,
    /// Response DLP rules (`[[security.dlp]]`): the first whose path
    /// applies inspects the response.
    pub dlp: Vec<DlpRuleConfig>,
    /// The clearance scale DLP rules name, lowest first (default the
    /// seed's `public`, `internal`, `confidential`, `secret`); callers'
    /// `clearance` attribute is read on it.
    pub clearance_levels: Vec<String>,
    /// The largest response body DLP inspects (default 1 MiB); larger
    /// responses on a DLP route are withheld.
    pub dlp_max_body_bytes: usize,
    /// Personal data and secrets in log lines are redacted before they are
    /// written (by the reference binary's log writer, on its own thread).
    /// Default off: it costs that thread about 2.4 µs per 200-byte line
    /// (docs/performance.md); turn it on where logs leave the trust boundary.
    pub redact_logs: bool,
    /// `[security.field_encryption]`: personal fields and secrets sealed
    /// at rest. Absent: stored as written.
    pub field_encryption: Option<FieldEncryptionConfig>,
    /// Anomaly detection (`[security.anomaly]`): baselines of login
    /// failures, access denials and request rates, new networks and
    /// countries, impossible travel. Default off.
    pub anomaly: AnomalySection,
}

/// `[security.anomaly]`: see `kailash_monitoring::anomaly` and
/// docs/security.md. The defaults are the library's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalySection {
    /// Detect anomalies (default false).
    pub enabled: bool,
    /// The counting window of the baselines (default `1m`, 1 s to 24 h).
    pub window: ConfigDuration,
    /// The EWMA's weight of the newest window, in (0, 1] (default 0.3).
    pub alpha: f64,
    /// A burst is a window above `mean + threshold_sigma · stddev` of the
    /// baseline (default 3) …
    pub threshold_sigma: f64,
    /// … and above this many login failures or access denials (default 10).
    pub min_count: u64,
    /// … or this many requests (default 600).
    pub min_requests: u64,
    /// Count requests to the application routes per client IP and per
    /// user (default true).
    pub requests: bool,
    /// Logins further apart than this speed allows are impossible travel
    /// (default 1000 km/h).
    pub max_travel_kmh: f64,
    /// Without coordinates: logins from two countries within this time
    /// are impossible travel (default `1h`).
    pub min_country_change: ConfigDuration,
    /// How long a user's networks, countries and last login are
    /// remembered (default `90d`, at least `1h`).
    pub known_network_ttl: ConfigDuration,
    /// The most networks and countries remembered per user (default 64).
    pub max_known_networks: usize,
    /// Observations queued for judging at most; more are dropped and
    /// counted (default 4096).
    pub queue: usize,
    /// A file of `cidr country [latitude longitude]` lines resolving
    /// login addresses (relative to the data directory). Without it, no
    /// country and no travel signals.
    pub geoip_file: Option<PathBuf>,
}

impl Default for AnomalySection {
    fn default() -> Self {
        let d = kailash_monitoring::anomaly::AnomalyConfig::default();
        Self {
            enabled: false,
            window: ConfigDuration(d.window),
            alpha: d.alpha,
            threshold_sigma: d.threshold_sigma,
            min_count: d.min_count,
            min_requests: d.min_requests,
            requests: true,
            max_travel_kmh: d.max_travel_kmh,
            min_country_change: ConfigDuration(d.min_country_change),
            known_network_ttl: ConfigDuration(d.known_network_ttl),
            max_known_networks: d.max_known_networks,
            queue: d.queue,
            geoip_file: None,
        }
    }
}

/// `[security.field_encryption]`: what the gateway stores of its users —
/// sessions' client addresses and TOTP secrets — sealed with AES-256-GCM
/// under a shared, rotating data key wrapped by a key-encryption key
/// (`kailash_core::field_encryption`). The audit trail's personal fields
/// are sealed per person by `[audit] personal_data_keyring_*` instead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FieldEncryptionConfig {
    /// The environment variable holding the KEK keyring text (one
    /// `id base64-32-byte-key` line per key, the last active; append a
    /// line and restart to rotate the KEK).
    pub keyring_env: Option<String>,
    /// The keyring from a file (relative paths under the data directory);
    /// set one of the two.
    pub keyring_file: Option<PathBuf>,
    /// Days a data key stays the active one (the seed's
    /// `key_rotation_days`, default 90; 0: never by age).
    pub key_rotation_days: u32,
    /// How often the maintenance round runs (rotation when due, KEK
    /// re-wrap, re-encryption of what older keys sealed). Default `1h`.
    pub maintenance_interval: ConfigDuration,
    /// How long after a rotation a complete re-encryption pass must begin
    /// before the old data key is deleted (every instance has reloaded the
    /// new key by then). Default `2h`; at least twice the maintenance
    /// interval and 15 minutes (a pending TOTP enrolment lives 10).
    pub retire_after: ConfigDuration,
}

impl Default for FieldEncryptionConfig {
    fn default() -> Self {
        Self {
            keyring_env: None,
            keyring_file: None,
            key_rotation_days: 90,
            maintenance_interval: ConfigDuration(std::time::Duration::from_secs(3_600)),
            retire_after: ConfigDuration(std::time::Duration::from_secs(7_200)),
        }
    }
}

impl FieldEncryptionConfig {
    /// Checks the settings; `(key, message)` naming the wrong one.
    pub(crate) fn validate(&self) -> Result<(), (&'static str, String)> {
        let key = "security.field_encryption.keyring_env";
        match crate::config::alerting::AlertChannelConfig::secret(
            &self.keyring_env,
            &self.keyring_file,
            "keyring",
        ) {
            Err(m) => return Err((key, m)),
            Ok(None) => {
                return Err((key, "set `keyring_env` or `keyring_file`".into()));
            }
            Ok(Some(_)) => {}
        }
        if self.key_rotation_days > 3_650 {
            return Err((
                "security.field_encryption.key_rotation_days",
                "at most 3650 (0: never by age)".into(),
            ));
        }
        let every = self.maintenance_interval.0;
        if every < std::time::Duration::from_secs(1)
            || every > std::time::Duration::from_secs(86_400)
        {
            return Err((
                "security.field_encryption.maintenance_interval",
                "between 1s and 1d".into(),
            ));
        }
        if self.retire_after.0 < (2 * every).max(kailash_core::field_encryption::MIN_RETIRE_AFTER) {
            return Err((
                "security.field_encryption.retire_after",
                "at least twice maintenance_interval and 15m".into(),
            ));
        }
        Ok(())
    }

    /// The options the keys are loaded with.
    pub(crate) fn options(&self) -> kailash_core::field_encryption::FieldKeysOptions {
        let days = u64::from(self.key_rotation_days);
        kailash_core::field_encryption::FieldKeysOptions::default()
            .name("gateway")
            .rotation((days > 0).then(|| std::time::Duration::from_secs(days * 86_400)))
            .retire_after(self.retire_after.0)
    }
}

impl AnomalySection {
    /// The detector's settings, or the key that is wrong and why.
    pub fn detector_config(
        &self,
    ) -> Result<kailash_monitoring::anomaly::AnomalyConfig, (String, String)> {
        let config = kailash_monitoring::anomaly::AnomalyConfig {
            window: self.window.0,
            alpha: self.alpha,
            threshold_sigma: self.threshold_sigma,
            min_count: self.min_count,
            min_requests: self.min_requests,
            max_travel_kmh: self.max_travel_kmh,
            min_country_change: self.min_country_change.0,
            known_network_ttl: self.known_network_ttl.0,
            max_known_networks: self.max_known_networks,
            queue: self.queue,
        };
        config
            .validate()
            .map_err(|(field, message)| (format!("security.anomaly.{field}"), message))?;
        Ok(config)
    }
}

/// `[[security.dlp]]`: one route group's response inspection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DlpRuleConfig {
    /// The path prefix (whole segments).
    pub path: String,
    /// `redact` the findings or `block` the response (403 `sensitive-data`).
    pub action: kailash_core::dlp::DlpAction,
    /// What to look for (default every kind): `email`, `phone`,
    /// `payment_card`, `us_ssn`, `iban`, `ip_address`, `secret`.
    #[serde(default)]
    pub kinds: Option<Vec<kailash_core::pii::PiiKind>>,
    /// Callers with at least this clearance see responses untouched
    /// (default: nobody).
    #[serde(default)]
    pub clearance: Option<String>,
}

impl Default for SecuritySection {
    fn default() -> Self {
        Self {
            ip_allow: None,
            ip_allow_paths: std::collections::BTreeMap::new(),
            require_ssl: false,
            require_ssl_exempt: vec!["/health/live".to_owned(), "/health/ready".to_owned()],
            https_port: 443,
            hsts: true,
            hsts_max_age: ConfigDuration(kailash_core::transport::PRELOAD_MIN_AGE),
            hsts_include_subdomains: false,
            hsts_preload: false,
            headers: true,
            content_security_policy: kailash_core::transport::DEFAULT_CSP.to_owned(),
            referrer_policy: "no-referrer".to_owned(),
            dlp: Vec::new(),
            clearance_levels: kailash_core::dlp::DEFAULT_LEVELS
                .iter()
                .map(|l| (*l).to_owned())
                .collect(),
            dlp_max_body_bytes: 1024 * 1024,
            redact_logs: false,
            field_encryption: None,
            anomaly: AnomalySection::default(),
        }
    }
}

impl SecuritySection {
    /// The transport policy these settings ask for (`None`: neither HTTPS
    /// required nor HSTS), or the key that is wrong and why.
    pub fn https_policy(
        &self,
    ) -> Result<Option<kailash_core::transport::HttpsPolicyLayer>, (&'static str, String)> {
        use kailash_core::transport::{Hsts, HttpsPolicyLayer};
        let hsts = self.hsts.then(|| {
            let mut hsts = Hsts::new(self.hsts_max_age.0);
            if self.hsts_include_subdomains {
                hsts = hsts.include_subdomains();
            }
            if self.hsts_preload {
                hsts = hsts.preload();
            }
            hsts
        });
        let hsts_key = if self.hsts_preload {
            "security.hsts_preload"
        } else {
            "security.hsts_max_age"
        };
        if !self.require_ssl {
            return hsts
                .map(HttpsPolicyLayer::hsts_only)
                .transpose()
                .map_err(|e| (hsts_key, e.to_string()));
        }
        if self.https_port == 0 {
            return Err(("security.https_port", "must be a port (1 to 65535)".into()));
        }
        let mut layer = HttpsPolicyLayer::new().https_port(self.https_port);
        for path in &self.require_ssl_exempt {
            layer = layer
                .exempt(path)
                .map_err(|e| ("security.require_ssl_exempt", e.to_string()))?;
        }
        if let Some(hsts) = hsts {
            layer = layer.hsts(hsts).map_err(|e| (hsts_key, e.to_string()))?;
        }
        Ok(Some(layer))
    }

    /// The response DLP layer these settings ask for (`None`: no rules),
    /// or the key that is wrong and why.
    pub fn dlp_layer(&self) -> Result<Option<kailash_core::dlp::DlpLayer>, (&'static str, String)> {
        use kailash_core::dlp::{DlpLayer, DlpRule};
        if self.dlp_max_body_bytes == 0 {
            return Err(("security.dlp_max_body_bytes", "must be at least 1".into()));
        }
        let mut layer = DlpLayer::new()
            .clearance_levels(self.clearance_levels.iter().cloned())
            .map_err(|e| ("security.clearance_levels", e.to_string()))?
            .max_body_bytes(self.dlp_max_body_bytes);
        if self.dlp.is_empty() {
            return Ok(None);
        }
        for rule in &self.dlp {
            let mut built = DlpRule::new(&rule.path, rule.action)
                .map_err(|e| ("security.dlp.path", e.to_string()))?;
            if let Some(kinds) = &rule.kinds {
                if kinds.is_empty() {
                    return Err((
                        "security.dlp.kinds",
                        "name at least one kind, or leave it out for every kind".into(),
                    ));
                }
                built = built.kinds(kinds.iter().copied());
            }
            if let Some(c) = &rule.clearance {
                built = built.clearance(c);
            }
            layer = layer
                .rule(built)
                .map_err(|e| ("security.dlp", e.to_string()))?;
        }
        Ok(Some(layer))
    }

    /// The security headers these settings ask for (`None`: off), or the
    /// key that is wrong and why.
    pub fn security_headers(
        &self,
    ) -> Result<Option<kailash_core::transport::SecurityHeaders>, (&'static str, String)> {
        if !self.headers {
            return Ok(None);
        }
        let value = |v: &str| (!v.is_empty()).then_some(v.to_owned());
        let headers = kailash_core::transport::SecurityHeaders::default()
            .content_security_policy(value(&self.content_security_policy).as_deref())
            .map_err(|e| ("security.content_security_policy", e.to_string()))?
            .referrer_policy(value(&self.referrer_policy).as_deref())
            .map_err(|e| ("security.referrer_policy", e.to_string()))?;
        Ok(Some(headers))
    }
}

/// `[rate_limit]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Per client IP (resolved through `server.trusted_proxies`).
    pub per_ip: Option<RateConfig>,
    /// `per_ip` counts IPv4 clients by this prefix length (16 to 32).
    /// Default 32: each address alone.
    pub ipv4_prefix: u8,
    /// `per_ip` counts IPv6 clients by this prefix length (32 to 128).
    /// Default 64: one client usually holds a whole /64.
    pub ipv6_prefix: u8,
    /// Per authenticated user.
    pub per_user: Option<RateConfig>,
    /// Per tenant.
    pub per_tenant: Option<RateConfig>,
    /// When state is unreachable: `open` (default) lets requests through,
    /// `closed` answers 503.
    pub fail_mode: FailMode,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        let prefixes = kailash_core::context::IpPrefixes::DEFAULT;
        Self {
            per_ip: None,
            ipv4_prefix: prefixes.ipv4(),
            ipv6_prefix: prefixes.ipv6(),
            per_user: None,
            per_tenant: None,
            fail_mode: FailMode::default(),
        }
    }
}

/// `[state]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Redis URL (`redis://host:6379/0`, or `rediss://` for TLS), or a
    /// Redis Cluster's seed nodes (`redis+cluster://host:port,host:port`,
    /// `rediss+cluster://` for TLS), or Redis Sentinel's sentinels and
    /// master name (`redis+sentinel://host:port,host:port/<master>[/<db>]`,
    /// `rediss+sentinel://` for TLS); absent keeps state in memory. Needs
    /// the `redis` feature.
    pub redis_url: Option<String>,
    /// PEM file of the CA(s) that sign the Redis server's certificate, for a
    /// `rediss://` URL; absent uses the system trust store.
    pub redis_tls_ca: Option<PathBuf>,
    /// Prefix of every Redis key. Default `kailash:`.
    pub key_prefix: String,
    /// In-memory backend: most rate-limit keys held at once. Default 100 000.
    pub max_rate_limit_keys: usize,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_tls_ca: None,
            key_prefix: "kailash:".to_owned(),
            max_rate_limit_keys: 100_000,
        }
    }
}

/// `[database]`: the PostgreSQL servers (see `kailash_postgres`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSection {
    /// The primary: writes (the audit trail) go there.
    pub primary: Option<DatabaseEndpoint>,
    /// A streaming replica for reads (`kailash_postgres::routing`): the
    /// handlers' `Reader` uses it, with read-your-writes by WAL position.
    pub replica: Option<DatabaseEndpoint>,
    /// A server for analytics queries; without one they go where reads go.
    pub analytics: Option<DatabaseEndpoint>,
    /// Reads go to the primary (read-only) while the replica is away or
    /// lags more than `max_replica_lag`. Default `true`; `false` fails them.
    pub fallback_to_primary: bool,
    /// The replica gets no reads, and `database_replica` fails, while it
    /// lags more than this. Default 10 s.
    pub max_replica_lag: ConfigDuration,
    /// A database per tenant, for the workflow runtime's `database_query`
    /// node.
    pub tenants: Option<TenantDatabasesConfig>,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        Self {
            primary: None,
            replica: None,
            analytics: None,
            fallback_to_primary: true,
            max_replica_lag: ConfigDuration(std::time::Duration::from_secs(10)),
            tenants: None,
        }
    }
}

/// `[database.tenants]`: each tenant's own database, for the runtime's
/// `database_query` node. URLs (they carry passwords) come from the
/// environment or files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantDatabasesConfig {
    /// The environment variable holding the URL template, whose database
    /// (or host, or user) contains `{tenant}`:
    /// `postgres://app:pass@db/kailash_{tenant}`.
    pub url_template_env: Option<String>,
    /// Or a file holding the template.
    pub url_template_file: Option<PathBuf>,
    /// Tenants with a URL of their own: tenant id → the environment
    /// variable holding it.
    pub urls_env: std::collections::BTreeMap<String, String>,
    /// Extra CA certificates (PEM) for the servers' TLS.
    pub ca_file: Option<PathBuf>,
    /// Connections each tenant's pool keeps at most. Default 4.
    pub pool_size: usize,
    /// Tenant pools kept open at most; the least recently used is closed
    /// past it. Default 64.
    pub max_pools: usize,
    /// Longest wait for a connection. Default 5 s.
    pub connect_timeout: ConfigDuration,
    /// The server cancels a statement running longer. Default 30 s.
    pub statement_timeout: ConfigDuration,
}

impl Default for TenantDatabasesConfig {
    fn default() -> Self {
        Self {
            url_template_env: None,
            url_template_file: None,
            urls_env: std::collections::BTreeMap::new(),
            ca_file: None,
            pool_size: 4,
            max_pools: 64,
            connect_timeout: ConfigDuration(std::time::Duration::from_secs(5)),
            statement_timeout: ConfigDuration(std::time::Duration::from_secs(30)),
        }
    }
}

/// How to reach one PostgreSQL server. The URL (it carries the password)
/// comes from the environment or a file, never from the config file.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseEndpoint {
    /// The environment variable holding the URL
    /// (`postgres://user:pass@host:5432/db?sslmode=require`).
    pub url_env: Option<String>,
    /// A file holding the URL (a mounted secret).
    pub url_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) to trust for the server's TLS.
    pub ca_file: Option<PathBuf>,
    /// Connections kept at most. Default 16.
    pub pool_size: usize,
    /// Connections opened beyond `pool_size` under load and closed once
    /// idle (the seed's `max_overflow`). Default 0.
    pub max_overflow: usize,
    /// Idle connections older than this are closed and reopened on demand
    /// (the seed's `pool_recycle`). Default none.
    pub pool_recycle: Option<ConfigDuration>,
    /// Longest wait for a connection (connect and TLS included). Default 5 s.
    pub connect_timeout: ConfigDuration,
    /// The server cancels a statement running longer. Default 30 s.
    pub statement_timeout: ConfigDuration,
}

impl std::fmt::Debug for DatabaseEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseEndpoint")
            .field("url_env", &self.url_env)
            .field("url_file", &self.url_file)
            .field("ca_file", &self.ca_file)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

impl Default for DatabaseEndpoint {
    fn default() -> Self {
        Self {
            url_env: None,
            url_file: None,
            ca_file: None,
            pool_size: 16,
            max_overflow: 0,
            pool_recycle: None,
            connect_timeout: ConfigDuration(std::time::Duration::from_secs(5)),
            statement_timeout: ConfigDuration(std::time::Duration::from_secs(30)),
        }
    }
}

/// `audit.sink`: where the trail is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditSinkKind {
    /// Hash-chained files under the data directory (default).
    #[default]
    File,
    /// The `kailash_audit` table of `[database.primary]`, with the file
    /// settings applying to its outage spool.
    Postgres,
}

/// `[audit]`: the hash-chained audit file, its rotation, retention and
/// storage limits (see `kailash_core::audit::JsonLinesAuditSink`), or the
/// PostgreSQL trail (`sink = "postgres"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Where the trail is kept: `file` (default) or `postgres`.
    pub sink: AuditSinkKind,
    /// With `sink = "postgres"`: the active file of the outage spool
    /// (relative paths under the data directory). Default
    /// `audit-spool/audit.jsonl`.
    pub spool: PathBuf,
    /// With `sink = "postgres"`: an Ed25519 private key (PKCS#8 PEM) that
    /// signs checkpoints of the chain. Default none (no checkpoints).
    pub checkpoint_key_file: Option<PathBuf>,
    /// With `sink = "postgres"`: seal each entry's personal fields (actor,
    /// client address) per person under keys wrapped by this keyring, so
    /// one person's data can be erased (GDPR article 17) without breaking
    /// the chain. The environment variable holding the keyring text (one
    /// `id base64-32-byte-key` line per key, the last active). Default
    /// none (fields stored as written).
    pub personal_data_keyring_env: Option<String>,
    /// The same keyring from a file (relative paths under the data
    /// directory); set one of the two.
    pub personal_data_keyring_file: Option<PathBuf>,
    /// A checkpoint at least every this many entries. Default 10 000.
    pub checkpoint_every: u64,
    /// ...and at the first batch after this long without one. Default 60 s.
    pub checkpoint_interval: ConfigDuration,
    /// The active JSON-lines file; a relative path is under the data
    /// directory. Closed files go beside it. Default `audit.jsonl`.
    pub file: PathBuf,
    /// How many of the newest events each instance keeps in memory for
    /// queries (`GET /api/audit`); at least 1. Default 10 000.
    pub recent_events: usize,
    /// When written batches are synced to the disk. Default `interval`.
    pub fsync: FsyncMode,
    /// With `fsync = "interval"`: at most this long between syncs. Default 1 s.
    pub fsync_interval: ConfigDuration,
    /// Events waiting for the writer at most. Default 65 536.
    pub queue_capacity: usize,
    /// How long a request waits for room in a full buffer before failing
    /// with 503. Default 5 s.
    pub enqueue_timeout: ConfigDuration,
    /// Size at which the active file is closed (at a batch boundary).
    /// Default 64 MiB.
    pub rotate_bytes: u64,
    /// Age at which the active file is closed (if it holds an entry).
    /// Default 1 day.
    pub rotate_interval: ConfigDuration,
    /// Days a closed file is kept after it was closed; only whole closed
    /// files are deleted. Default 2555 (7 years).
    pub retention_days: u32,
    /// Soft cap on the bytes of all audit files: reaching it fails
    /// readiness and logs an alert, and deletes nothing. Default none.
    pub max_total_bytes: Option<u64>,
    /// Hard cap: at or past it requests needing audit fail with 503.
    /// Default: `max_total_bytes` + 10 %, none without it.
    pub hard_total_bytes: Option<u64>,
    /// Free space of the data file system below which readiness fails and
    /// an alert is logged. Default 256 MiB.
    pub min_free_bytes: u64,
}

/// `audit.fsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncMode {
    /// After every batch, before its events are accepted: nothing accepted
    /// is lost even when the machine crashes.
    Batch,
    /// At most every `audit.fsync_interval`: a machine crash loses at most
    /// that long of accepted events (a process crash loses none).
    Interval,
}

impl AuditConfig {
    /// The sink options these settings describe.
    pub fn sink_options(&self) -> kailash_core::audit::JsonLinesOptions {
        use kailash_core::audit::{FsyncPolicy, JsonLinesOptions};
        JsonLinesOptions {
            queue_capacity: self.queue_capacity,
            enqueue_timeout: self.enqueue_timeout.0,
            fsync: match self.fsync {
                FsyncMode::Batch => FsyncPolicy::Batch,
                FsyncMode::Interval => FsyncPolicy::Interval(self.fsync_interval.0),
            },
            rotate_bytes: self.rotate_bytes,
            rotate_interval: Some(self.rotate_interval.0),
            retention: std::time::Duration::from_secs(u64::from(self.retention_days) * 86_400),
            max_total_bytes: self.max_total_bytes,
            hard_total_bytes: self.hard_total_bytes.or(self
                .max_total_bytes
                .map(|soft| soft.saturating_add(soft / 10))),
            min_free_bytes: self.min_free_bytes,
            ..JsonLinesOptions::default()
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            sink: AuditSinkKind::File,
            spool: PathBuf::from("audit-spool/audit.jsonl"),
            checkpoint_key_file: None,
            personal_data_keyring_env: None,
            personal_data_keyring_file: None,
            checkpoint_every: 10_000,
            checkpoint_interval: ConfigDuration(std::time::Duration::from_secs(60)),
            file: PathBuf::from("audit.jsonl"),
            recent_events: 10_000,
            fsync: FsyncMode::Interval,
            fsync_interval: ConfigDuration(std::time::Duration::from_secs(1)),
            queue_capacity: 65_536,
            enqueue_timeout: ConfigDuration(std::time::Duration::from_secs(5)),
            rotate_bytes: 64 * 1024 * 1024,
            rotate_interval: ConfigDuration(std::time::Duration::from_secs(86_400)),
            retention_days: 2555,
            max_total_bytes: None,
            hard_total_bytes: None,
            min_free_bytes: 256 * 1024 * 1024,
        }
    }
}

/// `[health]`: the background health checks behind `/health/ready`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// How often every check runs. Default `30s`.
    pub check_interval: ConfigDuration,
    /// Longest one check may take; a slower one fails. Default `5s`.
    pub timeout: ConfigDuration,
    /// Consecutive failures that flip a passing check to failing. Default 3.
    pub failure_threshold: u32,
    /// Consecutive successes that flip it back. Default 2.
    pub recovery_threshold: u32,
    /// Memory usage (cgroup limit, else host) above which the
    /// `memory_usage` check fails (0 to 1; it never gates readiness).
    /// Default 0.9.
    pub memory_threshold: f64,
    /// Disk usage of the data directory's file system above which the
    /// `disk_usage` check fails (0 to 1; it never gates readiness).
    /// Default 0.9.
    pub disk_threshold: f64,
    /// Failure ratio of the workflow runs ended over the last interval
    /// above which the `workflow_failure_rate` check fails (0 to 1; with
    /// `[runtime]`; never gates readiness). Default 0.05.
    pub workflow_failure_threshold: f64,
    /// Live sessions (every instance together) above which the
    /// `active_sessions` check fails (with `[auth]`; never gates
    /// readiness): a capacity signal. Default 100 000.
    pub max_active_sessions: u64,
    /// External APIs checked with a `GET` (2xx is healthy); reported, never
    /// gating readiness. At most 32.
    pub external_apis: Vec<ExternalApiConfig>,
}

/// The most `[health] external_apis`.
pub const MAX_EXTERNAL_APIS: usize = 32;

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            check_interval: ConfigDuration(std::time::Duration::from_secs(30)),
            timeout: ConfigDuration(std::time::Duration::from_secs(5)),
            failure_threshold: 3,
            recovery_threshold: 2,
            memory_threshold: 0.9,
            disk_threshold: 0.9,
            workflow_failure_threshold: 0.05,
            max_active_sessions: 100_000,
            external_apis: Vec::new(),
        }
    }
}

/// One `[[health.external_apis]]` entry.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalApiConfig {
    /// The check's name (`[a-z0-9_]`, up to 64 characters): the report,
    /// the metrics' `check` label and the `<name>_health` signal.
    pub name: String,
    /// `http://` or `https://` URL answered with a 2xx when healthy (kept
    /// out of logs and reports).
    pub url: String,
}

impl std::fmt::Debug for ExternalApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a key in its query.
        f.debug_struct("ExternalApiConfig")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// `[telemetry]`: OpenTelemetry trace export (the `otel` feature).
/// `gateway.tracing` switches the request span itself; this section says
/// where spans go. Without `endpoint`, nothing is exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP URL (`http://otel-collector:4318`;
    /// `/v1/traces` is added unless present).
    pub endpoint: Option<String>,
    /// `service.name` (default: `gateway.title`).
    pub service_name: Option<String>,
    /// More resource attributes (`deployment.environment = "prod"`).
    pub resource_attributes: std::collections::BTreeMap<String, String>,
    /// The share of new traces kept (0 to 1; a request arriving with a
    /// sampled parent is always kept). Default 1.
    pub sampling_ratio: f64,
    /// Bound on one export. Default `10s`.
    pub timeout: ConfigDuration,
    /// An environment variable holding export headers as
    /// `key=value,key2=value2` (a vendor's API key), read at start.
    pub headers_env: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            service_name: None,
            resource_attributes: std::collections::BTreeMap::new(),
            sampling_ratio: 1.0,
            timeout: ConfigDuration(std::time::Duration::from_secs(10)),
            headers_env: None,
        }
    }
}

impl TelemetryConfig {
    /// Checks values that parse but make no sense; `(key, message)`.
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        let e = |k: &str, m: &str| Err((format!("telemetry.{k}"), m.to_owned()));
        if let Some(endpoint) = &self.endpoint {
            if cfg!(not(feature = "otel")) {
                return e(
                    "endpoint",
                    "this build exports no traces: enable the `otel` feature of kailash",
                );
            }
            let ok = endpoint.len() <= 2048
                && endpoint.parse::<http::Uri>().is_ok_and(|u| {
                    matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
                });
            if !ok {
                return e("endpoint", "must be an absolute http(s) URL");
            }
        }
        if !(0.0..=1.0).contains(&self.sampling_ratio) {
            return e("sampling_ratio", "must be between 0 and 1");
        }
        if self.timeout.0.is_zero() || self.timeout.0.as_secs() > 60 {
            return e("timeout", "must be positive and at most 60s");
        }
        if self
            .service_name
            .as_ref()
            .is_some_and(|s| s.is_empty() || s.len() > 128)
        {
            return e("service_name", "must be 1 to 128 characters");
        }
        if self.resource_attributes.len() > 64 {
            return e("resource_attributes", "at most 64 attributes");
        }
        for (k, v) in &self.resource_attributes {
            if k.is_empty() || k.len() > 128 || v.len() > 1024 {
                return e(
                    "resource_attributes",
                    "keys are 1 to 128 characters and values at most 1024",
                );
            }
        }
        Ok(())
    }
}

/// `[billing]`: usage metering reported as signed webhooks (see
/// [`crate::billing`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingConfig {
    /// Where `billing.usage` reports are `POST`ed: `https://`, or
    /// `http://` to a loopback host.
    pub webhook_url: String,
    /// The environment variable holding the signing secret (at least 32
    /// bytes).
    pub secret_env: Option<String>,
    /// Or a file holding it (trimmed; a mounted secret). Exactly one of the
    /// two; a relative path is under the data directory.
    pub secret_file: Option<PathBuf>,
    /// How often due days are looked for. Default `1m`; 1 s to 1 h.
    #[serde(default = "billing_interval")]
    pub interval: ConfigDuration,
    /// How long after midnight UTC a day is reported. Default `10m`; under
    /// 24 h.
    #[serde(default = "billing_settle")]
    pub settle: ConfigDuration,
    /// One delivery attempt's deadline. Default `10s`; 1 s to 5 m.
    #[serde(default = "billing_timeout")]
    pub timeout: ConfigDuration,
}

fn billing_interval() -> ConfigDuration {
    ConfigDuration(std::time::Duration::from_secs(60))
}

fn billing_settle() -> ConfigDuration {
    ConfigDuration(std::time::Duration::from_secs(600))
}

fn billing_timeout() -> ConfigDuration {
    ConfigDuration(std::time::Duration::from_secs(10))
}
