//! The demo's protected routes (DEMO.md): each behind its permission,
//! scoped to the caller's tenant.
//!
//! | route | permission | what |
//! |---|---|---|
//! | `GET /api/reports` | `report:view` | usage figures of the caller's tenant |
//! | `GET /api/workflows` | `workflow:execute` | the tenant's workflows |
//! | `POST /api/workflows` | `workflow:create` | checked against the tenant's node limits and types, the role's `max_workflows` and the tenant's workflow quota |
//! | `DELETE /api/workflows/{id}` | `workflow:delete` | releases the owner's and the tenant's counts |
//! | `GET /api/data/{id}` | `data:read` | plus `data_access` and `geo_restriction` against the document; another tenant's id answers like an unknown one |
//! | `GET /api/audit` | `audit:view` | the tenant's newest audit events, newest first |
//!
//! Workflows live in a [`WorkflowStore`] on the gateway's shared state
//! (memory or Redis), keyed by tenant, so several instances on one Redis
//! serve one set; this module only wires routes to it and maps its
//! refusals to problems.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use kailash::access::condition::Attributes;
use kailash::access::layer::RequirePermissionLayer;
use kailash::access::permission::Permission;
use kailash::access::{AccessControl, forbidden};
use kailash::audit::MemoryAuditSink;
use kailash::context::RequestContext;
use kailash::guard::GuardRefusal;
use kailash::realtime::Hub;
use kailash::realtime::event::{Classification, Event};
use kailash::tenancy::model::Tenant;
use kailash::tenancy::quota::Quotas;
use kailash::{GatewayBuilder, GatewayError, Principal, Problem};
use kailash_runtime::{NewWorkflow, NodeRegistry, WorkflowError, WorkflowStore};
use serde::{Deserialize, Serialize};

const MAX_AUDIT_EVENTS: usize = 1000;

static DATA_READ: LazyLock<Permission> = LazyLock::new(|| {
    Permission::parse("data:read").unwrap_or_else(|e| unreachable!("a valid literal: {e}"))
});

/// One demo document (DEMO.md's four).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Document {
    /// Its id.
    pub id: &'static str,
    /// The tenant that owns it.
    pub tenant: &'static str,
    /// Its department.
    pub department: &'static str,
    /// Its classification.
    pub classification: &'static str,
    /// Its title.
    pub title: &'static str,
}

impl Document {
    fn attributes(&self) -> Attributes {
        let mut a = Attributes::new();
        a.insert("department".into(), self.department.into());
        a.insert("classification".into(), self.classification.into());
        a.insert("tenant".into(), self.tenant.into());
        a
    }
}

/// The demo documents.
pub const DOCUMENTS: [Document; 4] = [
    Document {
        id: "acme-eng-conf",
        tenant: "acme",
        department: "engineering",
        classification: "confidential",
        title: "Acme engine design review",
    },
    Document {
        id: "acme-eng-secret",
        tenant: "acme",
        department: "engineering",
        classification: "secret",
        title: "Acme next-generation prototype",
    },
    Document {
        id: "acme-sales-int",
        tenant: "acme",
        department: "sales",
        classification: "internal",
        title: "Acme regional sales figures",
    },
    Document {
        id: "globex-res-conf",
        tenant: "globex",
        department: "research",
        classification: "confidential",
        title: "Globex research roadmap",
    },
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<usize>,
}

struct Demo {
    access: AccessControl,
    quotas: Quotas,
    workflows: WorkflowStore,
    recent: Option<Arc<MemoryAuditSink>>,
}

