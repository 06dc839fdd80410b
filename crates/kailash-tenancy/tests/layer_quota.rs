//! API-call quotas charged by `TenancyLayer`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use kailash_core::audit::{AuditDecision, MemoryAuditSink};
use kailash_core::clock::ManualClock;
use kailash_core::state::{
    BoundedAdd, CounterStore, CounterValue, SharedState, StateError, StateKey,
};
use kailash_core::{Principal, TenantId};
use kailash_tenancy::layer::TenancyLayer;
use kailash_tenancy::model::{Tenant, TenantConfig, TenantQuotas};
use kailash_tenancy::quota::Quotas;
use kailash_tenancy::registry::{RegistryError, TenantRegistry};
use tower::{Layer, ServiceExt, service_fn};

/// One tenant, acme, allowed `limit` API calls a day.
struct OneTenant(Arc<Tenant>);

#[async_trait]
impl TenantRegistry for OneTenant {
    async fn get(&self, id: &TenantId) -> Result<Option<Arc<Tenant>>, RegistryError> {
        Ok((self.0.id == *id).then(|| self.0.clone()))
    }
    async fn by_domain(&self, _host: &str) -> Result<Option<TenantId>, RegistryError> {
        Ok(None)
    }
}

fn registry(limit: u64) -> Arc<OneTenant> {
    Arc::new(OneTenant(Arc::new(Tenant {
        id: TenantId::new("acme").unwrap(),
        name: "Acme".to_owned(),
        active: true,
        plan: "standard".to_owned(),
        quotas: TenantQuotas {
            max_api_calls_per_day: Some(limit),
            ..TenantQuotas::default()
        },
        config: TenantConfig::default(),
        domains: Vec::new(),
    })))
}

fn request() -> Request<()> {
    let mut req = Request::get("/orders").body(()).unwrap();
    req.extensions_mut().insert(
        Principal::builder("user-1")
            .tenant(TenantId::new("acme").unwrap())
            .build(),
    );
    req
}

async fn ok(_req: Request<()>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

#[tokio::test]
async fn exhausted_quota_is_refused_with_retry_after_and_quota_member() {
    let clock = Arc::new(ManualClock::starting_now());
    let quotas = Quotas::new(SharedState::memory(clock.clone()));
    let audit = Arc::new(MemoryAuditSink::new());
    let layer = TenancyLayer::new(registry(2))
        .quotas(quotas)
        .audit(audit.clone());
    let svc = layer.layer(service_fn(ok));

    for _ in 0..2 {
        let res = svc.clone().oneshot(request()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = svc.clone().oneshot(request()).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["quota"], "api_calls_per_day");
    assert_eq!(body["status"], 429);

    let events = audit.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].decision, AuditDecision::Deny);
    assert_eq!(events[0].tenant, Some(TenantId::new("acme").unwrap()));

    // The next UTC day has a fresh quota.
    clock.advance(Duration::from_secs(retry));
    let res = svc.oneshot(request()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn without_quotas_nothing_is_charged() {
    let layer = TenancyLayer::new(registry(0));
    let svc = layer.layer(service_fn(ok));
    for _ in 0..3 {
        let res = svc.clone().oneshot(request()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
}

/// Counters whose backend cannot be reached.
struct DownCounters;

#[async_trait]
impl CounterStore for DownCounters {
    async fn add(
        &self,
        _key: &StateKey,
        _delta: i64,
        _window: Option<Duration>,
    ) -> Result<CounterValue, StateError> {
        Err(StateError::Unavailable("secret-backend-address".to_owned()))
    }
    async fn add_within(
        &self,
        _key: &StateKey,
        _delta: i64,
        _limit: i64,
        _window: Option<Duration>,
    ) -> Result<BoundedAdd, StateError> {
        Err(StateError::Unavailable("secret-backend-address".to_owned()))
    }
    async fn get(&self, _key: &StateKey) -> Result<CounterValue, StateError> {
        Err(StateError::Unavailable("secret-backend-address".to_owned()))
    }
    async fn reset(&self, _key: &StateKey) -> Result<(), StateError> {
        Err(StateError::Unavailable("secret-backend-address".to_owned()))
    }
}

#[tokio::test]
async fn quota_state_errors_fail_closed() {
    let mut state = SharedState::memory(Arc::new(ManualClock::starting_now()));
    state.counters = Arc::new(DownCounters);
    let layer = TenancyLayer::new(registry(10)).quotas(Quotas::new(state));
    let res = layer
        .layer(service_fn(ok))
        .oneshot(request())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(!String::from_utf8_lossy(&body).contains("secret"));
}
