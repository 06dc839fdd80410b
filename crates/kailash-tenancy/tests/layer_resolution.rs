//! Tenant resolution through `TenancyLayer`: sources, agreement, registry
//! checks, public paths and audit.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use kailash_core::audit::{AuditDecision, MemoryAuditSink};
use kailash_core::context::{RequestContext, RequestIdGenerator};
use kailash_core::problem::ResponseBody;
use kailash_core::{Principal, TenantId};
use kailash_tenancy::layer::TenancyLayer;
use kailash_tenancy::model::{Tenant, TenantConfig, TenantQuotas};
use kailash_tenancy::registry::{RegistryError, TenantRegistry};
use tower::{Layer, ServiceExt, service_fn};

fn id(s: &str) -> TenantId {
    TenantId::new(s).unwrap()
}

fn tenant(name: &str, active: bool, domains: &[&str]) -> Arc<Tenant> {
    Arc::new(Tenant {
        id: id(name),
        name: name.to_owned(),
        active,
        plan: "standard".to_owned(),
        quotas: TenantQuotas::default(),
        config: TenantConfig::default(),
        domains: domains.iter().map(|d| (*d).to_owned()).collect(),
    })
}

/// acme (active, domain api.acme.test), globex (active), initech (inactive).
#[derive(Default)]
struct TestRegistry {
    tenants: HashMap<TenantId, Arc<Tenant>>,
    fail: AtomicBool,
}

impl TestRegistry {
    fn new() -> Arc<Self> {
        let mut tenants = HashMap::new();
        for t in [
            tenant("acme", true, &["api.acme.test"]),
            tenant("globex", true, &[]),
            tenant("initech", false, &[]),
        ] {
            tenants.insert(t.id.clone(), t);
        }
        Arc::new(Self {
            tenants,
            fail: AtomicBool::new(false),
        })
    }
}

#[async_trait]
impl TenantRegistry for TestRegistry {
    async fn list(&self) -> Result<Vec<TenantId>, RegistryError> {
        Ok(self.tenants.keys().cloned().collect())
    }

    async fn get(&self, id: &TenantId) -> Result<Option<Arc<Tenant>>, RegistryError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(RegistryError::Unavailable("down".to_owned()));
        }
        Ok(self.tenants.get(id).cloned())
    }

    async fn by_domain(&self, host: &str) -> Result<Option<TenantId>, RegistryError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(RegistryError::Unavailable("down".to_owned()));
        }
        Ok(self
            .tenants
            .values()
            .find(|t| t.domains.iter().any(|d| d == host))
            .map(|t| t.id.clone()))
    }
}

/// What the inner service saw, reported in response headers.
async fn echo(req: Request<()>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut res = Response::new(Full::new(Bytes::from_static(b"ok")));
    if let Some(t) = req.extensions().get::<TenantId>() {
        res.headers_mut()
            .insert("x-seen-id", HeaderValue::from_str(t.as_str()).unwrap());
    }
    if let Some(t) = req.extensions().get::<Arc<Tenant>>() {
        res.headers_mut().insert(
            "x-seen-tenant",
            HeaderValue::from_str(t.id.as_str()).unwrap(),
        );
    }
    Ok(res)
}

struct Harness {
    registry: Arc<TestRegistry>,
    audit: Arc<MemoryAuditSink>,
}

impl Harness {
    fn new() -> Self {
        Self {
            registry: TestRegistry::new(),
            audit: Arc::new(MemoryAuditSink::new()),
        }
    }

    fn layer(&self) -> TenancyLayer {
        TenancyLayer::new(self.registry.clone()).audit(self.audit.clone())
    }

    async fn send(
        &self,
        layer: &TenancyLayer,
        req: Request<()>,
    ) -> Response<ResponseBody<Full<Bytes>>> {
        layer.layer(service_fn(echo)).oneshot(req).await.unwrap()
    }
}

fn principal(tenant: &str) -> Principal {
    Principal::builder("user-1").tenant(id(tenant)).build()
}

fn request(path: &str) -> http::request::Builder {
    Request::get(path)
}

fn with_principal(mut req: Request<()>, tenant: &str) -> Request<()> {
    req.extensions_mut().insert(principal(tenant));
    req.extensions_mut().insert(RequestContext::new(
        RequestIdGenerator::new().next_id(),
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
        jiff::Timestamp::now(),
    ));
    req
}

