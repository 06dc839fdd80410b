//! Tenant resolution as a tower layer.
//!
//! [`TenantLayer`] decides which tenant a request belongs to, checks that the
//! tenant exists and is active, charges its API-call quota, and inserts the
//! tenant into the request extensions: an `Arc<`[`Tenant`]`>` for code that
//! wants the whole record, and its [`TenantId`] for kailash-core's `TenantId`
//! extractor and everything tenant-scoped downstream.
//!
//! A request can name its tenant in up to four ways, each enabled on the
//! builder:
//!
//! - the authenticated [`Principal`]'s tenant (always consulted when an
//!   authentication layer inserted a principal; authoritative, because it
//!   comes from a verified token);
//! - an `X-Tenant-ID` header ([`header`](TenantLayerBuilder::header));
//! - a subdomain of the platform's base domain, `acme.example.com`
//!   ([`subdomains`](TenantLayerBuilder::subdomains));
//! - a tenant's own domain, looked up in the registry
//!   ([`custom_domains`](TenantLayerBuilder::custom_domains)).
//!
//! Every source present must name the same tenant. Disagreement — a globex
//! user sending `X-Tenant-ID: acme` — is refused with `403` and audited;
//! a request naming no tenant gets `400`; a malformed header or host `400`;
//! an unknown or inactive tenant `403`; an exhausted quota `429` with
//! `Retry-After` and a `quota` member; a registry or quota backend that
//! cannot answer `503` (tenancy fails closed). All refusals are RFC 9457
//! problem+json, and none echoes what the client sent.
//!
//! Public paths ([`public_path`](TenantLayerBuilder::public_path),
//! [`public_prefix`](TenantLayerBuilder::public_prefix)) pass through
//! untouched.
//!
//! ```
//! use std::sync::Arc;
//! use async_trait::async_trait;
//! use http::{Request, Response, StatusCode};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use kailash_core::{Principal, TenantId};
//! use kailash_tenancy::layer::TenantLayer;
//! use kailash_tenancy::model::Tenant;
//! use kailash_tenancy::registry::{RegistryError, TenantRegistry};
//!
//! /// A registry that knows no tenant.
//! struct Empty;
//!
//! #[async_trait]
//! impl TenantRegistry for Empty {
//!     async fn get(&self, _id: &TenantId) -> Result<Option<Arc<Tenant>>, RegistryError> {
//!         Ok(None)
//!     }
//!     async fn by_domain(&self, _host: &str) -> Result<Option<TenantId>, RegistryError> {
//!         Ok(None)
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let mut svc = ServiceBuilder::new()
//!     .layer(TenantLayer::builder(Arc::new(Empty)).header(true).public_path("/health").build())
//!     .service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
//!     });
//!
//! // A public path needs no tenant.
//! let req = Request::get("/health").body(()).unwrap();
//! let res = svc.ready().await.unwrap().call(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! // A request naming no tenant is malformed.
//! let req = Request::get("/orders").body(()).unwrap();
//! let res = svc.ready().await.unwrap().call(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::BAD_REQUEST);
//!
//! // A tenant the registry does not know is refused.
//! let req = Request::get("/orders").header("x-tenant-id", "acme").body(()).unwrap();
//! let res = svc.ready().await.unwrap().call(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//!
//! // The token's tenant and the header disagree: refused before any lookup.
//! let mut req = Request::get("/orders").header("x-tenant-id", "acme").body(()).unwrap();
//! req.extensions_mut().insert(
//!     Principal::builder("u1").tenant(TenantId::new("globex").unwrap()).build(),
//! );
//! let res = svc.ready().await.unwrap().call(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! # });
//! ```

use std::borrow::Cow;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::HOST;
use http::{HeaderMap, HeaderName, Request, Response, StatusCode};
use kailash_core::audit::{AuditDecision, AuditEvent, AuditSeverity, AuditSink};
use kailash_core::context::RequestContext;
use kailash_core::guard::{Deferred, GuardFuture};
use kailash_core::problem::{Problem, ResponseBody};
use kailash_core::{Principal, TenantId};
use tower::Layer;

use crate::model::Tenant;
use crate::quota::{QuotaDecision, Quotas};
use crate::registry::TenantRegistry;

/// The header a client may name its tenant in (when enabled).
pub const TENANT_HEADER: HeaderName = HeaderName::from_static("x-tenant-id");

/// The audit action of every event this layer records.
pub const AUDIT_ACTION: &str = "tenant.resolve";

