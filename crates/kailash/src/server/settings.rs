//! What the server needs from the builder: the composed stack as one
//! handler, and the connection-level settings.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;

/// The composed stack, type-erased once: one allocation per request.
pub(crate) type Handler = Arc<
    dyn Fn(http::Request<axum::body::Body>) -> Pin<Box<dyn Future<Output = Response> + Send>>
        + Send
        + Sync,
>;

/// Connection-level settings of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerSettings {
    pub(crate) listen: SocketAddr,
    pub(crate) max_connections: usize,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_headers: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) shutdown_grace: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        let c = crate::config::ServerConfig::default();
        Self {
            listen: c.listen,
            max_connections: c.max_connections,
            max_header_bytes: c.max_header_bytes,
            max_headers: c.max_headers,
            header_read_timeout: c.header_read_timeout.0,
            shutdown_grace: c.shutdown_grace.0,
        }
    }
}
