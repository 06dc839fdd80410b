//! JwtAuthLayer: credential sources, failures, session checks, audit.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use http::{Request, Response, StatusCode};
use kailash_auth::jwt::{Algorithm, Claims, KeySet, SigningKey, TokenCache, TokenType, Verifier};
use kailash_auth::layer::{JwtAuthLayer, SessionCheck, SessionCheckError};
use kailash_core::Principal;
use kailash_core::audit::{AuditDecision, MemoryAuditSink};
use kailash_core::clock::{Clock, ManualClock};
use kailash_core::context::{RequestContext, RequestIdGenerator};
use tower::{Layer, ServiceExt, service_fn};

const NOW: i64 = 1_700_000_000;

struct Fixture {
    clock: Arc<ManualClock>,
    keys: Arc<KeySet>,
    verifier: Verifier,
}

fn fixture() -> Fixture {
    let clock = Arc::new(ManualClock::new(jiff::Timestamp::from_second(NOW).unwrap()));
    let keys = Arc::new(KeySet::new(
        SigningKey::generate(Algorithm::EdDSA, "k1").unwrap(),
        clock.clone(),
    ));
    let verifier = Verifier::builder(keys.clone(), "iss", "aud")
        .clock(clock.clone())
        .build();
    Fixture {
        clock,
        keys,
        verifier,
    }
}

impl Fixture {
    fn token(&self, sid: &str) -> String {
        let mut c = Claims::new("iss", "alice", "aud", NOW, NOW + 300);
        c.sid = Some(sid.into());
        self.keys.issue(&c, TokenType::Access).unwrap()
    }
}

/// Runs one request through the layer; returns the status, the challenge and
/// the subject the handler saw.
async fn run(
    layer: JwtAuthLayer,
    req: Request<()>,
) -> (StatusCode, Option<String>, Option<String>) {
    let svc = layer.layer(service_fn(|req: Request<()>| async move {
        let who = req
            .extensions()
            .get::<Principal>()
            .map(|p| p.subject().to_owned())
            .unwrap_or_default();
        Ok::<_, Infallible>(Response::new(who))
    }));
    let res = svc.oneshot(req).await.unwrap();
    let status = res.status();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = if status == StatusCode::OK {
        use http_body_util::BodyExt;
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        Some(String::from_utf8(bytes.to_vec()).unwrap())
    } else {
        None
    };
    (status, challenge, body)
}

fn get(uri: &str) -> http::request::Builder {
    Request::builder().uri(uri)
}

#[tokio::test]
async fn bearer_header_authenticates_and_principal_reaches_the_handler() {
    let f = fixture();
    let req = get("/me")
        .header("authorization", format!("Bearer {}", f.token("s1")))
        .body(())
        .unwrap();
    let (status, _, body) = run(JwtAuthLayer::new(f.verifier.clone()), req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_deref(), Some("alice"));
}

#[tokio::test]
async fn missing_and_malformed_credentials() {
    let f = fixture();
    let b = || JwtAuthLayer::new(f.verifier.clone());
    let (s, ch, _) = run(b(), get("/me").body(()).unwrap()).await;
    assert_eq!(
        (s, ch.as_deref()),
        (StatusCode::UNAUTHORIZED, Some("Bearer"))
    );

    let tok = f.token("s1");
    let two = get("/me")
        .header("authorization", format!("Bearer {tok}"))
        .header("authorization", format!("Bearer {tok}"))
        .body(())
        .unwrap();
    let (s, ch, _) = run(b(), two).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(ch.as_deref(), Some("Bearer error=\"invalid_request\""));

    for value in [
        "Basic YWxpY2U6cHc=",
        "Bearer ",
        "Bearer",
        "Bearer a b",
        &format!("Token {tok}"),
    ] {
        let req = get("/me").header("authorization", value).body(()).unwrap();
        let (s, ch, _) = run(b(), req).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{value}");
        assert_eq!(
            ch.as_deref(),
            Some("Bearer error=\"invalid_request\""),
            "{value}"
        );
    }

    let req = get("/me")
        .header("authorization", "Bearer a.b.c")
        .body(())
        .unwrap();
    let (s, ch, _) = run(b(), req).await;
    assert_eq!(
        (s, ch.as_deref()),
        (
            StatusCode::UNAUTHORIZED,
            Some("Bearer error=\"invalid_request\"")
        )
    );

    f.clock.advance(std::time::Duration::from_secs(400));
    let req = get("/me")
        .header("authorization", format!("bearer {tok}"))
        .body(())
        .unwrap();
    let (s, ch, _) = run(b(), req).await;
    assert_eq!(
        (s, ch.as_deref()),
        (
            StatusCode::UNAUTHORIZED,
            Some("Bearer error=\"invalid_token\"")
        )
    );
}

