//! The `[[integrations]]` a gateway configures: named external services
//! (base URLs, an optional LLM wire format, an optional API key read from
//! the environment) that the outbound nodes may reach.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use kailash_core::outbound::ConnectionPool;
use serde::{Deserialize, Serialize};

use super::net::{self, check_path};
use crate::definition::is_valid_name;

/// The connect timeout (TCP connect and TLS handshake) when none is configured, in milliseconds.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// The longest connect timeout an integration may set, in milliseconds.
pub const MAX_CONNECT_TIMEOUT_MS: u64 = 60_000;
/// The total timeout of one node's exchange (every redirect and the whole
/// response body included) when none is configured, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// The longest total timeout an integration may set, in milliseconds.
pub const MAX_TIMEOUT_MS: u64 = 600_000;
/// The response body cap when none is configured, in bytes.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1 << 20;
/// The largest response body cap an integration may set, in bytes.
pub const MAX_RESPONSE_BYTES: u64 = 16 << 20;
/// The most integrations one configuration may hold.
pub const MAX_INTEGRATIONS: usize = 256;
/// The most base URLs one integration may have.
pub const MAX_BASE_URLS: usize = 16;
/// The longest base URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;
/// The longest API key, in bytes.
pub const MAX_KEY_BYTES: usize = 4096;

/// One `[[integrations]]` table as written in a config file. Unknown
/// fields are refused, so a misspelt option is an error rather than
/// silently ignored.
///
/// ```toml
/// [[integrations]]
/// name = "openai"
/// base_urls = ["https://api.openai.com/v1"]
/// kind = "openai"
/// api_key_env = "OPENAI_API_KEY"
/// timeout_ms = 60000
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationSpec {
    /// The name tenants' `allowed_integrations` and node configs use
    /// (1-64 ASCII letters, digits, `_`, `-`).
    pub name: String,
    /// One or more `http(s)://host[:port][/path]` URLs. Requests go to the
    /// first; a redirect may go to any of them (see [`super`]).
    pub base_urls: Vec<String>,
    /// The LLM wire format, `openai` or `anthropic`; required for `llm`
    /// nodes, and it decides how `http_request` sends the key.
    #[serde(default)]
    pub kind: Option<String>,
    /// The environment variable holding the API key, read once when the
    /// integrations are built.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Lets this integration reach private, loopback, link-local and the
    /// other special-purpose addresses (not unspecified, multicast or
    /// broadcast ones). Off by default.
    #[serde(default)]
    pub allow_private: bool,
    /// TCP connect plus TLS handshake, per connection (default
    /// [`DEFAULT_CONNECT_TIMEOUT_MS`], at most [`MAX_CONNECT_TIMEOUT_MS`]).
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    /// The whole exchange of one node run, redirects and body included
    /// (default [`DEFAULT_TIMEOUT_MS`], at most [`MAX_TIMEOUT_MS`]).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// The response body cap (default [`DEFAULT_MAX_RESPONSE_BYTES`], at
    /// most [`MAX_RESPONSE_BYTES`]).
    #[serde(default)]
    pub max_response_bytes: Option<u64>,
}

/// An integration's LLM wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LlmKind {
    /// OpenAI-compatible Chat Completions: `POST {base}/chat/completions`,
    /// `Authorization: Bearer <key>`.
    OpenAi,
    /// Anthropic Messages: `POST {base}/v1/messages`, `x-api-key: <key>`,
    /// `anthropic-version: 2023-06-01`.
    Anthropic,
}

impl LlmKind {
    /// The name used in config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }
}

