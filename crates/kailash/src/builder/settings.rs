//! The public setting types the builder takes.

use kailash_core::rate_limit::FailMode;
use kailash_core::state::RateQuota;

/// Rate limits of the gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Per client IP.
    pub per_ip: Option<RateQuota>,
    /// Per authenticated user (requests carrying a `Principal`).
    pub per_user: Option<RateQuota>,
    /// Per tenant (requests whose `Principal` has a tenant).
    pub per_tenant: Option<RateQuota>,
    /// Behaviour when the state backend cannot answer.
    pub fail_mode: FailMode,
}

/// TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert: std::path::PathBuf,
    /// PEM private key.
    pub key: std::path::PathBuf,
    /// Accept TLS 1.3 only.
    pub tls13_only: bool,
}

/// How requests may name their tenant besides the token (which is
/// authoritative; every source present must agree with it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenancySettings {
    /// Accept `X-Tenant-ID`.
    pub header: bool,
    /// Resolve `<tenant>.<base>` hosts.
    pub subdomain_base: Option<String>,
    /// Resolve tenants' custom domains.
    pub custom_domains: bool,
    /// Let principals without a tenant act in the tenant a header or host
    /// names (see
    /// [`TenancyLayer::allow_tenantless_principals`](kailash_tenancy::layer::TenancyLayer::allow_tenantless_principals);
    /// dangerous).
    pub allow_tenantless_principals: bool,
}