#[tokio::test]
async fn cookie_only_when_configured() {
    let f = fixture();
    let tok = f.token("s1");
    let req = || {
        get("/me")
            .header("cookie", format!("theme=dark; at={tok}"))
            .body(())
            .unwrap()
    };
    let (s, ch, _) = run(JwtAuthLayer::new(f.verifier.clone()), req()).await;
    assert_eq!(
        (s, ch.as_deref()),
        (StatusCode::UNAUTHORIZED, Some("Bearer"))
    );
    let (s, _, body) = run(JwtAuthLayer::new(f.verifier.clone()).cookie("at"), req()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body.as_deref(), Some("alice"));
    let two = get("/me")
        .header("cookie", format!("at={tok}"))
        .header("cookie", format!("at={tok}"))
        .body(())
        .unwrap();
    let (s, ch, _) = run(JwtAuthLayer::new(f.verifier.clone()).cookie("at"), two).await;
    assert_eq!(
        (s, ch.as_deref()),
        (
            StatusCode::UNAUTHORIZED,
            Some("Bearer error=\"invalid_request\"")
        )
    );
    // A header and the cookie: refused, not the header picked.
    let both = get("/me")
        .header("authorization", format!("Bearer {tok}"))
        .header("cookie", format!("at={tok}"))
        .body(())
        .unwrap();
    let (s, ch, _) = run(JwtAuthLayer::new(f.verifier.clone()).cookie("at"), both).await;
    assert_eq!(
        (s, ch.as_deref()),
        (
            StatusCode::UNAUTHORIZED,
            Some("Bearer error=\"invalid_request\"")
        )
    );
    // Without a configured cookie, a cookie of that name is no credential.
    let header_only = get("/me")
        .header("authorization", format!("Bearer {tok}"))
        .header("cookie", format!("at={tok}"))
        .body(())
        .unwrap();
    let (s, _, _) = run(JwtAuthLayer::new(f.verifier.clone()), header_only).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn a_token_in_the_url_is_no_credential() {
    let f = fixture();
    let tok = f.token("s1");
    let upgrade = get(&format!("/ws?access_token={tok}"))
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .body(())
        .unwrap();
    let (s, ch, _) = run(JwtAuthLayer::new(f.verifier.clone()).cookie("at"), upgrade).await;
    assert_eq!(
        (s, ch.as_deref()),
        (StatusCode::UNAUTHORIZED, Some("Bearer"))
    );
}

#[tokio::test]
async fn credential_reads_headers_like_the_layer() {
    let f = fixture();
    let tok = f.token("s1");
    let layer = JwtAuthLayer::new(f.verifier.clone()).cookie("at");
    assert_eq!(layer.cookie_name(), Some("at"));
    let headers = |pairs: &[(&'static str, String)]| {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    };
    let bearer = headers(&[("authorization", format!("Bearer {tok}"))]);
    assert_eq!(layer.credential(&bearer), Ok(Some(tok.as_str())));
    let cookie = headers(&[("cookie", format!("x=1; at={tok}"))]);
    assert_eq!(layer.credential(&cookie), Ok(Some(tok.as_str())));
    assert_eq!(layer.credential(&headers(&[])), Ok(None));
    let both = headers(&[
        ("authorization", format!("Bearer {tok}")),
        ("cookie", format!("at={tok}")),
    ]);
    assert_eq!(
        layer.credential(&both).map_err(|e| e.reason()),
        Err("multiple credentials")
    );
    let basic = headers(&[("authorization", "Basic YTpi".to_owned())]);
    assert_eq!(
        layer.credential(&basic).map_err(|e| e.reason()),
        Err("unsupported authorization scheme")
    );
}

#[tokio::test]
async fn authenticate_verifies_and_checks_the_session() {
    use kailash_auth::jwt::VerifyError;
    use kailash_auth::layer::AuthenticateError;
    let f = fixture();
    for sync in [false, true] {
        let sessions = Arc::new(Sessions {
            sync,
            ..Sessions::default()
        });
        let cache = Arc::new(TokenCache::new(100, f.clock.clone()));
        let layer = JwtAuthLayer::new(f.verifier.clone())
            .session_check(sessions.clone())
            .cache(cache.clone());
        for _ in 0..2 {
            // The second round is a cache hit: the session is still asked.
            let p = layer.authenticate(&f.token("live")).await.unwrap();
            assert_eq!((p.subject(), p.session_id()), ("alice", Some("live")));
            assert_eq!(
                layer.authenticate(&f.token("revoked")).await,
                Err(AuthenticateError::Session(SessionCheckError::Revoked))
            );
            assert_eq!(
                layer.authenticate(&f.token("down")).await,
                Err(AuthenticateError::Session(SessionCheckError::Unavailable))
            );
        }
        assert_eq!(sessions.calls.load(Ordering::SeqCst), 6);
        let idle = Principal::builder("alice").session_id("idle").build();
        assert_eq!(
            layer.check_session(&idle).await,
            Err(SessionCheckError::Expired)
        );
        assert_eq!(
            JwtAuthLayer::new(f.verifier.clone())
                .check_session(&idle)
                .await,
            Ok(())
        );
        assert_eq!(
            layer.authenticate("a.b.c").await,
            Err(AuthenticateError::Token(VerifyError::Malformed))
        );
        let tok = f.token("live");
        f.clock.advance(std::time::Duration::from_secs(3600));
        assert_eq!(
            layer.authenticate(&tok).await,
            Err(AuthenticateError::Token(VerifyError::Expired))
        );
        f.clock.set(jiff::Timestamp::from_second(NOW).unwrap());
    }
}

#[tokio::test]
async fn public_routes_pass_without_credentials() {
    let f = fixture();
    let b = || {
        JwtAuthLayer::new(f.verifier.clone())
            .public_path("/health")
            .public_prefix("/public/")
    };
    for path in ["/health", "/public/logo.png"] {
        let (s, _, body) = run(b(), get(path).body(()).unwrap()).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert_eq!(body.as_deref(), Some(""));
    }
    for path in ["/health/x", "/healthz", "/public"] {
        let (s, _, _) = run(b(), get(path).body(()).unwrap()).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}");
    }
}

#[derive(Default)]
struct Sessions {
    sync: bool,
    calls: AtomicUsize,
}

impl Sessions {
    fn decide(&self, p: &Principal) -> Result<(), SessionCheckError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match p.session_id() {
            Some("revoked") => Err(SessionCheckError::Revoked),
            Some("idle") => Err(SessionCheckError::Expired),
            Some("down") => Err(SessionCheckError::Unavailable),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl SessionCheck for Sessions {
    async fn check(&self, p: &Principal) -> Result<(), SessionCheckError> {
        self.decide(p)
    }
    fn check_now(&self, p: &Principal) -> Option<Result<(), SessionCheckError>> {
        self.sync.then(|| self.decide(p))
    }
}

#[tokio::test]
async fn session_check_outcomes() {
    let f = fixture();
    for sync in [false, true] {
        let sessions = Arc::new(Sessions {
            sync,
            ..Sessions::default()
        });
        let cache = Arc::new(TokenCache::new(100, f.clock.clone()));
        let b = || {
            JwtAuthLayer::new(f.verifier.clone())
                .session_check(sessions.clone())
                .cache(cache.clone())
        };
        let req = |sid: &str| {
            get("/me")
                .header("authorization", format!("Bearer {}", f.token(sid)))
                .body(())
                .unwrap()
        };
        for _ in 0..2 {
            // The second round is served from the cache: the session is still checked.
            let (s, _, _) = run(b(), req("live")).await;
            assert_eq!(s, StatusCode::OK);
            let (s, ch, _) = run(b(), req("revoked")).await;
            assert_eq!(
                (s, ch.as_deref()),
                (
                    StatusCode::UNAUTHORIZED,
                    Some("Bearer error=\"invalid_token\"")
                )
            );
            let (s, _, _) = run(b(), req("idle")).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED);
            let (s, _, _) = run(b(), req("down")).await;
            assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
        }
        assert_eq!(sessions.calls.load(Ordering::SeqCst), 8);
        assert_eq!(cache.len(), 4);
    }
}

#[tokio::test]
async fn cache_serves_repeat_tokens_and_honours_revocation() {
    let f = fixture();
    let cache = Arc::new(TokenCache::new(100, f.clock.clone()));
    let tok = f.token("s1");
    let b = || JwtAuthLayer::new(f.verifier.clone()).cache(cache.clone());
    let req = || {
        get("/me")
            .header("authorization", format!("Bearer {tok}"))
            .body(())
            .unwrap()
    };
    assert_eq!(run(b(), req()).await.0, StatusCode::OK);
    let p = cache.get(&tok).unwrap();
    assert_eq!(p.subject(), "alice");
    assert_eq!(run(b(), req()).await.0, StatusCode::OK);
    cache.remove_session("s1");
    assert!(cache.get(&tok).is_none());
    f.clock.advance(std::time::Duration::from_secs(300));
    assert_eq!(
        run(b(), req()).await.0,
        StatusCode::OK,
        "within the verifier's leeway"
    );
    assert!(cache.get(&tok).is_none(), "the cache honours exp strictly");
    f.clock.advance(std::time::Duration::from_secs(30));
    assert_eq!(run(b(), req()).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn failures_are_audited_without_the_token() {
    let f = fixture();
    let sink = Arc::new(MemoryAuditSink::new());
    let sessions = Arc::new(Sessions::default());
    let b = || {
        JwtAuthLayer::new(f.verifier.clone())
            .audit(sink.clone())
            .session_check(sessions.clone())
    };
    let ctx = RequestContext::new(
        RequestIdGenerator::new().next_id(),
        "192.0.2.7".parse().unwrap(),
        f.clock.now(),
    );
    let mut tokens = Vec::new();

    let mut bad = f.token("s1");
    bad.push('x');
    tokens.push(bad.clone());
    let mut req = get("/me")
        .header("authorization", format!("Bearer {bad}"))
        .body(())
        .unwrap();
    req.extensions_mut().insert(ctx.clone());
    assert_eq!(run(b(), req).await.0, StatusCode::UNAUTHORIZED);

    let revoked = f.token("revoked");
    tokens.push(revoked.clone());
    let req = get("/me")
        .header("authorization", format!("Bearer {revoked}"))
        .body(())
        .unwrap();
    assert_eq!(run(b(), req).await.0, StatusCode::UNAUTHORIZED);

    assert_eq!(
        run(b(), get("/me").body(()).unwrap()).await.0,
        StatusCode::UNAUTHORIZED
    );

    let ok = f.token("fine");
    let req = get("/me")
        .header("authorization", format!("Bearer {ok}"))
        .body(())
        .unwrap();
    assert_eq!(run(b(), req).await.0, StatusCode::OK);

    let events = sink.events();
    assert_eq!(events.len(), 3, "successes are not recorded");
    assert!(
        events
            .iter()
            .all(|e| e.action == "auth.token" && e.decision == AuditDecision::Failure)
    );
    assert_eq!(events[0].reason.as_deref(), Some("bad signature"));
    assert_eq!(
        events[0].request_id.as_deref(),
        Some(ctx.request_id().as_str())
    );
    assert_eq!(events[0].client_ip, Some("192.0.2.7".parse().unwrap()));
    assert_eq!(events[1].reason.as_deref(), Some("session revoked"));
    assert_eq!(events[1].actor.as_deref(), Some("alice"));
    assert_eq!(events[2].reason.as_deref(), Some("missing credentials"));
    for e in &events {
        let json = serde_json::to_string(e).unwrap();
        let debug = format!("{e:?}");
        for t in &tokens {
            for part in t.split('.') {
                assert!(!json.contains(part) && !debug.contains(part));
            }
        }
    }
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn jwks_endpoint_serves_public_keys() {
    use http_body_util::BodyExt;
    let f = fixture();
    let app = kailash_auth::jwt::jwks_router(f.keys.clone());
    let res = app
        .oneshot(
            get("/.well-known/jwks.json")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "public, max-age=300");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json, f.keys.jwks());
}

/// Composed deferred (the session check joins the request's admission,
/// run by an `AdmitLayer` inside), the layer answers exactly as when it
/// asks the store itself: a live session passes and is renewed when due,
/// a revoked one is refused with the same response and audit event.
#[tokio::test]
async fn deferred_session_check_answers_like_the_direct_one() {
    use http_body_util::BodyExt;
    use kailash_auth::session::{SessionConfig, SessionStore};
    use kailash_core::admission::AdmitLayer;
    use kailash_core::state::SharedState;

    let f = fixture();
    let state = SharedState::memory(f.clock.clone());
    let store = SessionStore::new(state.clone(), SessionConfig::default());
    let id = store.create("alice", None, None).await.unwrap().session.id;
    let token = f.token(&id);
    let (direct_sink, deferred_sink) = (
        Arc::new(MemoryAuditSink::new()),
        Arc::new(MemoryAuditSink::new()),
    );
    let handler = service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::new(String::from("ok")))
    });
    let direct = JwtAuthLayer::new(f.verifier.clone())
        .session_check(Arc::new(store.clone()))
        .audit(direct_sink.clone())
        .layer(handler);
    let deferred = JwtAuthLayer::new(f.verifier.clone())
        .session_check(Arc::new(store.clone()))
        .defer_session_check()
        .audit(deferred_sink.clone())
        .layer(AdmitLayer::new(state.clone()).layer(handler));
    let req = || {
        get("/me")
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap()
    };
    async fn answer<B>(res: Response<B>) -> (StatusCode, Option<http::HeaderValue>, bytes::Bytes)
    where
        B: http_body::Body,
        B::Error: std::fmt::Debug,
    {
        let status = res.status();
        let challenge = res.headers().get("www-authenticate").cloned();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, challenge, body)
    }

    let (a, b) = (
        answer(direct.clone().oneshot(req()).await.unwrap()).await,
        answer(deferred.clone().oneshot(req()).await.unwrap()).await,
    );
    assert_eq!(a.0, StatusCode::OK);
    assert_eq!(a, b);

    // Past the touch interval: the deferred path renews the session.
    f.clock.advance(std::time::Duration::from_secs(61));
    let renewed = answer(deferred.clone().oneshot(req()).await.unwrap()).await;
    assert_eq!(renewed.0, StatusCode::OK);
    let session = store.get(None, &id).await.unwrap().unwrap();
    assert_eq!(session.last_seen, f.clock.now(), "the touch was written");

    // Revoked: the same refusal and the same audit event from both.
    assert!(store.revoke(None, "alice", &id).await.unwrap());
    let (a, b) = (
        answer(direct.oneshot(req()).await.unwrap()).await,
        answer(deferred.oneshot(req()).await.unwrap()).await,
    );
    assert_eq!(a.0, StatusCode::UNAUTHORIZED);
    assert_eq!(a, b);
    let (a, b) = (direct_sink.events(), deferred_sink.events());
    assert_eq!(a.len(), 1);
    assert_eq!(b.len(), 1);
    assert_eq!(
        (
            &a[0].action,
            a[0].decision,
            &a[0].reason,
            &a[0].actor,
            &a[0].resource
        ),
        (
            &b[0].action,
            b[0].decision,
            &b[0].reason,
            &b[0].actor,
            &b[0].resource
        )
    );
    assert_eq!(b[0].reason.as_deref(), Some("session revoked"));
}
