//! The demo's protected routes (DEMO.md): each behind its permission,
//! scoped to the caller's tenant.
//!
//! | route | permission | what |
//! |---|---|---|
//! | `GET /api/reports` | `report:view` | usage figures of the caller's tenant; with `[cache]` answered from the response cache for 5 s per caller (`private, max-age=5`) |
//! | `GET /api/workflows` | `workflow:execute` | the tenant's workflows |
//! | `POST /api/workflows` | `workflow:create` | checked against the tenant's node limits and types, the role's `max_workflows` and the tenant's workflow quota |
//! | `DELETE /api/workflows/{id}` | `workflow:delete` | releases the owner's and the tenant's counts |
//! | `GET /api/data/{id}` | `data:read` | plus `data_access` and `geo_restriction` against the document; another tenant's id answers like an unknown one |
//! | `GET /api/audit` | `audit:view` | the tenant's audit events, newest first, a page at a time (`limit`, `before`) |
//! | `GET /api/audit/export?user=` | `audit:view` | one person's events in the tenant's trail (a subject access request, GDPR article 15), paged the same way; the export itself is audited (`audit.export`) before it is answered |
//! | `DELETE /api/audit/subjects/{user}` | `user:manage` | erases one person's personal fields from the tenant's trail (GDPR article 17) when the PostgreSQL trail seals them (`audit.personal_data_keyring_*`); the chain still verifies; audited (`audit.erase`) without the person's name |
//!
//! Workflows live in a [`WorkflowStore`] on the gateway's shared state
//! (memory or Redis), keyed by tenant, so several instances on one Redis
//! serve one set; this module only wires routes to it and maps its
//! refusals to problems.

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use kailash::access::condition::Attributes;
use kailash::access::layer::RequirePermissionLayer;
use kailash::access::permission::Permission;
use kailash::access::{AccessControl, forbidden};
use kailash::audit::{AuditEvent, AuditQuery as AuditTrail};
use kailash::cache::ResponseCacheLayer;
use kailash::context::RequestContext;
use kailash::guard::GuardRefusal;
use kailash::realtime::Hub;
use kailash::realtime::event::{Classification, Event};
use kailash::schema::{ValidJson, ValidPath, ValidQuery};
use kailash::tenancy::model::Tenant;
use kailash::tenancy::quota::Quotas;
use kailash::{GatewayBuilder, GatewayError, Principal, Problem};
use kailash_runtime::{NewWorkflow, NodeRegistry, Workflow, WorkflowError, WorkflowStore};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

const MAX_AUDIT_EVENTS: usize = 1000;
// `AuditQuery`'s published maximum is this number.
const _: () = assert!(MAX_AUDIT_EVENTS == 1000 && kailash::audit::MAX_PAGE == MAX_AUDIT_EVENTS);

static DATA_READ: LazyLock<Permission> = LazyLock::new(|| {
    Permission::parse("data:read").unwrap_or_else(|e| unreachable!("a valid literal: {e}"))
});

/// One demo document (DEMO.md's four).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
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

/// `GET /api/audit`'s query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// How many events, newest first (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next_before` of the previous page: events older than it (at
    /// most 2^53 - 1, the largest integer every JSON client reads exactly).
    #[param(minimum = 1, maximum = 9_007_199_254_740_991_i64)]
    before: Option<u64>,
}

/// `GET /api/audit/export`'s query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ExportQuery {
    /// The person (the events' actor).
    #[param(min_length = 1, max_length = 128)]
    user: String,
    /// How many events, newest first (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next_before` of the previous page: events older than it.
    #[param(minimum = 1, maximum = 9_007_199_254_740_991_i64)]
    before: Option<u64>,
}

/// A path's `{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct IdPath {
    /// The id.
    #[param(min_length = 1, max_length = 128)]
    id: String,
}

/// One usage figure of `GET /api/reports`.
#[derive(Debug, Serialize, ToSchema)]
struct Report {
    /// `api-calls-today`, `workflows` or `storage`.
    id: &'static str,
    /// What it counts.
    title: &'static str,
    /// The figure.
    value: u64,
    /// The tenant's limit, if any.
    limit: Option<u64>,
}

/// `GET /api/reports`.
#[derive(Debug, Serialize, ToSchema)]
struct Reports {
    /// The caller's tenant.
    tenant: kailash::TenantId,
    /// The figures.
    reports: Vec<Report>,
}

