//! RBAC and ABAC from a policy file: `RequirePermissionLayer` per route,
//! and a handler that finishes an ABAC check on the document it loaded.
//! Roles and the `data_access` condition are in `config/access-policy.toml`.
//! It prints tokens for dave (data_scientist, engineering, confidential
//! clearance) and bob (business_user).
//!
//! ```text
//! cargo run -p kailash-examples --example access_policy -- 127.0.0.1:3000
//! curl -i localhost:3000/reports -H "authorization: Bearer $BOB"          # 200
//! curl -i localhost:3000/docs/eng-plan -H "authorization: Bearer $BOB"    # 403: no data:read
//! curl -i localhost:3000/docs/eng-plan -H "authorization: Bearer $DAVE"   # 200
//! curl -i localhost:3000/docs/eng-keys -H "authorization: Bearer $DAVE"   # 403: data_access (secret)
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router, routing::get};
use kailash::access::condition::Attributes;
use kailash::access::layer::RequirePermissionLayer;
use kailash::access::permission::Permission;
use kailash::access::{AccessControl, AccessPolicy, forbidden, spec::AccessSpec};
use kailash::auth::jwt::{Algorithm, Claims, KeySet, SigningKey, TokenType, Verifier};
use kailash::auth::layer::JwtAuthLayer;
use kailash::clock::{Clock, SystemClock};
use kailash::guard::GuardRefusal;
use kailash::{Principal, Problem};

/// Documents: id, department, classification.
const DOCS: [(&str, &str, &str); 2] = [
    ("eng-plan", "engineering", "confidential"),
    ("eng-keys", "engineering", "secret"),
];

async fn read_doc(
    Extension(access): Extension<AccessControl>,
    principal: Principal,
    Path(id): Path<String>,
) -> Response {
    let Some((id, dept, class)) = DOCS.into_iter().find(|d| d.0 == id) else {
        return Problem::not_found().into_response();
    };
    let mut doc = Attributes::new();
    doc.insert("department".into(), dept.into());
    doc.insert("classification".into(), class.into());
    let read = Permission::parse("data:read").expect("a valid permission");
    match access
        .check(&principal, &read, Some((id, &doc)), None)
        .await
    {
        Ok(decision) if decision.allowed => format!("{id}: {class}\n").into_response(),
        Ok(_) => {
            let mut refused = forbidden(&read).into_response();
            GuardRefusal::mark(&mut refused);
            refused
        }
        Err(audit) => audit.problem().into_response(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let addr: SocketAddr = arg
        .parse()
        .map_err(|e| format!("listen address {arg:?}: {e}"))?;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/access-policy.toml");
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let spec: AccessSpec = toml::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let access = AccessControl::new(
        AccessPolicy::load(&spec)
            .await
            .map_err(|e| format!("{path}: {e}"))?,
    );

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let keys = Arc::new(KeySet::new(
        SigningKey::generate(Algorithm::EdDSA, "k1")?,
        clock.clone(),
    ));
    let now = clock.now().as_second();
    for (user, role, clearance) in [
        ("dave", "data_scientist", "confidential"),
        ("bob", "business_user", "public"),
    ] {
        let mut claims = Claims::new("https://id.example", user, "api", now, now + 3600);
        claims.roles = vec![role.into()];
        claims
            .attrs
            .insert("department".into(), "engineering".into());
        claims.attrs.insert("clearance".into(), clearance.into());
        println!("token {user}: {}", keys.issue(&claims, TokenType::Access)?);
    }
    let verifier = Verifier::builder(keys, "https://id.example", "api")
        .clock(clock)
        .build();

    let app = Router::new()
        .route(
            "/reports",
            get(|| async { "reports\n" }).layer(RequirePermissionLayer::new("report:view")),
        )
        // The roles are checked here; data.* conditions wait for the document.
        .route(
            "/docs/{id}",
            get(read_doc).layer(RequirePermissionLayer::new("data:read").defer_resource()),
        )
        .layer(Extension(access.clone()))
        .layer(JwtAuthLayer::new(verifier));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
