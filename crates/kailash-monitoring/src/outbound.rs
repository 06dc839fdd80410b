//! A small outbound HTTP/1.1 client for monitoring's own calls — alert
//! webhooks, external-API health checks, trace export — over a
//! [`ConnectionPool`] (its own, or the gateway's shared one through
//! [`Target::with_pool`]): `http://` or `https://` with rustls on aws-lc-rs
//! and the system's roots, the W3C trace context injected, a bounded
//! answer. The URL never appears in errors: a webhook URL or a query
//! string can be a secret.
//!
//! ```
//! use std::time::Duration;
//! use kailash_monitoring::outbound::Target;
//!
//! let t = Target::new("https://hooks.slack.com/services/T0/B0/secret", Duration::from_secs(5)).unwrap();
//! assert!(!format!("{t:?}").contains("secret"));
//! assert_eq!(t.host(), "hooks.slack.com");
//! let e = Target::new("ftp://example.com/secret", Duration::from_secs(5)).unwrap_err();
//! assert!(!e.contains("secret"));
//! ```

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, Uri, header};
use http_body_util::{BodyExt, Limited};
use kailash_core::outbound::{ConnectionPool, Either, PoolKey};
use rustls::pki_types::ServerName;

/// Why a URL was refused (the URL itself is not repeated).
pub const BAD_URL: &str = "not an absolute http(s) URL with a host";

/// The longest URL accepted, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

/// The longest answer body read, in bytes (the rest is dropped).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Why a request failed: `retry` when trying again may help (connection,
/// TLS, timeout), with a message free of the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// What failed.
    pub message: String,
    /// Whether the failure is worth a retry.
    pub retry: bool,
}

fn fail(message: impl Into<String>, retry: bool) -> SendError {
    SendError {
        message: message.into(),
        retry,
    }
}

/// A checked URL, ready to be called.
#[derive(Clone)]
pub struct Target {
    uri: Uri,
    host: String,
    /// The `Host` header: host and explicit port, never userinfo.
    host_header: HeaderValue,
    port: u16,
    tls: Option<tokio_rustls::TlsConnector>,
    key: PoolKey,
    pool: ConnectionPool,
    timeout: Duration,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The host only: the path and query may carry a secret.
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Checks `url` is an absolute `http://` or `https://` URL with a host;
/// its URI, whether HTTPS, host (without brackets) and port.
pub fn parse(url: &str) -> Result<(Uri, bool, String, u16), String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("the URL is longer than {MAX_URL_BYTES} bytes"));
    }
    let uri: Uri = url.parse().map_err(|_| BAD_URL.to_owned())?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(BAD_URL.to_owned()),
    };
    let host = uri
        .host()
        .ok_or(BAD_URL)?
        .trim_matches(['[', ']'])
        .to_owned();
    if host.is_empty() {
        return Err(BAD_URL.to_owned());
    }
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    Ok((uri, https, host, port))
}

/// A TLS connector on aws-lc-rs trusting the system's roots, and the
/// pool partition of those roots.
fn connector() -> Result<(tokio_rustls::TlsConnector, String), String> {
    let native = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        return Err("no system root certificates found".to_owned());
    }
    tls_connector(roots)
}

/// A TLS client connector on aws-lc-rs (safe default protocol versions, no
/// client certificate) trusting exactly `roots`, and the
/// [`ConnectionPool`] partition of those roots
/// ([`tls_partition`](kailash_core::outbound::tls_partition)).
pub fn tls_connector(
    roots: rustls::RootCertStore,
) -> Result<(tokio_rustls::TlsConnector, String), String> {
    let partition = kailash_core::outbound::tls_partition(roots.roots.iter().flat_map(|a| {
        [
            a.subject.as_ref(),
            a.subject_public_key_info.as_ref(),
            a.name_constraints.as_ref().map_or(&[][..], |n| n.as_ref()),
        ]
    }));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((
        tokio_rustls::TlsConnector::from(Arc::new(config)),
        partition,
    ))
}

