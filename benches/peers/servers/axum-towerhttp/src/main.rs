//! Peer server of `benches/fullstack.sh`: the stack a demanding axum user
//! ships, serving the reference deployment's `GET /api/reports` shape.
//!
//! - axum 0.8 (`Router`, `axum::serve`), the multi-threaded tokio runtime;
//! - five tower-http 0.7 layers: `TraceLayer` (to a `tracing_subscriber`
//!   fmt layer on stderr at `info`, as the reference deployment logs),
//!   `CorsLayer` (the demo's origin, credentials, 10 min max age),
//!   `CompressionLayer` (gzip, br, zstd), `SetRequestIdLayer` +
//!   `PropagateRequestIdLayer` (`x-request-id`, UUID v4) and `TimeoutLayer`
//!   (30 s, `408`);
//! - RS256 verified on every request by jsonwebtoken 11 with its
//!   **aws-lc-rs** backend (the RSA code kailash-auth uses): the header's
//!   `kid` picks a key of the gateway's JWKS, then signature, `exp` and `nbf`
//!   (30 s leeway, as the gateway), `iss` and `aud` are checked and the
//!   claims deserialised. No cache: every request pays the verification.
//!
//! ```text
//! peer-axum-towerhttp [ADDR] --jwks FILE [--issuer ISS] [--audience AUD]
//! ```
//!
//! `ADDR` defaults to `127.0.0.1:18082`; `FILE` is the gateway's
//! `/.well-known/jwks.json` saved to disk; issuer and audience default to
//! the demo's (`kailash-demo`, `kailash-api`). Runs until killed.

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Extension, Json, Router};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::cors::CorsLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

/// The gateway's access-token claims, all deserialised on every request
/// (`iss`, `aud`, `exp`, `nbf` are checked by jsonwebtoken's `Validation`).
#[derive(Debug, Deserialize)]
#[allow(dead_code)] // read only to pay for their deserialisation, as a real service does
struct Claims {
    sub: String,
    #[serde(default)]
    tid: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    attrs: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    sid: Option<String>,
}

/// The keys of the JWKS by `kid`, and the checks every token must pass.
struct Verifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl Verifier {
    fn verify(&self, token: &str) -> Option<Claims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::RS256 {
            return None;
        }
        let key = self.keys.get(header.kid.as_deref()?)?;
        jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .ok()
            .map(|t| t.claims)
    }
}

struct Args {
    listen: SocketAddr,
    jwks: String,
    issuer: String,
    audience: String,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = "127.0.0.1:18082".to_owned();
    let mut jwks = None;
    let mut issuer = "kailash-demo".to_owned();
    let mut audience = "kailash-api".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--jwks" => jwks = Some(value("--jwks")?),
            "--issuer" => issuer = value("--issuer")?,
            "--audience" => audience = value("--audience")?,
            s if !s.starts_with('-') => listen = s.to_owned(),
            s => return Err(format!("unknown flag {s}")),
        }
    }
    Ok(Args {
        listen: listen
            .parse()
            .map_err(|e| format!("listen address {listen:?}: {e}"))?,
        jwks: jwks.ok_or("--jwks FILE is required")?,
        issuer,
        audience,
    })
}

fn load_verifier(args: &Args) -> Result<Verifier, String> {
    let text = std::fs::read_to_string(&args.jwks).map_err(|e| format!("{}: {e}", args.jwks))?;
    let set: JwkSet = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", args.jwks))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("JWK {kid}: {e}"))?;
        keys.insert(kid, key);
    }
    if keys.is_empty() {
        return Err(format!("{}: no key with a kid", args.jwks));
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = 30;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.set_issuer(&[&args.issuer]);
    validation.set_audience(&[&args.audience]);
    Ok(Verifier { keys, validation })
}

/// Bearer token → verified claims in the request's extensions, or `401`.
async fn authenticate(State(v): State<Arc<Verifier>>, mut req: Request, next: Next) -> Response {
    let claims = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .and_then(|t| v.verify(t));
    match claims {
        Some(c) => {
            req.extensions_mut().insert(Arc::new(c));
            next.run(req).await
        }
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
        )
            .into_response(),
    }
}

async fn reports(Extension(claims): Extension<Arc<Claims>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "tenant": claims.tid,
        "reports": [
            { "id": "api-calls-today", "title": "API calls today", "value": 1, "limit": 4_000_000_000_u64 },
            { "id": "workflows", "title": "Workflows", "value": 0, "limit": 100 },
            { "id": "storage", "title": "Stored bytes", "value": 0, "limit": 10_737_418_240_u64 },
        ],
    }))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = parse_args()?;
    let verifier = Arc::new(load_verifier(&args)?);
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(LevelFilter::INFO)
        .init();

    let cors = CorsLayer::new()
        .allow_origin(HeaderValue::from_static("http://localhost:3000"))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(600));
    let app = Router::new()
        .route("/api/reports", get(reports))
        .route_layer(middleware::from_fn_with_state(verifier, authenticate))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(TraceLayer::new_for_http())
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(cors)
                .layer(CompressionLayer::new())
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    Duration::from_secs(30),
                )),
        );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("bind {}: {e}", args.listen))?;
    // TCP_NODELAY on every connection, as bare hyper and the gateway set it.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .await
        .map_err(|e| format!("serve: {e}"))
}
