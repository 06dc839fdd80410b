//! Peer server of `benches/fullstack.sh`: axum 0.7 with jwt-authorizer
//! 0.15 as its README shows it, serving the reference deployment's
//! `GET /api/reports` shape.
//!
//! jwt-authorizer verifies RS256 on every request (jsonwebtoken 9, ring)
//! against the gateway's JWKS (the key picked by the token's `kid`) and
//! checks `exp` and `nbf` (30 s leeway, as the gateway), `iss` and `aud`; the
//! handler takes the claims through its `JwtClaims` extractor. No other
//! middleware: this is the minimal authenticated axum service.
//!
//! ```text
//! peer-jwt-authorizer [ADDR] --jwks FILE [--issuer ISS] [--audience AUD]
//! ```
//!
//! `ADDR` defaults to `127.0.0.1:18083`; `FILE` is the gateway's
//! `/.well-known/jwks.json` saved to disk; issuer and audience default to
//! the demo's (`kailash-demo`, `kailash-api`). Runs until killed.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::routing::get;
use axum::{Json, Router};
use jwt_authorizer::{IntoLayer, JwtAuthorizer, JwtClaims, Validation};
use serde::Deserialize;

/// The gateway's access-token claims, all deserialised on every request
/// (`iss`, `aud`, `exp`, `nbf` are checked by jwt-authorizer's `Validation`).
#[derive(Debug, Clone, Deserialize)]
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

struct Args {
    listen: SocketAddr,
    jwks: String,
    issuer: String,
    audience: String,
}

fn parse_args() -> Result<Args, String> {
    let mut listen = "127.0.0.1:18083".to_owned();
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

async fn reports(JwtClaims(claims): JwtClaims<Claims>) -> Json<serde_json::Value> {
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
    let authorizer = JwtAuthorizer::<Claims>::from_jwks(&args.jwks)
        .validation(
            Validation::new()
                .iss(&[&args.issuer])
                .aud(&[&args.audience])
                .exp(true)
                .nbf(true)
                .leeway(30),
        )
        .build()
        .await
        .map_err(|e| format!("authorizer from {}: {e}", args.jwks))?;
    let app = Router::new()
        .route("/api/reports", get(reports))
        .layer(authorizer.into_layer());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("bind {}: {e}", args.listen))?;
    // TCP_NODELAY on every connection, as bare hyper and the gateway set it.
    axum::serve(listener, app)
        .tcp_nodelay(true)
        .await
        .map_err(|e| format!("serve: {e}"))
}
