//! The gateway's side of OpenID Connect sign-in (`[[auth.oidc]]`): the
//! HTTP client that reaches the providers, and the providers built from
//! the configuration. The flow itself is
//! [`kailash_auth::oidc`].
//!
//! [`OidcClient`] sends each request over its own connection (sign-ins are
//! seconds apart per user; discovery and keys are cached): `https://` with
//! rustls on aws-lc-rs and the system's roots plus an optional CA,
//! `http://` only to a loopback address (a provider run locally), every
//! exchange within the provider's `timeout`, no trace context sent to the
//! provider, and every answer at most
//! [`kailash_auth::oidc::MAX_ANSWER_BYTES`].
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use kailash::oidc::OidcClient;
//! use kailash::auth::oidc::{OidcProvider, OidcProviders};
//! use kailash::auth::spec::OidcProviderSpec;
//! use kailash::clock::SystemClock;
//! use kailash::state::{MemoryState, SharedState};
//!
//! let spec: OidcProviderSpec = serde_json::from_value(serde_json::json!({
//!     "name": "okta",
//!     "preset": "okta",
//!     "issuer": "https://dev-123456.okta.com/oauth2/default",
//!     "client_id": "0oa1example",
//!     "redirect_uri": "https://api.example.com/auth/oidc/okta/callback",
//!     "group_roles": { "Finance": ["finance"] },
//! })).unwrap();
//! let clock = Arc::new(SystemClock);
//! let state = SharedState::from_backend(Arc::new(MemoryState::new(clock.clone())), clock, "memory");
//! let http = Arc::new(OidcClient::new(None, Duration::from_secs(5)).unwrap());
//! let secret = Some(kailash::auth::password::Password::new("client secret"));
//! let providers = OidcProviders::new().with(OidcProvider::new(spec, secret, http, state).unwrap());
//! assert!(providers.get("okta").is_some());
//! ```

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kailash_auth::oidc::{MAX_ANSWER_BYTES, OidcHttp, OidcProvider, OidcProviders};
use kailash_auth::spec::OidcProviderSpec;
use kailash_core::state::SharedState;

use crate::GatewayError;

/// Reaches identity providers (see the module documentation).
#[derive(Debug, Clone)]
pub struct OidcClient {
    client: crate::client::Client,
}

impl OidcClient {
    /// A client trusting the system's roots and the certificates of
    /// `ca_pem`, each exchange within `timeout`.
    pub fn new(ca_pem: Option<&[u8]>, timeout: Duration) -> Result<Self, String> {
        let roots = crate::client::roots(ca_pem)?;
        Ok(Self {
            client: crate::client::Client::with_roots(roots, timeout, MAX_ANSWER_BYTES)?
                .without_trace_context(),
        })
    }

    /// The same client drawing its connections from `pool` (the gateway's
    /// outbound pool).
    #[must_use]
    pub fn with_pool(mut self, pool: &kailash_core::outbound::ConnectionPool) -> Self {
        self.client = self.client.pool(pool);
        self
    }
}

#[async_trait]
impl OidcHttp for OidcClient {
    async fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, String> {
        self.client.send(request).await
    }
}

/// The providers `[[auth.oidc]]` lists, with their secrets read from
/// their variables or files (errors name the key, never the secret).
pub(crate) fn providers_from_config(
    specs: &[OidcProviderSpec],
    data_dir: &std::path::Path,
    state: &SharedState,
    pool: &kailash_core::outbound::ConnectionPool,
) -> Result<OidcProviders, GatewayError> {
    let mut providers = OidcProviders::new();
    for spec in specs {
        let err = |m: String| GatewayError::Auth(format!("auth.oidc `{}`: {m}", spec.name));
        // Relative paths are under the data directory (`join` keeps an
        // absolute one as it is).
        let absolute = |p: &std::path::PathBuf| data_dir.join(p);
        let file = spec.client_secret_file.as_ref().map(absolute);
        let secret = crate::config::alerting::AlertChannelConfig::secret(
            &spec.client_secret_env,
            &file,
            "client_secret",
        )
        .map_err(err)?
        .map(|source| source.read())
        .transpose()
        .map_err(|m| err(format!("client_secret: {m}")))?
        .map(kailash_auth::password::Password::new);
        let ca = match &spec.ca_file {
            Some(path) => {
                let path = absolute(path);
                Some(
                    std::fs::read(&path)
                        .map_err(|e| err(format!("ca_file {}: {}", path.display(), e.kind())))?,
                )
            }
            None => None,
        };
        let http = OidcClient::new(ca.as_deref(), spec.timeout.0)
            .map_err(err)?
            .with_pool(pool);
        let provider = OidcProvider::new(spec.clone(), secret, Arc::new(http), state.clone())
            .map_err(|e| err(e.to_string()))?;
        providers = providers.with(provider);
    }
    Ok(providers)
}
