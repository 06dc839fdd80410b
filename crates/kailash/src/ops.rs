//! The gateway-wide operational routes: the OpenAPI document of every
//! route and its explorer (`explorer.rs`). (Health and metrics routes are
//! kailash-monitoring's, in its `http` module.)

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

pub(crate) fn docs_routes(doc: utoipa::openapi::OpenApi) -> Router {
    // The explorer's page shows the document's title, version and description.
    let explorer = crate::explorer::routes(&doc.info);
    // Serialise once; the document does not change after build.
    let body = Bytes::from(doc.to_pretty_json().unwrap_or_else(|_| "{}".to_owned()));
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .with_state(body)
        .merge(explorer)
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
async fn openapi_json(State(body): State<Bytes>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], body)
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(openapi_json, crate::explorer::page))]
struct DocsApi;

/// The OpenAPI 3.1 document of the built-in routes, merged with the
/// operational routes' (`operational`: what this listener serves of health
/// and metrics) and the routes' own (`parts`), completed with the statuses of the gateway's
/// layers.
pub(crate) fn openapi_document(
    title: &str,
    version: &str,
    description: Option<&str>,
    operational: Vec<utoipa::openapi::OpenApi>,
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
    parts.extend(operational);
    for part in parts {
        crate::contract::merge(&mut doc, part).map_err(crate::GatewayError::OpenApi)?;
    }
    crate::contract::complete(&mut doc, layers);
    Ok(doc)
}
