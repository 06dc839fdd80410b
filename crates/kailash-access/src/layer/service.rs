use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use kailash_core::audit::{Offer, offer};
use kailash_core::context::RequestContext;
use kailash_core::guard::{AuditGated, Deferred, GuardFuture, GuardRefusal};
use kailash_core::problem::ResponseBody;
use kailash_core::{Principal, Problem};

use crate::control::{AccessControl, audit_event, forbidden};
use crate::permission::Permission;
use crate::policy::Resource;

use super::config::Config;

/// The service of [`RequirePermissionLayer`](super::RequirePermissionLayer).
#[derive(Debug, Clone)]
pub struct RequirePermission<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config>,
}

impl<S> RequirePermission<S> {
    kailash_core::inner_service_accessors!();
}

/// The response future of [`RequirePermission`]: answers once the
/// decision's audit event is written (an unboxed wait on its ticket), then
/// calls the inner service or refuses; `503` when the sink refuses the
/// event. Boxes only when the sink's buffer is full.
pub type ResponseFuture<S, R, F, B, E> = AuditGated<S, R, F, B, E>;

/// Inserted into an allowed request when policies that read `data.*` are
/// still to be checked by the handler against the resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingResourceCheck {
    /// The permission the route required.
    pub permission: Permission,
    /// The policies left to check.
    pub policies: Vec<Arc<str>>,
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for RequirePermission<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, Request<ReqBody>, S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &self.config;
        let access = match &config.access {
            Some(a) => a.clone(),
            None => match req.extensions().get::<AccessControl>() {
                Some(a) => a.clone(),
                None => {
                    tracing::error!(
                        permission = %config.permission,
                        "RequirePermissionLayer has no AccessControl (neither set nor in the request); refusing"
                    );
                    return AuditGated::guard(GuardFuture::refused(
                        Problem::internal().to_response(),
                    ));
                }
            },
        };
        let Some(principal) = req.extensions().get::<Principal>().cloned() else {
            return AuditGated::guard(GuardFuture::refused(
                Problem::unauthorized(None).to_response(),
            ));
        };
        let ctx = req.extensions().get::<RequestContext>();
        let decide = |permission: &Permission| {
            let mut areq = access.request(&principal, permission, ctx);
            if config.defer_resource {
                areq.resource = Resource::Deferred;
            }
            access.decide(&areq)
        };
        let mut decided_by = &config.permission;
        let mut decision = decide(decided_by);
        if !decision.allowed {
            // The first permission's denial stands unless another allows.
            if let Some((p, d)) = config
                .alternatives
                .iter()
                .map(|p| (p, decide(p)))
                .find(|(_, d)| d.allowed)
            {
                decided_by = p;
                decision = d;
            }
        }
        let allowed = decision.allowed;
        if allowed && !decision.pending.is_empty() {
            // The handler still decides: its answer is not the route's to cache.
            req.extensions_mut()
                .insert(kailash_core::cache::Uncacheable);
            req.extensions_mut().insert(PendingResourceCheck {
                permission: decided_by.clone(),
                policies: decision.pending,
            });
        }
        // The rule moves into the audit entry: the request needs only the verdict.
        let ctx = req.extensions().get::<RequestContext>();
        let offered = match access.audit_sink() {
            Some(sink) => offer(
                Some(sink),
                audit_event(&principal, decided_by, None, ctx, allowed, decision.rule),
            ),
            None => Offer::Done(Ok(())),
        };
        match offered {
            Offer::Done(Ok(())) if allowed => {
                AuditGated::guard(GuardFuture::pass(self.inner.call(req)))
            }
            Offer::Ticket(ticket) if allowed => {
                // The ready service goes with the request; the clone stays.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                AuditGated::call_after(ticket, inner, req)
            }
            Offer::Wait(pending) if allowed => {
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let fut: Deferred<ResBody, S::Error> = Box::pin(async move {
                    match pending.record().await {
                        Ok(()) => inner.call(req).await.map(|r| r.map(ResponseBody::new)),
                        Err(error) => Ok(GuardRefusal::response(&error.problem())),
                    }
                });
                AuditGated::guard(GuardFuture::deferred(fut))
            }
            Offer::Done(Err(error)) => {
                AuditGated::guard(GuardFuture::refused(error.problem().to_response()))
            }
            denied => AuditGated::guard(GuardFuture::refused_after(
                denied,
                forbidden(&config.permission),
            )),
        }
    }
}