/// Why the integrations could not be built. Every variant about one entry
/// names it; none carries a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntegrationError {
    /// More integrations than [`MAX_INTEGRATIONS`].
    #[error("{count} integrations configured; at most {max} are allowed")]
    TooMany {
        /// How many.
        count: usize,
        /// [`MAX_INTEGRATIONS`].
        max: usize,
    },
    /// The name is not 1-64 ASCII letters, digits, `_` or `-`.
    #[error("integration name {name:?} must be 1-64 ASCII letters, digits, `_` or `-`")]
    InvalidName {
        /// The name (cut to 64 bytes at most).
        name: String,
    },
    /// Two entries have the same name.
    #[error("integration {integration:?} is configured twice")]
    Duplicate {
        /// The name.
        integration: String,
    },
    /// No base URL, or more than [`MAX_BASE_URLS`].
    #[error("integration {integration:?} must have 1-{max} base_urls, not {count}")]
    BaseUrlCount {
        /// The integration.
        integration: String,
        /// How many it has.
        count: usize,
        /// [`MAX_BASE_URLS`].
        max: usize,
    },
    /// A base URL is not `http(s)://host[:port][/path]`.
    #[error("integration {integration:?}: base URL {url:?} {reason}")]
    BadBaseUrl {
        /// The integration.
        integration: String,
        /// The URL (cut to 128 bytes at most).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `kind` is neither `openai` nor `anthropic`.
    #[error(
        "integration {integration:?}: unknown kind {kind:?} (expected \"openai\" or \"anthropic\")"
    )]
    UnknownKind {
        /// The integration.
        integration: String,
        /// The kind given (cut to 64 bytes at most).
        kind: String,
    },
    /// `api_key_env` names an invalid variable, or one whose value is too
    /// long or cannot be sent in a header (the value is never shown). An
    /// unset or empty variable is not an error: the integration's nodes
    /// fail at run time naming it ([`Integration::missing_key`]).
    #[error("integration {integration:?}: environment variable {env:?} {reason}")]
    Key {
        /// The integration.
        integration: String,
        /// The variable's name (cut to 64 bytes at most).
        env: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A timeout or the response cap is outside its range.
    #[error("integration {integration:?}: {field} = {value} is outside {min}..={max}")]
    OutOfRange {
        /// The integration.
        integration: String,
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The smallest allowed.
        min: u64,
        /// The largest allowed.
        max: u64,
    },
    /// An https base URL is configured but no root certificate could be loaded.
    #[error("no usable root certificates for https integrations: {0}")]
    Roots(String),
}

/// An API key: never printed ([`fmt::Debug`] shows `<redacted>`), sent
/// only as a header value marked sensitive.
#[derive(Clone)]
pub struct ApiKey(HeaderValue);

impl ApiKey {
    fn new(key: &str) -> Option<Self> {
        let mut value = HeaderValue::from_str(key).ok()?;
        value.set_sensitive(true);
        Some(Self(value))
    }