async fn problem(res: Response<ResponseBody<Full<Bytes>>>) -> serde_json::Value {
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn token_tenant_passes_and_sets_both_extensions() {
    let h = Harness::new();
    let layer = h.layer();
    let res = h
        .send(
            &layer,
            with_principal(request("/orders").body(()).unwrap(), "acme"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-seen-id"], "acme");
    assert_eq!(res.headers()["x-seen-tenant"], "acme");
    assert!(h.audit.events().is_empty());
}

#[tokio::test]
async fn header_disagreeing_with_the_token_is_refused_and_audited() {
    let h = Harness::new();
    let layer = h.layer().header(true);
    let req = request("/orders")
        .header("x-tenant-id", "acme")
        .body(())
        .unwrap();
    let res = h.send(&layer, with_principal(req, "globex")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.headers().get("x-seen-id").is_none());
    let body = problem(res).await;
    assert_eq!(body["detail"], "tenant mismatch");

    let events = h.audit.events();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.action, "tenant.resolve");
    assert_eq!(e.decision, AuditDecision::Deny);
    assert_eq!(e.reason.as_deref(), Some("tenant sources disagree"));
    assert_eq!(e.actor.as_deref(), Some("user-1"));
    assert_eq!(e.tenant, Some(id("globex")));
    assert_eq!(e.client_ip, Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))));
    assert!(e.request_id.is_some());
}

