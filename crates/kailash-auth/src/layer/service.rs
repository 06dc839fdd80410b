use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{AUTHORIZATION, COOKIE, UPGRADE};
use http::{Request, Response};
use kailash_core::audit::{AuditDecision, AuditEvent, AuditSeverity};
use kailash_core::context::RequestContext;
use kailash_core::problem::ResponseBody;
use kailash_core::{Principal, Problem};

use crate::jwt::VerifyError;

use kailash_core::guard::Deferred;

use super::future::JwtAuthFuture;
use super::layer::{Config, SessionCheckError};

/// The service of [`JwtAuthLayer`](super::JwtAuthLayer).
#[derive(Clone)]
pub struct JwtAuth<S> {
    pub(super) inner: S,
    pub(super) config: Arc<Config>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for JwtAuth<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Why a request was refused.
enum Failure {
    Missing,
    BadRequest(&'static str),
    Token(VerifyError),
    Session(SessionCheckError),
}

impl Failure {
    fn reason(&self) -> &'static str {
        match self {
            Failure::Missing => "missing credentials",
            Failure::BadRequest(r) => r,
            Failure::Token(e) => e.audit_reason(),
            Failure::Session(SessionCheckError::Revoked) => "session revoked",
            Failure::Session(SessionCheckError::Expired) => "session expired",
            Failure::Session(SessionCheckError::Unavailable) => "session store unavailable",
        }
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
            Failure::Session(SessionCheckError::Unavailable) => {
                Problem::service_unavailable("authentication is temporarily unavailable")
            }
            Failure::Session(_) => {
                Problem::unauthorized(Some("invalid_token")).with_detail(self.reason())
            }
        }
    }

    fn event<B>(
        &self,
        config: &Config,
        req: &Request<B>,
        principal: Option<&Principal>,
    ) -> AuditEvent {
        let (decision, severity) = match self {
            Failure::Missing => (AuditDecision::Failure, AuditSeverity::Info),
            Failure::Session(SessionCheckError::Unavailable) => {
                (AuditDecision::Error, AuditSeverity::Warning)
            }
            _ => (AuditDecision::Failure, AuditSeverity::Warning),
        };
        let mut event = AuditEvent::new("auth.token", decision)
            .at(config.verifier.clock().now())
            .severity(severity)
            .reason(self.reason())
            .resource(req.uri().path().to_owned());
        if let Some(ctx) = req.extensions().get::<RequestContext>() {
            event = event.context(ctx);
        }
        if let Some(p) = principal {
            event = event.principal(p);
        }
        event
    }
}

async fn refuse<B, E>(
    config: &Config,
    failure: Failure,
    event: Option<AuditEvent>,
) -> Result<Response<ResponseBody<B>>, E> {
    if let (Some(sink), Some(event)) = (&config.audit, event)
        && let Err(error) = sink.record(event).await
    {
        tracing::warn!(%error, "could not record an authentication failure");
    }
    Ok(failure.problem().to_response())
}

enum Cred<'a> {
    Token(&'a str),
    Missing,
    Invalid(&'static str),
}

fn is_websocket_upgrade<B>(req: &Request<B>) -> bool {
    req.headers().get_all(UPGRADE).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
        })
    })
}

fn from_header<B>(req: &Request<B>) -> Result<Option<&str>, &'static str> {
    let mut values = req.headers().get_all(AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Ok(None),
        (Some(_), Some(_)) => return Err("multiple authorization headers"),
        (Some(v), None) => v,
    };
    let text = value
        .to_str()
        .map_err(|_| "malformed authorization header")?;
    let (scheme, rest) = text
        .split_once(' ')
        .ok_or("malformed authorization header")?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("unsupported authorization scheme");
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() || token.contains([' ', ',', '\t']) {
        return Err("malformed bearer credential");
    }
    Ok(Some(token))
}

fn from_query<'a, B>(req: &'a Request<B>, name: &str) -> Result<Option<&'a str>, &'static str> {
    let Some(query) = req.uri().query() else {
        return Ok(None);
    };
    let mut found = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            if found.is_some() {
                return Err("multiple query credentials");
            }
            found = Some(v);
        }
    }
    match found {
        Some("") => Err("malformed query credential"),
        other => Ok(other),
    }
}

fn from_cookie<'a, B>(req: &'a Request<B>, name: &str) -> Result<Option<&'a str>, &'static str> {
    let mut found = None;
    for header in req.headers().get_all(COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for pair in text.split(';') {
            let Some((k, v)) = pair.trim().split_once('=') else {
                continue;
            };
            if k == name {
                if found.is_some() {
                    return Err("multiple credential cookies");
                }
                found = Some(v.trim_matches('"'));
            }
        }
    }
    match found {
        Some("") => Err("malformed credential cookie"),
        other => Ok(other),
    }
}

fn credential<'a, B>(config: &Config, req: &'a Request<B>) -> Cred<'a> {
    let header = match from_header(req) {
        Ok(t) => t,
        Err(r) => return Cred::Invalid(r),
    };
    let query = match &config.query_param {
        Some(name) if is_websocket_upgrade(req) => match from_query(req, name) {
            Ok(t) => t,
            Err(r) => return Cred::Invalid(r),
        },
        _ => None,
    };
    match (header, query) {
        (Some(_), Some(_)) => return Cred::Invalid("multiple credentials"),
        (Some(t), None) | (None, Some(t)) => return Cred::Token(t),
        (None, None) => {}
    }
    if let Some(name) = &config.cookie {
        return match from_cookie(req, name) {
            Ok(Some(t)) => Cred::Token(t),
            Ok(None) => Cred::Missing,
            Err(r) => Cred::Invalid(r),
        };
    }
    Cred::Missing
}