/// `GET /api/workflows`.
#[derive(Debug, Serialize, ToSchema)]
struct Workflows {
    /// The caller's tenant.
    tenant: kailash::TenantId,
    /// Its workflows.
    workflows: Vec<Workflow>,
}

/// `GET /api/audit`.
#[derive(Debug, Serialize, ToSchema)]
struct AuditEvents {
    /// The caller's tenant.
    tenant: kailash::TenantId,
    /// Its audit events, newest first.
    events: Vec<AuditEvent>,
    /// Pass as `before` for the next (older) page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<u64>,
}

struct Demo {
    access: AccessControl,
    quotas: Quotas,
    workflows: WorkflowStore,
    audit: Option<Arc<dyn AuditTrail>>,
    sink: Option<Arc<dyn kailash::audit::AuditSink>>,
    erasure: Option<Arc<dyn kailash::audit::AuditErasure>>,
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
        audit: builder.audit_query().cloned(),
        sink: builder.audit_handle().cloned(),
        erasure: builder.audit_erasure().cloned(),
    });
    let cache = builder.response_cache_layer().cloned();
    Ok(builder.routes(router(demo, cache)).openapi(openapi()))
}

/// How long a caller's usage report may be answered from the response
/// cache (`[cache]`): the figures are a dashboard's, not a ledger's.
const REPORTS_MAX_AGE: &str = "private, max-age=5";

/// `route` answered from `cache` when one is configured: inside the route's
/// permission check (added after this), so every request is still
/// authenticated, admitted and decided before the cache is asked; the
/// answers are marked fresh for [`REPORTS_MAX_AGE`] unless they say
/// otherwise. Without `[cache]` the route is untouched.
fn cached(
    route: MethodRouter<Arc<Demo>>,
    cache: Option<&ResponseCacheLayer>,
) -> MethodRouter<Arc<Demo>> {
    match cache {
        Some(cache) => route
            .layer::<_, std::convert::Infallible>(axum::middleware::map_response(
                |mut response: Response| async move {
                    response
                        .headers_mut()
                        .entry(header::CACHE_CONTROL)
                        .or_insert(HeaderValue::from_static(REPORTS_MAX_AGE));
                    response
                },
            ))
            .layer::<_, std::convert::Infallible>(cache.clone()),
        None => route,
    }
}

fn guarded(route: MethodRouter<Arc<Demo>>, permission: &str) -> MethodRouter<Arc<Demo>> {
    route.layer(RequirePermissionLayer::new(permission))
}

fn router(demo: Arc<Demo>, cache: Option<ResponseCacheLayer>) -> Router {
    Router::new()
        .route(
            "/api/reports",
            guarded(cached(get(reports), cache.as_ref()), "report:view"),
        )
        .route(
            "/api/workflows",
            guarded(get(list_workflows), "workflow:execute")
                .merge(guarded(post(create_workflow), "workflow:create")),
        )
        .route(
            "/api/workflows/{id}",
            guarded(delete(delete_workflow), "workflow:delete"),
        )
        .route(
            "/api/data/{id}",
            // The route decides roles and geography; the handler checks
            // `data_access` against the document it loads.
            get(read_document).layer(RequirePermissionLayer::new("data:read").defer_resource()),
        )
        .route("/api/audit", guarded(get(audit_events), "audit:view"))
        .route(
            "/api/audit/export",
            guarded(get(audit_export), "audit:view"),
        )
        .route(
            "/api/audit/subjects/{user}",
            guarded(delete(audit_erase), "user:manage"),
        )
        .with_state(demo)
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(reports, list_workflows, create_workflow, delete_workflow, read_document, audit_events, audit_export, audit_erase),
    tags((name = "demo", description = "The reference deployment's demo routes (DEMO.md)")),
)]
struct DemoApi;

/// The OpenAPI description of the demo routes, derived from their types.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <DemoApi as utoipa::OpenApi>::openapi()
}

fn unavailable(what: &str, error: impl std::fmt::Display) -> Response {
    tracing::warn!(%error, "{what} unavailable");
    Problem::service_unavailable(format!("{what} is temporarily unavailable")).into_response()
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    (status, axum::Json(value)).into_response()
}

const PROBLEM: &str = "application/problem+json";