#[tokio::test]
async fn header_agreeing_with_the_token_passes() {
    let h = Harness::new();
    let layer = h.layer().header(true);
    let req = request("/orders")
        .header("x-tenant-id", "globex")
        .body(())
        .unwrap();
    let res = h.send(&layer, with_principal(req, "globex")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-seen-id"], "globex");
}

#[tokio::test]
async fn header_is_ignored_when_not_enabled() {
    let h = Harness::new();
    let layer = h.layer();
    let req = request("/orders")
        .header("x-tenant-id", "acme")
        .body(())
        .unwrap();
    let res = h.send(&layer, with_principal(req, "globex")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-seen-id"], "globex");

    // Without a principal, an ignored header names no tenant.
    let req = request("/orders")
        .header("x-tenant-id", "acme")
        .body(())
        .unwrap();
    assert_eq!(h.send(&layer, req).await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn header_alone_names_the_tenant() {
    let h = Harness::new();
    let layer = h.layer().header(true);
    let req = request("/orders")
        .header("x-tenant-id", "acme")
        .body(())
        .unwrap();
    let res = h.send(&layer, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-seen-tenant"], "acme");
}

#[tokio::test]
async fn malformed_headers_are_refused_and_never_audited_verbatim() {
    let h = Harness::new();
    let layer = h.layer().header(true);
    let cases: [&[&str]; 5] = [
        &[" acme"],
        &["acme "],
        &["Acme-EVIL-MARKER"],
        &["acme", "acme"],
        &["acme\tEVIL-MARKER"],
    ];
    for values in cases {
        let mut builder = request("/orders");
        for v in values {
            builder = builder.header("x-tenant-id", *v);
        }
        let res = h.send(&layer, builder.body(()).unwrap()).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{values:?}");
        let body = problem(res).await;
        assert!(!body.to_string().contains("EVIL"), "{body}");
    }
    let events = h.audit.events();
    assert_eq!(events.len(), cases.len());
    for e in &events {
        assert_eq!(e.reason.as_deref(), Some("malformed tenant header"));
        assert_eq!(e.tenant, None);
        let json = serde_json::to_string(e).unwrap();
        assert!(!json.to_lowercase().contains("evil"), "{json}");
        assert!(!json.contains(" acme"), "{json}");
    }
}

#[tokio::test]
async fn a_request_naming_no_tenant_is_refused() {
    let h = Harness::new();
    let layer = h.layer().header(true).subdomains("example.com");
    let res = h.send(&layer, request("/orders").body(()).unwrap()).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(problem(res).await["detail"], "the request names no tenant");
}

#[tokio::test]
async fn unknown_and_inactive_tenants_are_refused_and_audited() {
    let h = Harness::new();
    let layer = h.layer();
    let res = h
        .send(
            &layer,
            with_principal(request("/").body(()).unwrap(), "umbrella"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(problem(res).await["detail"], "unknown tenant");

    let res = h
        .send(
            &layer,
            with_principal(request("/").body(()).unwrap(), "initech"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(problem(res).await["detail"], "tenant is inactive");

    let events = h.audit.events();
    let reasons: Vec<_> = events.iter().map(|e| e.reason.as_deref()).collect();
    assert_eq!(
        reasons,
        [Some("unknown tenant"), Some("tenant is inactive")]
    );
    assert_eq!(events[0].tenant, Some(id("umbrella")));
    assert_eq!(events[1].tenant, Some(id("initech")));
    assert!(events.iter().all(|e| e.decision == AuditDecision::Deny));
}

#[tokio::test]
async fn subdomain_names_the_tenant() {
    let h = Harness::new();
    let layer = h.layer().subdomains("example.com");
    let req = request("/orders")
        .header("host", "Acme.Example.com:8443")
        .body(())
        .unwrap();
    let res = h.send(&layer, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-seen-id"], "acme");

    // Deeper names and the bare base domain name no tenant.
    for host in ["a.acme.example.com", "example.com", "acme.example.org"] {
        let req = request("/orders").header("host", host).body(()).unwrap();
        assert_eq!(
            h.send(&layer, req).await.status(),
            StatusCode::BAD_REQUEST,
            "{host}"
        );
    }
    // A malformed host is refused.
    let req = request("/orders")
        .header("host", "acme.example.com:x")
        .body(())
        .unwrap();
    assert_eq!(h.send(&layer, req).await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn subdomain_disagreeing_with_the_token_is_refused() {
    let h = Harness::new();
    let layer = h.layer().subdomains("example.com");
    let req = request("/orders")
        .header("host", "acme.example.com")
        .body(())
        .unwrap();
    let res = h.send(&layer, with_principal(req, "globex")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        h.audit.events()[0].reason.as_deref(),
        Some("tenant sources disagree")
    );

    let req = request("/orders")
        .header("host", "globex.example.com")
        .body(())
        .unwrap();
    let res = h.send(&layer, with_principal(req, "globex")).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn subdomains_are_ignored_when_not_enabled() {
    let h = Harness::new();
    let layer = h.layer();
    let req = request("/orders")
        .header("host", "acme.example.com")
        .body(())
        .unwrap();
    let res = h.send(&layer, with_principal(req, "globex")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-seen-id"], "globex");
}

#[tokio::test]
async fn custom_domain_is_looked_up_in_the_registry() {
    let h = Harness::new();
    let layer = h.layer().subdomains("example.com").custom_domains(true);
    let req = request("/orders")
        .header("host", "API.acme.test:443")
        .body(())
        .unwrap();
    let res = h.send(&layer, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-seen-tenant"], "acme");

    // The custom domain and the token disagree.
    let req = request("/orders")
        .header("host", "api.acme.test")
        .body(())
        .unwrap();
    let res = h.send(&layer, with_principal(req, "globex")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // An unmapped domain names no tenant.
    let req = request("/orders")
        .header("host", "unknown.test")
        .body(())
        .unwrap();
    assert_eq!(h.send(&layer, req).await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn registry_errors_fail_closed() {
    let h = Harness::new();
    h.registry.fail.store(true, Ordering::SeqCst);
    let layer = h.layer().custom_domains(true);
    let res = h
        .send(
            &layer,
            with_principal(request("/").body(()).unwrap(), "acme"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = problem(res).await;
    assert!(!body.to_string().contains("down"), "{body}");

    let req = request("/")
        .header("host", "api.acme.test")
        .body(())
        .unwrap();
    assert_eq!(
        h.send(&layer, req).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(
        h.audit
            .events()
            .iter()
            .all(|e| e.decision == AuditDecision::Error)
    );
}

#[tokio::test]
async fn public_paths_pass_untouched() {
    let h = Harness::new();
    let layer = h
        .layer()
        .header(true)
        .public_path("/health")
        .public_prefix("/public");
    for path in ["/health", "/public", "/public/docs"] {
        let res = h.send(&layer, request(path).body(()).unwrap()).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert!(res.headers().get("x-seen-id").is_none());
    }
    // Even a malformed header is not looked at on a public path.
    let req = request("/health")
        .header("x-tenant-id", " bad")
        .body(())
        .unwrap();
    assert_eq!(h.send(&layer, req).await.status(), StatusCode::OK);

    for path in [
        "/healthz",
        "/health/x",
        "/publicity",
        "/public/../orders",
        "/public/%2e%2E/orders",
    ] {
        let res = h.send(&layer, request(path).body(()).unwrap()).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{path}");
    }
    assert!(
        h.audit
            .events()
            .iter()
            .all(|e| e.reason.as_deref() == Some("no tenant named"))
    );
}
