use std::sync::Arc;

use tower::Layer;

use crate::clock::{Clock, SystemClock};

use super::config::{Config, IncomingRequestId};
use super::{RequestIdGenerator, SetRequestContext, TrustedProxies};

/// Adds a [`RequestContext`](super::RequestContext) to every request.
///
/// See the [module docs](super) for an example.
#[derive(Debug, Clone)]
pub struct SetRequestContextLayer {
    pub(super) config: Arc<Config>,
}

impl Default for SetRequestContextLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl SetRequestContextLayer {
    /// Trusts no proxy, keeps incoming ids only from trusted proxies (so
    /// none), and uses the system clock.
    pub fn new() -> Self {
        Self {
            config: Arc::new(Config {
                proxies: TrustedProxies::none(),
                incoming: IncomingRequestId::default(),
                ids: RequestIdGenerator::new(),
                clock: Arc::new(SystemClock),
            }),
        }
    }

    fn update(mut self, f: impl FnOnce(&mut Config)) -> Self {
        match Arc::get_mut(&mut self.config) {
            Some(config) => f(config),
            None => {
                let mut config = Config {
                    proxies: self.config.proxies.clone(),
                    incoming: self.config.incoming,
                    ids: RequestIdGenerator::new(),
                    clock: self.config.clock.clone(),
                };
                f(&mut config);
                self.config = Arc::new(config);
            }
        }
        self
    }

    /// Sets the proxies whose `X-Forwarded-For` entries are believed.
    #[must_use]
    pub fn trusted_proxies(self, proxies: TrustedProxies) -> Self {
        self.update(|c| c.proxies = proxies)
    }

    /// Sets when an incoming `X-Request-Id` is kept.
    #[must_use]
    pub fn incoming_request_id(self, policy: IncomingRequestId) -> Self {
        self.update(|c| c.incoming = policy)
    }

    /// Sets the clock that stamps `received_at`.
    #[must_use]
    pub fn clock(self, clock: Arc<dyn Clock>) -> Self {
        self.update(|c| c.clock = clock)
    }
}

impl<S> Layer<S> for SetRequestContextLayer {
    type Service = SetRequestContext<S>;
    fn layer(&self, inner: S) -> Self::Service {
        SetRequestContext {
            inner,
            config: self.config.clone(),
        }
    }
}
