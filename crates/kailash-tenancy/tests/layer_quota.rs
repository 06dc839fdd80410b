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
    async fn list(&self) -> Result<Vec<TenantId>, RegistryError> {
        Ok(vec![self.0.id.clone()])
    }
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

/// Deferred to an `AdmitLayer`, the charge answers exactly as the layer's
/// own: the same `429` and event once exhausted; a request an inner guard
/// refuses gets its call back; one the admission refuses is never charged.
#[tokio::test]
async fn a_deferred_charge_answers_like_the_direct_one() {
    use kailash_core::admission::AdmitLayer;
    use kailash_core::guard::GuardRefusal;
    use kailash_core::rate_limit::{Limit, RateLimitLayer};
    use kailash_core::state::RateQuota;

    let clock = Arc::new(ManualClock::starting_now());
    let state = SharedState::memory(clock.clone());
    let quotas = Quotas::new(state.clone());
    let (direct_audit, deferred_audit) = (
        Arc::new(MemoryAuditSink::new()),
        Arc::new(MemoryAuditSink::new()),
    );
    let direct = TenancyLayer::new(registry(2))
        .quotas(Quotas::new(SharedState::memory(clock.clone())))
        .audit(direct_audit.clone())
        .layer(service_fn(ok));
    let deferred = TenancyLayer::new(registry(2))
        .quotas(quotas.clone())
        .deferred()
        .audit(deferred_audit.clone())
        .layer(AdmitLayer::new(state.clone()).layer(service_fn(ok)));
    let usage = || async { quotas.usage(&registry(2).0).await.unwrap().api_calls_today };

    for _ in 0..2 {
        assert_eq!(
            direct.clone().oneshot(request()).await.unwrap().status(),
            200
        );
        assert_eq!(
            deferred.clone().oneshot(request()).await.unwrap().status(),
            200
        );
    }
    assert_eq!(usage().await, 2);
    let (a, b) = (
        direct.clone().oneshot(request()).await.unwrap(),
        deferred.clone().oneshot(request()).await.unwrap(),
    );
    assert_eq!(a.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.status(), b.status());
    assert_eq!(a.headers()["retry-after"], b.headers()["retry-after"]);
    let (a, b) = (
        a.into_body().collect().await.unwrap().to_bytes(),
        b.into_body().collect().await.unwrap().to_bytes(),
    );
    assert_eq!(a, b);
    let (a, b) = (direct_audit.events(), deferred_audit.events());
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_eq!(
        (
            &a[0].action,
            a[0].decision,
            &a[0].reason,
            &a[0].tenant,
            &a[0].actor
        ),
        (
            &b[0].action,
            b[0].decision,
            &b[0].reason,
            &b[0].tenant,
            &b[0].actor
        )
    );
    assert_eq!(usage().await, 2, "a refused charge is not counted");

    // A new day; an inner guard refuses: the call is given back.
    clock.advance(Duration::from_secs(86_400));
    let refusing = TenancyLayer::new(registry(2))
        .quotas(quotas.clone())
        .deferred()
        .layer(
            AdmitLayer::new(state.clone()).layer(service_fn(|_req: Request<()>| async {
                let mut res = Response::new(Full::new(Bytes::from_static(b"no")));
                *res.status_mut() = StatusCode::FORBIDDEN;
                GuardRefusal::mark(&mut res);
                Ok::<_, Infallible>(res)
            })),
        );
    assert_eq!(refusing.oneshot(request()).await.unwrap().status(), 403);
    assert_eq!(usage().await, 0, "given back");

    // The admission's own refusal (a per-user limit after the charge)
    // takes the charge back inside the admission: counted nowhere.
    let limited = TenancyLayer::new(registry(2))
        .quotas(quotas.clone())
        .deferred()
        .layer(
            RateLimitLayer::new(
                state.rate.clone(),
                Limit::PerUser(RateQuota::per_minute(1).unwrap()),
            )
            .deferred()
            .layer(AdmitLayer::new(state.clone()).layer(service_fn(ok))),
        );
    assert_eq!(
        limited.clone().oneshot(request()).await.unwrap().status(),
        200
    );
    assert_eq!(limited.oneshot(request()).await.unwrap().status(), 429);
    assert_eq!(usage().await, 1, "only the admitted request counts");
}

