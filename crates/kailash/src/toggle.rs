//! A layer the configuration switches on or off, without re-boxing bodies.
//!
//! `ServiceBuilder::option_layer` needs both arms to answer with the same
//! response type, so a stack of optional body-changing layers (tracing,
//! CORS, compression) used to convert each layer's body back to axum's — a
//! boxed body per layer per request. [`Toggle`] answers with a
//! [`ToggleBody`] instead: the optional layers nest their body types, and
//! the stack converts to axum's body once, at its edge. (Not
//! `http_body_util::Either`: CORS needs a `Default` body for its preflight
//! answers, and a foreign type cannot be given one.)

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

/// `Some(layer)` applies the layer; `None` passes requests straight through.
#[derive(Debug, Clone)]
pub(crate) struct Toggle<L>(pub(crate) Option<L>);

impl<L: Layer<S>, S> Layer<S> for Toggle<L> {
    type Service = Toggled<L::Service, S>;

    fn layer(&self, inner: S) -> Self::Service {
        match &self.0 {
            Some(layer) => Toggled::On {
                service: layer.layer(inner),
            },
            None => Toggled::Off { service: inner },
        }
    }
}

/// The service of [`Toggle`].
#[derive(Debug, Clone)]
pub(crate) enum Toggled<A, B> {
    /// The layer is on.
    On { service: A },
    /// The layer is off.
    Off { service: B },
}

impl<A, B, Req, BodyA, BodyB> Service<Request<Req>> for Toggled<A, B>
where
    A: Service<Request<Req>, Response = Response<BodyA>>,
    B: Service<Request<Req>, Response = Response<BodyB>, Error = A::Error>,
{
    type Response = Response<ToggleBody<BodyA, BodyB>>;
    type Error = A::Error;
    type Future = ToggledFuture<A::Future, B::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Toggled::On { service } => service.poll_ready(cx),
            Toggled::Off { service } => service.poll_ready(cx),
        }
    }

    fn call(&mut self, req: Request<Req>) -> Self::Future {
        match self {
            Toggled::On { service } => ToggledFuture::On {
                future: service.call(req),
            },
            Toggled::Off { service } => ToggledFuture::Off {
                future: service.call(req),
            },
        }
    }
}

pin_project! {
    /// The response future of [`Toggled`].
    #[project = ToggledProj]
    pub(crate) enum ToggledFuture<FA, FB> {
        On { #[pin] future: FA },
        Off { #[pin] future: FB },
    }
}

impl<FA, FB, BodyA, BodyB, E> Future for ToggledFuture<FA, FB>
where
    FA: Future<Output = Result<Response<BodyA>, E>>,
    FB: Future<Output = Result<Response<BodyB>, E>>,
{
    type Output = Result<Response<ToggleBody<BodyA, BodyB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            ToggledProj::On { future } => future
                .poll(cx)
                .map(|r| r.map(|res| res.map(|body| ToggleBody::On { body }))),
            ToggledProj::Off { future } => future
                .poll(cx)
                .map(|r| r.map(|res| res.map(|body| ToggleBody::Off { body }))),
        }
    }
}

pin_project! {
    /// The response body of [`Toggled`]: the layer's body, or the inner one.
    #[project = ToggleBodyProj]
    pub(crate) enum ToggleBody<A, B> {
        On { #[pin] body: A },
        Off { #[pin] body: B },
    }
}

/// An empty answer of the off arm (CORS builds its preflight answers so).
impl<A, B: Default> Default for ToggleBody<A, B> {
    fn default() -> Self {
        ToggleBody::Off { body: B::default() }
    }
}

impl<A, B> Body for ToggleBody<A, B>
where
    A: Body,
    B: Body<Data = A::Data>,
    A::Error: Into<axum::BoxError>,
    B::Error: Into<axum::BoxError>,
{
    type Data = A::Data;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project() {
            ToggleBodyProj::On { body } => body
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(Into::into))),
            ToggleBodyProj::Off { body } => body
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ToggleBody::On { body } => body.is_end_stream(),
            ToggleBody::Off { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ToggleBody::On { body } => body.size_hint(),
            ToggleBody::Off { body } => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use tower::util::MapResponseLayer;
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    use super::*;

    type Mark = fn(Response<Full<Bytes>>) -> Response<Full<Bytes>>;

    fn mark(mut res: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
        res.headers_mut()
            .insert("x-on", http::HeaderValue::from_static("1"));
        res
    }

    async fn call(toggle: Toggle<MapResponseLayer<Mark>>) -> (bool, String) {
        let svc =
            ServiceBuilder::new()
                .layer(toggle)
                .service(service_fn(|_req: Request<()>| async {
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"body",
                    ))))
                }));
        let res = svc.oneshot(Request::new(())).await.unwrap();
        let marked = res.headers().contains_key("x-on");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (marked, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn on_applies_the_layer_and_off_passes_through() {
        let layer = MapResponseLayer::new(mark as Mark);
        assert_eq!(call(Toggle(Some(layer))).await, (true, "body".into()));
        assert_eq!(call(Toggle(None)).await, (false, "body".into()));
    }
}
