//! [`Tenancy`]: the service [`TenancyLayer`](super::TenancyLayer) wraps
//! around the inner one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Extensions, Request, Response};
use kailash_core::admission::{AdmissionRefused, CheckOwner, PendingAdmission};
use kailash_core::audit::offer;
use kailash_core::guard::{Deferred, GuardFuture, GuardRefusal};
use kailash_core::problem::ResponseBody;
use kailash_core::state::MAX_CHECKS;
use kailash_core::{Principal, TenantId};
use pin_project_lite::pin_project;

use super::audit::Origin;
use super::charge::{charge_api_call, refund_api_call};
use super::config::Config;
use super::refusal::Refused;
use super::resolve::{Resolved, resolve};
use super::sources::{Local, named};
use crate::model::Tenant;
use crate::quota::{ApiCallCharge, Quotas};
use crate::registry::LocalTenant;

pin_project! {
    /// The response future of [`Tenancy`]: unboxed when the request passes
    /// through (a public path), is refused without a lookup, or — composed
    /// [`deferred`](super::TenancyLayer::deferred) with a registry that
    /// answers locally — resolves its tenant without awaiting; boxed only
    /// for registry and quota lookups and for giving a charge back.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Guard { #[pin] fut: GuardFuture<F, B, E> },
        // The inner call of a request whose API call the admission inside
        // charges: an inner guard's refusal gives the charge back.
        Charged { #[pin] inner: F, refund: Option<Refund> },
        Refunding { fut: Pin<Box<dyn Future<Output = ()> + Send>>, response: Option<Response<ResponseBody<B>>> },
    }
}

/// What giving back a deferred charge needs.
struct Refund {
    quotas: Quotas,
    charge: ApiCallCharge,
    id: TenantId,
}

impl<F, B, E> ResponseFuture<F, B, E> {
    fn guard(fut: GuardFuture<F, B, E>) -> Self {
        Self {
            kind: Kind::Guard { fut },
        }
    }

    /// Whether the future is boxed (a lookup or a refund to await); tests
    /// use it to check that the deferred path stays unboxed.
    pub fn is_boxed(&self) -> bool {
        match &self.kind {
            Kind::Guard { fut } => fut.is_deferred(),
            Kind::Charged { .. } => false,
            Kind::Refunding { .. } => true,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let next = match self.as_mut().project().kind.project() {
            KindProj::Guard { fut } => return fut.poll(cx),
            KindProj::Charged { inner, refund } => {
                let response = match std::task::ready!(inner.poll(cx)) {
                    Ok(response) => response.map(ResponseBody::new),
                    Err(error) => return Poll::Ready(Err(error)),
                };
                // An admission's own refusal took its charge back already.
                let refused_inside = GuardRefusal::is_marked(&response)
                    && response.extensions().get::<AdmissionRefused>().is_none();
                match refund.take() {
                    Some(Refund { quotas, charge, id }) if refused_inside => Kind::Refunding {
                        fut: Box::pin(async move { refund_api_call(&quotas, &charge, &id).await }),
                        response: Some(response),
                    },
                    _ => return Poll::Ready(Ok(response)),
                }
            }
            KindProj::Refunding { fut, response } => {
                std::task::ready!(fut.as_mut().poll(cx));
                return match response.take() {
                    Some(response) => Poll::Ready(Ok(response)),
                    // Polled after completion: a caller bug; never complete twice.
                    None => Poll::Pending,
                };
            }
        };
        self.as_mut().project().kind.set(next);
        self.poll(cx)
    }
}

/// The service of [`TenancyLayer`](super::TenancyLayer): inserts the
/// resolved `Arc<`[`Tenant`](crate::model::Tenant)`>` and its
/// [`TenantId`](kailash_core::TenantId) into the request extensions, or
/// answers with a problem.
#[derive(Clone)]
pub struct Tenancy<S> {
    inner: S,
    config: Arc<Config>,
    /// Answers for the activation check and the API-call charge when they
    /// are deferred to the admission.
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

/// Makes `id` the request's tenant: the principal (if its token named none
/// and the layer let the request choose) now carries it, and the id is an
/// extension for everything tenant-scoped downstream.
fn stamp(extensions: &mut Extensions, id: &TenantId) {
    // One authority: a principal the layer let choose a tenant now carries
    // it, so nothing downstream can read another (a principal with a
    // tenant agreed already).
    if let Some(principal) = extensions.get_mut::<Principal>()
        && principal.tenant().is_none()
    {
        *principal = principal.in_tenant(id.clone());
    }
    extensions.insert(id.clone());
}

/// Room for `n` more checks in the request's admission plan.
fn plan_has_room(extensions: &Extensions, n: usize) -> bool {
    extensions
        .get::<PendingAdmission>()
        .map_or(0, |p| p.plan().len())
        + n
        <= MAX_CHECKS
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
            return ResponseFuture::guard(GuardFuture::pass(self.inner.call(req)));
        }
        let local = match named(&self.config, &req) {
            Ok(local) => local,
            Err(refusal) => {
                // Never the raw header or host: only the principal's own tenant.
                let origin = Origin::of(&req);
                let event = origin.event(refusal, origin.principal_tenant());
                return ResponseFuture::guard(GuardFuture::refused_after(
                    offer(self.config.audit.as_ref(), event),
                    refusal.problem(),
                ));
            }
        };
        let local = match self.resolve_locally(local, &mut req) {
            LocallyResolved::Refused(fut) => return fut,
            LocallyResolved::Ready(refund) => {
                return ResponseFuture {
                    kind: Kind::Charged {
                        inner: self.inner.call(req),
                        refund,
                    },
                };
            }
            LocallyResolved::Lookup(local) => local,
        };
        ResponseFuture::guard(GuardFuture::deferred(self.resolve_remotely(local, req)))
    }
}

