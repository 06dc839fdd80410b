use tower::Layer;

use super::GrpcStatus;

/// Turns the HTTP refusals of the layers inside it into gRPC statuses for
/// gRPC requests; see the [module docs](super).
///
/// Put it outermost (first in a `ServiceBuilder`), so every refusal —
/// authentication, tenancy, access, rate limits, body limits — passes
/// through it.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcStatusLayer {
    _priv: (),
}

impl GrpcStatusLayer {
    /// The layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for GrpcStatusLayer {
    type Service = GrpcStatus<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcStatus::new(inner)
    }
}
