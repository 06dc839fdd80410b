//! One authority for the tenant (issue 10, item 7), one public-path
//! matcher (item 8), and a daily quota that counts admitted requests only
//! (item 9).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use kailash::clock::SystemClock;
use kailash::config::GatewayConfig;
use kailash::state::SharedState;
use kailash::tenancy::layer::TenancyLayer;
use kailash::tenancy::registry::StaticTenantRegistry;
use kailash::{Principal, TenantId};

use crate::support::demo::*;
use crate::support::{Resp, request};

/// An app behind `TenancyLayer` (header resolution on, the fixture's
/// tenants) whose caller is the principal `who`; `/whoami` answers the
/// tenant the request acts in, as the principal and as the resolved id.
async fn tenancy_app(who: Principal, allow_tenantless: bool) -> SocketAddr {
    let config =
        GatewayConfig::from_toml_with_env(&demo_config_text(), "gateway.toml", Vec::new()).unwrap();
    let state = SharedState::memory(Arc::new(SystemClock));
    let registry = Arc::new(StaticTenantRegistry::new(config.tenants.clone(), state).unwrap());
    let mut tenancy = TenancyLayer::new(registry).header(true);
    if allow_tenantless {
        tenancy = tenancy.allow_tenantless_principals();
    }
    let app = Router::new()
        .route(
            "/whoami",
            get(|p: axum::Extension<Principal>, t: TenantId| async move {
                format!("{} {}", p.tenant().map_or("-", |t| t.as_str()), t.as_str())
            }),
        )
        .layer(tenancy)
        .layer(axum::Extension(who));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn whoami(addr: SocketAddr, tenant: &str) -> Resp {
    request(
        addr,
        &format!("GET /whoami HTTP/1.1\nHost: x\nX-Tenant-ID: {tenant}"),
        b"",
    )
    .await
}

#[tokio::test]
async fn a_tenantless_principal_cannot_choose_a_tenant_by_header() {
    let root = Principal::builder("root").role("admin").build();
    let addr = tenancy_app(root.clone(), false).await;
    let r = whoami(addr, "globex").await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert!(r.text().contains("belongs to no tenant"), "{}", r.text());

    // Told to allow it, the chosen tenant is the only one downstream: the
    // principal carries it too.
    let addr = tenancy_app(root, true).await;
    let r = whoami(addr, "globex").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "globex globex");

    // A principal with a tenant keeps it; a header naming another is refused.
    let carol = Principal::builder("carol")
        .tenant(TenantId::new("globex").unwrap())
        .build();
    let addr = tenancy_app(carol, true).await;
    assert_eq!(whoami(addr, "globex").await.text(), "globex globex");
    assert_eq!(whoami(addr, "acme").await.status, 403);
}

#[tokio::test]
async fn paths_that_only_start_like_a_public_one_need_credentials() {
    let gw = demo(&[]).await;
    for path in ["/auth/loginx", "/.well-known/jwks.jsonx", "/auth/refresh/x"] {
        let r = request(gw.addr, &format!("GET {path} HTTP/1.1\nHost: x"), b"").await;
        assert_eq!(r.status, 401, "{path}: {}", r.text());
        assert!(
            r.header("www-authenticate").is_some(),
            "{path}: a 401 names the scheme"
        );
    }
    // The public paths themselves still are.
    let r = request(gw.addr, "GET /.well-known/jwks.json HTTP/1.1\nHost: x", b"").await;
    assert_eq!(r.status, 200);
}

/// An operator account without a tenant (bob's password hash).
const OPS: &str = r#"
[[users]]
username = "ops"
roles = ["admin"]
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$N4Xzr9wj/Z0KvLpw/unyBg$LncNE8ciw8wyfKq1zdTPqvzokFBAivCrdkNxqxl1akc"
"#;

/// With `allow_tenantless_principals`, a tenantless operator acting in a
/// tenant still ends its own session on logout: the session is kept under
/// the tenant its token named (none), not the stamped one.
#[tokio::test]
async fn a_tenantless_principal_acting_in_a_tenant_logs_out_for_real() {
    for backend in backends() {
        let mut vars: Vec<(String, String)> = backend
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        vars.push((
            "KAILASH_TENANCY__ALLOW_TENANTLESS_PRINCIPALS".into(),
            "true".into(),
        ));
        vars.push(("KAILASH_AUTH__MFA_REQUIRED_ROLES".into(), "[]".into()));
        let text = format!("{}\n{OPS}", demo_config_text());
        let config =
            GatewayConfig::from_toml_with_env(&text, "gateway.toml", vars).expect("config");
        let gateway = kailash::GatewayBuilder::from_config_with_backends(&config, &temp_dir())
            .await
            .expect("backends")
            .build()
            .expect("gateway");
        let gw = crate::support::start_gateway(gateway).await;
        let (token, refresh) = tokens(&login(&gw, "ops", "Bob-Demo-Passw0rd!").await);
        let call = |path: &'static str, method: &'static str, body: String| {
            let head = format!(
                "{method} {path} HTTP/1.1\nHost: x\nX-Tenant-ID: acme\nAuthorization: Bearer {token}\nContent-Type: application/json\nContent-Length: {}",
                body.len()
            );
            let addr = gw.addr;
            async move { request(addr, &head, body.as_bytes()).await }
        };
        let sessions = call("/auth/sessions", "GET", String::new()).await;
        assert_eq!(sessions.status, 200, "{}", sessions.text());
        let listed = sessions.json();
        assert_eq!(
            listed.as_array().map(Vec::len),
            Some(1),
            "its own session is listed: {listed}"
        );
        assert_eq!(
            call("/auth/logout", "POST", String::new()).await.status,
            204
        );
        // Over: the token is refused and the refresh token is dead.
        assert_eq!(
            call("/auth/sessions", "GET", String::new()).await.status,
            401
        );
        let r = post(
            &gw,
            "/auth/refresh",
            serde_json::json!({ "refresh_token": refresh }),
            None,
        )
        .await;
        assert_eq!(r.status, 401, "{}", r.text());
        gw.stop().await;
    }
}
