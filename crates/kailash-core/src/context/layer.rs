use std::sync::Arc;

use tower::Layer;

use crate::clock::{Clock, SystemClock};

use super::{RequestContextService, RequestIdGenerator, TrustedProxies};

/// When an incoming `X-Request-Id` is kept instead of generating one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncomingRequestId {
    /// Always generate.
    Never,
    /// Keep a well-formed id sent by a trusted proxy (the default), so one id
    /// follows a request through your load balancer and this service.
    #[default]
    FromTrustedProxies,
    /// Keep any well-formed id (only when every client is trusted).
    Always,
}

/// Adds a [`RequestContext`](super::RequestContext) to every request.
///
/// See the [module docs](super) for an example.
#[derive(Debug, Clone)]
pub struct RequestContextLayer {
    pub(super) shared: Arc<Shared>,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) proxies: TrustedProxies,
    pub(super) incoming: IncomingRequestId,
    pub(super) ids: RequestIdGenerator,
    pub(super) clock: Arc<dyn Clock>,
}

impl Default for RequestContextLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestContextLayer {
    /// Trusts no proxy, keeps incoming ids only from trusted proxies (so
    /// none), and uses the system clock.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                proxies: TrustedProxies::none(),
                incoming: IncomingRequestId::default(),
                ids: RequestIdGenerator::new(),
                clock: Arc::new(SystemClock),
            }),
        }
    }

    fn update(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        match Arc::get_mut(&mut self.shared) {
            Some(shared) => f(shared),
            None => {
                let mut shared = Shared {
                    proxies: self.shared.proxies.clone(),
                    incoming: self.shared.incoming,
                    ids: RequestIdGenerator::new(),
                    clock: self.shared.clock.clone(),
                };
                f(&mut shared);
                self.shared = Arc::new(shared);
            }
        }
        self
    }

    /// Sets the proxies whose `X-Forwarded-For` entries are believed.
    #[must_use]
    pub fn trusted_proxies(self, proxies: TrustedProxies) -> Self {
        self.update(|s| s.proxies = proxies)
    }

    /// Sets when an incoming `X-Request-Id` is kept.
    #[must_use]
    pub fn incoming_request_id(self, policy: IncomingRequestId) -> Self {
        self.update(|s| s.incoming = policy)
    }

    /// Sets the clock that stamps `received_at`.
    #[must_use]
    pub fn clock(self, clock: Arc<dyn Clock>) -> Self {
        self.update(|s| s.clock = clock)
    }
}

impl<S> Layer<S> for RequestContextLayer {
    type Service = RequestContextService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequestContextService {
            inner,
            shared: self.shared.clone(),
        }
    }
}