/// Adds the demo routes (and their OpenAPI paths) to a builder made from
/// the demo config: it needs the builder's state, access control and
/// recent-audit view, so call it after
/// [`GatewayBuilder::from_config_with_backends`].
pub fn with_demo_routes(builder: GatewayBuilder) -> Result<GatewayBuilder, GatewayError> {
    let (Some(access), Some(state), Some(_)) = (
        builder.access_handle(),
        builder.state_handle(),
        builder.tenant_registry(),
    ) else {
        return Err(GatewayError::Config(
            kailash::config::ConfigError::Invalid {
                origin: "the demo routes".into(),
                key: "access".into(),
                message: "the demo routes need [access], [[tenants]] and a state backend".into(),
            },
        ));
    };
    let demo = Arc::new(Demo {
        access: access.clone(),
        quotas: Quotas::new(state.clone()),
        // The runtime's store when `[runtime]` is set: the workflows created
        // here are the ones it runs.
        workflows: match builder.runtime_handle() {
            Some(runtime) => runtime.workflows().clone(),
            None => WorkflowStore::new(access.clone(), state.clone(), NodeRegistry::builtin()),
        },
        recent: builder.recent_audit().cloned(),
    });
    let doc: utoipa::openapi::OpenApi = serde_json::from_value(openapi()).map_err(|e| {
        GatewayError::Config(kailash::config::ConfigError::Invalid {
            origin: "the demo routes".into(),
            key: "openapi".into(),
            message: e.to_string(),
        })
    })?;
    Ok(builder.routes(router(demo)).openapi(doc))
}

fn guarded(route: MethodRouter, permission: &str) -> MethodRouter {
    route.layer(RequirePermissionLayer::new(permission))
}

fn router(demo: Arc<Demo>) -> Router {
    let d = demo.clone();
    let reports = get(move |tenant: Extension<Arc<Tenant>>| {
        let d = d.clone();
        async move { reports(&d, &tenant).await }
    });
    let d = demo.clone();
    let list = get(move |tenant: Extension<Arc<Tenant>>| {
        let d = d.clone();
        async move { list_workflows(&d, &tenant).await }
    });
    let d = demo.clone();
    let create = post(
        move |principal: Extension<Principal>,
              tenant: Extension<Arc<Tenant>>,
              hub: Option<Extension<Hub>>,
              body: Bytes| {
            let d = d.clone();
            async move { create_workflow(&d, &principal, &tenant, hub.as_deref(), &body).await }
        },
    );
    let d = demo.clone();
    let remove = delete(
        move |principal: Extension<Principal>,
              tenant: Extension<Arc<Tenant>>,
              hub: Option<Extension<Hub>>,
              Path(id): Path<String>| {
            let d = d.clone();
            async move { delete_workflow(&d, &principal, &tenant, hub.as_deref(), &id).await }
        },
    );
    let d = demo.clone();
    let data = get(
        move |principal: Extension<Principal>,
              tenant: Extension<Arc<Tenant>>,
              ctx: Option<Extension<RequestContext>>,
              Path(id): Path<String>| {
            let d = d.clone();
            async move { read_document(&d, &principal, &tenant, ctx.as_deref(), &id).await }
        },
    );
    let d = demo;
    let audit = get(
        move |tenant: Extension<Arc<Tenant>>, Query(q): Query<AuditQuery>| {
            let d = d.clone();
            async move { audit_events(&d, &tenant, q.limit) }
        },
    );
    Router::new()
        .route("/api/reports", guarded(reports, "report:view"))
        .route(
            "/api/workflows",
            guarded(list, "workflow:execute").merge(guarded(create, "workflow:create")),
        )
        .route("/api/workflows/{id}", guarded(remove, "workflow:delete"))
        .route(
            "/api/data/{id}",
            // The route decides roles and geography; the handler checks
            // `data_access` against the document it loads.
            data.layer(RequirePermissionLayer::new("data:read").defer_resource()),
        )
        .route("/api/audit", guarded(audit, "audit:view"))
}

fn unavailable(what: &str, error: impl std::fmt::Display) -> Response {
    tracing::warn!(%error, "{what} unavailable");
    Problem::service_unavailable(format!("{what} is temporarily unavailable")).into_response()
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    (status, axum::Json(value)).into_response()
}

async fn reports(d: &Demo, tenant: &Tenant) -> Response {
    match d.quotas.usage(tenant).await {
        Ok(u) => json(
            StatusCode::OK,
            &serde_json::json!({
                "tenant": tenant.id,
                "reports": [
                    { "id": "api-calls-today", "title": "API calls today", "value": u.api_calls_today, "limit": u.max_api_calls_per_day },
                    { "id": "workflows", "title": "Workflows", "value": u.workflows, "limit": u.max_workflows },
                    { "id": "storage", "title": "Stored bytes", "value": u.storage_bytes, "limit": u.max_storage_bytes },
                ],
            }),
        ),
        Err(e) => unavailable("usage accounting", e),
    }
}

