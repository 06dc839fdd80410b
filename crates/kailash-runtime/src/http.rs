//! The execution API (feature `axum`): agent sessions and workflow runs
//! over HTTP, each answer a JSON body or an RFC 9457 problem.
//!
//! | route | permission | what |
//! |---|---|---|
//! | `POST /api/sessions` | `workflow:execute` | opens an agent session: `201`, `Location`, the session with its metadata |
//! | `GET /api/sessions/{id}` | `workflow:execute` | the session (`404` for another user's without `execution:manage`) |
//! | `DELETE /api/sessions/{id}` | `workflow:execute` | ends it, cancelling its runs in flight: `204` |
//! | `POST /api/sessions/{id}/executions` | `workflow:execute` | `{workflow_id, inputs}` → `202`, `Location`, the run record (`pending`) |
//! | `GET /api/executions` | `workflow:execute` | the caller's own runs, newest first (`?limit=`, at most 100) |
//! | `GET /api/executions/{id}` | `workflow:execute` | one run: status, per-node status, timing and bounded outputs |
//! | `POST /api/executions/{id}/cancel` | `workflow:execute` | asks the run to stop wherever it runs: `202`; `409` once it has ended |
//!
//! Serve [`router`] behind the authentication and tenancy layers: handlers
//! read the [`Principal`] and the resolved [`Tenant`] from the request's
//! extensions (a request without them is refused `403`). Every refusal is
//! the problem of [`RuntimeError::to_problem`]; bodies over
//! [`MAX_BODY_BYTES`] answer `413`, malformed ones `400`, inputs that do
//! not match the workflow `422`.
//!
//! ```
//! use std::sync::Arc;
//! use kailash_access::{AccessControl, AccessPolicy, spec::AccessSpec};
//! use kailash_core::{clock::SystemClock, state::SharedState};
//! use kailash_runtime::runtime::{AccessControlledRuntime, RuntimeConfig};
//! use kailash_runtime::{NodeRegistry, WorkflowStore};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let spec: AccessSpec = serde_json::from_str(r#"{"roles": [{"name": "analyst", "permissions": ["workflow:execute"]}]}"#)?;
//! let access = AccessControl::new(AccessPolicy::load(&spec).await?);
//! let state = SharedState::memory(Arc::new(SystemClock));
//! let workflows = WorkflowStore::new(access.clone(), state.clone(), NodeRegistry::builtin());
//! let config = RuntimeConfig { audit_enabled: false, ..RuntimeConfig::default() };
//! let runtime = AccessControlledRuntime::builder(config, access, state, workflows).build().await?;
//! // Behind your JwtAuthLayer and TenantLayer:
//! let routes: axum::Router = kailash_runtime::http::router(runtime);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use kailash_access::layer::RequirePermissionLayer;
use kailash_core::{Principal, Problem};
use kailash_tenancy::model::Tenant;
use serde::Deserialize;
use serde::Serialize;

use crate::runtime::{AccessControlledRuntime, EXECUTE_PERMISSION, MAX_LISTED, RunRequest};

/// The largest request body accepted (a run's inputs), in bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The query of `GET /api/executions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<usize>,
}

type Caller = (Option<Extension<Principal>>, Option<Extension<Arc<Tenant>>>);

fn caller(c: Caller) -> Option<(Principal, Arc<Tenant>)> {
    match c {
        (Some(Extension(p)), Some(Extension(t))) => Some((p, t)),
        _ => None,
    }
}

fn no_caller() -> Response {
    Problem::forbidden("the request has no authenticated principal in a tenant").into_response()
}

