//! What [`TenancyLayer`](super::TenancyLayer) was configured with, shared by
//! the layer (which builds it) and the service (which reads it).

use std::sync::Arc;

use kailash_core::audit::AuditSink;
use kailash_core::public::PublicPaths;

use crate::quota::Quotas;
use crate::registry::TenantRegistry;

#[derive(Clone)]
pub(super) struct Config {
    pub(super) registry: Arc<dyn TenantRegistry>,
    pub(super) quotas: Option<Quotas>,
    /// Whether the activation check and the API-call charge join the
    /// request's admission plan.
    pub(super) deferred: bool,
    /// Whether the `X-Tenant-ID` header names a tenant.
    pub(super) header: bool,
    /// The base domain, lowercase, without leading or trailing dots.
    pub(super) base_domain: Option<String>,
    pub(super) custom_domains: bool,
    pub(super) public: PublicPaths,
    pub(super) audit: Option<Arc<dyn AuditSink>>,
    /// Whether a header or host may choose the tenant of an authenticated
    /// principal that has none (see `allow_tenantless_principals`).
    pub(super) allow_tenantless: bool,
}

impl Config {
    pub(super) fn new(registry: Arc<dyn TenantRegistry>) -> Self {
        Self {
            registry,
            quotas: None,
            deferred: false,
            header: false,
            base_domain: None,
            custom_domains: false,
            public: PublicPaths::default(),
            audit: None,
            allow_tenantless: false,
        }
    }

    /// Whether resolution reads the request's host at all.
    pub(super) fn needs_host(&self) -> bool {
        self.base_domain.is_some() || self.custom_domains
    }
}
