//! What the server needs from the builder: the composed stack as one
//! handler, and the connection-level settings.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use kailash_core::context::TrustedProxies;

use crate::GatewayError;

/// The composed stack, type-erased once: one allocation per request.
pub(crate) type Handler = Arc<
    dyn Fn(http::Request<axum::body::Body>) -> Pin<Box<dyn Future<Output = Response> + Send>>
        + Send
        + Sync,
>;

/// Connection-level settings of the server.
#[derive(Debug, Clone)]
pub(crate) struct ServerSettings {
    pub(crate) listen: SocketAddr,
    pub(crate) max_connections: usize,
    /// Most connections from one peer address (IPv6: one /64) at once;
    /// trusted proxies are exempt.
    pub(crate) max_connections_per_ip: usize,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_headers: usize,
    /// From accept to the first request head (TLS handshake included), and
    /// from the first byte of every later head to its end.
    pub(crate) header_read_timeout: Duration,
    /// How long a connection with no request in flight stays open.
    pub(crate) idle_timeout: Duration,
    pub(crate) http2_keepalive_interval: Duration,
    pub(crate) http2_keepalive_timeout: Duration,
    pub(crate) shutdown_grace: Duration,
    /// Peers exempt from `max_connections_per_ip` (everyone behind a load
    /// balancer shares its address).
    pub(crate) trusted_proxies: TrustedProxies,
}

impl Default for ServerSettings {
    fn default() -> Self {
        let c = crate::config::ServerConfig::default();
        Self {
            listen: c.listen,
            max_connections: c.max_connections,
            max_connections_per_ip: c.max_connections_per_ip,
            max_header_bytes: c.max_header_bytes,
            max_headers: c.max_headers,
            header_read_timeout: c.header_read_timeout.0,
            idle_timeout: c.idle_timeout.0,
            http2_keepalive_interval: c.http2_keepalive_interval.0,
            http2_keepalive_timeout: c.http2_keepalive_timeout.0,
            shutdown_grace: c.shutdown_grace.0,
            trusted_proxies: TrustedProxies::none(),
        }
    }
}

impl ServerSettings {
    /// Refuses settings the server cannot honour.
    pub(crate) fn check(&self) -> Result<(), GatewayError> {
        if self.max_connections_per_ip == 0 {
            return Err(GatewayError::Limit(
                "max_connections_per_ip must be at least 1",
            ));
        }
        if self.idle_timeout.is_zero()
            || self.http2_keepalive_interval.is_zero()
            || self.http2_keepalive_timeout.is_zero()
        {
            return Err(GatewayError::Limit("timeouts must be positive"));
        }
        Ok(())
    }
}
