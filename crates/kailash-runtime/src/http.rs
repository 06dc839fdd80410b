//! The execution API (feature `axum`): agent sessions and workflow runs
//! over HTTP, each answer a JSON body or an RFC 9457 problem.
//!
//! | route | permission | what |
//! |---|---|---|
//! | `POST /api/sessions` | `workflow:execute` | opens an agent session: `201`, `Location`, the session with its metadata |
//! | `GET /api/sessions/{id}` | `workflow:execute` | the session (`404` for another user's without `execution:manage`) |
//! | `DELETE /api/sessions/{id}` | `workflow:execute` | ends it, cancelling its runs in flight: `204` |
//! | `POST /api/sessions/{id}/executions` | `workflow:execute` | `{workflow_id, inputs}` → `202`, `Location`, the run record (`pending`) |
//! | `GET /api/executions` | `workflow:execute` | the caller's own runs, newest first (`?limit=`, 0 to 100) |
//! | `GET /api/executions/{id}` | `workflow:execute` | one run: status, per-node status, timing and bounded outputs |
//! | `POST /api/executions/{id}/cancel` | `workflow:execute` | asks the run to stop wherever it runs: `202`; `409` once it has ended |
//!
//! Serve [`router`] behind the authentication and tenancy layers: handlers
//! read the [`Principal`] and the resolved [`Tenant`] from the request's
//! extensions (a request without them is refused `403`). Every refusal is
//! the problem of [`RuntimeError::to_problem`]. Requests are checked
//! against the schemas their types publish ([`RunRequest`], [`ListQuery`],
//! [`IdPath`]) before anything else: bodies over [`MAX_BODY_BYTES`] answer
//! `413`, a body that is not JSON `400`, one that is not
//! `application/json` `415`, and any value outside its schema `422`
//! (`invalid-request`, a pointer per violation). Inputs that do not match
//! the workflow's declared inputs answer `422` `invalid-inputs`, a stored
//! workflow that no longer validates `422` `workflow-invalid`.
//!
//! With the feature `openapi`, [`openapi`] documents every route, derived
//! from the same types.
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
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use kailash_access::layer::RequirePermissionLayer;
use kailash_core::schema::{ValidJson, ValidPath, ValidQuery};
use kailash_core::{Principal, Problem};
use kailash_tenancy::model::Tenant;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::executor::RunRecord;
#[cfg(feature = "openapi")]
use crate::runtime::AgentSession;
use crate::runtime::{
    AccessControlledRuntime, EXECUTE_PERMISSION, MAX_LISTED, RunRequest, RuntimeError,
};

/// The largest request body accepted (a run's inputs), in bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The query of `GET /api/executions`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The most runs to list (default and at most 100).
    #[param(minimum = 0, maximum = 100)]
    pub limit: Option<u32>,
}

/// The `{id}` of a session or run route: at most 64 characters (a longer
/// one names nothing).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdPath {
    /// The session's (`as-…`) or run's (`run-…`) id.
    #[param(min_length = 1, max_length = 64)]
    pub id: String,
}

/// The answer of `GET /api/executions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    /// The caller's tenant.
    pub tenant: String,
    /// The caller's runs, newest first.
    pub executions: Vec<RunRecord>,
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

/// Open an agent session in the caller's tenant.
///
/// The tenant must be active and within its workflows quota. The session
/// carries `tenant_id`, `tenant_name`, `isolation_level`,
/// `resource_limits` and `billing_plan`; `Location` names it.
#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/api/sessions", tag = "runtime", operation_id = "open_session",
    security(("bearer" = [])),
    responses(
        (status = 201, body = AgentSession, description = "The session"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No authenticated principal"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "`workflow:execute` not granted, no tenant, tenant inactive, mismatched or over its workflows quota"),
        (status = 429, body = Problem, content_type = "application/problem+json", description = "The user holds the most agent sessions"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "The runtime's state or the audit trail is unavailable"),
    )
))]
async fn open_session(State(rt): Rt, Caller(p, t): Caller) -> Response {
    answer(rt.open_session(&p, &t).await, StatusCode::CREATED, |s| {
        Some(format!("/api/sessions/{}", s.id))
    })
}

/// An agent session.
#[cfg_attr(feature = "openapi", utoipa::path(
    get, path = "/api/sessions/{id}", tag = "runtime", operation_id = "get_session",
    security(("bearer" = [])),
    params(IdPath),
    responses(
        (status = 200, body = AgentSession, description = "The session"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No authenticated principal"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "`workflow:execute` not granted, no tenant, tenant mismatched"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such session visible to the caller"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "The id does not match its schema"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "The runtime's state or the audit trail is unavailable"),
    )
))]
async fn read_session(
    State(rt): Rt,
    Caller(p, t): Caller,
    ValidPath(IdPath { id }): ValidPath<IdPath>,
) -> Response {
    answer(rt.session(&p, &t, &id).await, StatusCode::OK, nowhere)
}

/// End an agent session and cancel its runs in flight.
#[cfg_attr(feature = "openapi", utoipa::path(
    delete, path = "/api/sessions/{id}", tag = "runtime", operation_id = "close_session",
    security(("bearer" = [])),
    params(IdPath),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No authenticated principal"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "`workflow:execute` not granted, no tenant, tenant mismatched"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such session visible to the caller"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "The id does not match its schema"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "The runtime's state or the audit trail is unavailable"),
    )
))]
async fn close_session(
    State(rt): Rt,
    Caller(p, t): Caller,
    ValidPath(IdPath { id }): ValidPath<IdPath>,
) -> Response {
    match rt.close_session(&p, &t, &id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.to_problem().into_response(),
    }
}