impl Target {
    /// Checks `url`; each request is bounded by `timeout` (connect,
    /// handshake, answer). Connections come from a pool of the target's
    /// own until [`with_pool`](Self::with_pool) gives it a shared one.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let (uri, https, host, port) = parse(url)?;
        let host_header = match uri.port_u16() {
            Some(p) => format!("{}:{p}", uri.host().unwrap_or_default()),
            None => uri.host().unwrap_or_default().to_owned(),
        };
        let host_header = HeaderValue::from_str(&host_header).map_err(|_| BAD_URL.to_owned())?;
        let (tls, partition) = if https {
            let (tls, partition) = connector()?;
            (Some(tls), partition)
        } else {
            (None, "plain".to_owned())
        };
        Ok(Self {
            key: PoolKey::new(https, host.clone(), port).partition(partition),
            uri,
            host,
            host_header,
            port,
            tls,
            pool: ConnectionPool::new(
                kailash_core::outbound::PoolConfig::default().max_connections(4),
            ),
            timeout,
        })
    }

    /// The same target drawing its connections from `pool` (a gateway's
    /// one pool for all its outbound calls).
    #[must_use]
    pub fn with_pool(mut self, pool: &ConnectionPool) -> Self {
        self.pool = pool.clone();
        self
    }

    /// The host called.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `GET` the URL; the answer's status (the body is not read).
    pub async fn get_status(&self, user_agent: &'static str) -> Result<u16, SendError> {
        let request = Request::get(self.path())
            .header(header::USER_AGENT, user_agent)
            .body(Bytes::new())
            .map_err(|_| fail("invalid request", false))?;
        self.send(request, false).await.map(|r| r.status().as_u16())
    }

    /// `POST` `body` as JSON; the answer's status.
    pub async fn post_json(
        &self,
        body: Vec<u8>,
        user_agent: &'static str,
    ) -> Result<u16, SendError> {
        let request = Request::post(self.path())
            .header(header::USER_AGENT, user_agent)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Bytes::from(body))
            .map_err(|_| fail("invalid request", false))?;
        self.send(request, false).await.map(|r| r.status().as_u16())
    }

    /// Sends `request` (its URI's path and query are kept; the host is
    /// this target's) within the timeout; with `read_body`, the answer's
    /// body up to [`MAX_ANSWER_BYTES`].
    pub async fn send(
        &self,
        request: Request<Bytes>,
        read_body: bool,
    ) -> Result<Response<Bytes>, SendError> {
        match tokio::time::timeout(self.timeout, self.exchange(request, read_body)).await {
            Ok(result) => result,
            Err(_) => Err(fail(
                format!("timed out after {} ms", self.timeout.as_millis()),
                true,
            )),
        }
    }

    fn path(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }

    async fn exchange(
        &self,
        request: Request<Bytes>,
        read_body: bool,
    ) -> Result<Response<Bytes>, SendError> {
        let (mut parts, body) = request.into_parts();
        // Origin-form on a connection to the target's host.
        parts.uri = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|_| fail("invalid path", false))?;
        parts.headers.insert(header::HOST, self.host_header.clone());
        // The current trace continues at the receiver (W3C traceparent).
        kailash_core::trace_context::inject(&mut parts.headers);
        let method = parts.method.clone();
        let connect = || async move {
            let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| format!("connect: {}", e.kind()))?;
            match &self.tls {
                Some(connector) => {
                    let name = ServerName::try_from(self.host.clone())
                        .map_err(|_| "invalid host name".to_owned())?;
                    let tls = connector
                        .connect(name, tcp)
                        .await
                        .map_err(|e| format!("TLS: {}", e.kind()))?;
                    Ok(Either::Right(tls))
                }
                None => Ok(Either::Left(tcp)),
            }
        };
        let (response, connection) = self
            .pool
            .send(&self.key, connect, Request::from_parts(parts, body))
            .await
            .map_err(|e| match e {
                kailash_core::outbound::PoolError::Connect(m) => fail(m, true),
                _ => fail("no HTTP response", true),
            })?;
        let (parts, body) = response.into_parts();
        if !read_body || method == Method::HEAD {
            // The status is the answer, returned now: a slow body must not
            // turn a delivered webhook into a retry. The body is drained
            // apart (bounded in size and time) so the connection can be
            // reused; one that does not end in time is closed.
            let budget = self.timeout;
            tokio::spawn(async move {
                let drained =
                    tokio::time::timeout(budget, Limited::new(body, MAX_ANSWER_BYTES).collect());
                if let Ok(Ok(_)) = drained.await {
                    connection.release();
                }
            });
            return Ok(Response::from_parts(parts, Bytes::new()));
        }
        match Limited::new(body, MAX_ANSWER_BYTES).collect().await {
            Ok(body) => {
                connection.release();
                Ok(Response::from_parts(parts, body.to_bytes()))
            }
            // Over the bound or cut off: what arrived is not kept.
            Err(_) => Ok(Response::from_parts(parts, Bytes::new())),
        }
    }
}
