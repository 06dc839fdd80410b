//! The operational routes of this crate's concerns, for axum routers:
//! liveness and readiness from a [`HealthRegistry`], and the Prometheus
//! text of a [`MetricsRegistry`].
//!
//! Mount them outside any authentication or rate limit, so that a busy or
//! misbehaving client can never make a Kubernetes probe fail.
//!
//! ```
//! use axum::{Router, body::Body};
//! use http::{Request, StatusCode};
//! use kailash_monitoring::health::{HealthRegistry, from_fn};
//! use kailash_monitoring::http::{health_routes, metrics_route};
//! use kailash_monitoring::MetricsRegistry;
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let health = HealthRegistry::new()
//!     .required("database", from_fn(|| async { Err::<(), _>("connection refused".to_owned()) }));
//! let app: Router = health_routes(health).merge(metrics_route(MetricsRegistry::new()));
//!
//! let live = app.clone().oneshot(Request::get("/health/live").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(live.status(), StatusCode::OK);
//! // A required check fails: not ready, so the load balancer sends no traffic.
//! let ready = app.clone().oneshot(Request::get("/health/ready").body(Body::empty()).unwrap()).await.unwrap();
//! assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
//! let metrics = app.oneshot(Request::get("/metrics").body(Body::empty()).unwrap()).await.unwrap();
//! assert!(metrics.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
//! # });
//! ```

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

#[cfg(feature = "openapi")]
use crate::health::HealthReport;
use crate::health::{HealthPolicy, HealthRegistry, HealthRunner};
use crate::metrics::MetricsRegistry;

/// The content type `GET /metrics` answers with: the Prometheus text
/// exposition format 0.0.4.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The body of `GET /health/live`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Liveness {
    /// Always `ok` while the process serves.
    #[schema(schema_with = ok_schema)]
    pub status: &'static str,
}

fn ok_schema() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["ok"]))
        .into()
}

/// `GET /health/live` (always `{"status":"ok"}` while the process serves)
/// and `GET /health/ready` (the checks' stored state; `503` when a
/// required check fails; never cached), with the checks run in the
/// background by a [`HealthRunner`] under the default [`HealthPolicy`]
/// (started by the first request). Use [`health_routes_with`] to choose
/// the policy and to stop the runner.
pub fn health_routes(registry: HealthRegistry) -> Router {
    match HealthRunner::new(registry, HealthPolicy::default()) {
        Ok(runner) => health_routes_with(runner),
        // The default policy is valid; kept total rather than panicking.
        Err(_) => Router::new().route("/health/live", get(live)),
    }
}

/// [`health_routes`] answering from `runner`'s state. The first request
/// starts the runner if it is not running yet, and — on a fresh instance
/// only — waits for its first round (bounded by the check timeout); after
/// that a request only reads the stored state, so probes never run checks.
pub fn health_routes_with(runner: HealthRunner) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(runner)
}

/// Liveness: the process is up and serving.
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/health/live",
    tag = "operations",
    operation_id = "health_live",
    security(()),
    responses((status = 200, body = Liveness, description = "Alive")),
))]
async fn live() -> axum::Json<Liveness> {
    axum::Json(Liveness { status: "ok" })
}

/// Readiness: every required dependency check passes, from the state the
/// background checks stored (never cached; runs no check).
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    operation_id = "health_ready",
    security(()),
    responses(
        (status = 200, body = HealthReport, description = "Ready: every required check passes (`status` is `ok`, or `degraded` when an optional one fails)"),
        (status = 503, body = HealthReport, description = "Not ready: a required check fails; the report names it (`status` is `fail`)"),
    ),
))]
async fn ready(State(runner): State<HealthRunner>) -> Response {
    let report = readiness(&runner).await;
    let status = if report.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut res = (status, axum::Json(report)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The report `GET /health/ready` answers with, for routes that present
/// it their own way (a status-only body, details behind a token): starts
/// `runner` if it is not running yet and, on a fresh instance only, waits
/// for its first round (bounded by the check timeout); after that it only
/// reads the stored state.
pub async fn readiness(runner: &HealthRunner) -> crate::health::HealthReport {
    if runner.rounds() == 0 {
        runner.start();
        let bound = runner.registry().check_timeout() + std::time::Duration::from_secs(1);
        let _ = tokio::time::timeout(bound, runner.wait_for_round(1)).await;
    }
    runner.report()
}

/// `GET /metrics`: the Prometheus text exposition (format 0.0.4).
pub fn metrics_route(registry: MetricsRegistry) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(registry)
}

/// Prometheus text exposition of request metrics.
#[cfg_attr(feature = "openapi", utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    security(()),
    responses((status = 200, body = String, content_type = "text/plain; version=0.0.4; charset=utf-8", description = "The Prometheus text exposition format 0.0.4")),
))]
async fn metrics(State(registry): State<MetricsRegistry>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        registry.render(),
    )
}

