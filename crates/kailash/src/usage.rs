//! `GET /api/tenant/usage`: the caller tenant's quota use.

use std::sync::Arc;

use axum::extract::Extension;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use kailash_core::Problem;
use kailash_tenancy::model::Tenant;
use kailash_tenancy::quota::Quotas;

/// Quota use of the caller's tenant (the `Tenant` the tenant layer resolved).
pub(crate) fn usage_route(quotas: Quotas) -> Router {
    Router::new().route(
        "/api/tenant/usage",
        get(move |tenant: Option<Extension<Arc<Tenant>>>| {
            let quotas = quotas.clone();
            async move {
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
        }) as axum::routing::MethodRouter,
    )
}

/// OpenAPI of the route.
pub(crate) fn openapi() -> serde_json::Value {
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
