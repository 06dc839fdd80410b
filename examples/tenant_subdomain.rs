//! Tenant resolution by subdomain with per-tenant quotas: `TenancyLayer`
//! takes the tenant from `<tenant>.example.test`, refuses unknown and
//! inactive tenants (403) and charges each tenant's daily API-call quota
//! (429 with `Retry-After` once used up; acme has 3 calls, globex 100).
//!
//! ```text
//! cargo run -p kailash-examples --example tenant_subdomain -- 127.0.0.1:3000
//! curl -i localhost:3000/ -H 'host: acme.example.test'      # 200 "hello Acme Corp" (3 times, then 429)
//! curl -i localhost:3000/ -H 'host: initech.example.test'   # 403: inactive tenant
//! curl -i localhost:3000/ -H 'host: nobody.example.test'    # 403: unknown tenant
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use axum::{Extension, Router, routing::get};
use kailash::audit::MemoryAuditSink;
use kailash::clock::SystemClock;
use kailash::problem::ProblemJsonLayer;
use kailash::state::SharedState;
use kailash::tenancy::layer::TenancyLayer;
use kailash::tenancy::model::{Tenant, TenantSpec};
use kailash::tenancy::quota::Quotas;
use kailash::tenancy::registry::StaticTenantRegistry;

async fn hello(Extension(tenant): Extension<Arc<Tenant>>) -> String {
    format!("hello {}\n", tenant.name)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let addr: SocketAddr = arg
        .parse()
        .map_err(|e| format!("listen address {arg:?}: {e}"))?;
    // Registry activation flags and quota counters share one state backend
    // (memory here; Redis makes the quotas exact across instances).
    let state = SharedState::memory(Arc::new(SystemClock));
    let tenants: Vec<TenantSpec> = serde_json::from_value(serde_json::json!([
        { "id": "acme", "name": "Acme Corp", "max_api_calls_per_day": 3 },
        { "id": "globex", "name": "Globex", "max_api_calls_per_day": 100 },
        { "id": "initech", "active": false }
    ]))?;
    let registry = Arc::new(StaticTenantRegistry::new(tenants, state.clone())?);

    let app = Router::new()
        .route("/", get(hello))
        .route("/health", get(|| async { "ok\n" }))
        .layer(
            TenancyLayer::new(registry)
                .subdomains("example.test")
                .quotas(Quotas::new(state))
                .public_path("/health")
                // Refusals (unknown, inactive, over quota) go to the audit trail.
                .audit(Arc::new(MemoryAuditSink::with_capacity(1000))),
        );
    let app = app.layer(ProblemJsonLayer::new());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
