use tower::Layer;

use super::ProblemJson;

/// Turns bodiless or plain-text error responses (status ≥ 400) into
/// `application/problem+json`.
///
/// Responses that already carry another content type (JSON, problem+json,
/// HTML) pass untouched: the layer only fills the gap that routers and
/// generic middleware leave. The plain text of a replaced body is dropped
/// rather than copied into `detail`, because it may come from anywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProblemJsonLayer {
    _priv: (),
}

impl ProblemJsonLayer {
    /// The layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for ProblemJsonLayer {
    type Service = ProblemJson<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ProblemJson::new(inner)
    }
}
