//! The tenancy route (feature `axum`).
//!
//! | route | auth | what |
//! |---|---|---|
//! | `GET /api/tenant/usage` | bearer, tenant | the caller tenant's quota use: API calls today and when they reset, workflows, storage — each with its limit |
//!
//! The handler reads the `Arc<`[`Tenant`]`>` that
//! [`TenancyLayer`](crate::layer::TenancyLayer) put in the request, so it
//! answers only for the tenant the layer resolved — never one the client
//! names by itself. Mount the router where that layer applies; the kailash
//! gateway does this for you.
//!
//! ```
//! use std::sync::Arc;
//! use axum::body::Body;
//! use http::{Request, StatusCode};
//! use http_body_util::BodyExt;
//! use kailash_core::clock::SystemClock;
//! use kailash_core::state::SharedState;
//! use kailash_core::{Principal, TenantId};
//! use kailash_tenancy::layer::TenancyLayer;
//! use kailash_tenancy::model::TenantSpec;
//! use kailash_tenancy::quota::Quotas;
//! use kailash_tenancy::registry::StaticTenantRegistry;
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let state = SharedState::memory(Arc::new(SystemClock));
//! let acme: TenantSpec =
//!     serde_json::from_value(serde_json::json!({ "id": "acme", "max_api_calls_per_day": 100 }))?;
//! let registry = Arc::new(StaticTenantRegistry::new(vec![acme], state.clone())?);
//! let quotas = Quotas::new(state);
//!
//! let app = kailash_tenancy::http::router(quotas.clone())
//!     .layer(TenancyLayer::new(registry).quotas(quotas));
//!
//! // An authentication layer would insert the principal; here the test does.
//! let mut req = Request::get("/api/tenant/usage").body(Body::empty())?;
//! req.extensions_mut()
//!     .insert(Principal::builder("u1").tenant(TenantId::new("acme")?).build());
//! let res = app.oneshot(req).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! let usage: serde_json::Value =
//!     serde_json::from_slice(&res.into_body().collect().await?.to_bytes())?;
//! // This request was charged before the handler read the count.
//! assert_eq!(usage["api_calls_today"], 1);
//! assert_eq!(usage["max_api_calls_per_day"], 100);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kailash_core::Problem;

use crate::model::Tenant;
use crate::quota::Quotas;

/// The path of the usage route.
pub const USAGE_PATH: &str = "/api/tenant/usage";

/// `GET /api/tenant/usage`, answering from `quotas` (the same quotas the
/// [`TenancyLayer`](crate::layer::TenancyLayer) charges).
pub fn router(quotas: Quotas) -> Router {
    Router::new()
        .route(USAGE_PATH, get(usage))
        .with_state(quotas)
}

/// Quota use of the caller's tenant (the `Tenant` the tenancy layer resolved).
async fn usage(State(quotas): State<Quotas>, tenant: Option<Extension<Arc<Tenant>>>) -> Response {
    // Without the layer in front there is no resolved tenant to answer for.
    let Some(Extension(tenant)) = tenant else {
        return Problem::bad_request("the request names no tenant").into_response();
    };
    match quotas.usage(&tenant).await {
        Ok(usage) => Json(usage).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "quota state unavailable");
            Problem::service_unavailable("quota accounting is temporarily unavailable")
                .into_response()
        }
    }
}

/// OpenAPI 3.1 `paths` of this route, to merge into a gateway's document.
pub fn openapi() -> serde_json::Value {
    serde_json::json!({
        "openapi": "3.1.0",
        "info": { "title": "kailash-tenancy", "version": env!("CARGO_PKG_VERSION") },
        "paths": { "/api/tenant/usage": { "get": {
            "tags": ["tenancy"], "operationId": "tenant_usage",
            "summary": "Quota use of the caller's tenant (API calls today, workflows, storage)",
            "security": [{ "bearer": [] }],
            "responses": {
                "200": { "description": "Usage", "content": { "application/json": { "schema": { "type": "object", "properties": {
                    "tenant": { "type": "string" }, "api_calls_today": { "type": "integer" }, "max_api_calls_per_day": { "type": ["integer", "null"] },
                    "api_calls_reset_at": { "type": "string", "format": "date-time" }, "workflows": { "type": "integer" },
                    "max_workflows": { "type": ["integer", "null"] }, "storage_bytes": { "type": "integer" }, "max_storage_bytes": { "type": ["integer", "null"] } } } } } },
                "401": { "description": "Not authenticated" },
                "403": { "description": "Unknown, inactive or mismatched tenant" },
                "429": { "description": "Daily API quota exhausted (Retry-After)" }
            } } } }
    })
}
