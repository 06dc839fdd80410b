//! The gateway-wide operational routes: the OpenAPI document of every
//! route and its explorer (`explorer.rs`). (Health and metrics routes are
//! kailash-monitoring's, in its `http` module.)

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;
use serde_json::json;

pub(crate) fn docs_routes(doc: utoipa::openapi::OpenApi) -> Router {
    // The explorer's page shows the document's title, version and description.
    let explorer = crate::explorer::routes(&doc.info);
    // Serialise once; the document does not change after build.
    let body = doc.to_pretty_json().unwrap_or_else(|_| "{}".to_owned());
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let body = body.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], body) }
            }),
        )
        .merge(explorer)
}

fn problem_responses(codes: &[u16]) -> serde_json::Map<String, serde_json::Value> {
    codes
        .iter()
        .map(|code| {
            let reason = StatusCode::from_u16(*code)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Error");
            (
                code.to_string(),
                json!({
                    "description": reason,
                    "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
                }),
            )
        })
        .collect()
}

/// The OpenAPI 3.1 document of the built-in routes, merged with the user's.
pub(crate) fn openapi_document(
    title: &str,
    version: &str,
    description: Option<&str>,
    health: bool,
    metrics: bool,
    user: Option<utoipa::openapi::OpenApi>,
) -> utoipa::openapi::OpenApi {
    let mut paths = serde_json::Map::new();
    let common = problem_responses(&[429, 503]);
    let with = |mut base: serde_json::Map<String, serde_json::Value>| {
        for (k, v) in &common {
            base.entry(k.clone()).or_insert_with(|| v.clone());
        }
        serde_json::Value::Object(base)
    };
    if health {
        paths.insert(
            "/health/live".into(),
            json!({ "get": {
                "tags": ["operations"], "operationId": "health_live",
                "summary": "Liveness: the process is up and serving",
                "responses": with(serde_json::from_value(json!({
                    "200": { "description": "Alive", "content": { "application/json": { "schema": {
                        "type": "object", "properties": { "status": { "type": "string", "const": "ok" } } } } } }
                })).unwrap_or_default())
            }}),
        );
        paths.insert(
            "/health/ready".into(),
            json!({ "get": {
                "tags": ["operations"], "operationId": "health_ready",
                "summary": "Readiness: every required dependency check passes",
                "responses": {
                    "200": { "description": "Ready", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/HealthReport" } } } },
                    "503": { "description": "A required check fails; the report names it", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/HealthReport" } } } }
                }
            }}),
        );
    }
    if metrics {
        paths.insert(
            "/metrics".into(),
            json!({ "get": {
                "tags": ["operations"], "operationId": "metrics",
                "summary": "Prometheus text exposition of request metrics",
                "responses": { "200": { "description": "Metrics", "content": { "text/plain": { "schema": { "type": "string" } } } } }
            }}),
        );
    }
    paths.insert(
        "/openapi.json".into(),
        json!({ "get": {
            "tags": ["operations"], "operationId": "openapi",
            "summary": "This OpenAPI 3.1 document",
            "responses": { "200": { "description": "The document", "content": { "application/json": { "schema": { "type": "object" } } } } }
        }}),
    );
    paths.insert(
        "/docs".into(),
        json!({ "get": {
            "tags": ["operations"], "operationId": "docs",
            "summary": "A page that renders this document",
            "responses": { "200": { "description": "HTML page", "content": { "text/html": { "schema": { "type": "string" } } } } }
        }}),
    );
    let mut info = json!({ "title": title, "version": version });
    if let Some(d) = description {
        info["description"] = json!(d);
    }
    let doc = json!({
        "openapi": "3.1.0",
        "info": info,
        "paths": paths,
        "components": { "schemas": {
            "Problem": {
                "type": "object",
                "description": "RFC 9457 problem details",
                "required": ["type", "title", "status"],
                "properties": {
                    "type": { "type": "string", "format": "uri-reference" },
                    "title": { "type": "string" },
                    "status": { "type": "integer" },
                    "detail": { "type": "string" },
                    "retry_after": { "type": "integer", "description": "Seconds to wait before retrying" }
                }
            },
            "HealthReport": {
                "type": "object",
                "required": ["status", "checks"],
                "properties": {
                    "status": { "type": "string", "enum": ["ok", "degraded", "fail"] },
                    "checks": { "type": "array", "items": {
                        "type": "object",
                        "required": ["name", "required", "status", "duration_ms"],
                        "properties": {
                            "name": { "type": "string" },
                            "required": { "type": "boolean" },
                            "status": { "type": "string", "enum": ["pass", "fail"] },
                            "duration_ms": { "type": "integer" },
                            "error": { "type": "string" }
                        }
                    } }
                }
            }
        } }
    });
    // The literal above is a valid document; a failure here is a bug caught by tests.
    let mut doc: utoipa::openapi::OpenApi = serde_json::from_value(doc).unwrap_or_else(|e| {
        tracing::error!(error = %e, "built-in OpenAPI document did not parse");
        utoipa::openapi::OpenApi::default()
    });
    if let Some(user) = user {
        doc.merge(user);
    }
    doc
}