/// Usage reports of the caller's tenant.
#[utoipa::path(
    get, path = "/api/reports", tag = "demo", operation_id = "reports",
    description = "Requires `report:view`.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Usage figures", body = Reports),
        (status = 403, description = "Permission `report:view` not granted", body = Problem, content_type = PROBLEM),
        (status = 503, description = "Usage accounting unavailable", body = Problem, content_type = PROBLEM),
    ),
)]
async fn reports(
    State(d): State<Arc<Demo>>,
    Extension(tenant): Extension<Arc<Tenant>>,
) -> Response {
    match d.quotas.usage(&tenant).await {
        Ok(u) => json(
            StatusCode::OK,
            &Reports {
                tenant: tenant.id.clone(),
                reports: vec![
                    Report {
                        id: "api-calls-today",
                        title: "API calls today",
                        value: u.api_calls_today,
                        limit: u.max_api_calls_per_day,
                    },
                    Report {
                        id: "workflows",
                        title: "Workflows",
                        value: u.workflows,
                        limit: u.max_workflows,
                    },
                    Report {
                        id: "storage",
                        title: "Stored bytes",
                        value: u.storage_bytes,
                        limit: u.max_storage_bytes,
                    },
                ],
            },
        ),
        Err(e) => unavailable("usage accounting", e),
    }
}

