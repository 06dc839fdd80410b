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
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::health::HealthRegistry;
use crate::metrics::MetricsRegistry;

/// `GET /health/live` (always `{"status":"ok"}` while the process serves)
/// and `GET /health/ready` (the registry's report; `503` when a required
/// check fails; never cached).
pub fn health_routes(registry: HealthRegistry) -> Router {
    Router::new()
        .route(
            "/health/live",
            get(|| async { axum::Json(json!({ "status": "ok" })) }),
        )
        .route(
            "/health/ready",
            get(move || {
                let registry = registry.clone();
                async move {
                    let report = registry.report().await;
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
            }),
        )
}

/// `GET /metrics`: the Prometheus text exposition (format 0.0.4).
pub fn metrics_route(registry: MetricsRegistry) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    registry.render(),
                )
            }
        }),
    )
}