fn json<T: Serialize>(status: StatusCode, value: &T, location: Option<String>) -> Response {
    let mut response = (status, axum::Json(value)).into_response();
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn guarded(route: MethodRouter) -> MethodRouter {
    route.layer(RequirePermissionLayer::new(EXECUTE_PERMISSION))
}

/// The execution API's routes (see the [module docs](self)).
pub fn router(runtime: AccessControlledRuntime) -> Router {
    let rt = runtime.clone();
    let open = post(
        move |p: Option<Extension<Principal>>, t: Option<Extension<Arc<Tenant>>>| {
            let rt = rt.clone();
            async move {
                let Some((principal, tenant)) = caller((p, t)) else {
                    return no_caller();
                };
                match rt.open_session(&principal, &tenant).await {
                    Ok(s) => {
                        let at = format!("/api/sessions/{}", s.id);
                        json(StatusCode::CREATED, &s, Some(at))
                    }
                    Err(e) => e.to_problem().into_response(),
                }
            }
        },
    );
    let rt = runtime.clone();
    let read_session = get(
        move |p: Option<Extension<Principal>>,
              t: Option<Extension<Arc<Tenant>>>,
              Path(id): Path<String>| {
            let rt = rt.clone();
            async move {
                let Some((principal, tenant)) = caller((p, t)) else {
                    return no_caller();
                };
                match rt.session(&principal, &tenant, &id).await {
                    Ok(s) => json(StatusCode::OK, &s, None),
                    Err(e) => e.to_problem().into_response(),
                }
            }
        },
    );
    let rt = runtime.clone();
    let close_session = axum::routing::delete(
        move |p: Option<Extension<Principal>>,
              t: Option<Extension<Arc<Tenant>>>,
              Path(id): Path<String>| {
            let rt = rt.clone();
            async move {
                let Some((principal, tenant)) = caller((p, t)) else {
                    return no_caller();
                };
                match rt.close_session(&principal, &tenant, &id).await {
                    Ok(()) => StatusCode::NO_CONTENT.into_response(),
                    Err(e) => e.to_problem().into_response(),
                }
            }
        },
    );
    let rt = runtime.clone();
    let execute = post(
        move |p: Option<Extension<Principal>>,
              t: Option<Extension<Arc<Tenant>>>,
              Path(id): Path<String>,
              body: Bytes| {
            let rt = rt.clone();
            async move {
                let Some((principal, tenant)) = caller((p, t)) else {
                    return no_caller();
                };
                if body.len() > MAX_BODY_BYTES {
                    return Problem::payload_too_large(MAX_BODY_BYTES).into_response();
                }
                let request: RunRequest = match serde_json::from_slice(&body) {
                    Ok(r) => r,
                    Err(e) => {
                        return Problem::bad_request(format!(
                            "the body is not a run request `{{workflow_id, inputs}}`: {e}"
                        ))
                        .into_response();
                    }
                };
                match rt.start(&principal, &tenant, &id, request).await {
                    Ok(run) => {
                        let at = format!("/api/executions/{}", run.run_id);
                        json(StatusCode::ACCEPTED, &run, Some(at))
                    }
                    Err(e) => e.to_problem().into_response(),
                }
            }
        },
    );
    let rt = runtime.clone();
    let list = get(
        move |p: Option<Extension<Principal>>,
              t: Option<Extension<Arc<Tenant>>>,
              q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>| {
            let rt = rt.clone();
            async move {
                let Some((principal, tenant)) = caller((p, t)) else {
                    return no_caller();
                };
                let limit = match q {
                    Ok(Query(q)) => q.limit.unwrap_or(MAX_LISTED),
                    Err(e) => return Problem::bad_request(e.body_text()).into_response(),
                };
                match rt.list(&principal, &tenant, limit).await {
                    Ok(runs) => json(
                        StatusCode::OK,
                        &serde_json::json!({ "tenant": tenant.id, "executions": runs }),
                        None,
                    ),
                    Err(e) => e.to_problem().into_response(),
                }
            }
        },
    );
    let rt = runtime.clone();
    let read_run = get(
        move |p: Option<Extension<Principal>>,
              t: Option<Extension<Arc<Tenant>>>,
              Path(id): Path<String>| {
            let rt = rt.clone();
            async move {
                let Some((principal, tenant)) = caller((p, t)) else {
                    return no_caller();
                };
                match rt.get(&principal, &tenant, &id).await {
                    Ok(run) => json(StatusCode::OK, &run, None),
                    Err(e) => e.to_problem().into_response(),
                }
            }
        },
    );
    let rt = runtime;
    let cancel = post(
        move |p: Option<Extension<Principal>>,
              t: Option<Extension<Arc<Tenant>>>,
              Path(id): Path<String>| {
            let rt = rt.clone();
            async move {
                let Some((principal, tenant)) = caller((p, t)) else {
                    return no_caller();
                };
                match rt.cancel(&principal, &tenant, &id).await {
                    Ok(run) => json(StatusCode::ACCEPTED, &run, None),
                    Err(e) => e.to_problem().into_response(),
                }
            }
        },
    );
    Router::new()
        .route("/api/sessions", guarded(open))
        .route(
            "/api/sessions/{id}",
            guarded(read_session).merge(guarded(close_session)),
        )
        .route("/api/sessions/{id}/executions", guarded(execute))
        .route("/api/executions", guarded(list))
        .route("/api/executions/{id}", guarded(read_run))
        .route("/api/executions/{id}/cancel", guarded(cancel))
}

/// The OpenAPI 3.1 fragment of these routes (merged by the gateway).
pub fn openapi() -> serde_json::Value {
    let bearer = serde_json::json!([{ "bearer": [] }]);
    let problem = |d: &str| serde_json::json!({ "description": d, "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } });
    let id = |name: &str| serde_json::json!([{ "name": name, "in": "path", "required": true, "schema": { "type": "string", "maxLength": 64 } }]);
    let object = |d: &str| serde_json::json!({ "description": d, "content": { "application/json": { "schema": { "type": "object" } } } });
    let common = |mut r: serde_json::Map<String, serde_json::Value>| {
        r.insert("401".into(), problem("Missing or invalid credentials"));
        r.insert(
            "403".into(),
            problem("`workflow:execute` not granted, tenant inactive or mismatched"),
        );
        r.insert(
            "503".into(),
            problem("The runtime's state or the audit trail is unavailable"),
        );
        serde_json::Value::Object(r)
    };
    let map = |pairs: Vec<(&str, serde_json::Value)>| {
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<serde_json::Map<_, _>>()
    };
    serde_json::json!({
        "openapi": "3.1.0",
        "info": { "title": "kailash-runtime", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/api/sessions": { "post": {
                "tags": ["runtime"], "operationId": "open_session",
                "summary": "Open an agent session in the caller's tenant",
                "description": "The tenant must be active and within its workflows quota. The session carries `tenant_id`, `tenant_name`, `isolation_level`, `resource_limits` and `billing_plan`.",
                "security": bearer,
                "responses": common(map(vec![
                    ("201", object("The session")),
                    ("429", problem("The user holds the most agent sessions")),
                ])) } },
            "/api/sessions/{id}": {
                "get": {
                    "tags": ["runtime"], "operationId": "get_session", "summary": "An agent session",
                    "security": bearer, "parameters": id("id"),
                    "responses": common(map(vec![("200", object("The session")), ("404", problem("No such session visible to the caller"))])) },
                "delete": {
                    "tags": ["runtime"], "operationId": "close_session", "summary": "End an agent session and cancel its runs in flight",
                    "security": bearer, "parameters": id("id"),
                    "responses": common(map(vec![("204", serde_json::json!({ "description": "Ended" })), ("404", problem("No such session visible to the caller"))])) } },
            "/api/sessions/{id}/executions": { "post": {
                "tags": ["runtime"], "operationId": "start_execution",
                "summary": "Run a workflow in the session",
                "description": "Checks `workflow:execute` on the workflow, the memory watermark, the role's `max_executions_per_hour` and `max_concurrent_workflows` per process, tenant and user; then each node is checked (`node:<type>:execute`) as it is reached.",
                "security": bearer, "parameters": id("id"),
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "additionalProperties": false, "required": ["workflow_id"],
                    "properties": { "workflow_id": { "type": "string", "maxLength": 64 }, "inputs": { "type": "object" } } } } } },
                "responses": common(map(vec![
                    ("202", object("The run, `pending`; `Location` names it")),
                    ("400", problem("Malformed body, or the stored workflow no longer validates (names the node)")),
                    ("404", problem("No such session or workflow visible to the caller")),
                    ("413", problem("Body larger than 1 MiB")),
                    ("422", problem("Inputs that do not match the workflow's declared inputs")),
                    ("429", problem("`max_executions_per_hour` or `max_concurrent_workflows` reached (`Retry-After`)")),
                ])) } },
            "/api/executions": { "get": {
                "tags": ["runtime"], "operationId": "list_executions", "summary": "The caller's own runs, newest first",
                "security": bearer,
                "parameters": [{ "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0, "maximum": 100 } }],
                "responses": common(map(vec![("200", object("`{tenant, executions}`")), ("400", problem("Malformed query"))])) } },
            "/api/executions/{id}": { "get": {
                "tags": ["runtime"], "operationId": "get_execution",
                "summary": "A run: `pending | running | completed | failed | cancelled | timed_out | refused | abandoned`, per-node status, timing and bounded outputs",
                "security": bearer, "parameters": id("id"),
                "responses": common(map(vec![("200", object("The run")), ("404", problem("No such run visible to the caller"))])) } },
            "/api/executions/{id}/cancel": { "post": {
                "tags": ["runtime"], "operationId": "cancel_execution", "summary": "Cancel a run wherever it runs",
                "security": bearer, "parameters": id("id"),
                "responses": common(map(vec![
                    ("202", object("The run as it was; it ends `cancelled`")),
                    ("404", problem("No such run visible to the caller")),
                    ("409", problem("The run has ended already")),
                ])) } }
        }
    })
}