/// The tenant's workflows.
#[utoipa::path(
    get, path = "/api/workflows", tag = "demo", operation_id = "list_workflows",
    description = "Requires `workflow:execute`.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant's workflows", body = Workflows),
        (status = 403, description = "Permission `workflow:execute` not granted", body = Problem, content_type = PROBLEM),
        (status = 503, description = "The workflow store is unavailable", body = Problem, content_type = PROBLEM),
    ),
)]
async fn list_workflows(
    State(d): State<Arc<Demo>>,
    Extension(tenant): Extension<Arc<Tenant>>,
) -> Response {
    match d.workflows.list(&tenant).await {
        Ok(workflows) => json(
            StatusCode::OK,
            &Workflows {
                tenant: tenant.id.clone(),
                workflows,
            },
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

/// Create a workflow.
#[utoipa::path(
    post, path = "/api/workflows", tag = "demo", operation_id = "create_workflow",
    description = "Requires `workflow:create`. Checked against the tenant's node limits and node types, the role's `max_workflows` and the tenant's workflow quota.",
    security(("bearer" = [])),
    request_body = NewWorkflow,
    responses(
        (status = 201, description = "Created (Location names it)", body = Workflow),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Permission `workflow:create` not granted; a tenant rule (node count, node type, feature) refuses the workflow (`violation`); the role's `max_workflows` or the tenant's workflow quota is reached", body = Problem, content_type = PROBLEM),
        (status = 415, description = "The body is not application/json", body = Problem, content_type = PROBLEM),
        (status = 422, description = "The body does not match the schema (`errors` points at each field), or the graph is not runnable (`violation: invalid_definition`: an unknown node type, a dangling connection, a cycle; `node` names it)", body = Problem, content_type = PROBLEM),
        (status = 503, description = "The workflow store or quota accounting is unavailable", body = Problem, content_type = PROBLEM),
    ),
)]
async fn create_workflow(
    State(d): State<Arc<Demo>>,
    Extension(principal): Extension<Principal>,
    Extension(tenant): Extension<Arc<Tenant>>,
    hub: Option<Extension<Hub>>,
    ValidJson(new): ValidJson<NewWorkflow>,
) -> Response {
    let workflow = match d.workflows.create(&principal, &tenant, new).await {
        Ok(w) => w,
        Err(e) => return refused(&e),
    };
    announce(
        hub.as_deref(),
        &tenant,
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

/// Delete a workflow.
#[utoipa::path(
    delete, path = "/api/workflows/{id}", tag = "demo", operation_id = "delete_workflow",
    description = "Requires `workflow:delete`. Releases the owner's and the tenant's counts.",
    security(("bearer" = [])),
    params(IdPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Permission `workflow:delete` not granted", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such workflow in the tenant", body = Problem, content_type = PROBLEM),
        (status = 422, description = "The id is not 1-128 characters", body = Problem, content_type = PROBLEM),
        (status = 503, description = "The workflow store is unavailable", body = Problem, content_type = PROBLEM),
    ),
)]
async fn delete_workflow(
    State(d): State<Arc<Demo>>,
    Extension(principal): Extension<Principal>,
    Extension(tenant): Extension<Arc<Tenant>>,
    hub: Option<Extension<Hub>>,
    ValidPath(IdPath { id }): ValidPath<IdPath>,
) -> Response {
    match d.workflows.delete(&tenant, &id).await {
        Ok(true) => {
            announce(
                hub.as_deref(),
                &tenant,
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

/// Read a document.
#[utoipa::path(
    get, path = "/api/data/{id}", tag = "demo", operation_id = "read_document",
    description = "Requires `data:read`, and the `data_access` and `geo_restriction` policies against the document.",
    security(("bearer" = [])),
    params(IdPath),
    responses(
        (status = 200, description = "The document", body = Document),
        (status = 403, description = "`data:read` not granted, or a policy refuses this document", body = Problem, content_type = PROBLEM),
        (status = 404, description = "No such document in the tenant (another tenant's id answers the same)", body = Problem, content_type = PROBLEM),
        (status = 422, description = "The id is not 1-128 characters", body = Problem, content_type = PROBLEM),
        (status = 503, description = "The audit trail refused the decision", body = Problem, content_type = PROBLEM),
    ),
)]
async fn read_document(
    State(d): State<Arc<Demo>>,
    Extension(principal): Extension<Principal>,
    Extension(tenant): Extension<Arc<Tenant>>,
    ctx: Option<Extension<RequestContext>>,
    ValidPath(IdPath { id }): ValidPath<IdPath>,
) -> Response {
    let ctx = ctx.as_deref();
    let principal = &principal;
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

/// The tenant's newest audit events.
#[utoipa::path(
    get, path = "/api/audit", tag = "demo", operation_id = "audit_events",
    description = "Requires `audit:view`.",
    security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "Events, newest first", body = AuditEvents),
        (status = 400, description = "`limit` is given more than once", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Permission `audit:view` not granted", body = Problem, content_type = PROBLEM),
        (status = 404, description = "This deployment answers no audit queries", body = Problem, content_type = PROBLEM),
        (status = 503, description = "The audit database is unreachable", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`limit` is not an integer from 1 to 1000", body = Problem, content_type = PROBLEM),
    ),
)]
async fn audit_events(
    State(d): State<Arc<Demo>>,
    Extension(tenant): Extension<Arc<Tenant>>,
    ValidQuery(q): ValidQuery<AuditQuery>,
) -> Response {
    let Some(audit) = &d.audit else {
        return Problem::not_found().into_response();
    };
    let limit = q.limit.unwrap_or(100).min(MAX_AUDIT_EVENTS);
    match audit.newest(&tenant.id, limit, q.before).await {
        Ok(page) => json(
            StatusCode::OK,
            &AuditEvents {
                tenant: tenant.id.clone(),
                events: page.events,
                next_before: page.next_before,
            },
        ),
        Err(e) => e.problem().into_response(),
    }
}

/// One person's events in the tenant's trail.
#[utoipa::path(
    get, path = "/api/audit/export", tag = "demo", operation_id = "audit_export",
    description = "Requires `audit:view`. A subject access request (GDPR article 15): the events whose actor is `user`, in the caller's tenant, newest first, paged by `before`. The export is itself audited (`audit.export`, by the caller, naming the user unless the trail seals personal data) before it is answered.",
    security(("bearer" = [])),
    params(ExportQuery),
    responses(
        (status = 200, description = "The user's events, newest first", body = AuditEvents),
        (status = 400, description = "A parameter is given more than once", body = Problem, content_type = PROBLEM),
        (status = 403, description = "Permission `audit:view` not granted", body = Problem, content_type = PROBLEM),
        (status = 404, description = "This deployment answers no audit queries", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`user`, `limit` or `before` out of range", body = Problem, content_type = PROBLEM),
        (status = 503, description = "The audit trail cannot record the export, or its database is unreachable", body = Problem, content_type = PROBLEM),
    ),
)]
async fn audit_export(
    State(d): State<Arc<Demo>>,
    Extension(principal): Extension<Principal>,
    Extension(tenant): Extension<Arc<Tenant>>,
    ctx: Option<Extension<RequestContext>>,
    ValidQuery(q): ValidQuery<ExportQuery>,
) -> Response {
    let (Some(audit), Some(sink)) = (&d.audit, &d.sink) else {
        return Problem::not_found().into_response();
    };
    // A trail that seals personal data keeps the exported person's name
    // out of the chained resource (it could never be erased from there).
    let resource = if d.erasure.is_some() {
        "audit subject".to_owned()
    } else {
        format!("user {}", q.user)
    };
    let event = trail_event("audit.export", &principal, &tenant, ctx.as_ref()).resource(resource);
    // Accepted means written: nothing is exported without its entry.
    if let Err(e) = sink.record(event).await {
        return e.problem().into_response();
    }
    let limit = q.limit.unwrap_or(100).min(MAX_AUDIT_EVENTS);
    match audit.of_actor(&tenant.id, &q.user, limit, q.before).await {
        Ok(page) => json(
            StatusCode::OK,
            &AuditEvents {
                tenant: tenant.id.clone(),
                events: page.events,
                next_before: page.next_before,
            },
        ),
        Err(e) => e.problem().into_response(),
    }
}

