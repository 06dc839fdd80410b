//! [`SessionOwner`]: answers for a deferred session check in the
//! request's admission, with the same responses and audit events as the
//! layer's own session check.

use std::sync::Arc;

use kailash_core::Principal;
use kailash_core::admission::{AfterAdmit, CheckOwner, Refusal, RequestView};
use kailash_core::context::RequestContext;
use kailash_core::state::{Check, Outcome};

use super::SessionCheckError;
use super::config::Config;
use super::failure::Failure;

pub(super) struct SessionOwner {
    config: Arc<Config>,
}

impl SessionOwner {
    pub(super) fn shared(config: &Arc<Config>) -> Arc<dyn CheckOwner> {
        Arc::new(Self {
            config: config.clone(),
        })
    }

    fn refusal(&self, error: SessionCheckError, request: RequestView<'_>) -> Refusal {
        let Some(principal) = request.extensions.get::<Principal>() else {
            // The layer inserts the principal with the check; without it,
            // refuse as for a revoked session rather than let anything pass.
            return Refusal::new(kailash_core::Problem::unauthorized(Some("invalid_token")));
        };
        let (problem, audit) = Failure::Session(error, principal.clone()).answer_at(
            &self.config,
            request.uri.path(),
            request.extensions.get::<RequestContext>(),
        );
        Refusal { problem, audit }
    }
}

impl CheckOwner for SessionOwner {
    fn refuse(&self, _: &Check, outcome: &Outcome, request: RequestView<'_>) -> Option<Refusal> {
        let error = match outcome {
            Outcome::Dead => SessionCheckError::Revoked,
            Outcome::Failed(e) => {
                tracing::warn!(error = %e, "session check failed");
                SessionCheckError::Unavailable
            }
            // Anything else is not an answer to a session check: fail closed.
            _ => SessionCheckError::Unavailable,
        };
        Some(self.refusal(error, request))
    }

    fn admitted(&self, _: &Check, outcome: &Outcome, request: RequestView<'_>) -> AfterAdmit {
        let (Outcome::Live(record), Some(session), Some(principal)) = (
            outcome,
            &self.config.session,
            request.extensions.get::<Principal>(),
        ) else {
            return AfterAdmit::Refuse(Box::new(
                self.refusal(SessionCheckError::Unavailable, request),
            ));
        };
        match session.after_admission(principal, record) {
            Ok(None) => AfterAdmit::Pass,
            Err(e) => AfterAdmit::Refuse(Box::new(self.refusal(e, request))),
            Ok(Some(touch)) => {
                // Rare (once per touch interval): keep what a refusal needs.
                let config = self.config.clone();
                let principal = principal.clone();
                let path = request.uri.path().to_owned();
                let context = request.extensions.get::<RequestContext>().cloned();
                AfterAdmit::Later(Box::pin(async move {
                    let error = touch.await.err()?;
                    let (problem, audit) = Failure::Session(error, principal).answer_at(
                        &config,
                        &path,
                        context.as_ref(),
                    );
                    Some(Refusal { problem, audit })
                }))
            }
        }
    }
}
