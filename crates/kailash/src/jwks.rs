//! Fetching a JWKS over HTTPS, for services that verify tokens issued
//! elsewhere — typically a service behind this gateway verifying the
//! gateway's own tokens from its `/.well-known/jwks.json`.
//!
//! [`HttpsJwksSource`] plugs into kailash-auth's
//! [`RemoteKeySet`](kailash_auth::jwt::RemoteKeySet), which caches the set
//! and refetches on an unknown `kid` at most once per cooldown — never per
//! request. Only `https://` URLs are accepted; server certificates are
//! checked against the system's roots (or the roots you give), through
//! rustls with aws-lc-rs. Responses are bounded in size and time.
//!
//! ```no_run
//! use std::sync::Arc;
//! use kailash::auth::jwt::{RemoteKeySet, TokenType, Verifier};
//! use kailash::auth::layer::JwtAuthLayer;
//! use kailash::clock::SystemClock;
//! use kailash::jwks::HttpsJwksSource;
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let source = HttpsJwksSource::new("https://gateway.example.com/.well-known/jwks.json")?;
//! let keys = RemoteKeySet::load(Arc::new(source), Arc::new(SystemClock)).await?;
//! let verifier = Verifier::builder(Arc::new(keys), "kailash-demo", "kailash-api")
//!     .token_type(TokenType::Access)
//!     .build();
//! let layer = JwtAuthLayer::new(verifier);
//! # let _ = layer; Ok(()) }
//! ```

use std::time::Duration;

use async_trait::async_trait;
use http::{Request, StatusCode, Uri, header};
use kailash_auth::jwt::{JwksSource, KeySetError};

/// The largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Why an [`HttpsJwksSource`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksUrlError {
    /// The URL is not an absolute `https://` URL with a host.
    #[error("JWKS URL must be an absolute https:// URL")]
    NotHttps,
    /// No root certificates could be loaded.
    #[error("no usable root certificates: {0}")]
    Roots(String),
}

/// A JWKS fetched with `GET` over HTTPS.
#[derive(Clone)]
pub struct HttpsJwksSource {
    uri: Uri,
    client: crate::client::Client,
}

impl std::fmt::Debug for HttpsJwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsJwksSource")
            .field("uri", &self.uri)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// The deadline of one fetch, unless set.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl HttpsJwksSource {
    /// A source for `url`, trusting the system's root certificates.
    pub fn new(url: &str) -> Result<Self, JwksUrlError> {
        Self::with_roots(
            url,
            crate::client::roots(None).map_err(JwksUrlError::Roots)?,
        )
    }

    /// A source for `url`, trusting only `roots` (a private CA).
    pub fn with_roots(url: &str, roots: rustls::RootCertStore) -> Result<Self, JwksUrlError> {
        let uri: Uri = url.parse().map_err(|_| JwksUrlError::NotHttps)?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return Err(JwksUrlError::NotHttps);
        }
        Ok(Self {
            uri,
            client: crate::client::Client::with_roots(roots, DEFAULT_TIMEOUT, MAX_JWKS_BYTES)
                .map_err(JwksUrlError::Roots)?,
        })
    }

    /// Draws connections from `pool` (a gateway's outbound pool) instead
    /// of a pool of its own.
    #[must_use]
    pub fn pool(mut self, pool: &kailash_core::outbound::ConnectionPool) -> Self {
        self.client = self.client.pool(pool);
        self
    }

    /// Bounds one fetch (connect, handshake, request, body); default 5 s.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.client = self.client.timeout(timeout);
        self
    }

    async fn get(&self) -> Result<bytes::Bytes, String> {
        let request = Request::get(self.uri.clone())
            .header(header::ACCEPT, "application/json, application/jwk-set+json")
            .body(bytes::Bytes::new())
            .map_err(|e| format!("request: {e}"))?;
        let response = self.client.send(request).await?;
        if response.status() != StatusCode::OK {
            return Err(format!("status {}", response.status().as_u16()));
        }
        Ok(response.into_body())
    }
}

#[async_trait]
impl JwksSource for HttpsJwksSource {
    async fn fetch(&self) -> Result<serde_json::Value, KeySetError> {
        let body = self
            .get()
            .await
            .map_err(|e| KeySetError::Source(format!("JWKS fetch failed: {e}")))?;
        serde_json::from_slice(&body)
            .map_err(|_| KeySetError::Source("JWKS response is not JSON".into()))
    }
}