/// The record of an operation on the trail itself, by the caller.
fn trail_event(
    action: &'static str,
    principal: &Principal,
    tenant: &Tenant,
    ctx: Option<&Extension<RequestContext>>,
) -> AuditEvent {
    let event = AuditEvent::new(action, kailash::audit::AuditDecision::Success)
        .principal(principal)
        .tenant(tenant.id.clone());
    match ctx {
        Some(Extension(ctx)) => event.context(ctx),
        None => event,
    }
}

/// A path's `{user}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct UserPath {
    /// The person (the events' actor).
    #[param(min_length = 1, max_length = 128)]
    user: String,
}

/// What an erasure did.
#[derive(Debug, Serialize, ToSchema)]
struct Erased {
    /// The tenant whose trail it was.
    tenant: kailash::TenantId,
    /// Whether the trail held a key of the person (`false`: nothing of
    /// theirs was sealed in this tenant's trail; the call changed nothing).
    erased: bool,
}

/// Erases one person's personal fields from the tenant's trail.
#[utoipa::path(
    delete, path = "/api/audit/subjects/{user}", tag = "demo", operation_id = "audit_erase",
    description = "Requires `user:manage`. The right to erasure (GDPR article 17) on the audit trail: the data key under which `user`'s personal fields (actor, client address) are sealed in the caller's tenant is deleted, so every such entry reads without them from now on, while the hash chain, its signed checkpoints and `kailash audit verify` are unchanged. Events accepted before the call are covered. The erasure is audited (`audit.erase`, by the caller) without the person's name. Only where the PostgreSQL trail seals personal data.",
    security(("bearer" = [])),
    params(UserPath),
    responses(
        (status = 200, description = "Erased (or nothing was there)", body = Erased),
        (status = 403, description = "Permission `user:manage` not granted", body = Problem, content_type = PROBLEM),
        (status = 404, description = "This deployment's trail does not seal personal data, so it cannot erase it", body = Problem, content_type = PROBLEM),
        (status = 422, description = "`user` is empty or longer than 128 characters", body = Problem, content_type = PROBLEM),
        (status = 503, description = "The audit database is unreachable; nothing was erased", body = Problem, content_type = PROBLEM),
    ),
)]
async fn audit_erase(
    State(d): State<Arc<Demo>>,
    Extension(principal): Extension<Principal>,
    Extension(tenant): Extension<Arc<Tenant>>,
    ctx: Option<Extension<RequestContext>>,
    ValidPath(p): ValidPath<UserPath>,
) -> Response {
    let (Some(erasure), Some(sink)) = (&d.erasure, &d.sink) else {
        return Problem::not_found().into_response();
    };
    let erased = match erasure.erase_subject(&tenant.id, &p.user).await {
        Ok(erased) => erased,
        Err(e) => return unavailable("the audit trail", e),
    };
    let event = trail_event("audit.erase", &principal, &tenant, ctx.as_ref())
        .resource("audit subject")
        .reason(if erased {
            "personal data erased"
        } else {
            "nothing to erase"
        });
    if let Err(e) = sink.record(event).await {
        return e.problem().into_response();
    }
    json(
        StatusCode::OK,
        &Erased {
            tenant: tenant.id.clone(),
            erased,
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_openapi_document_is_derived_and_enforceable() {
        let doc = super::openapi();
        assert_eq!(doc.paths.paths.len(), 7);
        let json = serde_json::to_value(&doc).unwrap();
        assert!(json["paths"]["/api/workflows"]["post"]["responses"]["201"].is_object());
        assert!(json["paths"]["/api/workflows/{id}"]["delete"]["responses"]["204"].is_object());
        kailash::schema::check_document(&doc).unwrap();
    }
}