/// Longest `Host` accepted (the DNS limit).
const MAX_HOST_LEN: usize = 253;

// ---------------------------------------------------------------------------
// Layer and builder
// ---------------------------------------------------------------------------

/// Resolves, checks and charges the tenant of every request; see the
/// [module docs](self).
#[derive(Clone)]
pub struct TenantLayer {
    config: Arc<Config>,
}

struct Config {
    registry: Arc<dyn TenantRegistry>,
    quotas: Option<Quotas>,
    header: bool,
    /// The base domain, lowercase, without leading or trailing dots.
    base_domain: Option<String>,
    custom_domains: bool,
    public_paths: Vec<String>,
    public_prefixes: Vec<String>,
    audit: Option<Arc<dyn AuditSink>>,
}

impl Config {
    fn needs_host(&self) -> bool {
        self.base_domain.is_some() || self.custom_domains
    }
}

impl std::fmt::Debug for TenantLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        f.debug_struct("TenantLayer")
            .field("quotas", &c.quotas.is_some())
            .field("header", &c.header)
            .field("base_domain", &c.base_domain)
            .field("custom_domains", &c.custom_domains)
            .field("public_paths", &c.public_paths)
            .field("public_prefixes", &c.public_prefixes)
            .field("audit", &c.audit.is_some())
            .finish_non_exhaustive()
    }
}

impl TenantLayer {
    /// Starts a layer over `registry`. By default only the authenticated
    /// principal's tenant is consulted, no quota is charged and nothing is
    /// audited.
    pub fn builder(registry: Arc<dyn TenantRegistry>) -> TenantLayerBuilder {
        TenantLayerBuilder {
            config: Config {
                registry,
                quotas: None,
                header: false,
                base_domain: None,
                custom_domains: false,
                public_paths: Vec::new(),
                public_prefixes: Vec::new(),
                audit: None,
            },
        }
    }
}

/// Configures a [`TenantLayer`]; made by [`TenantLayer::builder`].
#[must_use]
pub struct TenantLayerBuilder {
    config: Config,
}

impl std::fmt::Debug for TenantLayerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantLayerBuilder")
            .field("header", &self.config.header)
            .field("base_domain", &self.config.base_domain)
            .field("custom_domains", &self.config.custom_domains)
            .finish_non_exhaustive()
    }
}

impl TenantLayerBuilder {
    /// Charges one API call per resolved request to the tenant's quota.
    pub fn quotas(mut self, quotas: Quotas) -> Self {
        self.config.quotas = Some(quotas);
        self
    }

    /// Accepts the tenant named in the `X-Tenant-ID` header (default: off).
    ///
    /// The header must appear once and hold a valid [`TenantId`] exactly —
    /// no surrounding whitespace, no upper case — or the request is refused
    /// with `400`. It never overrides the authenticated principal's tenant:
    /// if both are present they must agree.
    pub fn header(mut self, enabled: bool) -> Self {
        self.config.header = enabled;
        self
    }

    /// Accepts the tenant named by the subdomain of `base_domain` (default:
    /// off): with base `example.com`, the host `acme.example.com` names
    /// `acme`. Hosts outside the base domain, the base domain itself and
    /// deeper names (`a.b.example.com`) name no tenant this way.
    ///
    /// Leading and trailing dots of `base_domain` are ignored and it is
    /// compared case-insensitively.
    pub fn subdomains(mut self, base_domain: impl Into<String>) -> Self {
        let base = base_domain.into();
        let base = base.trim_matches('.').to_ascii_lowercase();
        self.config.base_domain = (!base.is_empty()).then_some(base);
        self
    }

    /// Asks the registry which tenant owns the request's host (default:
    /// off). Hosts under the [`subdomains`](Self::subdomains) base domain
    /// are not looked up.
    pub fn custom_domains(mut self, enabled: bool) -> Self {
        self.config.custom_domains = enabled;
        self
    }

    /// A path that needs no tenant (compared exactly); such requests pass
    /// through untouched.
    pub fn public_path(mut self, path: impl Into<String>) -> Self {
        self.config.public_paths.push(path.into());
        self
    }

    /// A path prefix that needs no tenant. The prefix matches whole
    /// segments: `/public` matches `/public` and `/public/x`, not
    /// `/publicity`. Paths with `.` or `..` segments are never public.
    pub fn public_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.public_prefixes.push(prefix.into());
        self
    }

    /// Records refusals to `sink` (action [`AUDIT_ACTION`]).
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.config.audit = Some(sink);
        self
    }

    /// Builds the layer.
    pub fn build(self) -> TenantLayer {
        TenantLayer {
            config: Arc::new(self.config),
        }
    }
}

