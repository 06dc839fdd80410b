use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::Service;

use super::config::{Config, IncomingRequestId};
use super::future::ResponseFuture;
use super::{
    PeerAddr, REQUEST_ID_HEADER, RequestContext, RequestId, TlsConnection, forwarded_https,
};

/// The service of [`SetRequestContextLayer`](super::SetRequestContextLayer).
#[derive(Debug, Clone)]
pub struct SetRequestContext<S> {
    pub(super) inner: S,
    pub(super) config: Arc<Config>,
}

impl<S> SetRequestContext<S> {
    crate::inner_service_accessors!();
}

fn peer_ip<B>(req: &Request<B>) -> Option<IpAddr> {
    if let Some(PeerAddr(addr)) = req.extensions().get::<PeerAddr>() {
        return Some(addr.ip());
    }
    #[cfg(feature = "axum")]
    if let Some(info) = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
    {
        return Some(info.0.ip());
    }
    None
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SetRequestContext<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        // Without a peer address (a misconfigured server) every request shares
        // the unspecified address: limits stay in force rather than vanish.
        let peer = peer_ip(&req).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let trusted_peer = config.proxies.is_trusted(peer);
        let client_ip = config.proxies.client_ip(peer, req.headers());
        let keep_incoming = match config.incoming {
            IncomingRequestId::Never => false,
            IncomingRequestId::FromTrustedProxies => trusted_peer,
            IncomingRequestId::Always => true,
        };
        let request_id = keep_incoming
            .then(|| {
                req.headers()
                    .get(REQUEST_ID_HEADER)
                    .and_then(RequestId::parse)
            })
            .flatten()
            .unwrap_or_else(|| config.ids.next_id());
        let header = request_id.header_value().clone();
        // TLS here, or (behind a proxy that terminates it) the proxy says so.
        let secure = req.extensions().get::<TlsConnection>().is_some()
            || (trusted_peer && forwarded_https(req.headers()));
        let ctx = RequestContext::build(request_id, client_ip, config.clock.now(), secure);
        req.extensions_mut().insert(ctx);
        ResponseFuture {
            inner: self.inner.call(req),
            request_id: Some(header),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tower::{Layer, ServiceExt, service_fn};

    use super::*;
    use crate::context::{SetRequestContextLayer, TrustedProxies};

    async fn call(
        layer: SetRequestContextLayer,
        peer: &str,
        incoming: Option<&str>,
    ) -> (String, String) {
        let svc = layer.layer(service_fn(|req: Request<()>| async move {
            let ctx = req.extensions().get::<RequestContext>().cloned().unwrap();
            Ok::<_, std::convert::Infallible>(Response::new(ctx.request_id().to_string()))
        }));
        let mut req = Request::new(());
        req.extensions_mut()
            .insert(PeerAddr(peer.parse::<SocketAddr>().unwrap()));
        if let Some(id) = incoming {
            req.headers_mut()
                .insert(REQUEST_ID_HEADER, id.parse().unwrap());
        }
        let res = svc.oneshot(req).await.unwrap();
        let header = res.headers()[REQUEST_ID_HEADER]
            .to_str()
            .unwrap()
            .to_owned();
        (res.into_body(), header)
    }

    #[tokio::test]
    async fn incoming_ids_are_kept_only_from_trusted_proxies() {
        let layer = SetRequestContextLayer::new()
            .trusted_proxies(TrustedProxies::new(["10.0.0.0/8".parse().unwrap()]));
        let (seen, echoed) = call(layer.clone(), "10.0.0.1:1", Some("lb-123")).await;
        assert_eq!((seen.as_str(), echoed.as_str()), ("lb-123", "lb-123"));
        let (seen, echoed) = call(layer.clone(), "192.0.2.1:1", Some("spoofed")).await;
        assert_ne!(seen, "spoofed");
        assert_eq!(seen, echoed);
        let (seen, _) = call(layer, "10.0.0.1:1", Some("bad id with spaces")).await;
        assert_ne!(seen, "bad id with spaces");
    }

    #[tokio::test]
    async fn policy_always_and_never() {
        let always = SetRequestContextLayer::new().incoming_request_id(IncomingRequestId::Always);
        assert_eq!(call(always, "192.0.2.1:1", Some("abc")).await.0, "abc");
        let never = SetRequestContextLayer::new()
            .trusted_proxies(TrustedProxies::new(["10.0.0.0/8".parse().unwrap()]))
            .incoming_request_id(IncomingRequestId::Never);
        assert_ne!(call(never, "10.0.0.1:1", Some("abc")).await.0, "abc");
    }

    #[tokio::test]
    async fn secure_means_tls_or_a_trusted_proxys_last_word() {
        async fn secure(peer: &str, tls: bool, protos: &[&str]) -> bool {
            let layer = SetRequestContextLayer::new()
                .trusted_proxies(TrustedProxies::new(["10.0.0.0/8".parse().unwrap()]));
            let svc = layer.layer(service_fn(|req: Request<()>| async move {
                let ctx = req.extensions().get::<RequestContext>().cloned().unwrap();
                Ok::<_, std::convert::Infallible>(Response::new(ctx.is_secure()))
            }));
            let mut req = Request::new(());
            req.extensions_mut()
                .insert(PeerAddr(peer.parse::<SocketAddr>().unwrap()));
            if tls {
                req.extensions_mut().insert(super::super::TlsConnection);
            }
            for proto in protos {
                req.headers_mut()
                    .append("x-forwarded-proto", proto.parse().unwrap());
            }
            svc.oneshot(req).await.unwrap().into_body()
        }
        assert!(secure("192.0.2.1:1", true, &[]).await);
        assert!(!secure("192.0.2.1:1", false, &[]).await);
        // Only a trusted proxy is believed, and only its own (last) value.
        assert!(!secure("192.0.2.1:1", false, &["https"]).await);
        assert!(secure("10.0.0.1:1", false, &["https"]).await);
        assert!(secure("10.0.0.1:1", false, &["http, HTTPS"]).await);
        assert!(!secure("10.0.0.1:1", false, &["https, http"]).await);
        assert!(!secure("10.0.0.1:1", false, &["https", "http"]).await);
        assert!(!secure("10.0.0.1:1", false, &["httpsx"]).await);
    }
}