/// Issue 11: composed deferred over a registry that answers locally, the
/// layer resolves the tenant with no lookup and an unboxed future; the
/// tenant's activation is one check of the admission, so a deactivation
/// refuses the very next request (nothing is cached), before any charge.
#[tokio::test]
async fn a_local_registry_defers_activation_to_the_admission() {
    use kailash_core::admission::AdmitLayer;
    use kailash_core::guard::GuardRefusal;
    use kailash_core::state::Namespace;
    use kailash_tenancy::model::TenantSpec;
    use kailash_tenancy::registry::StaticTenantRegistry;
    use tower::Service;

    let clock = Arc::new(ManualClock::starting_now());
    let state = SharedState::memory(clock.clone());
    let specs: Vec<TenantSpec> = serde_json::from_value(serde_json::json!([
        { "id": "acme", "max_api_calls_per_day": 100 },
        { "id": "dormant", "active": false },
    ]))
    .unwrap();
    let registry = Arc::new(StaticTenantRegistry::new(specs, state.clone()).unwrap());
    let quotas = Quotas::new(state.clone());
    let audit = Arc::new(MemoryAuditSink::new());
    let layer = TenancyLayer::new(registry.clone())
        .quotas(quotas.clone())
        .deferred()
        .audit(audit.clone());
    let mut svc = layer.layer(AdmitLayer::new(state.clone()).layer(service_fn(ok)));
    let acme = TenantId::new("acme").unwrap();
    let acme_record = registry.get(&acme).await.unwrap().unwrap();
    let usage = || async { quotas.usage(&acme_record).await.unwrap().api_calls_today };
    let as_member_of = |tenant: &str| {
        let mut req = Request::get("/orders").body(()).unwrap();
        req.extensions_mut().insert(
            Principal::builder("user-1")
                .tenant(TenantId::new(tenant).unwrap())
                .build(),
        );
        req
    };

    // Active: resolved locally (unboxed), charged by the admission.
    let fut = svc.ready().await.unwrap().call(as_member_of("acme"));
    assert!(!fut.is_boxed(), "the deferred path awaits no lookup");
    assert_eq!(fut.await.unwrap().status(), 200);
    assert_eq!(usage().await, 1);

    // An unknown tenant is refused without a lookup.
    let fut = svc.ready().await.unwrap().call(as_member_of("nobody"));
    assert!(!fut.is_boxed());
    let res = fut.await.unwrap();
    assert_eq!(res.status(), 403);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("unknown tenant"));

    // Deactivated (on any instance sharing the state): the next request is
    // refused by the admission, audited, and charges nothing.
    registry.set_active(&acme, false).await.unwrap();
    let res = svc.clone().oneshot(as_member_of("acme")).await.unwrap();
    assert_eq!(res.status(), 403);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("tenant is inactive"));
    let events = audit.events();
    let last = events.last().unwrap();
    assert_eq!(
        (last.decision, last.reason.as_deref()),
        (AuditDecision::Deny, Some("tenant is inactive"))
    );
    assert_eq!(last.tenant.as_ref(), Some(&acme));
    assert_eq!(usage().await, 1, "a refused tenant is not charged");

    // Reactivated: served again.
    registry.set_active(&acme, true).await.unwrap();
    assert_eq!(
        svc.clone()
            .oneshot(as_member_of("acme"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(usage().await, 2);

    // An override that is neither 0 nor 1 fails closed (503), never open.
    let key = StateKey::tenant(&acme, Namespace::new("tenant.active"), "override");
    state
        .kv
        .set(&key, Bytes::from_static(b"yes"), None)
        .await
        .unwrap();
    assert_eq!(
        svc.clone()
            .oneshot(as_member_of("acme"))
            .await
            .unwrap()
            .status(),
        503
    );
    assert_eq!(usage().await, 2);
    state.kv.delete(&key).await.unwrap();

    // A tenant configured inactive is looked up (its record must say it
    // is active once an override activates it).
    let dormant = TenantId::new("dormant").unwrap();
    let fut = svc.ready().await.unwrap().call(as_member_of("dormant"));
    assert!(fut.is_boxed());
    assert_eq!(fut.await.unwrap().status(), 403);
    registry.set_active(&dormant, true).await.unwrap();
    assert_eq!(
        svc.clone()
            .oneshot(as_member_of("dormant"))
            .await
            .unwrap()
            .status(),
        200
    );

    // An inner guard's refusal gives the locally resolved charge back.
    let mut refusing = layer.layer(AdmitLayer::new(state.clone()).layer(service_fn(
        |_req: Request<()>| async {
            let mut res = Response::new(Full::new(Bytes::from_static(b"no")));
            *res.status_mut() = StatusCode::FORBIDDEN;
            GuardRefusal::mark(&mut res);
            Ok::<_, Infallible>(res)
        },
    )));
    let fut = refusing.ready().await.unwrap().call(as_member_of("acme"));
    assert!(!fut.is_boxed());
    assert_eq!(fut.await.unwrap().status(), 403);
    assert_eq!(usage().await, 2, "given back");
}
