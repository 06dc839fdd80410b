//! What [`RateLimitLayer`](super::RateLimitLayer) and its service share.

use std::sync::Arc;

use crate::context::IpPrefixes;
use crate::state::{RateLimiter, RateQuota};

/// What a layer does when its state backend cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Let the request through (logged at `warn`).
    #[default]
    Open,
    /// Refuse with 503 problem+json.
    Closed,
}

/// The first bucket of a [`RateLimitLayer`](super::RateLimitLayer): a
/// layer always limits something, so it is given at construction; more are
/// added with the layer's setters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// Each client IP (as resolved by the request context's proxy policy).
    PerIp(RateQuota),
    /// Each authenticated user.
    PerUser(RateQuota),
    /// Each tenant as a whole.
    PerTenant(RateQuota),
}

#[derive(Clone)]
pub(super) struct Config {
    pub(super) limiter: Arc<dyn RateLimiter>,
    pub(super) per_ip: Option<RateQuota>,
    pub(super) ip_prefixes: IpPrefixes,
    pub(super) per_user: Option<RateQuota>,
    pub(super) per_tenant: Option<RateQuota>,
    pub(super) fail_mode: FailMode,
    /// Whether the buckets are added to the request's admission plan (run
    /// by an `AdmitLayer` inside) instead of charged here.
    pub(super) deferred: bool,
}
