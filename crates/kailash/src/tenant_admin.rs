//! Tenant administration over the PostgreSQL registry
//! (`[tenancy] registry = "postgres"`), `system:configure`:
//!
//! | route | what |
//! |---|---|
//! | `POST /api/admin/tenants` | creates a tenant from a spec (the `[[tenants]]` keys); `201` with `Location`, `409` when the id exists |
//! | `GET /api/admin/tenants/{id}` | the stored spec |
//! | `PATCH /api/admin/tenants/{id}` | a JSON merge patch (RFC 7386) of the spec: `{"active": false}` deactivates, `null` resets a key |
//!
//! Every change is validated against all tenants (fields, unique domains)
//! before it is written, reaches every instance within moments (NOTIFY),
//! and is audited (`tenant.create`, `tenant.update`, in the caller's own
//! tenant's trail: the caller, `tenant:<id>`, the keys changed — never their values) before it is answered;
//! when the trail refuses the event the answer is `503`, though the change
//! stands (it is already committed and announced). A static registry
//! (tenants from the file only) mounts none of these routes.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kailash_access::AccessControl;
use kailash_access::layer::RequirePermissionLayer;
use kailash_core::audit::{AuditDecision, AuditEvent, AuditSink};
use kailash_core::context::RequestContext;
use kailash_core::{Principal, Problem, TenantId};
use kailash_postgres::tenants::{PgTenantRegistry, TenantChangeError};
use kailash_tenancy::model::TenantSpec;

/// The permission the routes need.
pub(crate) const PERMISSION: &str = "system:configure";
/// The largest body accepted.
const MAX_BODY: usize = 64 * 1024;

#[derive(Clone)]
struct Admin {
    registry: PgTenantRegistry,
    audit: Option<Arc<dyn AuditSink>>,
}

/// The routes, behind the permission check.
pub(crate) fn router(
    registry: PgTenantRegistry,
    access: AccessControl,
    audit: Option<Arc<dyn AuditSink>>,
) -> Router {
    Router::new()
        .route("/api/admin/tenants", post(create))
        .route("/api/admin/tenants/{id}", get(read).patch(update))
        .route_layer(RequirePermissionLayer::new(PERMISSION).access(access))
        .with_state(Admin { registry, audit })
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            status,
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(_) => Problem::internal().into_response(),
    }
}

fn invalid(detail: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-tenant",
        "The tenant spec is invalid",
    )
    .with_detail(detail.into())
}

