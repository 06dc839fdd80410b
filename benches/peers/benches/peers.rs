//! RS256 verification by the peers, for comparison with
//! `benches/benches/auth.rs` (same RSA 2048 key, same claims, same
//! per-request shape: a `Request<()>` with a bearer header through the layer
//! over a trivial `service_fn`, on a current-thread tokio runtime).
//!
//! ```text
//! cd benches/peers && cargo bench --bench peers
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use criterion::{Criterion, criterion_group, criterion_main};
use http::header::{AUTHORIZATION, HeaderValue};
use http::{Request, Response, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, TokenData, Validation};
use jwt_authorizer::{Authorizer, IntoLayer, JwtAuthorizer};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;
use tower::{Layer, ServiceExt, service_fn};

const ISSUER: &str = "https://id.example.com";
const AUDIENCE: &str = "orders-api";
const PRIVATE_PEM: &[u8] = include_bytes!("../keys/rs256-private.pem");
const PUBLIC_PEM: &str = include_str!("../keys/rs256-public.pem");

/// The same claims kailash-auth's bench signs, all deserialised on verify.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BenchClaims {
    iss: String,
    sub: String,
    aud: String,
    exp: i64,
    iat: i64,
    jti: String,
    tid: String,
    roles: Vec<String>,
    attrs: BTreeMap<String, serde_json::Value>,
    sid: String,
}

fn token() -> String {
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs(),
    )
    .expect("seconds fit i64");
    let claims = BenchClaims {
        iss: ISSUER.to_owned(),
        sub: "user-7f3a9c21".to_owned(),
        aud: AUDIENCE.to_owned(),
        exp: now + 3600,
        iat: now,
        jti: "jti-0c9d2e7a13f84b55".to_owned(),
        tid: "acme".to_owned(),
        roles: vec!["admin".to_owned()],
        attrs: BTreeMap::from([
            ("clearance".to_owned(), serde_json::Value::from(3)),
            (
                "department".to_owned(),
                serde_json::Value::from("engineering"),
            ),
        ]),
        sid: "sess-5b1e0d4c8a2f4e67".to_owned(),
    };
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("bench-rs256".to_owned());
    header.typ = Some("at+jwt".to_owned());
    let key = EncodingKey::from_rsa_pem(PRIVATE_PEM).expect("RSA private key");
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn bench_jsonwebtoken(c: &mut Criterion) {
    let token = token();
    let key = DecodingKey::from_rsa_pem(PUBLIC_PEM.as_bytes()).expect("RSA public key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    let mut group = c.benchmark_group("peers/jsonwebtoken9");
    group.bench_function("decode_rs256", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<BenchClaims>(black_box(&token), &key, &validation)
                .expect("decode")
        })
    });
    group.finish();
}

fn bench_jwt_authorizer(c: &mut Criterion) {
    let rt = runtime();
    let token = token();
    let bearer = HeaderValue::try_from(format!("Bearer {token}")).expect("header value");
    let authorizer: Authorizer<BenchClaims> = rt
        .block_on(
            JwtAuthorizer::from_rsa_pem_text(PUBLIC_PEM)
                .validation(
                    jwt_authorizer::Validation::new()
                        .iss(&[ISSUER])
                        .aud(&[AUDIENCE]),
                )
                .build(),
        )
        .expect("authorizer");
    let inner = service_fn(|req: Request<()>| async move {
        let status = if req.extensions().get::<TokenData<BenchClaims>>().is_some() {
            StatusCode::OK
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        let mut res = Response::new(Body::empty());
        *res.status_mut() = status;
        Ok::<_, Infallible>(res)
    });
    let svc = authorizer.into_layer().layer(inner);
    let request = || {
        Request::builder()
            .uri("/orders/42")
            .header(AUTHORIZATION, bearer.clone())
            .body(())
            .expect("request")
    };
    let res = rt
        .block_on(svc.clone().oneshot(request()))
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);

    let mut group = c.benchmark_group("peers/jwt_authorizer");
    group.bench_function("layer_rs256", |b| {
        b.to_async(&rt).iter(|| async {
            let res = svc.clone().oneshot(request()).await.expect("infallible");
            debug_assert_eq!(res.status(), StatusCode::OK);
            black_box(res)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_jsonwebtoken, bench_jwt_authorizer);
criterion_main!(benches);
