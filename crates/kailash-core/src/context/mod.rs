//! Per-request context: a request id, the client's real IP address and
//! whether the request reached the service over TLS.
//!
//! [`SetRequestContextLayer`] runs first in a stack. It gives every request a
//! [`RequestContext`] in its extensions — a request id (generated, or taken
//! from a trusted proxy's `X-Request-Id`) and the client IP resolved by a
//! [`TrustedProxies`] policy — and echoes the id in the response's
//! `X-Request-Id` header. Later layers (rate limiting, audit, tracing) read
//! the context instead of re-parsing headers.
//!
//! Why a policy: `X-Forwarded-For` is written by whoever sends the request.
//! Only hops appended by proxies you run can be believed, so the client is
//! the rightmost address that is *not* one of your proxies; when the peer
//! itself is not a trusted proxy, the header is ignored and the peer is the
//! client. Trusting the leftmost entry, as many libraries do, lets any client
//! pick its own rate-limit key.
//!
//! ```
//! use std::net::SocketAddr;
//! use http::{Request, Response};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use kailash_core::context::{PeerAddr, RequestContext, SetRequestContextLayer, TrustedProxies};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let proxies = TrustedProxies::new(["10.0.0.0/8".parse().unwrap()]);
//! let mut svc = ServiceBuilder::new()
//!     .layer(SetRequestContextLayer::new().trusted_proxies(proxies))
//!     .service_fn(|req: Request<()>| async move {
//!         let ctx = req.extensions().get::<RequestContext>().unwrap();
//!         Ok::<_, std::convert::Infallible>(Response::new(ctx.client_ip().to_string()))
//!     });
//!
//! let mut req = Request::new(());
//! req.extensions_mut().insert(PeerAddr("10.1.2.3:4567".parse::<SocketAddr>().unwrap()));
//! req.headers_mut().insert("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.2".parse().unwrap());
//! let res = svc.ready().await.unwrap().call(req).await.unwrap();
//! // 10.0.0.2 is our proxy; 203.0.113.9 is the first hop we did not add.
//! assert_eq!(res.body(), "203.0.113.9");
//! assert!(res.headers().contains_key("x-request-id"));
//! # });
//! ```

mod config;
mod future;
mod layer;
mod proxy;
mod request_id;
mod service;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use jiff::Timestamp;

pub use config::IncomingRequestId;
pub use future::ResponseFuture;
pub use layer::SetRequestContextLayer;
pub(crate) use proxy::forwarded_https;
pub use proxy::{ClientNet, InvalidPrefix, IpPrefixes, TrustedProxies};
pub use request_id::{REQUEST_ID_HEADER, RequestId, RequestIdGenerator};
pub use service::SetRequestContext;

/// The address of the TCP peer, inserted into request extensions by the
/// server (kailash's own server does; with axum, `ConnectInfo<SocketAddr>` is
/// read too when the `axum` feature is on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// Inserted by a server into the extensions of each request it read from a
/// TLS connection (kailash's own server does). With another server, insert
/// it yourself on the TLS listener; without it a request counts as secure
/// only when a trusted proxy says so (`X-Forwarded-Proto: https`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsConnection;

/// What [`SetRequestContextLayer`] knows about a request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    request_id: RequestId,
    client_ip: IpAddr,
    received_at: Timestamp,
    secure: bool,
}

impl RequestContext {
    /// A context (normally built by the layer; public for tests and custom stacks).
    pub fn new(request_id: RequestId, client_ip: IpAddr, received_at: Timestamp) -> Self {
        Self::build(request_id, client_ip, received_at, false)
    }

    pub(crate) fn build(
        request_id: RequestId,
        client_ip: IpAddr,
        received_at: Timestamp,
        secure: bool,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                request_id,
                client_ip,
                received_at,
                secure,
            }),
        }
    }

    /// This context, for a request that arrived over HTTPS (`secure`) or not.
    #[must_use]
    pub fn with_secure(self, secure: bool) -> Self {
        let inner = &*self.inner;
        Self::build(
            inner.request_id.clone(),
            inner.client_ip,
            inner.received_at,
            secure,
        )
    }

    /// Whether the request arrived over HTTPS: on a TLS connection
    /// ([`TlsConnection`]), or from a trusted proxy whose last
    /// `X-Forwarded-Proto` value is `https`.
    pub fn is_secure(&self) -> bool {
        self.inner.secure
    }

    /// The request id.
    pub fn request_id(&self) -> &RequestId {
        &self.inner.request_id
    }

    /// The client's IP address as resolved by the trusted-proxy policy.
    pub fn client_ip(&self) -> IpAddr {
        self.inner.client_ip
    }

    /// When the request was received.
    pub fn received_at(&self) -> Timestamp {
        self.inner.received_at
    }
}
