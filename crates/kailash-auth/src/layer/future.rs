use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use kailash_core::problem::ResponseBody;
use pin_project_lite::pin_project;

pub(super) type BoxedResponse<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

pin_project! {
    /// The response future of [`JwtAuth`](super::JwtAuth).
    pub struct JwtAuthFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        // Authenticated (or public) in process; the inner call runs.
        Pass { #[pin] inner: F },
        // Refused in process, nothing to record.
        Refused { response: Option<Response<ResponseBody<B>>> },
        // Verification, session check or audit needed awaiting.
        Slow { fut: BoxedResponse<B, E> },
    }
}

impl<F, B, E> JwtAuthFuture<F, B, E> {
    pub(super) fn pass(inner: F) -> Self {
        Self {
            kind: Kind::Pass { inner },
        }
    }
    pub(super) fn refused(response: Response<ResponseBody<B>>) -> Self {
        Self {
            kind: Kind::Refused {
                response: Some(response),
            },
        }
    }
    #[cfg(test)]
    pub(super) fn kind_name(&self) -> &'static str {
        match &self.kind {
            Kind::Pass { .. } => "pass",
            Kind::Refused { .. } => "refused",
            Kind::Slow { .. } => "slow",
        }
    }
    pub(super) fn slow(fut: BoxedResponse<B, E>) -> Self {
        Self {
            kind: Kind::Slow { fut },
        }
    }
}

impl<F, B, E> Future for JwtAuthFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Pass { inner } => inner.poll(cx).map_ok(|r| r.map(ResponseBody::new)),
            KindProj::Refused { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                // Polled after completion: a caller bug; never complete twice.
                None => Poll::Pending,
            },
            KindProj::Slow { fut } => fut.as_mut().poll(cx),
        }
    }
}