    /// The header value `<prefix><key>`, marked sensitive.
    pub(crate) fn header(&self, prefix: &str) -> Option<HeaderValue> {
        let mut bytes = Vec::with_capacity(prefix.len() + self.0.len());
        bytes.extend_from_slice(prefix.as_bytes());
        bytes.extend_from_slice(self.0.as_bytes());
        let mut value = HeaderValue::from_bytes(&bytes).ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// Whether `text` contains the key (so a message echoing it is dropped).
    pub(crate) fn appears_in(&self, text: &str) -> bool {
        self.0
            .to_str()
            .is_ok_and(|key| !key.is_empty() && text.contains(key))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// A checked base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    pub(crate) https: bool,
    /// Lowercase; an IPv6 address without brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Empty or `/…` without a trailing `/`.
    pub(crate) path: String,
}

impl BaseUrl {
    /// Whether it is `https`.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host (lowercase; an IPv6 address without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (the scheme's default when the URL gives none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The base path: empty, or `/…` without a trailing `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether `(https, host, port)` is this origin and `path` lies under
    /// the base path.
    pub(crate) fn contains(&self, https: bool, host: &str, port: u16, path: &str) -> bool {
        self.https == https
            && self.host == host
            && self.port == port
            && (self.path.is_empty()
                || path == self.path
                || path
                    .strip_prefix(self.path.as_str())
                    .is_some_and(|rest| rest.starts_with('/')))
    }

    fn parse(url: &str) -> Result<Self, String> {
        if url.len() > MAX_URL_BYTES {
            return Err(format!("is longer than {MAX_URL_BYTES} bytes"));
        }
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err("must start with http:// or https://".to_owned());
        };
        if rest.contains(['?', '#']) {
            return Err("must not have a query or fragment".to_owned());
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err("must not carry user information".to_owned());
        }
        let (host, port) = net::split_authority(authority, https)
            .ok_or_else(|| "has no valid host[:port]".to_owned())?;
        let path = path.trim_end_matches('/');
        if !path.is_empty() {
            check_path(path).map_err(|e| format!("has a bad path: {e}"))?;
        }
        Ok(Self {
            https,
            host,
            port,
            path: path.to_owned(),
        })
    }
}

/// One built integration.
#[derive(Clone)]
pub struct Integration {
    name: String,
    base_urls: Vec<BaseUrl>,
    kind: Option<LlmKind>,
    key: Option<ApiKey>,
    /// The variable `api_key_env` names when it was unset or empty at
    /// build: every node using the integration fails, saying so.
    missing_key: Option<String>,
    allow_private: bool,
    connect_timeout: Duration,
    timeout: Duration,
    max_response_bytes: u64,
    tls: Option<tokio_rustls::TlsConnector>,
    /// The connections it draws from, shared with the gateway's other
    /// outbound calls once [`Integrations::with_pool`] is called.
    pool: ConnectionPool,
    /// Its partition of the pool: its own (name and build), so no other
    /// integration — with other address rules or roots — reuses its
    /// connections, nor does it after a rebuild.
    partition: String,
}

impl fmt::Debug for Integration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Integration")
            .field("name", &self.name)
            .field("base_urls", &self.base_urls)
            .field("kind", &self.kind)
            .field("key", &self.key)
            .field("missing_key", &self.missing_key)
            .field("allow_private", &self.allow_private)
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish_non_exhaustive()
    }
}

impl Integration {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its base URLs (requests go to the first).
    pub fn base_urls(&self) -> &[BaseUrl] {
        &self.base_urls
    }

    /// Its LLM wire format, if configured.
    pub fn kind(&self) -> Option<LlmKind> {
        self.kind
    }

    /// Whether it has an API key.
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// Whether it may reach private and other special-purpose addresses.
    pub fn allow_private(&self) -> bool {
        self.allow_private
    }

    /// The connect timeout (TCP connect and TLS handshake).
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The total timeout of one node's exchange.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The response body cap, in bytes.
    pub fn max_response_bytes(&self) -> u64 {
        self.max_response_bytes
    }

    pub(crate) fn key(&self) -> Option<&ApiKey> {
        self.key.as_ref()
    }

    /// The variable its key should come from, when that was unset or
    /// empty at build.
    pub fn missing_key(&self) -> Option<&str> {
        self.missing_key.as_deref()
    }

    pub(crate) fn tls(&self) -> Option<&tokio_rustls::TlsConnector> {
        self.tls.as_ref()
    }

    pub(crate) fn pool(&self) -> &ConnectionPool {
        &self.pool
    }

    pub(crate) fn partition(&self) -> &str {
        &self.partition
    }
}