async fn list_workflows(d: &Demo, tenant: &Tenant) -> Response {
    match d.workflows.list(tenant).await {
        Ok(out) => json(
            StatusCode::OK,
            &serde_json::json!({ "tenant": tenant.id, "workflows": out }),
        ),
        Err(e) => refused(&e),
    }
}

/// The problem for each way the workflow store refuses (503s are logged).
fn refused(e: &WorkflowError) -> Response {
    let problem = e.to_problem();
    if problem.status() == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(error = %e, "the workflow store is unavailable");
    }
    problem.into_response()
}

/// Tells the tenant's realtime connections about a workflow change: channel
/// `workflows`, classification `internal`, for connections whose principal
/// holds `workflow:execute` (every demo role). A failed publish is logged;
/// the change itself stands.
async fn announce(hub: Option<&Hub>, tenant: &Tenant, event: &str, data: serde_json::Value) {
    let Some(hub) = hub else { return };
    let event = Event::new(tenant.id.clone(), "workflows", event)
        .and_then(|e| e.required_permission("workflow:execute"))
        .map(|e| e.data(data).classification(Classification::Internal));
    let published = match event {
        Ok(event) => hub.send_to_tenant(&event).await.map(drop),
        Err(error) => Err(error),
    };
    if let Err(error) = published {
        tracing::warn!(%error, "could not publish a workflow event");
    }
}