impl<S> Layer<S> for TenantLayer {
    type Service = Tenancy<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Tenancy {
            inner,
            config: self.config.clone(),
        }
    }
}

// ---------------------------------------------------------------------------
// Pure resolution logic
// ---------------------------------------------------------------------------

/// Where a tenant id came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Principal,
    Header,
    Subdomain,
    CustomDomain,
}

/// Why resolution refused a request; mapped to a problem and an audit reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    MalformedHeader,
    MalformedHost,
    Mismatch,
    NoTenant,
    Unknown,
    Inactive,
    RegistryUnavailable,
    QuotaUnavailable,
}

impl Refusal {
    fn problem(self) -> Problem {
        match self {
            Refusal::MalformedHeader => {
                Problem::bad_request("the X-Tenant-ID header is not a single valid tenant id")
            }
            Refusal::MalformedHost => Problem::bad_request("the request's host is malformed"),
            Refusal::Mismatch => Problem::forbidden("tenant mismatch"),
            Refusal::NoTenant => Problem::bad_request("the request names no tenant"),
            Refusal::Unknown => Problem::forbidden("unknown tenant"),
            Refusal::Inactive => Problem::forbidden("tenant is inactive"),
            Refusal::RegistryUnavailable => {
                Problem::service_unavailable("the tenant registry is temporarily unavailable")
            }
            Refusal::QuotaUnavailable => {
                Problem::service_unavailable("tenant quotas are temporarily unavailable")
            }
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Refusal::MalformedHeader => "malformed tenant header",
            Refusal::MalformedHost => "malformed host",
            Refusal::Mismatch => "tenant sources disagree",
            Refusal::NoTenant => "no tenant named",
            Refusal::Unknown => "unknown tenant",
            Refusal::Inactive => "tenant is inactive",
            Refusal::RegistryUnavailable => "tenant registry unavailable",
            Refusal::QuotaUnavailable => "quota state unavailable",
        }
    }

    fn decision(self) -> AuditDecision {
        match self {
            Refusal::RegistryUnavailable | Refusal::QuotaUnavailable => AuditDecision::Error,
            _ => AuditDecision::Deny,
        }
    }

    fn severity(self) -> AuditSeverity {
        match self {
            Refusal::Mismatch => AuditSeverity::Warning,
            _ => AuditSeverity::Info,
        }
    }
}

/// The tenant in the `X-Tenant-ID` header: `Ok(None)` when absent; an error
/// when repeated, not visible ASCII, or not a valid [`TenantId`].
fn header_tenant(headers: &HeaderMap) -> Result<Option<TenantId>, Refusal> {
    let mut values = headers.get_all(&TENANT_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Refusal::MalformedHeader);
    }
    let text = value.to_str().map_err(|_| Refusal::MalformedHeader)?;
    TenantId::new(text)
        .map(Some)
        .map_err(|_| Refusal::MalformedHeader)
}

/// The request's host, lowercase, without port or trailing dot: from the one
/// `Host` header, else from the URI's authority (HTTP/2). `Ok(None)` when the
/// request carries neither or names an IPv6 literal; an error when `Host` is
/// repeated or malformed.
fn request_host<B>(req: &Request<B>) -> Result<Option<String>, Refusal> {
    let mut values = req.headers().get_all(HOST).iter();
    let raw = match values.next() {
        Some(value) => {
            if values.next().is_some() {
                return Err(Refusal::MalformedHost);
            }
            value.to_str().map_err(|_| Refusal::MalformedHost)?
        }
        None => match req.uri().authority() {
            Some(authority) => authority.as_str(),
            None => return Ok(None),
        },
    };
    // An IPv6 literal names no tenant (and no custom domain).
    if raw.starts_with('[') {
        return Ok(None);
    }
    parse_host(raw).map(Some)
}

/// Normalises an authority (`host[:port]`) to a lowercase DNS name. IP
/// literals and userinfo are refused: neither names a tenant.
fn parse_host(raw: &str) -> Result<String, Refusal> {
    let host = match raw.rsplit_once(':') {
        Some((host, port)) => {
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Refusal::MalformedHost);
            }
            host
        }
        None => raw,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > MAX_HOST_LEN {
        return Err(Refusal::MalformedHost);
    }
    for label in host.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(Refusal::MalformedHost);
        }
    }
    Ok(host.to_ascii_lowercase())
}

