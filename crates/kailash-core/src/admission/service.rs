use std::task::{Context, Poll};

use http::{Request, Response};

use crate::audit::Offer;
use crate::guard::{Deferred, GuardFuture, GuardRefusal};
use crate::problem::ResponseBody;
use crate::state::{Outcome, SharedState};

use super::owner::{AdmissionRefused, AfterAdmit, PendingAdmission, Refusal, RequestView};

/// The service of [`AdmitLayer`](super::AdmitLayer).
#[derive(Clone, Debug)]
pub struct Admit<S> {
    pub(super) inner: S,
    pub(super) state: SharedState,
}

impl<S> Admit<S> {
    crate::inner_service_accessors!();
}

/// The response future of [`Admit`]: unboxed when the backend decided in
/// process and nothing is left to await.
pub type ResponseFuture<F, B, E> = GuardFuture<F, B, E>;

/// What a run plan means for the request.
enum Verdict {
    Pass,
    Refuse(Box<Refusal>),
    /// Await `later`, then continue the `admitted` calls after check `next`.
    Later(
        std::pin::Pin<Box<dyn Future<Output = Option<Refusal>> + Send>>,
        usize,
    ),
}

fn view<B>(req: &Request<B>) -> RequestView<'_> {
    RequestView {
        uri: req.uri(),
        extensions: req.extensions(),
    }
}

/// The first owner's refusal of a check that did not pass, else the
/// `admitted` calls from check `from` on.
fn verdict(pending: &PendingAdmission, request: RequestView<'_>, from: usize) -> Verdict {
    let plan = &pending.plan;
    if from == 0 {
        // A backend failure stops the plan; every check it left unrun is
        // answered as failed too, so each owner applies its own fail mode
        // (a rate limit may fail open, a session check never does).
        let mut failure: Option<Outcome> = None;
        for (i, owner) in pending.owners[..plan.len()].iter().enumerate() {
            let (Some(check), Some(owner)) = (plan.check(i), owner) else {
                continue;
            };
            let outcome = match (plan.outcome(i), &failure) {
                (Outcome::NotRun, Some(failed)) => failed,
                (Outcome::NotRun, None) => continue,
                (outcome, _) if outcome.passed() => continue,
                (outcome, _) => outcome,
            };
            if let Some(refusal) = owner.refuse(check, outcome, request) {
                return Verdict::Refuse(Box::new(refusal));
            }
            if failure.is_none() && matches!(outcome, Outcome::Failed(_)) {
                failure = Some(outcome.clone());
            }
        }
    }
    for (i, owner) in pending.owners[..plan.len()].iter().enumerate().skip(from) {
        let (Some(check), Some(owner)) = (plan.check(i), owner) else {
            continue;
        };
        let outcome = plan.outcome(i);
        if !outcome.passed() {
            continue;
        }
        match owner.admitted(check, outcome, request) {
            AfterAdmit::Pass => {}
            AfterAdmit::Refuse(refusal) => return Verdict::Refuse(refusal),
            AfterAdmit::Later(fut) => return Verdict::Later(fut, i + 1),
        }
    }
    Verdict::Pass
}

fn refusal_response<B>(problem: &crate::problem::Problem) -> Response<ResponseBody<B>> {
    let mut response = GuardRefusal::response(problem);
    response.extensions_mut().insert(AdmissionRefused);
    response
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for Admit<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let Some(mut pending) = req.extensions_mut().remove::<PendingAdmission>() else {
            return ResponseFuture::pass(self.inner.call(req));
        };
        // Fast path: the backend decides in process (memory).
        let ran_now = self.state.admit_now(&mut pending.plan);
        let later = if ran_now {
            match verdict(&pending, view(&req), 0) {
                Verdict::Pass => return ResponseFuture::pass(self.inner.call(req)),
                Verdict::Refuse(refusal) if matches!(refusal.audit, Offer::Done(_)) => {
                    let Refusal { problem, audit } = *refusal;
                    let problem = match audit {
                        Offer::Done(Err(error)) => error.problem(),
                        _ => problem,
                    };
                    let mut response = problem.to_response();
                    response.extensions_mut().insert(AdmissionRefused);
                    return ResponseFuture::refused(response);
                }
                Verdict::Refuse(refusal) => {
                    return ResponseFuture::deferred(Box::pin(async move {
                        Ok(refuse(*refusal).await)
                    }));
                }
                Verdict::Later(fut, next) => Some((fut, next)),
            }
        } else {
            None
        };

        let state = self.state.clone();
        // The clone is the not-yet-ready one; keep the ready service for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let fut: Deferred<ResBody, S::Error> = Box::pin(async move {
            let mut later = later;
            if !ran_now {
                state.admit(&mut pending.plan).await;
                match verdict(&pending, view(&req), 0) {
                    Verdict::Pass => {}
                    Verdict::Refuse(refusal) => return Ok(refuse(*refusal).await),
                    Verdict::Later(fut, next) => later = Some((fut, next)),
                }
            }
            while let Some((fut, next)) = later.take() {
                if let Some(refusal) = fut.await {
                    return Ok(refuse(refusal).await);
                }
                match verdict(&pending, view(&req), next.max(1)) {
                    Verdict::Pass => {}
                    Verdict::Refuse(refusal) => return Ok(refuse(*refusal).await),
                    Verdict::Later(fut, next) => later = Some((fut, next)),
                }
            }
            inner.call(req).await.map(|r| r.map(ResponseBody::new))
        });
        ResponseFuture::deferred(fut)
    }
}

/// Answers a refusal once its audit event is settled: a refused event
/// answers 503 instead (nothing unaudited is answered).
async fn refuse<B>(refusal: Refusal) -> Response<ResponseBody<B>> {
    match refusal.audit.settle().await {
        Ok(()) => refusal_response(&refusal.problem),
        Err(error) => refusal_response(&error.problem()),
    }
}
