//! A small HTTP/1.1 client for webhook channels: one POST per delivery,
//! plain `http://` or `https://` (rustls with aws-lc-rs and the system's
//! roots), bounded by a timeout. The URL never appears in errors (a
//! webhook URL is a secret).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};

use super::channel::DeliveryError;

/// Where a webhook channel posts.
#[derive(Clone)]
pub(crate) struct Target {
    uri: Uri,
    host: String,
    /// The `Host` header: host and explicit port, never userinfo.
    host_header: String,
    port: u16,
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Duration,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The host only: the path and query carry the secret.
        f.debug_struct("Target")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// Why a webhook URL was refused (the URL is not repeated).
pub(crate) const BAD_URL: &str = "not an absolute http(s) URL with a host";

impl Target {
    pub(crate) fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        if url.len() > 2048 {
            return Err("the URL is longer than 2048 bytes".to_owned());
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
        let host_header = match uri.port_u16() {
            Some(p) => format!("{}:{p}", uri.host().unwrap_or_default()),
            None => uri.host().unwrap_or_default().to_owned(),
        };
        let tls = if https {
            let native = rustls_native_certs::load_native_certs();
            let mut roots = rustls::RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                return Err("no system root certificates found".to_owned());
            }
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Self {
            uri,
            host,
            host_header,
            port,
            tls,
            timeout,
        })
    }

    /// POSTs `body` as JSON; `Ok` on 2xx. 5xx, 429 and transport failures
    /// are worth a retry; other statuses are not.
    pub(crate) async fn post_json(&self, body: Vec<u8>) -> Result<(), DeliveryError> {
        let status = match tokio::time::timeout(self.timeout, self.post(body)).await {
            Err(_) => {
                return Err(DeliveryError::Retry(format!(
                    "no answer within {} ms",
                    self.timeout.as_millis()
                )));
            }
            Ok(result) => result?,
        };
        match status {
            200..=299 => Ok(()),
            429 | 500..=599 => Err(DeliveryError::Retry(format!("HTTP status {status}"))),
            _ => Err(DeliveryError::Permanent(format!("HTTP status {status}"))),
        }
    }

    async fn post(&self, body: Vec<u8>) -> Result<u16, DeliveryError> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| DeliveryError::Retry(format!("connect: {}", e.kind())))?;
        match &self.tls {
            Some(connector) => {
                let name = ServerName::try_from(self.host.clone())
                    .map_err(|_| DeliveryError::Permanent("invalid host name".to_owned()))?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| DeliveryError::Retry(format!("TLS: {}", e.kind())))?;
                self.request(tls, body).await
            }
            None => self.request(tcp, body).await,
        }
    }

    async fn request<S>(&self, io: S, body: Vec<u8>) -> Result<u16, DeliveryError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|_| DeliveryError::Retry("HTTP handshake failed".to_owned()))?;
        let driver = tokio::spawn(conn);
        let path = self.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut request = Request::post(path)
            .header(header::HOST, self.host_header.as_str())
            .header(header::USER_AGENT, "kailash-alerting")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| DeliveryError::Permanent("invalid request".to_owned()))?;
        kailash_core::trace_context::inject(request.headers_mut());
        let result = sender
            .send_request(request)
            .await
            .map(|r| r.status().as_u16())
            .map_err(|_| DeliveryError::Retry("no HTTP response".to_owned()));
        // The body is not read: the status says enough.
        driver.abort();
        result
    }
}