/// What a (normalised) host says about the tenant under `base`: `Ok(None)`
/// when the host is not exactly one label below `base`.
fn subdomain_tenant(host: &str, base: &str) -> Result<Option<TenantId>, Refusal> {
    let Some(label) = host
        .strip_suffix(base)
        .and_then(|rest| rest.strip_suffix('.'))
    else {
        return Ok(None);
    };
    if label.is_empty() || label.contains('.') {
        return Ok(None);
    }
    TenantId::new(label)
        .map(Some)
        .map_err(|_| Refusal::MalformedHost)
}

/// Whether `host` is `base` or below it.
fn under_base(host: &str, base: &str) -> bool {
    host == base
        || host
            .strip_suffix(base)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// Whether any segment of `path` is `.` or `..` (also percent-encoded).
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|segment| {
        let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

fn is_public(config: &Config, path: &str) -> bool {
    if config.public_paths.iter().any(|p| p == path) {
        return true;
    }
    if config.public_prefixes.is_empty() || has_dot_segment(path) {
        return false;
    }
    config.public_prefixes.iter().any(|prefix| {
        path.strip_prefix(prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'))
    })
}

/// The ids the sources named; at most one per source.
#[derive(Debug, Default)]
struct Claims {
    ids: [Option<(Source, TenantId)>; 4],
}

impl Claims {
    fn add(&mut self, source: Source, id: TenantId) {
        let slot = match source {
            Source::Principal => 0,
            Source::Header => 1,
            Source::Subdomain => 2,
            Source::CustomDomain => 3,
        };
        self.ids[slot] = Some((source, id));
    }

    /// The one tenant every present source agrees on.
    fn agreed(&self) -> Result<TenantId, Refusal> {
        let mut present = self.ids.iter().flatten();
        let Some((_, first)) = present.next() else {
            return Err(Refusal::NoTenant);
        };
        if present.any(|(_, id)| id != first) {
            return Err(Refusal::Mismatch);
        }
        Ok(first.clone())
    }

    /// The id the principal's token names, if any.
    fn principal(&self) -> Option<&TenantId> {
        self.ids[0].as_ref().map(|(_, id)| id)
    }
}

/// The part of resolution that needs no I/O: the principal, the header and
/// the subdomain, plus the host a custom-domain lookup would use.
#[derive(Debug)]
struct Local {
    claims: Claims,
    lookup_host: Option<String>,
}

fn resolve_local<B>(config: &Config, req: &Request<B>) -> Result<Local, Refusal> {
    let mut claims = Claims::default();
    if let Some(tenant) = req
        .extensions()
        .get::<Principal>()
        .and_then(Principal::tenant)
    {
        claims.add(Source::Principal, tenant.clone());
    }
    if config.header
        && let Some(id) = header_tenant(req.headers())?
    {
        claims.add(Source::Header, id);
    }
    let mut lookup_host = None;
    if config.needs_host()
        && let Some(host) = request_host(req)?
    {
        let mut platform = false;
        if let Some(base) = &config.base_domain {
            platform = under_base(&host, base);
            if let Some(id) = subdomain_tenant(&host, base)? {
                claims.add(Source::Subdomain, id);
            }
        }
        if config.custom_domains && !platform {
            lookup_host = Some(host);
        }
    }
    Ok(Local {
        claims,
        lookup_host,
    })
}

// ---------------------------------------------------------------------------
// Service
// ---------------------------------------------------------------------------

/// The service of [`TenantLayer`].
#[derive(Clone)]
pub struct Tenancy<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Tenancy<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenancy")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The response future of [`Tenancy`].
pub type TenancyFuture<F, B, E> = GuardFuture<F, B, E>;

/// Who and where, for audit events.
struct Origin {
    principal: Option<Principal>,
    context: Option<RequestContext>,
}

impl Origin {
    fn of<B>(req: &Request<B>) -> Self {
        Self {
            principal: req.extensions().get::<Principal>().cloned(),
            context: req.extensions().get::<RequestContext>().cloned(),
        }
    }

    fn event(&self, refusal: Refusal, tenant: Option<&TenantId>) -> AuditEvent {
        self.event_with(
            refusal.decision(),
            refusal.severity(),
            refusal.reason(),
            tenant,
        )
    }

    fn event_with(
        &self,
        decision: AuditDecision,
        severity: AuditSeverity,
        reason: impl Into<Cow<'static, str>>,
        tenant: Option<&TenantId>,
    ) -> AuditEvent {
        let mut event = AuditEvent::new(AUDIT_ACTION, decision)
            .severity(severity)
            .reason(reason);
        if let Some(ctx) = &self.context {
            event = event.context(ctx);
        }
        if let Some(principal) = &self.principal {
            event = event.principal(principal);
        }
        if let Some(tenant) = tenant {
            event = event.tenant(tenant.clone());
        }
        event
    }
}

async fn record(sink: Option<&Arc<dyn AuditSink>>, event: AuditEvent) {
    if let Some(sink) = sink
        && let Err(error) = sink.record(event).await
    {
        tracing::warn!(%error, "could not record a tenant audit event");
    }
}

/// The decision after the registry and quota checks.
enum Checked {
    Pass(Arc<Tenant>),
    Refuse(Box<(Problem, AuditEvent)>),
}

fn refuse(problem: Problem, event: AuditEvent) -> Checked {
    Checked::Refuse(Box::new((problem, event)))
}

async fn check(config: &Config, local: Local, origin: &Origin) -> Checked {
    let Local {
        mut claims,
        lookup_host,
    } = local;
    if let Some(host) = lookup_host {
        match config.registry.by_domain(&host).await {
            Ok(Some(id)) => claims.add(Source::CustomDomain, id),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%error, "tenant registry unavailable (domain lookup)");
                let r = Refusal::RegistryUnavailable;
                return refuse(r.problem(), origin.event(r, claims.principal()));
            }
        }
    }
    let id = match claims.agreed() {
        Ok(id) => id,
        Err(r) => return refuse(r.problem(), origin.event(r, claims.principal())),
    };
    let tenant = match config.registry.get(&id).await {
        Ok(Some(tenant)) => tenant,
        Ok(None) => {
            let r = Refusal::Unknown;
            return refuse(r.problem(), origin.event(r, Some(&id)));
        }
        Err(error) => {
            tracing::warn!(%error, tenant = %id.as_str(), "tenant registry unavailable");
            let r = Refusal::RegistryUnavailable;
            return refuse(r.problem(), origin.event(r, Some(&id)));
        }
    };
    if !tenant.active {
        let r = Refusal::Inactive;
        return refuse(r.problem(), origin.event(r, Some(&id)));
    }
    if let Some(quotas) = &config.quotas {
        match quotas.charge_api_call(&tenant).await {
            Ok(QuotaDecision::Allowed { .. }) => {}
            Ok(QuotaDecision::Refused {
                quota, retry_after, ..
            }) => {
                let mut problem = match retry_after {
                    Some(after) => Problem::too_many_requests(after),
                    None => Problem::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "quota-exceeded",
                        "Too Many Requests",
                    ),
                };
                problem = problem
                    .with_detail(format!("the tenant's {quota} quota is exhausted"))
                    .with_extension("quota", quota);
                let event = origin.event_with(
                    AuditDecision::Deny,
                    AuditSeverity::Info,
                    format!("{quota} quota exhausted"),
                    Some(&id),
                );
                return refuse(problem, event);
            }
            Err(error) => {
                tracing::warn!(%error, tenant = %id.as_str(), "quota state unavailable; failing closed");
                let r = Refusal::QuotaUnavailable;
                return refuse(r.problem(), origin.event(r, Some(&id)));
            }
        }
    }
    Checked::Pass(tenant)
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for Tenancy<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = TenancyFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        if is_public(&self.config, req.uri().path()) {
            return TenancyFuture::pass(self.inner.call(req));
        }
        let origin = Origin::of(&req);
        let local = resolve_local(&self.config, &req);
        let config = self.config.clone();

        let local = match local {
            Ok(local) => local,
            Err(refusal) => {
                // Never the raw header or host: only the principal's own tenant.
                let tenant = origin.principal.as_ref().and_then(Principal::tenant);
                let event = origin.event(refusal, tenant);
                let problem = refusal.problem();
                if config.audit.is_none() {
                    return TenancyFuture::refused(problem.to_response());
                }
                let fut: Deferred<ResBody, S::Error> = Box::pin(async move {
                    record(config.audit.as_ref(), event).await;
                    Ok(problem.to_response())
                });
                return TenancyFuture::deferred(fut);
            }
        };

        // The clone is the not-yet-ready one; keep the ready service for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let fut: Deferred<ResBody, S::Error> = Box::pin(async move {
            match check(&config, local, &origin).await {
                Checked::Pass(tenant) => {
                    let extensions = req.extensions_mut();
                    extensions.insert(tenant.id.clone());
                    extensions.insert(tenant);
                    inner.call(req).await.map(|r| r.map(ResponseBody::new))
                }
                Checked::Refuse(refused) => {
                    let (problem, event) = *refused;
                    record(config.audit.as_ref(), event).await;
                    Ok(problem.to_response())
                }
            }
        });
        TenancyFuture::deferred(fut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> TenantId {
        TenantId::new(s).unwrap()
    }

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(&TENANT_HEADER, http::HeaderValue::from_bytes(v).unwrap());
        }
        map
    }

    #[test]
    fn header_is_parsed_strictly() {
        assert_eq!(header_tenant(&headers(&[])), Ok(None));
        assert_eq!(header_tenant(&headers(&[b"acme"])), Ok(Some(id("acme"))));
        for bad in [
            &b" acme"[..],
            b"acme ",
            b"Acme",
            b"ac me",
            b"",
            b"ac\tme",
            b"\xc3\xa9",
        ] {
            assert_eq!(
                header_tenant(&headers(&[bad])),
                Err(Refusal::MalformedHeader),
                "{bad:?}"
            );
        }
        assert_eq!(
            header_tenant(&headers(&[b"acme", b"acme"])),
            Err(Refusal::MalformedHeader)
        );
    }

    #[test]
    fn hosts_are_normalised_strictly() {
        assert_eq!(
            parse_host("Acme.Example.com:8443").unwrap(),
            "acme.example.com"
        );
        assert_eq!(parse_host("acme.example.com.").unwrap(), "acme.example.com");
        for bad in [
            "",
            ":80",
            "acme.example.com:",
            "acme.example.com:8x",
            "user@acme.example.com",
            "acme..example.com",
            "acme example.com",
            "-acme.example.com",
        ] {
            assert_eq!(parse_host(bad), Err(Refusal::MalformedHost), "{bad:?}");
        }
    }

    #[test]
    fn subdomains_name_exactly_one_label() {
        let base = "example.com";
        assert_eq!(
            subdomain_tenant("acme.example.com", base),
            Ok(Some(id("acme")))
        );
        assert_eq!(subdomain_tenant("example.com", base), Ok(None));
        assert_eq!(subdomain_tenant("a.b.example.com", base), Ok(None));
        assert_eq!(subdomain_tenant("acmeexample.com", base), Ok(None));
        assert_eq!(subdomain_tenant("acme.example.org", base), Ok(None));
        assert!(under_base("example.com", base));
        assert!(under_base("a.b.example.com", base));
        assert!(!under_base("badexample.com", base));
    }

    #[test]
    fn request_host_prefers_a_single_host_header() {
        let req = Request::get("http://other.example.org/x")
            .header(HOST, "acme.example.com:80")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req), Ok(Some("acme.example.com".to_owned())));
        let req = Request::get("http://acme.example.com/x").body(()).unwrap();
        assert_eq!(request_host(&req), Ok(Some("acme.example.com".to_owned())));
        let req = Request::get("/x").body(()).unwrap();
        assert_eq!(request_host(&req), Ok(None));
        let req = Request::get("/x")
            .header(HOST, "[::1]:80")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req), Ok(None));
        let req = Request::get("/x")
            .header(HOST, "a.example.com")
            .header(HOST, "b.example.com")
            .body(())
            .unwrap();
        assert_eq!(request_host(&req), Err(Refusal::MalformedHost));
    }

    #[test]
    fn all_sources_must_agree() {
        let mut claims = Claims::default();
        assert_eq!(claims.agreed(), Err(Refusal::NoTenant));
        claims.add(Source::Header, id("acme"));
        assert_eq!(claims.agreed(), Ok(id("acme")));
        claims.add(Source::Subdomain, id("acme"));
        assert_eq!(claims.agreed(), Ok(id("acme")));
        claims.add(Source::Principal, id("globex"));
        assert_eq!(claims.agreed(), Err(Refusal::Mismatch));
        assert_eq!(claims.principal(), Some(&id("globex")));
    }

    #[test]
    fn dot_segments_are_detected() {
        assert!(has_dot_segment("/public/../admin"));
        assert!(has_dot_segment("/public/%2E%2e/admin"));
        assert!(has_dot_segment("/public/./x"));
        assert!(!has_dot_segment("/public/.well-known"));
        assert!(!has_dot_segment("/public/x"));
    }
}