#[allow(
    clippy::result_large_err,
    reason = "answered at once, on a cold administrative path"
)]
/// The body as a JSON object: `application/json` (or, for a patch,
/// `application/merge-patch+json`), at most 64 KiB.
fn body(headers: &HeaderMap, bytes: &Bytes, patch: bool) -> Result<serde_json::Value, Problem> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    let ok = match media.as_deref() {
        Some("application/json") => true,
        Some("application/merge-patch+json") => patch,
        _ => false,
    };
    if !ok {
        return Err(
            Problem::from_status(StatusCode::UNSUPPORTED_MEDIA_TYPE).with_detail(if patch {
                "send application/merge-patch+json or application/json"
            } else {
                "send application/json"
            }),
        );
    }
    if bytes.len() > MAX_BODY {
        return Err(Problem::payload_too_large(MAX_BODY));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        Problem::bad_request(format!(
            "the body is not JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    if !value.is_object() {
        return Err(invalid("the body is a JSON object"));
    }
    Ok(value)
}

fn refused(e: TenantChangeError) -> Response {
    match e {
        TenantChangeError::Exists(id) => {
            Problem::new(StatusCode::CONFLICT, "tenant-exists", "The tenant exists")
                .with_detail(format!("tenant `{id}` exists"))
                .into_response()
        }
        TenantChangeError::NotFound(_) => Problem::not_found().into_response(),
        TenantChangeError::Invalid(m) => invalid(m).into_response(),
        TenantChangeError::Db(e) => {
            tracing::warn!(error = %e, "tenant registry unavailable");
            Problem::service_unavailable("the tenant registry is temporarily unavailable")
                .into_response()
        }
        other => {
            tracing::warn!(error = %other, "tenant change failed");
            Problem::service_unavailable("the tenant registry is temporarily unavailable")
                .into_response()
        }
    }
}

/// Records the change; `Err` (503) when the trail refuses it.
async fn audit(
    admin: &Admin,
    action: &'static str,
    principal: &Principal,
    ctx: Option<&Extension<RequestContext>>,
    tenant: &TenantId,
    keys: &[String],
) -> Result<(), Response> {
    let Some(sink) = &admin.audit else {
        return Ok(());
    };
    // In the administrator's own trail; the resource names the tenant.
    let mut event = AuditEvent::new(action, AuditDecision::Success)
        .principal(principal)
        .resource(format!("tenant:{tenant}"));
    if !keys.is_empty() {
        event = event.reason(format!("changed: {}", keys.join(", ")));
    }
    if let Some(Extension(ctx)) = ctx {
        event = event.context(ctx);
    }
    sink.record(event)
        .await
        .map_err(|e| e.problem().into_response())
}

fn keys_of(value: &serde_json::Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .map(|m| {
            m.keys()
                .take(32)
                .map(|k| k.chars().take(64).collect())
                .collect()
        })
        .unwrap_or_default();
    keys.sort();
    keys
}

fn tenant_id(raw: &str) -> Option<TenantId> {
    TenantId::new(raw).ok()
}

/// Creates a tenant (`system:configure`).
#[utoipa::path(
    post, path = "/api/admin/tenants", tag = "tenancy", operation_id = "create_tenant",
    description = "Requires `system:configure`, with `[tenancy] registry = \"postgres\"`. Creates a tenant from a spec with the `[[tenants]]` keys (`id`, `name`, `active`, `plan`, `max_api_calls_per_day`, `max_workflows_per_tenant`, `max_storage_gb`, `max_workflow_nodes`, `max_execution_time_secs`, `max_memory_mb`, `allowed_node_types`, `features`, `allowed_integrations`, `domains`), validated against every tenant. Every instance serves it within moments. Audited as `tenant.create`.",
    security(("bearer" = [])),
    request_body(content = Object, content_type = "application/json", description = "The tenant spec"),
    responses(
        (status = 201, description = "Created; `Location` names it", body = Object),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Permission `system:configure` not granted", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A tenant with this id exists", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The spec is invalid (unknown key, bad value, a domain another tenant has)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The registry's database or the audit trail is unavailable", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn create(
    State(admin): State<Admin>,
    Extension(principal): Extension<Principal>,
    ctx: Option<Extension<RequestContext>>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let value = match body(&headers, &bytes, false) {
        Ok(v) => v,
        Err(p) => return p.into_response(),
    };
    let keys = keys_of(&value);
    let spec: TenantSpec = match serde_json::from_value(value) {
        Ok(s) => s,
        Err(e) => return invalid(e.to_string()).into_response(),
    };
    let created = match admin.registry.create(spec).await {
        Ok(s) => s,
        Err(e) => return refused(e),
    };
    if let Err(r) = audit(
        &admin,
        "tenant.create",
        &principal,
        ctx.as_ref(),
        &created.id,
        &keys,
    )
    .await
    {
        return r;
    }
    let mut res = json(StatusCode::CREATED, &created);
    if let Ok(v) = format!("/api/admin/tenants/{}", created.id).parse() {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// A tenant's stored spec (`system:configure`).
#[utoipa::path(
    get, path = "/api/admin/tenants/{id}", tag = "tenancy", operation_id = "get_tenant",
    description = "Requires `system:configure`, with `[tenancy] registry = \"postgres\"`. The tenant's stored spec.",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant id")),
    responses(
        (status = 200, description = "The spec", body = Object),
        (status = 403, description = "Permission `system:configure` not granted", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The registry's database is unavailable", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn read(State(admin): State<Admin>, Path(id): Path<String>) -> Response {
    let Some(id) = tenant_id(&id) else {
        return Problem::not_found().into_response();
    };
    match admin.registry.spec(&id).await {
        Ok(Some(spec)) => json(StatusCode::OK, &spec),
        Ok(None) => Problem::not_found().into_response(),
        Err(e) => refused(TenantChangeError::Db(e)),
    }
}

/// Changes a tenant with a merge patch (`system:configure`).
#[utoipa::path(
    patch, path = "/api/admin/tenants/{id}", tag = "tenancy", operation_id = "update_tenant",
    description = "Requires `system:configure`, with `[tenancy] registry = \"postgres\"`. A JSON merge patch (RFC 7386) of the spec: `{\"active\": false}` deactivates the tenant on every instance, `{\"max_api_calls_per_day\": null}` lifts a limit. The id cannot change. Audited as `tenant.update` with the keys changed.",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The tenant id")),
    request_body(content = Object, content_type = "application/merge-patch+json", description = "The merge patch"),
    responses(
        (status = 200, description = "The spec after the change", body = Object),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Permission `system:configure` not granted", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not a merge patch or JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The patch is invalid or makes the spec invalid; nothing changed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The registry's database or the audit trail is unavailable", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn update(
    State(admin): State<Admin>,
    Extension(principal): Extension<Principal>,
    ctx: Option<Extension<RequestContext>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Response {
    let Some(id) = tenant_id(&id) else {
        return Problem::not_found().into_response();
    };
    let patch = match body(&headers, &bytes, true) {
        Ok(v) => v,
        Err(p) => return p.into_response(),
    };
    let changed = match admin.registry.patch(&id, &patch).await {
        Ok(s) => s,
        Err(e) => return refused(e),
    };
    if let Err(r) = audit(
        &admin,
        "tenant.update",
        &principal,
        ctx.as_ref(),
        &id,
        &keys_of(&patch),
    )
    .await
    {
        return r;
    }
    json(StatusCode::OK, &changed)
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(create, read, update))]
struct AdminApi;

/// The routes' OpenAPI paths.
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    <AdminApi as utoipa::OpenApi>::openapi()
}
