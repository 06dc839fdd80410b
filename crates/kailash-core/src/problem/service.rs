use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use tower::Service;

use super::{ResponseBody, ResponseFuture};

/// The service of [`ProblemJsonLayer`](super::ProblemJsonLayer).
#[derive(Debug, Clone)]
pub struct ProblemJson<S> {
    inner: S,
}

impl<S> ProblemJson<S> {
    pub(super) fn new(inner: S) -> Self {
        Self { inner }
    }

    crate::inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ProblemJson<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        ResponseFuture::new(self.inner.call(req))
    }
}
