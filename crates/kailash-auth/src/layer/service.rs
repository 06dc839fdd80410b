//! [`JwtAuth`]: the service that authenticates each request.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::Extensions;
use http::{Request, Response};
use kailash_core::Principal;
use kailash_core::admission::{CheckOwner, PendingAdmission};
use kailash_core::guard::Deferred;
use kailash_core::problem::ResponseBody;

use super::config::Config;
use super::credential::{Cred, credential};
use super::failure::Failure;
use super::future::ResponseFuture;
use super::{SessionCheck, SessionCheckError};

/// Adds `principal`'s session check to the request's admission when the
/// layer defers it and the check can be deferred: `Some(Ok)` added,
/// `Some(Err)` refused at once, `None` to be checked here.
fn defer(
    config: &Config,
    session: &dyn SessionCheck,
    owner: &Arc<dyn CheckOwner>,
    principal: &Principal,
    extensions: &mut Extensions,
) -> Option<Result<(), SessionCheckError>> {
    if !config.defer_session {
        return None;
    }
    match session.admission_check(principal)? {
        Ok(check) => PendingAdmission::add(extensions, check, owner).ok().map(Ok),
        Err(e) => Some(Err(e)),
    }
}

/// The service of [`JwtAuthLayer`](super::JwtAuthLayer): verifies the
/// request's credential and inserts its [`Principal`], or refuses.
#[derive(Clone)]
pub struct JwtAuth<S> {
    inner: S,
    config: Arc<Config>,
    /// Answers for the session check when it is deferred to the admission.
    owner: Arc<dyn CheckOwner>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for JwtAuth<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> JwtAuth<S> {
    pub(super) fn new(inner: S, config: Arc<Config>, owner: Arc<dyn CheckOwner>) -> Self {
        Self {
            inner,
            config,
            owner,
        }
    }

    kailash_core::inner_service_accessors!();
}

/// Who the request is, as far as `call` can tell without awaiting.
enum Pending {
    /// A cached principal whose session is still to be checked.
    Known(Principal),
    /// A token to verify.
    Verify(String),
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
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &self.config;
        if config.is_public(req.uri().path()) {
            return ResponseFuture::pass(self.inner.call(req));
        }
        // A child span of the request's when traces are exported (DEBUG:
        // free when only logs at INFO listen); it covers the checks, not
        // the inner service.
        let span = tracing::debug_span!("auth.authenticate");
        let pending = span.in_scope(|| match credential(config, req.headers()) {
            Cred::Missing => Err(Failure::Missing),
            Cred::Invalid(r) => Err(Failure::BadRequest(r)),
            Cred::Token(token) => match config.cache.as_ref().and_then(|c| c.get(token)) {
                Some(principal) => Ok(Pending::Known(principal)),
                None => Ok(Pending::Verify(token.to_owned())),
            },
        });
        // Fast path: answered in process, nothing to await, nothing boxed.
        let pending = match pending {
            Ok(Pending::Known(principal)) => {
                let answer = config.session.as_ref().map(|s| {
                    span.in_scope(|| {
                        defer(config, &**s, &self.owner, &principal, req.extensions_mut())
                            .or_else(|| s.check_now(&principal))
                    })
                });
                match answer {
                    None | Some(Some(Ok(()))) => {
                        req.extensions_mut().insert(principal);
                        return ResponseFuture::pass(self.inner.call(req));
                    }
                    Some(Some(Err(e))) => Err(Failure::Session(e, principal)),
                    Some(None) => Ok(Pending::Known(principal)),
                }
            }
            other => other,
        };
        let pending = match pending {
            Ok(pending) => pending,
            Err(failure) => return failure.refuse_now(config, &req),
        };

        // Slow path: verification (possibly a JWKS refetch) or an async
        // session check.
        let config = config.clone();
        let owner = self.owner.clone();
        // The clone is the not-yet-ready one; keep the ready service for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let fut: Deferred<ResBody, S::Error> = Box::pin(async move {
            let principal = match pending {
                Pending::Known(p) => p,
                Pending::Verify(token) => match tracing::Instrument::instrument(
                    config.verifier.verify(&token),
                    span.clone(),
                )
                .await
                {
                    Ok(claims) => {
                        let p = claims.to_principal();
                        if let Some(cache) = &config.cache {
                            cache.insert(&token, p.clone(), claims.exp);
                        }
                        p
                    }
                    Err(e) => return Failure::Token(e).refuse(&config, &req).await,
                },
            };
            if let Some(session) = &config.session {
                let deferred = defer(
                    &config,
                    &**session,
                    &owner,
                    &principal,
                    req.extensions_mut(),
                );
                let result = match deferred.or_else(|| session.check_now(&principal)) {
                    Some(r) => r,
                    None => tracing::Instrument::instrument(session.check(&principal), span).await,
                };
                if let Err(e) = result {
                    return Failure::Session(e, principal).refuse(&config, &req).await;
                }
            }
            req.extensions_mut().insert(principal);
            inner.call(req).await.map(|r| r.map(ResponseBody::new))
        });
        ResponseFuture::deferred(fut)
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use async_trait::async_trait;
    use kailash_core::audit::MemoryAuditSink;
    use kailash_core::clock::ManualClock;
    use tower::{Layer, Service, service_fn};

    use super::*;
    use crate::jwt::{Claims, KeySet, SigningKey, TokenCache, TokenType, Verifier};
    use crate::layer::{JwtAuthLayer, SessionCheck, SessionCheckError};

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
        let mut svc = JwtAuthLayer::new(verifier)
            .cache(cache.clone())
            .session_check(Arc::new(SyncSessions))
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

    #[tokio::test]
    async fn a_refusal_the_sink_takes_at_once_is_not_boxed() {
        let clock = Arc::new(ManualClock::new(
            jiff::Timestamp::from_second(1_700_000_000).unwrap(),
        ));
        let keys = Arc::new(KeySet::new(
            SigningKey::hs256("k", &[3; 32]).unwrap(),
            clock.clone(),
        ));
        let verifier = Verifier::builder(keys, "i", "a").clock(clock).build();
        let memory = Arc::new(MemoryAuditSink::new());
        let mut svc = JwtAuthLayer::new(verifier)
            .audit(memory.clone())
            .layer(service_fn(|_req: Request<()>| async {
                Ok::<_, Infallible>(Response::new(()))
            }));
        let missing = svc.call(Request::new(()));
        assert!(!missing.is_pass() && !missing.is_deferred());
        assert_eq!(
            missing.await.unwrap().status(),
            http::StatusCode::UNAUTHORIZED
        );
        let events = memory.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].action, "auth.token");
    }

    #[test]
    fn the_inner_service_is_reachable() {
        let clock = Arc::new(ManualClock::new(
            jiff::Timestamp::from_second(1_700_000_000).unwrap(),
        ));
        let keys = Arc::new(KeySet::new(
            SigningKey::hs256("k", &[3; 32]).unwrap(),
            clock.clone(),
        ));
        let verifier = Verifier::builder(keys, "i", "a").clock(clock).build();
        let mut svc = JwtAuthLayer::new(verifier).layer(7_u8);
        assert_eq!(*svc.get_ref(), 7);
        *svc.get_mut() = 8;
        assert_eq!(svc.into_inner(), 8);
    }
}
