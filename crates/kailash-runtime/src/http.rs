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
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use kailash_access::layer::RequirePermissionLayer;
use kailash_core::{Principal, Problem};
use kailash_tenancy::model::Tenant;
use serde::{Deserialize, Serialize};

use crate::runtime::{
    AccessControlledRuntime, EXECUTE_PERMISSION, MAX_LISTED, RunRequest, RuntimeError,
};

/// The largest request body accepted (a run's inputs), in bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The query of `GET /api/executions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<usize>,
}

/// The authenticated principal and its resolved tenant, from the
/// request's extensions; `403` without them.
struct Caller(Principal, Arc<Tenant>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        let principal = parts.extensions.get::<Principal>().cloned();
        let tenant = parts.extensions.get::<Arc<Tenant>>().cloned();
        match (principal, tenant) {
            (Some(p), Some(t)) => Ok(Self(p, t)),
            _ => Err(
                Problem::forbidden("the request has no authenticated principal in a tenant")
                    .into_response(),
            ),
        }
    }
}

/// `value` as JSON with `status` (and `Location`), or the error's problem.
fn answer<T: Serialize>(
    result: Result<T, RuntimeError>,
    status: StatusCode,
    location: impl FnOnce(&T) -> Option<String>,
) -> Response {
    match result {
        Ok(value) => {
            let at = location(&value).and_then(|l| HeaderValue::from_str(&l).ok());
            let mut response = (status, axum::Json(&value)).into_response();
            if let Some(at) = at {
                response.headers_mut().insert(header::LOCATION, at);
            }
            response
        }
        Err(e) => e.to_problem().into_response(),
    }
}

fn nowhere<T>(_: &T) -> Option<String> {
    None
}

type Rt = State<AccessControlledRuntime>;

async fn open_session(State(rt): Rt, Caller(p, t): Caller) -> Response {
    answer(rt.open_session(&p, &t).await, StatusCode::CREATED, |s| {
        Some(format!("/api/sessions/{}", s.id))
    })
}

async fn read_session(State(rt): Rt, Caller(p, t): Caller, Path(id): Path<String>) -> Response {
    answer(rt.session(&p, &t, &id).await, StatusCode::OK, nowhere)
}

async fn close_session(State(rt): Rt, Caller(p, t): Caller, Path(id): Path<String>) -> Response {
    match rt.close_session(&p, &t, &id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.to_problem().into_response(),
    }
}

async fn execute(
    State(rt): Rt,
    Caller(p, t): Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
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
    answer(
        rt.start(&p, &t, &id, request).await,
        StatusCode::ACCEPTED,
        |r| Some(format!("/api/executions/{}", r.run_id)),
    )
}

async fn list(
    State(rt): Rt,
    Caller(p, t): Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let limit = match q {
        Ok(Query(q)) => q.limit.unwrap_or(MAX_LISTED),
        Err(e) => return Problem::bad_request(e.body_text()).into_response(),
    };
    let runs = rt
        .list(&p, &t, limit)
        .await
        .map(|runs| serde_json::json!({ "tenant": t.id, "executions": runs }));
    answer(runs, StatusCode::OK, nowhere)
}

async fn read_run(State(rt): Rt, Caller(p, t): Caller, Path(id): Path<String>) -> Response {
    answer(rt.get(&p, &t, &id).await, StatusCode::OK, nowhere)
}

async fn cancel(State(rt): Rt, Caller(p, t): Caller, Path(id): Path<String>) -> Response {
    answer(rt.cancel(&p, &t, &id).await, StatusCode::ACCEPTED, nowhere)
}

fn guarded(route: MethodRouter<AccessControlledRuntime>) -> MethodRouter<AccessControlledRuntime> {
    route.layer(RequirePermissionLayer::new(EXECUTE_PERMISSION))
}

/// The execution API's routes (see the [module docs](self)).
pub fn router(runtime: AccessControlledRuntime) -> Router {
    Router::new()
        .route("/api/sessions", guarded(post(open_session)))
        .route(
            "/api/sessions/{id}",
            guarded(get(read_session).merge(delete(close_session))),
        )
        .route("/api/sessions/{id}/executions", guarded(post(execute)))
        .route("/api/executions", guarded(get(list)))
        .route("/api/executions/{id}", guarded(get(read_run)))
        .route("/api/executions/{id}/cancel", guarded(post(cancel)))
        .with_state(runtime)
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
