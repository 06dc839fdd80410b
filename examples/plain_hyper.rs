//! kailash layers on a plain hyper 1 server, no axum: `JwtAuthLayer`,
//! `TenancyLayer` (a daily call quota per tenant) and
//! `RequirePermissionLayer` in a tower `ServiceBuilder`, served through
//! hyper-util's `TowerToHyperService`. Refusals are RFC 9457 problems:
//! 401 without a token, 403 without `report:view`, 429 once the tenant's
//! quota is used up. It prints a token for alice (may read) and bob (may not).
//!
//! ```text
//! cargo run -p kailash-examples --example plain_hyper -- 127.0.0.1:3000
//! curl -i localhost:3000/reports -H "authorization: Bearer $ALICE"
//! ```

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use kailash::access::layer::RequirePermissionLayer;
use kailash::access::{AccessControl, AccessPolicy};
use kailash::auth::jwt::{Algorithm, Claims, KeySet, SigningKey, TokenType, Verifier};
use kailash::auth::layer::JwtAuthLayer;
use kailash::clock::{Clock, SystemClock};
use kailash::state::SharedState;
use kailash::tenancy::{layer::TenancyLayer, quota::Quotas, registry::StaticTenantRegistry};
use kailash::{Principal, TenantId};
use tower::ServiceBuilder;

/// The application: a plain async fn over `http` types.
async fn reports(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let who = req
        .extensions()
        .get::<Principal>()
        .map(|p| p.subject().to_owned());
    let tenant = req
        .extensions()
        .get::<TenantId>()
        .map(|t| t.as_str().to_owned());
    let text = format!(
        "reports of {} for {}\n",
        tenant.unwrap_or_default(),
        who.unwrap_or_default()
    );
    Ok(Response::new(Full::new(Bytes::from(text))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let addr: std::net::SocketAddr = arg
        .parse()
        .map_err(|e| format!("listen address {arg:?}: {e}"))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let state = SharedState::memory(clock.clone());
    let keys = Arc::new(KeySet::new(
        SigningKey::generate(Algorithm::EdDSA, "k1")?,
        clock.clone(),
    ));
    let verifier = Verifier::builder(keys.clone(), "https://id.example", "reports")
        .clock(clock.clone())
        .build();
    let tenants =
        serde_json::from_value(serde_json::json!([{ "id": "acme", "max_api_calls_per_day": 3 }]))?;
    let registry = Arc::new(StaticTenantRegistry::new(tenants, state.clone())?);
    let spec = serde_json::from_value(serde_json::json!({ "roles": [
        { "name": "analyst", "permissions": ["report:view"] }, { "name": "guest", "permissions": [] } ] }))?;
    let access = AccessControl::new(AccessPolicy::load(&spec).await?);

    let now = clock.now().as_second();
    for (user, role) in [("alice", "analyst"), ("bob", "guest")] {
        let mut claims = Claims::new("https://id.example", user, "reports", now, now + 3600);
        claims.tid = Some(TenantId::new("acme")?);
        claims.roles = vec![role.into()];
        println!("token {user}: {}", keys.issue(&claims, TokenType::Access)?);
    }
    let app = ServiceBuilder::new()
        .layer(JwtAuthLayer::new(verifier))
        .layer(TenancyLayer::new(registry).quotas(Quotas::new(state)))
        .layer(RequirePermissionLayer::new("report:view").access(access))
        .service_fn(reports);

    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _peer) = listener.accept().await?;
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            // HTTP/1.1 and HTTP/2 (prior knowledge) on one port.
            let served = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                eprintln!("connection: {error}");
            }
        });
    }
}
