//! `GET /api/tenant/usage` (feature `axum`): answers for the tenant the
//! layer resolved, and documents what it answers.
#![cfg(feature = "axum")]

use std::sync::Arc;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use kailash_core::clock::ManualClock;
use kailash_core::state::SharedState;
use kailash_core::{Principal, TenantId};
use kailash_tenancy::layer::TenancyLayer;
use kailash_tenancy::model::TenantSpec;
use kailash_tenancy::quota::Quotas;
use kailash_tenancy::registry::StaticTenantRegistry;
use tower::ServiceExt;

fn quotas_and_registry() -> (Quotas, Arc<StaticTenantRegistry>) {
    let state = SharedState::memory(Arc::new(ManualClock::starting_now()));
    let acme: TenantSpec = serde_json::from_value(serde_json::json!({
        "id": "acme", "max_api_calls_per_day": 5, "max_workflows_per_tenant": 2
    }))
    .unwrap();
    let registry = StaticTenantRegistry::new(vec![acme], state.clone()).unwrap();
    (Quotas::new(state), Arc::new(registry))
}

fn request_as(tenant: &str) -> Request<Body> {
    let mut req = Request::get("/api/tenant/usage")
        .body(Body::empty())
        .unwrap();
    req.extensions_mut().insert(
        Principal::builder("u1")
            .tenant(TenantId::new(tenant).unwrap())
            .build(),
    );
    req
}

async fn json(res: axum::response::Response) -> serde_json::Value {
    serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

#[tokio::test]
async fn usage_of_the_resolved_tenant() {
    let (quotas, registry) = quotas_and_registry();
    let app = kailash_tenancy::http::router(quotas.clone())
        .layer(TenancyLayer::new(registry).quotas(quotas));
    let res = app.clone().oneshot(request_as("acme")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let usage = json(res).await;
    assert_eq!(usage["tenant"], "acme");
    assert_eq!(usage["api_calls_today"], 1);
    assert_eq!(usage["max_api_calls_per_day"], 5);
    assert_eq!(usage["max_workflows"], 2);
    let usage = json(app.oneshot(request_as("acme")).await.unwrap()).await;
    assert_eq!(usage["api_calls_today"], 2);
}

#[tokio::test]
async fn without_a_resolved_tenant_the_route_refuses() {
    let (quotas, _) = quotas_and_registry();
    let res = kailash_tenancy::http::router(quotas)
        .oneshot(request_as("acme"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(json(res).await["detail"], "the request names no tenant");
}

/// The schema derived from the usage type names exactly the fields the
/// handler sends, and each is present (none is skipped); the document
/// compiles for the validator, and its one operation is the route served.
#[cfg(feature = "openapi")]
#[tokio::test]
async fn openapi_schema_matches_the_response() {
    let (quotas, registry) = quotas_and_registry();
    let app = kailash_tenancy::http::router(quotas.clone())
        .layer(TenancyLayer::new(registry).quotas(quotas));
    let usage = json(app.oneshot(request_as("acme")).await.unwrap()).await;
    let mut sent: Vec<&String> = usage.as_object().unwrap().keys().collect();
    sent.sort();

    let doc = kailash_tenancy::http::openapi();
    kailash_core::schema::check_document(&doc).unwrap();
    let doc = serde_json::to_value(&doc).unwrap();
    assert_eq!(doc["paths"].as_object().unwrap().len(), 1);
    let op = &doc["paths"]["/api/tenant/usage"]["get"];
    assert_eq!(op["operationId"], "tenant_usage");
    for status in ["200", "400", "503"] {
        assert!(op["responses"][status].is_object(), "{status}");
    }
    assert_eq!(
        op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/TenantUsageAnswer"
    );
    // The answer is the usage plus `billing` (sent only when configured).
    let answer = &doc["components"]["schemas"]["TenantUsageAnswer"]["allOf"];
    assert_eq!(answer[0]["$ref"], "#/components/schemas/TenantUsage");
    assert_eq!(
        answer[1]["properties"]["billing"]["$ref"],
        "#/components/schemas/TenantBilling"
    );
    assert!(answer[1].get("required").is_none());
    assert!(usage.get("billing").is_none());
    let schema = &doc["components"]["schemas"]["TenantUsage"];
    let mut documented: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
    documented.sort();
    assert_eq!(sent, documented);
    let mut required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    required.sort();
    // Every figure is always sent; the limits may be null (unlimited).
    assert_eq!(
        required,
        [
            "api_calls_reset_at",
            "api_calls_today",
            "storage_bytes",
            "tenant",
            "workflows"
        ]
    );
}

/// With billing, the answer also carries the plan, today's metered usage
/// and the delivery record — each field the schema names.
#[cfg(feature = "openapi")]
#[tokio::test]
async fn with_billing_the_answer_carries_todays_metering_and_the_delivery() {
    use kailash_core::usage::{UsageMetric, UsageSink};
    use kailash_tenancy::metering::{Billing, ReportDelivery, UsageReport};

    struct Nowhere;
    #[async_trait::async_trait]
    impl ReportDelivery for Nowhere {
        async fn deliver(&self, _: &UsageReport) -> Result<(), String> {
            Err("unreachable".into())
        }
    }
    let state = SharedState::memory(Arc::new(ManualClock::starting_now()));
    let acme: TenantSpec =
        serde_json::from_value(serde_json::json!({"id": "acme", "plan": "enterprise"})).unwrap();
    let registry = Arc::new(StaticTenantRegistry::new(vec![acme], state.clone()).unwrap());
    let quotas = Quotas::new(state.clone());
    let billing = Billing::new(
        state,
        Arc::new(Nowhere),
        std::time::Duration::ZERO,
        std::time::Duration::from_secs(1),
    );
    let id = TenantId::new("acme").unwrap();
    billing
        .metering()
        .record(&id, UsageMetric::WorkflowRuns, 2)
        .await
        .unwrap();
    let app = kailash_tenancy::http::router_with_billing(quotas.clone(), Some(billing))
        .layer(TenancyLayer::new(registry).quotas(quotas));
    let usage = json(app.oneshot(request_as("acme")).await.unwrap()).await;
    let b = &usage["billing"];
    assert_eq!(b["plan"], "enterprise");
    assert_eq!(b["today"]["workflow_runs"], 2);
    assert_eq!(b["today"]["api_calls"], usage["api_calls_today"]);
    assert_eq!(b["delivery"]["delivered_through"], serde_json::Value::Null);
    assert_eq!(b["delivery"]["attempts"], 0);

    let doc = serde_json::to_value(kailash_tenancy::http::openapi()).unwrap();
    for (name, value) in [
        ("TenantBilling", b),
        ("DayUsage", &b["today"]),
        ("DeliveryRecord", &b["delivery"]),
    ] {
        let mut sent: Vec<&String> = value.as_object().unwrap().keys().collect();
        sent.sort();
        let mut documented: Vec<&String> = doc["components"]["schemas"][name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name}"))
            .keys()
            .collect();
        documented.sort();
        assert_eq!(sent, documented, "{name}");
    }
}
