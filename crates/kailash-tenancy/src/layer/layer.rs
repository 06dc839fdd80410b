//! [`TenancyLayer`]: the configuration surface. Setters chain on the layer
//! itself; the configuration is shared by every clone and every service.

use std::sync::Arc;

use kailash_core::audit::AuditSink;
use tower::Layer;

use super::charge::QuotaOwner;
use super::config::Config;
use super::service::Tenancy;
use crate::quota::Quotas;
use crate::registry::TenantRegistry;

/// Resolves, checks and charges the tenant of every request; see the
/// [module docs](super).
///
/// By default only the authenticated principal's tenant is consulted, no
/// quota is charged and nothing is audited; each setter turns one more
/// thing on.
#[derive(Clone)]
pub struct TenancyLayer {
    config: Arc<Config>,
}

impl std::fmt::Debug for TenancyLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        f.debug_struct("TenancyLayer")
            .field("quotas", &c.quotas.is_some())
            .field("header", &c.header)
            .field("base_domain", &c.base_domain)
            .field("custom_domains", &c.custom_domains)
            .field("public", &c.public)
            .field("audit", &c.audit.is_some())
            .finish_non_exhaustive()
    }
}

impl TenancyLayer {
    /// A layer over `registry`, the authority on which tenants exist and
    /// which are active.
    pub fn new(registry: Arc<dyn TenantRegistry>) -> Self {
        Self {
            config: Arc::new(Config::new(registry)),
        }
    }

    /// Changes the configuration; copies it only if a clone of this layer
    /// already shares it, so a clone never changes behind a service's back.
    fn update(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// Charges one API call per resolved request to the tenant's quota.
    #[must_use]
    pub fn quotas(self, quotas: Quotas) -> Self {
        self.update(|c| c.quotas = Some(quotas))
    }

    /// Adds this layer's state checks — whether the tenant is active now,
    /// and the API-call charge — to the request's
    /// [`PendingAdmission`](kailash_core::admission::PendingAdmission)
    /// instead of asking the state here: an
    /// [`AdmitLayer`](kailash_core::admission::AdmitLayer) inside this
    /// layer runs them together with the session check and the rate limits
    /// (one round trip on Redis), with the same `403`/`429`/`503` answers
    /// and audit events. With a registry that answers
    /// [`get_local`](crate::registry::TenantRegistry::get_local) (the
    /// static one does, for tenants configured active) the layer then
    /// resolves the tenant without awaiting anything, and its future is
    /// unboxed. The charge is still given back when an inner guard refuses
    /// the request. **An `AdmitLayer` must sit inside this layer**, or
    /// neither check runs; the gateway composes both.
    #[must_use]
    pub fn deferred(self) -> Self {
        self.update(|c| c.deferred = true)
    }

    /// Accepts the tenant named in the `X-Tenant-ID` header (default: off).
    ///
    /// The header must appear once and hold a valid
    /// [`TenantId`](kailash_core::TenantId) exactly — no surrounding
    /// whitespace, no upper case — or the request is refused with `400`. It
    /// never overrides the authenticated principal's tenant: if both are
    /// present they must agree.
    #[must_use]
    pub fn header(self, enabled: bool) -> Self {
        self.update(|c| c.header = enabled)
    }

    /// Accepts the tenant named by the subdomain of `base_domain` (default:
    /// off): with base `example.com`, the host `acme.example.com` names
    /// `acme`. Hosts outside the base domain, the base domain itself and
    /// deeper names (`a.b.example.com`) name no tenant this way.
    ///
    /// Leading and trailing dots of `base_domain` are ignored and it is
    /// compared case-insensitively.
    #[must_use]
    pub fn subdomains(self, base_domain: impl Into<String>) -> Self {
        let base = base_domain.into();
        let base = base.trim_matches('.').to_ascii_lowercase();
        self.update(|c| c.base_domain = (!base.is_empty()).then_some(base))
    }

    /// Asks the registry which tenant owns the request's host (default:
    /// off). Hosts under the [`subdomains`](Self::subdomains) base domain
    /// are not looked up.
    #[must_use]
    pub fn custom_domains(self, enabled: bool) -> Self {
        self.update(|c| c.custom_domains = enabled)
    }

    /// A path that needs no tenant (compared exactly); such requests pass
    /// through untouched.
    #[must_use]
    pub fn public_path(self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.update(|c| c.public.add_path(path))
    }

    /// A path prefix that needs no tenant. The prefix matches whole
    /// segments: `/public` matches `/public` and `/public/x`, not
    /// `/publicity`. Paths with `.` or `..` segments are never public.
    #[must_use]
    pub fn public_prefix(self, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        self.update(|c| c.public.add_prefix(prefix))
    }

    /// Lets a header or host choose the tenant of an authenticated principal
    /// whose token names none (default: refused with `403`).
    ///
    /// **Dangerous**: every such principal can then act in any tenant it
    /// names — its role grants, limits and audit entries follow the tenant
    /// the request chose. Only for deployments where tenantless principals
    /// are trusted operators across tenants. The tenant chosen is stamped
    /// on the request's [`Principal`](kailash_core::Principal), so every
    /// later layer and handler sees that one tenant and no other.
    #[must_use]
    pub fn allow_tenantless_principals(self) -> Self {
        self.update(|c| c.allow_tenantless = true)
    }

    /// Records refusals to `sink` (action [`AUDIT_ACTION`](super::AUDIT_ACTION)).
    #[must_use]
    pub fn audit(self, sink: Arc<dyn AuditSink>) -> Self {
        self.update(|c| c.audit = Some(sink))
    }
}

impl<S> Layer<S> for TenancyLayer {
    type Service = Tenancy<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Tenancy::new(inner, self.config.clone(), QuotaOwner::shared(&self.config))
    }
}
