//! The gateway-wide operational routes: the OpenAPI document of every
//! route and its documentation page. (Health and metrics routes are
//! kailash-monitoring's, in its `http` module.)

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

const DOCS_HTML: &str = include_str!("assets/docs.html");
const DOCS_JS: &str = include_str!("assets/docs.js");
const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub(crate) fn docs_routes(doc: utoipa::openapi::OpenApi) -> Router {
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
        .route(
            "/docs",
            get(|| async { page(DOCS_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/docs/app.js",
            get(|| async { page(DOCS_JS, "text/javascript; charset=utf-8") }),
        )
}

fn page(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    operation_id = "openapi",
    security(()),
    responses((status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json", body = Object)),
)]
#[allow(dead_code)] // documents the route served by `docs_routes`
fn openapi_json() {}

/// `GET /docs`: the API explorer.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "operations",
    operation_id = "docs",
    security(()),
    responses((status = 200, description = "The API explorer: renders this document, with a bearer-token \"try it\"", content_type = "text/html", body = String)),
)]
#[allow(dead_code)] // documents the route served by `docs_routes`
fn docs_page() {}

#[derive(utoipa::OpenApi)]
#[openapi(paths(openapi_json, docs_page))]
struct DocsApi;

/// The OpenAPI 3.1 document of the built-in routes, merged with the
/// routes' own (`parts`), completed with the statuses of the gateway's
/// layers.
pub(crate) fn openapi_document(
    title: &str,
    version: &str,
    description: Option<&str>,
    health: bool,
    metrics: bool,
    parts: Vec<utoipa::openapi::OpenApi>,
    layers: crate::contract::Layers,
) -> Result<utoipa::openapi::OpenApi, crate::GatewayError> {
    use utoipa::OpenApi as _;
    let mut doc = DocsApi::openapi();
    doc.info = utoipa::openapi::InfoBuilder::new()
        .title(title)
        .version(version)
        .description(description)
        .build();
    let mut parts = parts;
    if health {
        parts.push(legacy_health());
    }
    if metrics {
        parts.push(legacy_metrics());
    }
    for part in parts {
        crate::contract::merge(&mut doc, part).map_err(crate::GatewayError::OpenApi)?;
    }
    crate::contract::complete(&mut doc, layers);
    Ok(doc)
}

fn legacy_health() -> utoipa::openapi::OpenApi {
    let doc = json!({
        "openapi": "3.1.0", "info": { "title": "health", "version": "0" },
        "paths": {
            "/health/live": { "get": {
                "tags": ["operations"], "operationId": "health_live",
                "summary": "Liveness: the process is up and serving",
                "responses": {
                    "200": { "description": "Alive", "content": { "application/json": { "schema": {
                        "type": "object", "properties": { "status": { "type": "string", "const": "ok" } } } } } }
                }
            }},
            "/health/ready": { "get": {
                "tags": ["operations"], "operationId": "health_ready",
                "summary": "Readiness: every required dependency check passes",
                "responses": {
                    "200": { "description": "Ready", "content": { "application/json": { "schema": { "type": "object" } } } },
                    "503": { "description": "A required check fails; the report names it", "content": { "application/json": { "schema": { "type": "object" } } } }
                }
            }}
        }
    });
    serde_json::from_value(doc).unwrap_or_default()
}

fn legacy_metrics() -> utoipa::openapi::OpenApi {
    let doc = json!({
        "openapi": "3.1.0", "info": { "title": "metrics", "version": "0" },
        "paths": { "/metrics": { "get": {
            "tags": ["operations"], "operationId": "metrics",
            "summary": "Prometheus text exposition of request metrics",
            "responses": { "200": { "description": "Metrics", "content": { "text/plain": { "schema": { "type": "string" } } } } }
        }}}
    });
    serde_json::from_value(doc).unwrap_or_default()
}