/// Tells one [`Integrations::build_with`] from another in pool partitions.
static BUILDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The built integrations by name. Cheap to clone.
///
/// ```
/// use kailash_runtime::outbound::{IntegrationSpec, Integrations, LlmKind};
///
/// let specs: Vec<IntegrationSpec> = serde_json::from_value(serde_json::json!([
///     {"name": "crm", "base_urls": ["http://crm.internal:8080/api"], "allow_private": true},
///     {"name": "openai", "base_urls": ["http://llm.internal/v1"], "kind": "openai",
///      "api_key_env": "OPENAI_API_KEY"},
/// ]))?;
/// // `build` reads the environment; `build_with` takes the lookup (and roots).
/// let env = |name: &str| (name == "OPENAI_API_KEY").then(|| "sk-test".to_owned());
/// let integrations = Integrations::build_with(&specs, env, None)?;
/// let openai = integrations.get("openai").unwrap();
/// assert_eq!(openai.kind(), Some(LlmKind::OpenAi));
/// assert!(!format!("{openai:?}").contains("sk-test"));
///
/// // A missing key is no error at start: the integration says which variable
/// // was unset, and its nodes fail naming it.
/// let unset = Integrations::build_with(&specs, |_| None, None)?;
/// assert_eq!(unset.get("openai").unwrap().missing_key(), Some("OPENAI_API_KEY"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Integrations {
    by_name: Arc<BTreeMap<String, Arc<Integration>>>,
}

impl Integrations {
    /// Builds `specs`, reading API keys from the process environment and
    /// trusting the system's root certificates for https.
    pub fn build(specs: &[IntegrationSpec]) -> Result<Self, IntegrationError> {
        Self::build_with(specs, |name| std::env::var(name).ok(), None)
    }

    /// Builds `specs`, reading API keys through `env` and trusting `roots`
    /// for https (the system's roots when `None`; they are loaded only when
    /// some base URL is https).
    pub fn build_with(
        specs: &[IntegrationSpec],
        env: impl Fn(&str) -> Option<String>,
        roots: Option<rustls::RootCertStore>,
    ) -> Result<Self, IntegrationError> {
        if specs.len() > MAX_INTEGRATIONS {
            return Err(IntegrationError::TooMany {
                count: specs.len(),
                max: MAX_INTEGRATIONS,
            });
        }
        let mut built: Vec<(Integration, bool)> = Vec::with_capacity(specs.len());
        let mut by_name = BTreeMap::new();
        for spec in specs {
            let integration = build_one(spec, &env)?;
            if by_name.contains_key(&integration.name) {
                return Err(IntegrationError::Duplicate {
                    integration: integration.name,
                });
            }
            by_name.insert(integration.name.clone(), ());
            let https = integration.base_urls.iter().any(|b| b.https);
            built.push((integration, https));
        }
        let tls = if built.iter().any(|(_, https)| *https) {
            Some(tls_connector(roots)?)
        } else {
            None
        };
        let build = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pool = ConnectionPool::default();
        let by_name = built
            .into_iter()
            .map(|(mut i, https)| {
                if https {
                    i.tls.clone_from(&tls);
                }
                i.partition = format!("integration:{build}:{}", i.name);
                i.pool = pool.clone();
                (i.name.clone(), Arc::new(i))
            })
            .collect();
        Ok(Self {
            by_name: Arc::new(by_name),
        })
    }

    /// The same integrations drawing their connections from `pool` (the
    /// gateway's one outbound pool, `[outbound] connection_pool_size`)
    /// instead of one of their own. Each integration keeps its own
    /// partition of it.
    #[must_use]
    pub fn with_pool(self, pool: &ConnectionPool) -> Self {
        let by_name = self
            .by_name
            .iter()
            .map(|(name, i)| {
                let mut i = Integration::clone(i);
                i.pool = pool.clone();
                (name.clone(), Arc::new(i))
            })
            .collect();
        Self {
            by_name: Arc::new(by_name),
        }
    }

    /// The integration called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Integration>> {
        self.by_name.get(name)
    }

    /// The names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

impl TryFrom<&[IntegrationSpec]> for Integrations {
    type Error = IntegrationError;

    fn try_from(specs: &[IntegrationSpec]) -> Result<Self, Self::Error> {
        Self::build(specs)
    }
}

fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn build_one(
    spec: &IntegrationSpec,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Integration, IntegrationError> {
    if !is_valid_name(&spec.name) {
        return Err(IntegrationError::InvalidName {
            name: cut(&spec.name, 64),
        });
    }
    let name = spec.name.clone();
    if spec.base_urls.is_empty() || spec.base_urls.len() > MAX_BASE_URLS {
        return Err(IntegrationError::BaseUrlCount {
            integration: name,
            count: spec.base_urls.len(),
            max: MAX_BASE_URLS,
        });
    }
    let mut base_urls = Vec::with_capacity(spec.base_urls.len());
    for url in &spec.base_urls {
        let parsed = BaseUrl::parse(url).map_err(|reason| IntegrationError::BadBaseUrl {
            integration: name.clone(),
            url: cut(url, 128),
            reason,
        })?;
        base_urls.push(parsed);
    }
    let kind = match spec.kind.as_deref() {
        None => None,
        Some("openai") => Some(LlmKind::OpenAi),
        Some("anthropic") => Some(LlmKind::Anthropic),
        Some(other) => {
            return Err(IntegrationError::UnknownKind {
                integration: name,
                kind: cut(other, 64),
            });
        }
    };
    let mut missing_key = None;
    let key = match &spec.api_key_env {
        None => None,
        Some(var) => {
            let bad = |reason| IntegrationError::Key {
                integration: name.clone(),
                env: cut(var, 64),
                reason,
            };
            if var.is_empty() || var.contains(['=', '\0']) || var.len() > 256 {
                return Err(bad("is not a valid variable name"));
            }
            let value = env(var).unwrap_or_default();
            let value = value.trim();
            if value.is_empty() {
                // A deployment may configure providers it has no key for
                // yet (the reference deployment does): their nodes fail
                // with this reason instead of the gateway refusing to start.
                tracing::warn!(
                    integration = %name,
                    env = %var,
                    "integration has no API key; its nodes will fail until it is set"
                );
                missing_key = Some(cut(var, 64));
                None
            } else if value.len() > MAX_KEY_BYTES {
                return Err(bad("holds a key longer than 4096 bytes"));
            } else {
                Some(
                    ApiKey::new(value)
                        .ok_or_else(|| bad("holds a key that cannot be sent in a header"))?,
                )
            }
        }
    };
    let range = |field: &'static str, value: Option<u64>, default: u64, max: u64| {
        let v = value.unwrap_or(default);
        if v == 0 || v > max {
            Err(IntegrationError::OutOfRange {
                integration: name.clone(),
                field,
                value: v,
                min: 1,
                max,
            })
        } else {
            Ok(v)
        }
    };
    let connect_ms = range(
        "connect_timeout_ms",
        spec.connect_timeout_ms,
        DEFAULT_CONNECT_TIMEOUT_MS,
        MAX_CONNECT_TIMEOUT_MS,
    )?;
    let total_ms = range(
        "timeout_ms",
        spec.timeout_ms,
        DEFAULT_TIMEOUT_MS,
        MAX_TIMEOUT_MS,
    )?;
    let max_response_bytes = range(
        "max_response_bytes",
        spec.max_response_bytes,
        DEFAULT_MAX_RESPONSE_BYTES,
        MAX_RESPONSE_BYTES,
    )?;
    Ok(Integration {
        name,
        base_urls,
        kind,
        key,
        missing_key,
        allow_private: spec.allow_private,
        connect_timeout: Duration::from_millis(connect_ms),
        timeout: Duration::from_millis(total_ms),
        max_response_bytes,
        tls: None,
        pool: ConnectionPool::default(),
        partition: String::new(),
    })
}

fn tls_connector(
    roots: Option<rustls::RootCertStore>,
) -> Result<tokio_rustls::TlsConnector, IntegrationError> {
    let roots = match roots {
        Some(roots) => roots,
        None => {
            let native = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                return Err(IntegrationError::Roots(format!(
                    "no system root certificates found ({} errors)",
                    native.errors.len()
                )));
            }
            roots
        }
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| IntegrationError::Roots(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
