//! Refusing a request: the problem+json answer, and the audit event with a
//! fixed reason phrase (never the token).

use http::{Request, Response};
use kailash_core::audit::{AuditDecision, AuditEvent, AuditSeverity, Offer, offer};
use kailash_core::context::RequestContext;
use kailash_core::guard::GuardRefusal;
use kailash_core::problem::ResponseBody;
use kailash_core::{Principal, Problem};

use super::SessionCheckError;
use super::config::Config;
use super::future::ResponseFuture;
use crate::jwt::VerifyError;

/// Why a request was refused.
pub(super) enum Failure {
    Missing,
    BadRequest(&'static str),
    Token(VerifyError),
    /// The token verified; the session of its principal did not.
    Session(SessionCheckError, Principal),
}

impl Failure {
    fn reason(&self) -> &'static str {
        match self {
            Failure::Missing => "missing credentials",
            Failure::BadRequest(r) => r,
            Failure::Token(e) => e.audit_reason(),
            Failure::Session(SessionCheckError::Revoked, _) => "session revoked",
            Failure::Session(SessionCheckError::Expired, _) => "session expired",
            Failure::Session(SessionCheckError::Unavailable, _) => "session store unavailable",
        }
    }

    /// The `reason` label of `kailash_auth_token_rejections_total`.
    fn metric_reason(&self) -> &'static str {
        match self {
            Failure::Missing => "missing",
            Failure::BadRequest(_) => "bad_request",
            Failure::Token(e) => e.code(),
            Failure::Session(SessionCheckError::Revoked, _) => "session_revoked",
            Failure::Session(SessionCheckError::Expired, _) => "session_expired",
            Failure::Session(SessionCheckError::Unavailable, _) => "session_unavailable",
        }
    }

    fn count(&self) {
        metrics::counter!("kailash_auth_token_rejections_total", "reason" => self.metric_reason())
            .increment(1);
    }

    fn problem(&self) -> Problem {
        match self {
            Failure::Missing => Problem::unauthorized(None),
            Failure::BadRequest(r) => {
                Problem::unauthorized(Some("invalid_request")).with_detail(*r)
            }
            Failure::Token(e) => {
                Problem::unauthorized(Some(e.rfc6750_code())).with_detail(e.audit_reason())
            }
            Failure::Session(SessionCheckError::Unavailable, _) => {
                Problem::service_unavailable("authentication is temporarily unavailable")
            }
            Failure::Session(..) => {
                Problem::unauthorized(Some("invalid_token")).with_detail(self.reason())
            }
        }
    }

    fn event<B>(&self, config: &Config, req: &Request<B>) -> AuditEvent {
        self.event_at(
            config,
            req.uri().path(),
            req.extensions().get::<RequestContext>(),
        )
    }

    fn event_at(
        &self,
        config: &Config,
        path: &str,
        context: Option<&RequestContext>,
    ) -> AuditEvent {
        let (decision, severity) = match self {
            Failure::Missing => (AuditDecision::Failure, AuditSeverity::Info),
            Failure::Session(SessionCheckError::Unavailable, _) => {
                (AuditDecision::Error, AuditSeverity::Warning)
            }
            _ => (AuditDecision::Failure, AuditSeverity::Warning),
        };
        let mut event = AuditEvent::new("auth.token", decision)
            .at(config.verifier.clock().now())
            .severity(severity)
            .reason(self.reason())
            .resource(path);
        if let Some(ctx) = context {
            event = event.context(ctx);
        }
        if let Failure::Session(_, principal) = self {
            event = event.principal(principal);
        }
        event
    }

    /// The answer of a deferred session check, and its offered audit
    /// event: as [`answer`](Self::answer), from what the admission sees of
    /// the request.
    pub(super) fn answer_at(
        self,
        config: &Config,
        path: &str,
        context: Option<&RequestContext>,
    ) -> (Problem, Offer) {
        self.count();
        let offered = match &config.audit {
            Some(_) => offer(config.audit.as_ref(), self.event_at(config, path, context)),
            None => Offer::Done(Ok(())),
        };
        (self.problem(), offered)
    }

    /// The problem, and the offered audit event. Nothing of the request is
    /// kept, so the caller's future does not hold the request body across
    /// an await.
    fn answer<ReqB>(self, config: &Config, req: &Request<ReqB>) -> (Problem, Offer) {
        self.count();
        let offered = match &config.audit {
            Some(_) => offer(config.audit.as_ref(), self.event(config, req)),
            None => Offer::Done(Ok(())),
        };
        (self.problem(), offered)
    }

    /// Refuses from `call`: answers once the refusal's audit event is
    /// written (503 if the sink refuses it); boxes only when the sink is full.
    pub(super) fn refuse_now<F, B, ReqB, E>(
        self,
        config: &Config,
        req: &Request<ReqB>,
    ) -> ResponseFuture<F, B, E>
    where
        B: Send + 'static,
        E: Send + 'static,
    {
        let (problem, offered) = self.answer(config, req);
        ResponseFuture::refused_after(offered, problem)
    }

    /// Refuses from inside the service's future. The returned future holds
    /// no borrow of the request, so it needs nothing of its body type.
    pub(super) fn refuse<B, ReqB, E>(
        self,
        config: &Config,
        req: &Request<ReqB>,
    ) -> impl Future<Output = Result<Response<ResponseBody<B>>, E>> + use<B, ReqB, E> {
        let (problem, offered) = self.answer(config, req);
        async move {
            Ok(match offered.settle().await {
                Ok(()) => problem.to_response(),
                Err(error) => GuardRefusal::response(&error.problem()),
            })
        }
    }
}
