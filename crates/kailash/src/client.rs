//! The gateway's own outbound calls — identity providers, JWKS endpoints,
//! billing webhooks — over the gateway's shared
//! [`ConnectionPool`](kailash_core::outbound::ConnectionPool): `https://`
//! with rustls on aws-lc-rs (the system's roots plus any configured CA;
//! connections are shared only between clients trusting the same roots),
//! `http://` only to a loopback address, the W3C trace context injected
//! (unless the callee is a third party), the whole exchange under one
//! deadline and the answer bounded in size. Errors name what failed, never
//! the URL (its query can be a secret).

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Limited};
use kailash_core::outbound::{ConnectionPool, Either, PoolKey};
use rustls::pki_types::ServerName;

/// A client: roots, deadline, answer bound, the pool it draws from.
#[derive(Clone)]
pub(crate) struct Client {
    tls: tokio_rustls::TlsConnector,
    /// The partition of its roots in the pool.
    partition: String,
    pool: ConnectionPool,
    timeout: Duration,
    limit: usize,
    trace: bool,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("timeout", &self.timeout)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// The system's root certificates, plus the certificates of `extra_pem`.
pub(crate) fn roots(extra_pem: Option<&[u8]>) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let native = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (mut added, _ignored) = roots.add_parsable_certificates(native.certs);
    if let Some(pem) = extra_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|_| "the CA file is not PEM certificates".to_owned())?;
            roots
                .add(cert)
                .map_err(|e| format!("a CA certificate is unusable: {e}"))?;
            added += 1;
        }
    }
    if added == 0 {
        return Err(format!(
            "no root certificates found ({} errors reading the system's)",
            native.errors.len()
        ));
    }
    Ok(roots)
}

impl Client {
    /// A client trusting `roots`, with a pool of its own until
    /// [`pool`](Self::pool) gives it the gateway's.
    pub(crate) fn with_roots(
        roots: rustls::RootCertStore,
        timeout: Duration,
        limit: usize,
    ) -> Result<Self, String> {
        let (tls, partition) = kailash_monitoring::outbound::tls_connector(roots)?;
        Ok(Self {
            tls,
            partition,
            pool: ConnectionPool::default(),
            timeout,
            limit,
            trace: true,
        })
    }

    /// The same client without the W3C trace context: for calls to third
    /// parties (identity providers) that have no business seeing it.
    #[must_use]
    pub(crate) fn without_trace_context(mut self) -> Self {
        self.trace = false;
        self
    }

    /// The same client drawing its connections from `pool`.
    #[must_use]
    pub(crate) fn pool(mut self, pool: &ConnectionPool) -> Self {
        self.pool = pool.clone();
        self
    }

    /// The same client with another deadline.
    #[must_use]
    pub(crate) fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends `request` (an absolute `https://` URI, or `http://` to a
    /// loopback host) and reads the answer, all within the deadline.
    pub(crate) async fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, String> {
        tokio::time::timeout(self.timeout, self.exchange(request))
            .await
            .map_err(|_| "timed out".to_owned())?
    }

    async fn exchange(&self, request: Request<Bytes>) -> Result<Response<Bytes>, String> {
        let (mut parts, body) = request.into_parts();
        let uri = parts.uri.clone();
        let host = uri
            .host()
            .ok_or("the URL has no host")?
            .trim_matches(['[', ']'])
            .to_owned();
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") if loopback(&host) => false,
            _ => return Err("only https:// (or http:// to loopback) is allowed".into()),
        };
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or(&host);
        let host_header =
            http::HeaderValue::from_str(authority.rsplit('@').next().unwrap_or(authority))
                .map_err(|_| "invalid host")?;
        parts.headers.insert(header::HOST, host_header);
        parts.uri = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|_| "invalid path")?;
        if self.trace {
            kailash_core::trace_context::inject(&mut parts.headers);
        }
        let request = Request::from_parts(parts, body);
        let key = PoolKey::new(tls, host.clone(), port).partition(if tls {
            self.partition.as_str()
        } else {
            "plain"
        });
        let connect = || {
            let host = host.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
                    .await
                    .map_err(|e| format!("connect: {}", e.kind()))?;
                if !tls {
                    return Ok(Either::Left(tcp));
                }
                let name =
                    ServerName::try_from(host).map_err(|_| "invalid host name".to_owned())?;
                let stream = self
                    .tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                Ok(Either::Right(stream))
            }
        };
        let (response, connection) = self
            .pool
            .send(&key, connect, request)
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let limit = self.limit;
        let body = Limited::new(body, limit)
            .collect()
            .await
            .map_err(|_| format!("answer unreadable or over {limit} bytes"))?
            .to_bytes();
        connection.release();
        Ok(Response::from_parts(parts, body))
    }
}

/// Whether `host` is a loopback name or address.
pub(crate) fn loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
