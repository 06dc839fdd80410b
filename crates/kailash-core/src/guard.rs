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
//! A guard whose decision must be audited answers only once the audit
//! event is accepted ([`crate::audit::offer`]): a refusal with
//! [`GuardFuture::refused_after`], a pass with [`AuditGated::call_after`],
//! which calls the inner service only after the event was written. Both
//! wait on an unboxed [`AuditTicket`] and answer `503` when the sink
//! refuses the event.
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

use crate::audit::{AuditTicket, Offer};
use crate::problem::{Problem, ResponseBody};

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
        Audited { ticket: AuditTicket, problem: Option<Problem> },
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

    /// The guard refused the request with `problem`, and answers once the
    /// audit event of the refusal (`offer`) is accepted — or with `503`
    /// if the sink refuses it. Boxes only when the sink is full.
    pub fn refused_after(offer: Offer, problem: Problem) -> Self
    where
        B: 'static,
        E: 'static,
    {
        match offer {
            Offer::Done(Ok(())) => Self::refused(problem.to_response()),
            Offer::Done(Err(error)) => Self::refused(error.problem().to_response()),
            Offer::Ticket(ticket) => Self {
                kind: Kind::Audited {
                    ticket,
                    problem: Some(problem),
                },
            },
            Offer::Wait(pending) => Self::deferred(Box::pin(async move {
                Ok(match pending.record().await {
                    Ok(()) => GuardRefusal::response(&problem),
                    Err(error) => GuardRefusal::response(&error.problem()),
                })
            })),
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
            KindProj::Audited { ticket, problem } => {
                let result = std::task::ready!(Pin::new(ticket).poll(cx));
                match problem.take() {
                    Some(problem) => Poll::Ready(Ok(GuardRefusal::response(&match result {
                        Ok(()) => problem,
                        Err(error) => error.problem(),
                    }))),
                    None => Poll::Pending,
                }
            }
            KindProj::Deferred { fut } => fut.as_mut().poll(cx),
        }
    }
}

pin_project! {
    /// The response future of a guard that lets a request through only
    /// once its audit event is accepted: waits on the [`AuditTicket`]
    /// (unboxed), then calls the inner service — so an action never runs
    /// without its audit entry — or answers `503` if the event was refused.
    /// Otherwise it is a [`GuardFuture`].
    pub struct AuditGated<S, R, F, B, E> {
        #[pin]
        state: Gate<S, R, F, B, E>,
    }
}

pin_project! {
    #[project = GateProj]
    enum Gate<S, R, F, B, E> {
        Waiting { ticket: AuditTicket, call: Option<(S, R)> },
        Guard { #[pin] fut: GuardFuture<F, B, E> },
    }
}

impl<S, R, F, B, E> AuditGated<S, R, F, B, E> {
    /// Any [`GuardFuture`] (no audit wait in front of it).
    pub fn guard(fut: GuardFuture<F, B, E>) -> Self {
        Self {
            state: Gate::Guard { fut },
        }
    }

    /// Calls `service` (ready: the one `poll_ready` was called on) with
    /// `request` once `ticket` completes with acceptance.
    pub fn call_after(ticket: AuditTicket, service: S, request: R) -> Self {
        Self {
            state: Gate::Waiting {
                ticket,
                call: Some((service, request)),
            },
        }
    }

    /// Whether it waits on an audit ticket (or boxed), for tests of the fast path.
    pub fn is_waiting(&self) -> bool {
        matches!(self.state, Gate::Waiting { .. })
    }

    /// The inner [`GuardFuture`] when not waiting on a ticket.
    pub fn as_guard(&self) -> Option<&GuardFuture<F, B, E>> {
        match &self.state {
            Gate::Guard { fut } => Some(fut),
            Gate::Waiting { .. } => None,
        }
    }
}

impl<S, R, F, B, E> Future for AuditGated<S, R, F, B, E>
where
    S: tower::Service<R, Future = F, Response = Response<B>, Error = E>,
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                GateProj::Guard { fut } => return fut.poll(cx),
                GateProj::Waiting { ticket, call } => {
                    let result = std::task::ready!(Pin::new(ticket).poll(cx));
                    match (result, call.take()) {
                        (Ok(()), Some((mut service, request))) => {
                            GuardFuture::pass(service.call(request))
                        }
                        (Err(error), _) => GuardFuture::refused(error.problem().to_response()),
                        // Polled after completion: a caller bug; never complete twice.
                        (Ok(()), None) => return Poll::Pending,
                    }
                }
            };
            self.as_mut().project().state.set(Gate::Guard { fut: next });
        }
    }
}