enum Pending {
    Known(Principal),
    Verify(String),
}

enum Step {
    Refuse(Failure, Option<Principal>),
    Hit(Principal),
    Miss(String),
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for JwtAuth<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = JwtAuthFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &self.config;
        if config.is_public(req.uri().path()) {
            return JwtAuthFuture::pass(self.inner.call(req));
        }
        let step = match credential(config, &req) {
            Cred::Missing => Step::Refuse(Failure::Missing, None),
            Cred::Invalid(r) => Step::Refuse(Failure::BadRequest(r), None),
            Cred::Token(token) => match config.cache.as_ref().and_then(|c| c.get(token)) {
                Some(principal) => Step::Hit(principal),
                None => Step::Miss(token.to_owned()),
            },
        };
        // Fast path: answered in process, nothing to await, nothing boxed.
        let step = match step {
            Step::Hit(principal) => {
                match config.session.as_ref().map(|s| s.check_now(&principal)) {
                    None | Some(Some(Ok(()))) => {
                        req.extensions_mut().insert(principal);
                        return JwtAuthFuture::pass(self.inner.call(req));
                    }
                    Some(Some(Err(e))) => Step::Refuse(Failure::Session(e), Some(principal)),
                    Some(None) => Step::Hit(principal),
                }
            }
            other => other,
        };
        let pending = match step {
            Step::Hit(p) => Pending::Known(p),
            Step::Miss(token) => Pending::Verify(token),
            Step::Refuse(failure, principal) => {
                if config.audit.is_none() {
                    return JwtAuthFuture::refused(failure.problem().to_response());
                }
                let event = failure.event(config, &req, principal.as_ref());
                let config = config.clone();
                return JwtAuthFuture::deferred(Box::pin(async move {
                    refuse(&config, failure, Some(event)).await
                }));
            }
        };

        // Slow path: verification (possibly a JWKS refetch) or an async
        // session check.
        let config = config.clone();
        // The clone is the not-yet-ready one; keep the ready service for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let fut: Deferred<ResBody, S::Error> = Box::pin(async move {
            let principal = match pending {
                Pending::Known(p) => p,
                Pending::Verify(token) => match config.verifier.verify(&token).await {
                    Ok(claims) => {
                        let p = claims.to_principal();
                        if let Some(cache) = &config.cache {
                            cache.insert(&token, p.clone(), claims.exp);
                        }
                        p
                    }
                    Err(e) => {
                        let failure = Failure::Token(e);
                        let event = failure.event(&config, &req, None);
                        return refuse(&config, failure, Some(event)).await;
                    }
                },
            };
            if let Some(session) = &config.session {
                let result = match session.check_now(&principal) {
                    Some(r) => r,
                    None => session.check(&principal).await,
                };
                if let Err(e) = result {
                    let failure = Failure::Session(e);
                    let event = failure.event(&config, &req, Some(&principal));
                    return refuse(&config, failure, Some(event)).await;
                }
            }
            req.extensions_mut().insert(principal);
            inner.call(req).await.map(|r| r.map(ResponseBody::new))
        });
        JwtAuthFuture::deferred(fut)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use async_trait::async_trait;
    use kailash_core::clock::ManualClock;
    use tower::{Layer, Service, service_fn};

    use super::*;
    use crate::jwt::{Claims, KeySet, SigningKey, TokenCache, TokenType, Verifier};
    use crate::layer::{JwtAuthLayer, SessionCheck};

    struct SyncSessions;
    #[async_trait]
    impl SessionCheck for SyncSessions {
        async fn check(&self, _: &Principal) -> Result<(), SessionCheckError> {
            Ok(())
        }
        fn check_now(&self, _: &Principal) -> Option<Result<(), SessionCheckError>> {
            Some(Ok(()))
        }
    }

    #[tokio::test]
    async fn cache_hits_take_the_unboxed_path() {
        let clock = Arc::new(ManualClock::new(
            jiff::Timestamp::from_second(1_700_000_000).unwrap(),
        ));
        let keys = Arc::new(KeySet::new(
            SigningKey::hs256("k", &[3; 32]).unwrap(),
            clock.clone(),
        ));
        let verifier = Verifier::builder(keys.clone(), "i", "a")
            .clock(clock.clone())
            .build();
        let cache = Arc::new(TokenCache::new(10, clock.clone()));
        let token = keys
            .issue(
                &Claims::new("i", "alice", "a", 1_700_000_000, 1_700_000_300),
                TokenType::Access,
            )
            .unwrap();
        let mut svc = JwtAuthLayer::builder(verifier)
            .cache(cache.clone())
            .session_check(Arc::new(SyncSessions))
            .build()
            .layer(service_fn(|_req: Request<()>| async {
                Ok::<_, Infallible>(Response::new(()))
            }));
        let req = || {
            Request::builder()
                .header("authorization", format!("Bearer {token}"))
                .body(())
                .unwrap()
        };
        let first = svc.call(req());
        assert!(first.is_deferred());
        assert_eq!(first.await.unwrap().status(), http::StatusCode::OK);
        let second = svc.call(req());
        assert!(second.is_pass());
        assert_eq!(second.await.unwrap().status(), http::StatusCode::OK);
        let missing = svc.call(Request::new(()));
        assert!(
            !missing.is_pass() && !missing.is_deferred(),
            "refused in process"
        );
    }
}