/// Run a workflow in the session.
///
/// Checks `workflow:execute` on the workflow, the memory watermark, the
/// role's `max_executions_per_hour` and `max_concurrent_workflows` per
/// process, tenant and user; then each node is checked
/// (`node:<type>:execute`) as it is reached. The run is `pending`;
/// `Location` names it.
#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/api/sessions/{id}/executions", tag = "runtime", operation_id = "start_execution",
    security(("bearer" = [])),
    params(IdPath),
    request_body = RunRequest,
    responses(
        (status = 202, body = RunRecord, description = "The run, `pending`"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "The body is not JSON"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No authenticated principal"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "`workflow:execute` not granted (on the route or the workflow), no tenant, tenant inactive or mismatched, or the tenant's rules or features refuse the stored workflow"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such session or workflow visible to the caller"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "Body larger than 1 MiB"),
        (status = 415, body = Problem, content_type = "application/problem+json", description = "The body is not `application/json`"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "`invalid-request`: the body or id does not match its schema; `invalid-inputs`: the inputs do not match the workflow's declared inputs; `workflow-invalid`: the stored workflow no longer validates (names the node)"),
        (status = 429, body = Problem, content_type = "application/problem+json", description = "`max_executions_per_hour` or `max_concurrent_workflows` reached (`Retry-After`)"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Memory watermark, or the runtime's state or the audit trail is unavailable"),
    )
))]
async fn execute(
    State(rt): Rt,
    Caller(p, t): Caller,
    ValidPath(IdPath { id }): ValidPath<IdPath>,
    ValidJson(request): ValidJson<RunRequest>,
) -> Response {
    answer(
        rt.start(&p, &t, &id, request).await,
        StatusCode::ACCEPTED,
        |r| Some(format!("/api/executions/{}", r.run_id)),
    )
}

/// The caller's own runs, newest first.
#[cfg_attr(feature = "openapi", utoipa::path(
    get, path = "/api/executions", tag = "runtime", operation_id = "list_executions",
    security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, body = RunList, description = "`{tenant, executions}`"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "A query parameter is repeated"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No authenticated principal"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "`workflow:execute` not granted, no tenant, tenant mismatched"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "The query does not match its schema"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "The runtime's state is unavailable"),
    )
))]
async fn list(
    State(rt): Rt,
    Caller(p, t): Caller,
    ValidQuery(q): ValidQuery<ListQuery>,
) -> Response {
    let limit = q
        .limit
        .map_or(MAX_LISTED, |l| usize::try_from(l).unwrap_or(MAX_LISTED));
    let runs = rt.list(&p, &t, limit).await.map(|executions| RunList {
        tenant: t.id.to_string(),
        executions,
    });
    answer(runs, StatusCode::OK, nowhere)
}

/// A run: its status, per-node status, timing and bounded outputs.
#[cfg_attr(feature = "openapi", utoipa::path(
    get, path = "/api/executions/{id}", tag = "runtime", operation_id = "get_execution",
    security(("bearer" = [])),
    params(IdPath),
    responses(
        (status = 200, body = RunRecord, description = "The run"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No authenticated principal"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "`workflow:execute` not granted, no tenant, tenant mismatched"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such run visible to the caller"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "The id does not match its schema"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "The runtime's state is unavailable"),
    )
))]
async fn read_run(
    State(rt): Rt,
    Caller(p, t): Caller,
    ValidPath(IdPath { id }): ValidPath<IdPath>,
) -> Response {
    answer(rt.get(&p, &t, &id).await, StatusCode::OK, nowhere)
}

/// Cancel a run wherever it runs; it ends `cancelled`.
#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/api/executions/{id}/cancel", tag = "runtime", operation_id = "cancel_execution",
    security(("bearer" = [])),
    params(IdPath),
    responses(
        (status = 202, body = RunRecord, description = "The run as it was; it ends `cancelled`"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "No authenticated principal"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "`workflow:execute` not granted, no tenant, tenant mismatched"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such run visible to the caller"),
        (status = 409, body = Problem, content_type = "application/problem+json", description = "`run-finished`: the run has ended already"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "The id does not match its schema"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "The runtime's state or the audit trail is unavailable"),
    )
))]
async fn cancel(
    State(rt): Rt,
    Caller(p, t): Caller,
    ValidPath(IdPath { id }): ValidPath<IdPath>,
) -> Response {
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
        .route(
            "/api/sessions/{id}/executions",
            guarded(post(execute).layer(DefaultBodyLimit::max(MAX_BODY_BYTES))),
        )
        .route("/api/executions", guarded(get(list)))
        .route("/api/executions/{id}", guarded(get(read_run)))
        .route("/api/executions/{id}/cancel", guarded(post(cancel)))
        .with_state(runtime)
}

/// The document of these routes.
#[cfg(feature = "openapi")]
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "kailash-runtime"),
    paths(
        open_session,
        read_session,
        close_session,
        execute,
        list,
        read_run,
        cancel
    ),
    components(schemas(
        RunRequest,
        RunRecord,
        RunList,
        AgentSession,
        crate::executor::RunStatus,
        crate::executor::NodeStatus,
        crate::executor::NodeRecord,
        crate::runtime::SessionLimits,
        crate::runtime::ConcurrencyLimits,
        Problem,
    ))
)]
struct Doc;

/// The OpenAPI 3.1 document of these routes (feature `openapi`), derived
/// from the handlers and their types, for the gateway to merge.
#[cfg(feature = "openapi")]
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}