#[cfg(feature = "openapi")]
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "kailash-monitoring health"),
    paths(live, ready),
    components(schemas(Liveness, HealthReport, crate::health::CheckResult))
)]
struct HealthApi;

#[cfg(feature = "openapi")]
#[derive(utoipa::OpenApi)]
#[openapi(info(title = "kailash-monitoring metrics"), paths(metrics))]
struct MetricsApi;

/// The OpenAPI 3.1 document of [`health_routes`] (feature `openapi`),
/// from the types: `GET /health/live` and `GET /health/ready` (`200` and
/// `503` with the same [`HealthReport`] schema), both public.
#[cfg(feature = "openapi")]
pub fn health_openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    HealthApi::openapi()
}

/// The OpenAPI 3.1 document of [`metrics_route`] (feature `openapi`):
/// `GET /metrics`, public, answering [`METRICS_CONTENT_TYPE`].
#[cfg(feature = "openapi")]
pub fn metrics_openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    MetricsApi::openapi()
}

#[cfg(all(test, feature = "openapi"))]
#[allow(clippy::unwrap_used)] // tests may unwrap
mod tests {
    use axum::body::Body;
    use http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::health::from_fn;

    async fn get(app: &Router, path: &str) -> (StatusCode, String, serde_json::Value) {
        let res = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let ct = res.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            ct,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    /// The documents compile for the validator, every documented operation
    /// is routed, and each answer carries the documented content type and
    /// the fields of its schema.
    #[tokio::test]
    async fn documented_operations_are_routed_and_answer_their_schema() {
        let health = serde_json::to_value(health_openapi()).unwrap();
        let metrics = serde_json::to_value(metrics_openapi()).unwrap();
        kailash_core::schema::check_document(&health_openapi()).unwrap();
        kailash_core::schema::check_document(&metrics_openapi()).unwrap();

        let failing = HealthRegistry::new()
            .required("db", from_fn(|| async { Err::<(), _>("down".to_owned()) }))
            .optional("mail", from_fn(|| async { Ok(()) }));
        let app = health_routes(failing).merge(metrics_route(MetricsRegistry::new()));

        let paths = health["paths"].as_object().unwrap();
        assert_eq!(paths.len(), 2);
        let (status, ct, live) = get(&app, "/health/live").await;
        assert_eq!((status, ct.as_str()), (StatusCode::OK, "application/json"));
        assert_eq!(live, serde_json::json!({ "status": "ok" }));

        let (status, _, report) = get(&app, "/health/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let ready = &health["paths"]["/health/ready"]["get"]["responses"];
        for code in ["200", "503"] {
            assert_eq!(
                ready[code]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/HealthReport",
                "{code}"
            );
        }
        let schemas = &health["components"]["schemas"];
        let statuses = schemas["HealthReport"]["properties"]["status"]["enum"].clone();
        assert_eq!(statuses, serde_json::json!(["ok", "degraded", "fail"]));
        assert!(
            statuses
                .as_array()
                .unwrap()
                .contains(&report["status"].clone())
        );
        let check = &schemas["CheckResult"]["properties"];
        for c in report["checks"].as_array().unwrap() {
            for key in c.as_object().unwrap().keys() {
                assert!(check[key].is_object(), "{key}");
            }
        }

        let (status, ct, _) = get(&app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct, METRICS_CONTENT_TYPE);
        let documented = metrics["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
            .as_object()
            .unwrap();
        assert_eq!(
            documented.keys().collect::<Vec<_>>(),
            [METRICS_CONTENT_TYPE]
        );
    }

    /// Probes read the stored state: a hundred of them run no check.
    #[tokio::test(start_paused = true)]
    async fn readiness_answers_from_state_without_running_checks() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU32, Ordering};
        let runs = Arc::new(AtomicU32::new(0));
        let r = runs.clone();
        let registry = HealthRegistry::new()
            .required(
                "db",
                from_fn(move || {
                    r.fetch_add(1, Ordering::SeqCst);
                    async { Ok(()) }
                }),
            )
            .optional("api", from_fn(|| async { Err("HTTP 503".to_owned()) }));
        let runner = HealthRunner::new(registry, HealthPolicy::default()).unwrap();
        let app = health_routes_with(runner.clone());
        let (status, _, report) = get(&app, "/health/ready").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(report["status"], "degraded");
        assert_eq!(report["checks"][1]["consecutive_failures"], 1);
        for _ in 0..100 {
            let (status, _, _) = get(&app, "/health/ready").await;
            assert_eq!(status, StatusCode::OK);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // The interval, not the probes, runs the checks.
        runner.wait_for_round(2).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        runner.stop();
    }
}
