use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use kailash_core::context::RequestContext;
use kailash_core::guard::{Deferred, GuardFuture};
use kailash_core::problem::ResponseBody;
use kailash_core::{Principal, Problem};

use crate::control::{AccessControl, audit_event, forbidden};
use crate::permission::Permission;
use crate::policy::Resource;

use super::layer::Config;

/// The service of [`RequirePermission`](super::RequirePermission).
#[derive(Debug, Clone)]
pub struct RequirePermissionService<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config>,
}

/// Inserted into an allowed request when policies that read `data.*` are
/// still to be checked by the handler against the resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingResourceCheck {
    /// The permission the route required.
    pub permission: Permission,
    /// The policies left to check.
    pub policies: Vec<Arc<str>>,
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for RequirePermissionService<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = GuardFuture<S::Future, ResBody, S::Error>;

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
                        "RequirePermission has no AccessControl (neither set nor in the request); refusing"
                    );
                    return GuardFuture::refused(Problem::internal().to_response());
                }
            },
        };
        let Some(principal) = req.extensions().get::<Principal>().cloned() else {
            return GuardFuture::refused(Problem::unauthorized(None).to_response());
        };
        let ctx = req.extensions().get::<RequestContext>();
        let mut areq = access.request(&principal, &config.permission, ctx);
        if config.defer_resource {
            areq.resource = Resource::Deferred;
        }
        let decision = access.decide(&areq);
        let allowed = decision.allowed;
        if allowed && !decision.pending.is_empty() {
            req.extensions_mut().insert(PendingResourceCheck {
                permission: config.permission.clone(),
                policies: decision.pending,
            });
        }
        // The rule moves into the audit entry: the request needs only the verdict.
        let ctx = req.extensions().get::<RequestContext>();
        let event = access.audit_sink().map(|sink| {
            let event = audit_event(
                &principal,
                &config.permission,
                None,
                ctx,
                allowed,
                decision.rule,
            );
            (sink, event)
        });
        let pending_event = match event {
            None => None,
            Some((sink, event)) => sink.try_record(event).map(|e| (sink.clone(), e)),
        };
        match pending_event {
            None if allowed => GuardFuture::pass(self.inner.call(req)),
            None => GuardFuture::refused(forbidden(&config.permission).to_response()),
            Some((sink, event)) => {
                let permission = config.permission.clone();
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let fut: Deferred<ResBody, S::Error> = Box::pin(async move {
                    if let Err(error) = sink.record(event).await {
                        tracing::error!(%error, "could not record an access decision");
                    }
                    if allowed {
                        inner.call(req).await.map(|r| r.map(ResponseBody::new))
                    } else {
                        Ok(forbidden(&permission).to_response())
                    }
                });
                GuardFuture::deferred(fut)
            }
        }
    }
}
