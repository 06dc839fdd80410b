use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower::Service;

use super::registry::{RouteSeries, UNMATCHED, method_index};
use super::{MetricsRegistry, RouteTemplate};

/// The service of [`MetricsLayer`](super::MetricsLayer).
#[derive(Debug, Clone)]
pub struct Metrics<S> {
    pub(super) inner: S,
    pub(super) registry: MetricsRegistry,
}

impl<S> Metrics<S> {
    kailash_core::inner_service_accessors!();
}

fn template<B>(req: &Request<B>) -> Option<&str> {
    #[cfg(feature = "axum")]
    if let Some(path) = req.extensions().get::<axum::extract::MatchedPath>() {
        return Some(path.as_str());
    }
    req.extensions().get::<RouteTemplate>().map(|t| &*t.0)
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Metrics<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let route = self.registry.lookup(template(&req).unwrap_or(UNMATCHED));
        let method = method_index(req.method());
        self.registry.in_flight().increment(1.0);
        ResponseFuture {
            inner: self.inner.call(req),
            guard: InFlight {
                registry: self.registry.clone(),
                route,
                method,
                start: Instant::now(),
                status: None,
            },
        }
    }
}

/// Decrements the in-flight gauge and records the request when dropped, so a
/// cancelled request (client went away, timeout) is still accounted for.
struct InFlight {
    registry: MetricsRegistry,
    route: Arc<RouteSeries>,
    method: usize,
    start: Instant,
    status: Option<u16>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.registry.in_flight().decrement(1.0);
        // A dropped future never produced a response: count it as 499-like
        // client-closed, which Prometheus users see under 4xx.
        let status = self.status.unwrap_or(499);
        self.registry
            .record_into(&self.route, self.method, status, self.start.elapsed());
    }
}

pin_project! {
    /// The response future of [`Metrics`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        guard: InFlight,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        this.guard.status = Some(match &result {
            Ok(response) => response.status().as_u16(),
            Err(_) => 500,
        });
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::StatusCode;
    use tower::ServiceExt;

    use crate::metrics::{MetricsLayer, MetricsRegistry};

    #[tokio::test]
    async fn labels_use_the_route_template_never_the_raw_path() {
        let registry = MetricsRegistry::new();
        let app = Router::new()
            .route("/items/{id}", get(|| async { "x" }))
            .fallback(|| async { StatusCode::NOT_FOUND })
            .layer(MetricsLayer::new(registry.clone()));
        for uri in ["/items/1", "/items/secret-user-42", "/nope/7"] {
            let req = http::Request::get(uri).body(Body::empty()).unwrap();
            app.clone().oneshot(req).await.unwrap();
        }
        let text = registry.render();
        assert!(
            text.contains(
                "http_requests_total{method=\"GET\",route=\"/items/{id}\",status=\"2xx\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "http_requests_total{method=\"GET\",route=\"unmatched\",status=\"4xx\"} 1"
            ),
            "{text}"
        );
        assert!(!text.contains("secret-user-42") && !text.contains("/nope/7"));
        assert!(text.contains("http_requests_in_flight 0"));
    }
}
