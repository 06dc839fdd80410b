use tower::Layer;

use super::{Metrics, MetricsRegistry};

/// Records RED metrics into a [`MetricsRegistry`]. See the [module docs](super).
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    registry: MetricsRegistry,
}

impl MetricsLayer {
    /// A layer recording into `registry`.
    pub fn new(registry: MetricsRegistry) -> Self {
        Self { registry }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Metrics {
            inner,
            registry: self.registry.clone(),
        }
    }
}
