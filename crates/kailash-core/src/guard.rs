//! The response future of a guard layer: one that either passes a request
//! on, refuses it with a problem, or has to await something (a remote state
//! backend, an audit write) before deciding.
//!
//! Rate limiting, authentication, tenancy and access control all have that
//! shape, and all want the common case — decided in process — to cost no
//! allocation. [`GuardFuture`] gives them one implementation: `pass` wraps
//! the inner service's future unboxed, `refused` returns a ready response,
//! and only `deferred` boxes.
//!
//! ```
//! use http::{Response, StatusCode};
//! use kailash_core::guard::GuardFuture;
//! use kailash_core::problem::Problem;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! type Inner = std::future::Ready<Result<Response<String>, std::convert::Infallible>>;
//! let refused: GuardFuture<Inner, String, std::convert::Infallible> =
//!     GuardFuture::refused(Problem::forbidden("no").to_response());
//! assert!(!refused.is_deferred());
//! assert_eq!(refused.await.unwrap().status(), StatusCode::FORBIDDEN);
//! # });
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

use crate::problem::ResponseBody;

/// Marks a response as a guard layer's refusal (in its extensions): the
/// request was answered *instead of* being passed on.
///
/// Outer layers read it to tell a refusal by an inner guard (an access
/// decision, a per-user rate limit) from the application's own answer —
/// a tenancy layer gives back the API-call quota it charged for a request
/// that was then refused. [`GuardFuture::refused`] sets it; a handler that
/// refuses on behalf of a guard (a resource-level access check) sets it
/// with [`GuardRefusal::mark`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardRefusal;

impl GuardRefusal {
    /// Marks `response` as a guard's refusal.
    pub fn mark<B>(response: &mut Response<B>) {
        response.extensions_mut().insert(GuardRefusal);
    }

    /// Whether `response` is a guard's refusal.
    pub fn is_marked<B>(response: &Response<B>) -> bool {
        response.extensions().get::<GuardRefusal>().is_some()
    }

    /// The response of `problem`, marked as a guard's refusal (for guards
    /// that refuse after awaiting, on their deferred path).
    pub fn response<B>(problem: &crate::problem::Problem) -> Response<ResponseBody<B>> {
        let mut response = problem.to_response();
        Self::mark(&mut response);
        response
    }
}

/// A boxed decision-then-call, for guards that must await before deciding.
pub type Deferred<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

pin_project! {
    /// The response future of a guard layer; see the [module docs](self).
    pub struct GuardFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Pass { #[pin] inner: F },
        Refused { response: Option<Response<ResponseBody<B>>> },
        Deferred { fut: Deferred<B, E> },
    }
}

impl<F, B, E> GuardFuture<F, B, E> {
    /// The guard let the request through: run the inner service's future.
    pub fn pass(inner: F) -> Self {
        Self {
            kind: Kind::Pass { inner },
        }
    }

    /// The guard refused the request with this response (marked as a
    /// [`GuardRefusal`]).
    pub fn refused(mut response: Response<ResponseBody<B>>) -> Self {
        GuardRefusal::mark(&mut response);
        Self {
            kind: Kind::Refused {
                response: Some(response),
            },
        }
    }

    /// The guard decides asynchronously (and then calls the inner service).
    pub fn deferred(fut: Deferred<B, E>) -> Self {
        Self {
            kind: Kind::Deferred { fut },
        }
    }

    /// Whether the decision was deferred (boxed); tests use it to check that
    /// a fast path stays allocation-free.
    pub fn is_deferred(&self) -> bool {
        matches!(self.kind, Kind::Deferred { .. })
    }

    /// Whether the request was passed on without awaiting a decision.
    pub fn is_pass(&self) -> bool {
        matches!(self.kind, Kind::Pass { .. })
    }
}

impl<F, B, E> Future for GuardFuture<F, B, E>
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
            KindProj::Deferred { fut } => fut.as_mut().poll(cx),
        }
    }
}
