use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Response};
use pin_project_lite::pin_project;

use super::REQUEST_ID_HEADER;

pin_project! {
    /// The response future of [`SetRequestContext`](super::SetRequestContext).
    pub struct ResponseFuture<F> {
        #[pin]
        pub(super) inner: F,
        pub(super) request_id: Option<HeaderValue>,
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(id) = this.request_id.take() {
            response.headers_mut().insert(REQUEST_ID_HEADER, id);
        }
        Poll::Ready(Ok(response))
    }
}
