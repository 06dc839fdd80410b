//! A tonic gRPC service behind kailash layers: `JwtAuthLayer`,
//! `TenancyLayer` (a daily call quota per tenant) and
//! `RequirePermissionLayer`, with `GrpcStatusLayer` outermost so that their
//! refusals reach gRPC clients as `UNAUTHENTICATED`, `PERMISSION_DENIED`
//! and `RESOURCE_EXHAUSTED` (with a `google.rpc.RetryInfo`), not as HTTP
//! problem bodies. It prints a token for alice (may call) and bob (may not).
//!
//! ```text
//! cargo run -p kailash-examples --example grpc_tonic -- 127.0.0.1:50051
//! grpcurl -plaintext -import-path examples/proto -proto greeter.proto \
//!   -H "authorization: Bearer $ALICE" -d '{"name":"world"}' 127.0.0.1:50051 kailash.examples.Greeter/SayHello
//! ```

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use kailash::access::layer::RequirePermissionLayer;
use kailash::access::{AccessControl, AccessPolicy};
use kailash::auth::jwt::{Algorithm, Claims, KeySet, SigningKey, TokenType, Verifier};
use kailash::auth::layer::JwtAuthLayer;
use kailash::clock::{Clock, SystemClock};
use kailash::grpc::GrpcStatusLayer;
use kailash::state::SharedState;
use kailash::tenancy::{layer::TenancyLayer, quota::Quotas, registry::StaticTenantRegistry};
use kailash::{Principal, TenantId};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::transport::{Server, server::TcpIncoming};
use tower::{Service, ServiceBuilder};

/// The messages of `examples/proto/greeter.proto`, with prost's derive.
#[derive(Clone, PartialEq, prost::Message)]
struct HelloRequest {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HelloReply {
    #[prost(string, tag = "1")]
    message: String,
}

/// `SayHello`; the layers left the verified principal and its tenant in the request.
struct SayHello;

impl UnaryService<HelloRequest> for SayHello {
    type Response = HelloReply;
    type Future = Ready<Result<tonic::Response<HelloReply>, tonic::Status>>;
    fn call(&mut self, req: tonic::Request<HelloRequest>) -> Self::Future {
        let ext = req.extensions();
        let who = ext.get::<Principal>().map_or("?", |p| p.subject());
        let tenant = ext.get::<TenantId>().map_or("?", |t| t.as_str());
        let message = format!("hello {}, from {who} of {tenant}", req.get_ref().name);
        ready(Ok(tonic::Response::new(HelloReply { message })))
    }
}

/// What tonic's code generator would write for the service, by hand.
#[derive(Clone)]
struct Greeter;

impl NamedService for Greeter {
    const NAME: &'static str = "kailash.examples.Greeter";
}

impl Service<http::Request<tonic::body::Body>> for Greeter {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        match req.uri().path() {
            "/kailash.examples.Greeter/SayHello" => Box::pin(async move {
                Ok(Grpc::new(tonic_prost::ProstCodec::default())
                    .unary(SayHello, req)
                    .await)
            }),
            _ => Box::pin(async { Ok(tonic::Status::unimplemented("no such method").into_http()) }),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args().nth(1);
    let arg = arg.as_deref().unwrap_or("127.0.0.1:50051");
    let addr = arg
        .parse()
        .map_err(|e| format!("listen address {arg:?}: {e}"))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let state = SharedState::memory(clock.clone());
    let key = SigningKey::generate(Algorithm::EdDSA, "k1")?;
    let keys = Arc::new(KeySet::new(key, clock.clone()));
    let verifier = Verifier::builder(keys.clone(), "https://id.example", "greeter").build();
    let tenants =
        serde_json::from_value(serde_json::json!([{ "id": "acme", "max_api_calls_per_day": 3 }]))?;
    let registry = Arc::new(StaticTenantRegistry::new(tenants, state.clone())?);
    let spec = serde_json::from_value(serde_json::json!({ "roles": [
        { "name": "caller", "permissions": ["greeter:call"] }, { "name": "guest", "permissions": [] } ] }))?;
    let access = AccessControl::new(AccessPolicy::load(&spec).await?);

    let now = clock.now().as_second();
    for (user, role) in [("alice", "caller"), ("bob", "guest")] {
        let mut claims = Claims::new("https://id.example", user, "greeter", now, now + 3600);
        claims.tid = Some(TenantId::new("acme")?);
        claims.roles = vec![role.into()];
        println!("token {user}: {}", keys.issue(&claims, TokenType::Access)?);
    }
    let layers = ServiceBuilder::new()
        .layer(GrpcStatusLayer::new()) // outermost: sees every refusal
        .layer(JwtAuthLayer::new(verifier))
        .layer(TenancyLayer::new(registry).quotas(Quotas::new(state)))
        .layer(RequirePermissionLayer::new("greeter:call").access(access));
    let incoming = TcpIncoming::bind(addr)?;
    println!("listening on {}", incoming.local_addr()?);
    Server::builder()
        .layer(layers)
        .add_service(Greeter)
        .serve_with_incoming(incoming)
        .await?;
    Ok(())
}
