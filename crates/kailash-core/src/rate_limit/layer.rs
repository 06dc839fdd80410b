use std::sync::Arc;

use tower::Layer;

use crate::context::IpPrefixes;
use crate::state::{RateLimiter, RateQuota};

use super::RateLimit;
use super::config::{Config, FailMode, Limit};

/// Limits request rates per client IP, user and tenant. See the
/// [module docs](super).
#[derive(Clone)]
pub struct RateLimitLayer {
    pub(super) config: Arc<Config>,
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("per_ip", &self.config.per_ip)
            .field("ip_prefixes", &self.config.ip_prefixes)
            .field("per_user", &self.config.per_user)
            .field("per_tenant", &self.config.per_tenant)
            .field("fail_mode", &self.config.fail_mode)
            .field("deferred", &self.config.deferred)
            .finish()
    }
}

impl RateLimitLayer {
    /// A layer over `limiter` charging `first`; add more buckets with
    /// [`per_ip`](Self::per_ip), [`per_user`](Self::per_user) and
    /// [`per_tenant`](Self::per_tenant). Fails open by default.
    pub fn new(limiter: Arc<dyn RateLimiter>, first: Limit) -> Self {
        let layer = Self {
            config: Arc::new(Config {
                limiter,
                per_ip: None,
                ip_prefixes: IpPrefixes::DEFAULT,
                per_user: None,
                per_tenant: None,
                fail_mode: FailMode::default(),
                deferred: false,
            }),
        };
        match first {
            Limit::PerIp(quota) => layer.per_ip(quota),
            Limit::PerUser(quota) => layer.per_user(quota),
            Limit::PerTenant(quota) => layer.per_tenant(quota),
        }
    }

    fn update(mut self, f: impl FnOnce(&mut Config)) -> Self {
        let config = Arc::make_mut(&mut self.config);
        f(config);
        self
    }

    /// Limits each client IP.
    #[must_use]
    pub fn per_ip(self, quota: RateQuota) -> Self {
        self.update(|c| c.per_ip = Some(quota))
    }

    /// How client addresses share a per-IP bucket (default: each IPv4
    /// address alone, IPv6 by /64, so one IPv6 client cannot spread its
    /// requests over 2^64 addresses).
    #[must_use]
    pub fn ip_prefixes(self, prefixes: IpPrefixes) -> Self {
        self.update(|c| c.ip_prefixes = prefixes)
    }

    /// Limits each authenticated user.
    #[must_use]
    pub fn per_user(self, quota: RateQuota) -> Self {
        self.update(|c| c.per_user = Some(quota))
    }

    /// Limits each tenant as a whole.
    #[must_use]
    pub fn per_tenant(self, quota: RateQuota) -> Self {
        self.update(|c| c.per_tenant = Some(quota))
    }

    /// Adds the buckets to the request's
    /// [`PendingAdmission`](crate::admission::PendingAdmission) instead of
    /// charging them here: an [`AdmitLayer`](crate::admission::AdmitLayer)
    /// inside this layer charges them together with the other deferred
    /// checks (one round trip on Redis). Refusals, `Retry-After` and the
    /// fail mode stay the same. Without an `AdmitLayer` inside, nothing is
    /// charged.
    #[must_use]
    pub fn deferred(self) -> Self {
        self.update(|c| c.deferred = true)
    }

    /// Sets the behaviour when the backend cannot answer.
    #[must_use]
    pub fn fail_mode(self, mode: FailMode) -> Self {
        self.update(|c| c.fail_mode = mode)
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            owners: super::service::owners(&self.config),
            config: self.config.clone(),
        }
    }
}
