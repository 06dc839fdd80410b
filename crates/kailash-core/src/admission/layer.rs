use tower::Layer;

use crate::state::SharedState;

use super::Admit;

/// Runs the request's [`PendingAdmission`](super::PendingAdmission) once;
/// see the [module docs](super).
#[derive(Clone, Debug)]
pub struct AdmitLayer {
    state: SharedState,
}

impl AdmitLayer {
    /// A layer asking `state` (one call per request when the backend
    /// implements [`Admit`](crate::state::Admit)).
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for AdmitLayer {
    type Service = Admit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admit {
            inner,
            state: self.state.clone(),
        }
    }
}