impl<S> Tenancy<S> {
    /// The deferred path: the tenant agreed on locally, its record held by
    /// the registry, its activation and charge added to the admission.
    fn resolve_locally<ReqBody, F, B, E>(
        &self,
        local: Local,
        req: &mut Request<ReqBody>,
    ) -> LocallyResolved<F, B, E>
    where
        B: 'static,
        E: 'static,
    {
        let config = &self.config;
        if !config.deferred || local.lookup_host.is_some() {
            return LocallyResolved::Lookup(local);
        }
        let id = match local.claims.agreed() {
            Ok(id) => id,
            Err(refusal) => {
                let origin = Origin::of(req);
                let event = origin.event(refusal, local.claims.principal());
                return LocallyResolved::Refused(ResponseFuture::guard(
                    GuardFuture::refused_after(
                        offer(config.audit.as_ref(), event),
                        refusal.problem(),
                    ),
                ));
            }
        };
        let needed = 1 + usize::from(config.quotas.is_some());
        let (tenant, activation) = match config.registry.get_local(&id) {
            Some(LocalTenant::Found { tenant, activation })
                if plan_has_room(req.extensions(), needed) =>
            {
                (tenant, activation)
            }
            Some(LocalTenant::Unknown) => {
                let Refused { problem, event } =
                    *Origin::of(req).refuse(super::refusal::Refusal::Unknown, Some(&id));
                return LocallyResolved::Refused(ResponseFuture::guard(
                    GuardFuture::refused_after(offer(config.audit.as_ref(), event), problem),
                ));
            }
            _ => return LocallyResolved::Lookup(local),
        };
        let extensions = req.extensions_mut();
        stamp(extensions, &id);
        // Room was checked above: neither add can fail.
        let _ = PendingAdmission::add(extensions, activation, &self.owner);
        let refund = config.quotas.as_ref().map(|quotas| {
            let (check, charge) = quotas.api_call_check(&tenant);
            let _ = PendingAdmission::add(extensions, check, &self.owner);
            Refund {
                quotas: quotas.clone(),
                charge,
                id,
            }
        });
        extensions.insert(tenant);
        LocallyResolved::Ready(refund)
    }

    /// The boxed path: a custom-domain lookup, a registry that answers
    /// only asynchronously, or a layer that asks the state itself.
    fn resolve_remotely<ReqBody, ResBody>(
        &mut self,
        local: Local,
        mut req: Request<ReqBody>,
    ) -> Deferred<ResBody, S::Error>
    where
        S: tower::Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        ReqBody: Send + 'static,
        ResBody: Send + 'static,
    {
        let origin = Origin::of(&req);
        let config = self.config.clone();
        let owner = self.owner.clone();
        // The clone is the not-yet-ready one; keep the ready service for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            match resolve(&config, local, &origin).await {
                Ok(Resolved { tenant, mut charge }) => {
                    let extensions = req.extensions_mut();
                    // The id is an `Arc<str>`: kept for the refund below,
                    // while the tenant itself moves into the request.
                    let id = tenant.id.clone();
                    stamp(extensions, &id);
                    // Deferred: the admission inside checks the activation
                    // (already checked here) and charges the call; a full
                    // plan charges it here.
                    if let (true, Some(quotas)) = (config.deferred, &config.quotas) {
                        let (check, receipt) = quotas.api_call_check(&tenant);
                        match PendingAdmission::add(extensions, check, &owner) {
                            Ok(()) => charge = Some(receipt),
                            Err(_) => match charge_api_call(quotas, &tenant, &id, &origin).await {
                                Ok(charged) => charge = charged,
                                Err(refused) => return Ok(answer(&config, *refused).await),
                            },
                        }
                    }
                    req.extensions_mut().insert::<Arc<Tenant>>(tenant);
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
                Err(refused) => Ok(answer(&config, *refused).await),
            }
        })
    }
}

/// What [`Tenancy::resolve_locally`] made of a request.
enum LocallyResolved<F, B, E> {
    /// Refused without a lookup.
    Refused(ResponseFuture<F, B, E>),
    /// Ready for the inner service; the charge to give back if an inner
    /// guard refuses it.
    Ready(Option<Refund>),
    /// Not resolvable here: `local` goes to a lookup.
    Lookup(Local),
}

/// A refusal's answer once its audit event is settled (503 if refused).
async fn answer<B>(config: &Config, refused: Refused) -> Response<ResponseBody<B>> {
    let Refused { problem, event } = refused;
    match offer(config.audit.as_ref(), event).settle().await {
        Ok(()) => problem.to_response(),
        Err(error) => GuardRefusal::response(&error.problem()),
    }
}
