//! Cost of authenticating one token: full verification per algorithm, a
//! verified-token cache hit, and one request through `JwtAuthLayer`.
//!
//! ```text
//! cargo bench -p kailash-benches --bench auth
//! ```
//!
//! The RS256 key is the PKCS#8 PEM in `benches/peers/keys/`, the same key
//! the peer comparison (`benches/peers`, jwt-authorizer and raw jsonwebtoken)
//! verifies with; ES256 and EdDSA keys are generated at start-up, HS256 uses
//! a fixed 32-byte secret. All four verify the same realistic claims.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use http::header::{AUTHORIZATION, HeaderValue};
use http::{Request, Response, StatusCode};
use kailash_auth::jwt::{
    Algorithm, Claims, DEFAULT_CACHE_CAPACITY, KeySet, SigningKey, TokenCache, TokenType, Verifier,
};
use kailash_auth::layer::JwtAuthLayer;
use kailash_core::clock::{Clock, SystemClock};
use kailash_core::{AttributeValue, Principal, TenantId};
use tokio::runtime::Runtime;
use tower::{Layer, ServiceExt, service_fn};

const ISSUER: &str = "https://id.example.com";
const AUDIENCE: &str = "orders-api";
const RS256_PEM: &[u8] = include_bytes!("../peers/keys/rs256-private.pem");
const HS256_SECRET: &[u8; 32] = b"bench-hs256-secret-0123456789abc";

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Claims of a typical access token, valid for an hour.
fn claims(now: i64) -> Claims {
    let mut c = Claims::new(ISSUER, "user-7f3a9c21", AUDIENCE, now, now + 3600);
    c.tid = Some(TenantId::new("acme").expect("tenant id"));
    c.roles = vec!["admin".to_owned()];
    c.attrs = BTreeMap::from([
        ("department".to_owned(), AttributeValue::from("engineering")),
        ("clearance".to_owned(), AttributeValue::from(3_i64)),
    ]);
    c.sid = Some("sess-5b1e0d4c8a2f4e67".to_owned());
    c.jti = Some("jti-0c9d2e7a13f84b55".to_owned());
    c
}

fn signing_key(alg: Algorithm) -> SigningKey {
    let kid = format!("bench-{}", alg.as_str().to_ascii_lowercase());
    match alg {
        Algorithm::RS256 => SigningKey::from_pkcs8_pem(alg, kid, RS256_PEM),
        Algorithm::HS256 => SigningKey::hs256(kid, HS256_SECRET),
        Algorithm::ES256 | Algorithm::EdDSA => SigningKey::generate(alg, kid),
    }
    .expect("signing key")
}

/// A verifier for `alg` and a token it accepts.
fn setup(alg: Algorithm, clock: &Arc<dyn Clock>) -> (Verifier, String) {
    let keys = Arc::new(KeySet::new(signing_key(alg), clock.clone()));
    let token = keys
        .issue(&claims(clock.now().as_second()), TokenType::Access)
        .expect("issue");
    let verifier = Verifier::builder(keys, ISSUER, AUDIENCE)
        .clock(clock.clone())
        .build();
    verifier.verify_now(&token).expect("token verifies");
    (verifier, token)
}

const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::RS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
    Algorithm::HS256,
];

fn bench_tokens(c: &mut Criterion) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    // Full verification every time: size check, header, signature, claims.
    let mut group = c.benchmark_group("auth/verify_cold");
    for alg in ALGORITHMS {
        let (verifier, token) = setup(alg, &clock);
        group.bench_function(alg.as_str(), |b| {
            b.iter(|| verifier.verify_now(black_box(&token)).expect("verify"))
        });
    }
    group.finish();

    // What the layer pays for a token it has already verified.
    let mut group = c.benchmark_group("auth/cache_hit");
    for alg in ALGORITHMS {
        let (verifier, token) = setup(alg, &clock);
        let verified = verifier.verify_now(&token).expect("verify");
        let cache = TokenCache::new(DEFAULT_CACHE_CAPACITY, clock.clone());
        cache.insert(&token, verified.to_principal(), verified.exp);
        group.bench_function(alg.as_str(), |b| {
            b.iter(|| cache.get(black_box(&token)).expect("cache hit"))
        });
    }
    group.finish();
}

fn bench_layer(c: &mut Criterion) {
    let rt = runtime();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (verifier, token) = setup(Algorithm::RS256, &clock);
    let bearer = HeaderValue::try_from(format!("Bearer {token}")).expect("header value");

    let inner = service_fn(|req: Request<()>| async move {
        let status = if req.extensions().get::<Principal>().is_some() {
            StatusCode::OK
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        let mut res = Response::new(());
        *res.status_mut() = status;
        Ok::<_, Infallible>(res)
    });
    let cached = JwtAuthLayer::new(verifier.clone())
        .cache(Arc::new(TokenCache::new(
            DEFAULT_CACHE_CAPACITY,
            clock.clone(),
        )))
        .layer(inner);
    let uncached = JwtAuthLayer::new(verifier).layer(inner);

    let request = || {
        Request::builder()
            .uri("/orders/42")
            .header(AUTHORIZATION, bearer.clone())
            .body(())
            .expect("request")
    };

    let mut group = c.benchmark_group("auth/layer_rs256");
    for (name, svc) in [("cache_hit", &cached), ("no_cache", &uncached)] {
        // The first call verifies and, with the cache on, fills it.
        let res = rt
            .block_on(svc.clone().oneshot(request()))
            .expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let res = svc.clone().oneshot(request()).await.expect("infallible");
                debug_assert_eq!(res.status(), StatusCode::OK);
                black_box(res)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_tokens, bench_layer);
criterion_main!(benches);
