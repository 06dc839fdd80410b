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

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use kailash_auth::jwt::{JwksSource, KeySetError};
use rustls::pki_types::ServerName;

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
    host: String,
    port: u16,
    connector: tokio_rustls::TlsConnector,
    timeout: Duration,
}

impl std::fmt::Debug for HttpsJwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsJwksSource")
            .field("uri", &self.uri)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpsJwksSource {
    /// A source for `url`, trusting the system's root certificates.
    pub fn new(url: &str) -> Result<Self, JwksUrlError> {
        let native = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            return Err(JwksUrlError::Roots(format!(
                "no system root certificates found ({} errors)",
                native.errors.len()
            )));
        }
        Self::with_roots(url, roots)
    }

    /// A source for `url`, trusting only `roots` (a private CA).
    pub fn with_roots(url: &str, roots: rustls::RootCertStore) -> Result<Self, JwksUrlError> {
        let uri: Uri = url.parse().map_err(|_| JwksUrlError::NotHttps)?;
        if uri.scheme_str() != Some("https") {
            return Err(JwksUrlError::NotHttps);
        }
        let host = uri
            .host()
            .ok_or(JwksUrlError::NotHttps)?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| JwksUrlError::Roots(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            uri,
            host,
            port,
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            timeout: Duration::from_secs(5),
        })
    }

    /// Bounds one fetch (connect, handshake, request, body); default 5 s.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn get(&self) -> Result<bytes::Bytes, String> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("connect: {}", e.kind()))?;
        let name =
            ServerName::try_from(self.host.clone()).map_err(|_| "invalid host name".to_owned())?;
        let tls = self
            .connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let driver = tokio::spawn(conn);
        let path = self.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut request = Request::get(path)
            .header(
                header::HOST,
                self.uri
                    .authority()
                    .map_or(self.host.as_str(), |a| a.as_str()),
            )
            .header(header::ACCEPT, "application/json, application/jwk-set+json")
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| format!("request: {e}"))?;
        kailash_core::trace_context::inject(request.headers_mut());
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        if response.status() != StatusCode::OK {
            driver.abort();
            return Err(format!("status {}", response.status().as_u16()));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|_| format!("body unreadable or over {MAX_JWKS_BYTES} bytes"))?
            .to_bytes();
        driver.abort();
        Ok(body)
    }
}

#[async_trait]
impl JwksSource for HttpsJwksSource {
    async fn fetch(&self) -> Result<serde_json::Value, KeySetError> {
        let body = tokio::time::timeout(self.timeout, self.get())
            .await
            .map_err(|_| KeySetError::Source("JWKS fetch timed out".into()))?
            .map_err(|e| KeySetError::Source(format!("JWKS fetch failed: {e}")))?;
        serde_json::from_slice(&body)
            .map_err(|_| KeySetError::Source("JWKS response is not JSON".into()))
    }
}
