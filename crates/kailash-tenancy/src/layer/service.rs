//! [`Tenancy`]: the service [`TenancyLayer`](super::TenancyLayer) wraps
//! around the inner one.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use kailash_core::Principal;
use kailash_core::admission::{AdmissionRefused, CheckOwner, PendingAdmission};
use kailash_core::audit::offer;
use kailash_core::guard::{Deferred, GuardFuture, GuardRefusal};
use kailash_core::problem::ResponseBody;

use super::audit::Origin;
use super::charge::{charge_api_call, refund_api_call};
use super::config::Config;
use super::refusal::Refused;
use super::resolve::{Resolved, resolve};
use super::sources::named;

/// The response future of [`Tenancy`]: passes public paths through
/// unboxed, answers a malformed request at once, and boxes only the
/// registry and quota lookups.
pub type ResponseFuture<F, B, E> = GuardFuture<F, B, E>;

/// The service of [`TenancyLayer`](super::TenancyLayer): inserts the
/// resolved `Arc<`[`Tenant`](crate::model::Tenant)`>` and its
/// [`TenantId`](kailash_core::TenantId) into the request extensions, or
/// answers with a problem.
#[derive(Clone)]
pub struct Tenancy<S> {
    inner: S,
    config: Arc<Config>,
    /// Answers for the API-call charge when it is deferred to the admission.
    owner: Arc<dyn CheckOwner>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Tenancy<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenancy")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Tenancy<S> {
    pub(super) fn new(inner: S, config: Arc<Config>, owner: Arc<dyn CheckOwner>) -> Self {
        Self {
            inner,
            config,
            owner,
        }
    }

    kailash_core::inner_service_accessors!();
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for Tenancy<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        if self.config.public.contains(req.uri().path()) {
            return ResponseFuture::pass(self.inner.call(req));
        }
        let origin = Origin::of(&req);
        let local = match named(&self.config, &req) {
            Ok(local) => local,
            Err(refusal) => {
                // Never the raw header or host: only the principal's own tenant.
                let event = origin.event(refusal, origin.principal_tenant());
                let problem = refusal.problem();
                return ResponseFuture::refused_after(
                    offer(self.config.audit.as_ref(), event),
                    problem,
                );
            }
        };

        let config = self.config.clone();
        let owner = self.owner.clone();
        // The clone is the not-yet-ready one; keep the ready service for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let fut: Deferred<ResBody, S::Error> = Box::pin(async move {
            match resolve(&config, local, &origin).await {
                Ok(Resolved { tenant, mut charge }) => {
                    let extensions = req.extensions_mut();
                    // One authority: a principal the layer let choose a
                    // tenant now carries it, so nothing downstream can read
                    // another (a principal with a tenant agreed already).
                    if let Some(principal) = extensions.get_mut::<Principal>()
                        && principal.tenant().is_none()
                    {
                        *principal = principal.in_tenant(tenant.id.clone());
                    }
                    // The id is an `Arc<str>`: kept for the refund below,
                    // while the tenant itself moves into the request.
                    let id = tenant.id.clone();
                    extensions.insert(id.clone());
                    // Deferred: the admission inside charges the call (and
                    // answers for its refusal); a full plan charges it here.
                    if let (true, Some(quotas)) = (config.defer_quota, &config.quotas) {
                        let (check, receipt) = quotas.api_call_check(&tenant);
                        match PendingAdmission::add(extensions, check, &owner) {
                            Ok(()) => charge = Some(receipt),
                            Err(_) => match charge_api_call(quotas, &tenant, &id, &origin).await {
                                Ok(charged) => charge = charged,
                                Err(refused) => {
                                    let Refused { problem, event } = *refused;
                                    return Ok(
                                        match offer(config.audit.as_ref(), event).settle().await {
                                            Ok(()) => problem.to_response(),
                                            Err(error) => GuardRefusal::response(&error.problem()),
                                        },
                                    );
                                }
                            },
                        }
                    }
                    let extensions = req.extensions_mut();
                    extensions.insert(tenant);
                    let response = inner.call(req).await?;
                    // An admission's own refusal took its charge back already.
                    if let (Some(charge), Some(quotas)) = (&charge, &config.quotas)
                        && GuardRefusal::is_marked(&response)
                        && response.extensions().get::<AdmissionRefused>().is_none()
                    {
                        refund_api_call(quotas, charge, &id).await;
                    }
                    Ok(response.map(ResponseBody::new))
                }
                Err(refused) => {
                    let Refused { problem, event } = *refused;
                    Ok(match offer(config.audit.as_ref(), event).settle().await {
                        Ok(()) => problem.to_response(),
                        Err(error) => GuardRefusal::response(&error.problem()),
                    })
                }
            }
        });
        ResponseFuture::deferred(fut)
    }
}