async fn create_workflow(
    d: &Demo,
    principal: &Principal,
    tenant: &Tenant,
    hub: Option<&Hub>,
    body: &[u8],
) -> Response {
    let new: NewWorkflow = match serde_json::from_slice(body) {
        Ok(n) => n,
        Err(e) => {
            return Problem::bad_request(format!("the body is not a workflow: {e}"))
                .into_response();
        }
    };
    let workflow = match d.workflows.create(principal, tenant, new).await {
        Ok(w) => w,
        Err(e) => return refused(&e),
    };
    announce(
        hub,
        tenant,
        "workflow.created",
        serde_json::json!({ "id": workflow.id, "name": workflow.name, "owner": principal.subject() }),
    )
    .await;
    let mut response = json(StatusCode::CREATED, &workflow);
    if let Ok(location) = HeaderValue::from_str(&format!("/api/workflows/{}", workflow.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

async fn delete_workflow(
    d: &Demo,
    principal: &Principal,
    tenant: &Tenant,
    hub: Option<&Hub>,
    id: &str,
) -> Response {
    match d.workflows.delete(tenant, id).await {
        Ok(true) => {
            announce(
                hub,
                tenant,
                "workflow.deleted",
                serde_json::json!({ "id": id, "by": principal.subject() }),
            )
            .await;
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(false) => Problem::not_found().into_response(),
        Err(e) => refused(&e),
    }
}

async fn read_document(
    d: &Demo,
    principal: &Principal,
    tenant: &Tenant,
    ctx: Option<&RequestContext>,
    id: &str,
) -> Response {
    // Another tenant's document is not found, exactly like an unknown id.
    let Some(doc) = DOCUMENTS
        .iter()
        .find(|doc| doc.id == id && doc.tenant == tenant.id.as_str())
    else {
        return Problem::not_found().into_response();
    };
    let attributes = doc.attributes();
    let decision = d
        .access
        .check(principal, &DATA_READ, Some((doc.id, &attributes)), ctx)
        .await;
    // Not audited, not served: the trail refused the decision's entry.
    let decision = match decision {
        Ok(decision) => decision,
        Err(error) => return error.problem().into_response(),
    };
    if decision.allowed {
        json(StatusCode::OK, doc)
    } else {
        // Refused by access control, like the route's layer would: the
        // tenant's API quota gives the call back.
        let mut refused = forbidden(&DATA_READ).into_response();
        GuardRefusal::mark(&mut refused);
        refused
    }
}

fn audit_events(d: &Demo, tenant: &Tenant, limit: Option<usize>) -> Response {
    let Some(recent) = &d.recent else {
        return Problem::not_found().into_response();
    };
    let limit = limit.unwrap_or(100);
    if limit == 0 || limit > MAX_AUDIT_EVENTS {
        return Problem::bad_request(format!("`limit` must be 1-{MAX_AUDIT_EVENTS}"))
            .into_response();
    }
    let events = recent.query(&tenant.id, limit);
    json(
        StatusCode::OK,
        &serde_json::json!({ "tenant": tenant.id, "events": events }),
    )
}

/// The OpenAPI description of the demo routes.
pub fn openapi() -> serde_json::Value {
    let problem = |d: &str| serde_json::json!({ "description": d, "content": { "application/problem+json": { "schema": { "type": "object" } } } });
    let op = |id: &str,
              summary: &str,
              permission: &str,
              (code, ok): (&str, serde_json::Value),
              extra: &[(&str, &str)]| {
        let mut responses = BTreeMap::new();
        responses.insert(code.to_owned(), ok);
        responses.insert("401".to_owned(), problem("Not authenticated"));
        responses.insert(
            "403".to_owned(),
            problem(&format!(
                "Permission `{permission}` not granted, or the tenant refused"
            )),
        );
        for (code, d) in extra {
            responses.insert((*code).to_owned(), problem(d));
        }
        serde_json::json!({
            "tags": ["demo"], "operationId": id, "summary": summary,
            "description": format!("Requires `{permission}`."),
            "security": [{ "bearer": [] }], "responses": responses,
        })
    };
    let ok = |d: &str| {
        (
            "200",
            serde_json::json!({ "description": d, "content": { "application/json": { "schema": { "type": "object" } } } }),
        )
    };
    let id_param = serde_json::json!([{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }]);
    let mut create = op(
        "create_workflow",
        "Create a workflow",
        "workflow:create",
        ("201", ok("Created").1),
        &[
            ("400", "Malformed workflow"),
            ("429", "Daily API quota exhausted (Retry-After)"),
        ],
    );
    create["requestBody"] = serde_json::json!({ "required": true, "content": { "application/json": { "schema": {
        "type": "object", "required": ["name", "nodes"], "properties": {
            "name": { "type": "string" },
            "nodes": { "type": "array", "items": { "type": "object", "required": ["id", "type"],
                "properties": { "id": { "type": "string" }, "type": { "type": "string" },
                    "config": { "type": "object" } } } },
            "connections": { "type": "array", "items": { "type": "object", "required": ["from", "to"],
                "properties": { "from": { "type": "object" }, "to": { "type": "object",
                    "properties": { "node": { "type": "string" }, "input": { "type": "string" } } } } } },
            "inputs": { "type": "array", "items": { "type": "string" } },
            "outputs": { "type": "object" } } } } } });
    let mut remove = op(
        "delete_workflow",
        "Delete a workflow",
        "workflow:delete",
        ("204", serde_json::json!({ "description": "Deleted" })),
        &[("404", "No such workflow in the tenant")],
    );
    remove["parameters"] = id_param.clone();
    let mut data = op(
        "read_document",
        "Read a document",
        "data:read",
        ok("The document"),
        &[("404", "No such document in the tenant")],
    );
    data["parameters"] = id_param;
    let mut audit = op(
        "audit_events",
        "The tenant's newest audit events",
        "audit:view",
        ok("Events, newest first"),
        &[("400", "Bad limit")],
    );
    audit["parameters"] = serde_json::json!([{ "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": MAX_AUDIT_EVENTS } }]);
    serde_json::json!({
        "openapi": "3.1.0",
        "info": { "title": "kailash demo routes", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/api/reports": { "get": op("reports", "Usage reports of the caller's tenant", "report:view", ok("Reports"), &[]) },
            "/api/workflows": {
                "get": op("list_workflows", "The tenant's workflows", "workflow:execute", ok("Workflows"), &[]),
                "post": create,
            },
            "/api/workflows/{id}": { "delete": remove },
            "/api/data/{id}": { "get": data },
            "/api/audit": { "get": audit },
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_openapi_document_is_valid() {
        let json = super::openapi();
        assert!(json["paths"]["/api/workflows"]["post"]["responses"]["201"].is_object());
        assert!(json["paths"]["/api/workflows/{id}"]["delete"]["responses"]["204"].is_object());
        let doc: utoipa::openapi::OpenApi = serde_json::from_value(json).unwrap();
        assert_eq!(doc.paths.paths.len(), 5);
    }
}
