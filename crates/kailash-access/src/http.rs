//! `POST /api/access/explain` (feature `axum`): an access decision with
//! every role grant and every policy condition evaluated.
//!
//! | route | permission | what |
//! |---|---|---|
//! | `POST /api/access/explain` | `audit:view` or `system:configure` | `{user?, permission, resource?, context?}` → the decision, the rule the audit trail records for it, and what each role, policy and comparison said |
//!
//! The body is an [`ExplainRequest`]: its published schema (every size,
//! the permission grammar, the timestamp and address forms) is what the
//! [`ValidJson`] extractor enforces, so a body the schema allows is never
//! refused for its shape, and one it forbids is a `422` with a pointer to
//! each offending field. Without `user` the caller is explained, as their token
//! carries them. With `user`, the principal comes from a [`Directory`]
//! (the kailash gateway's is the `[[users]]` of its config, built exactly
//! as at login); a user outside the caller's resolved tenant answers `404`
//! exactly like an unknown one, so the route reveals nobody outside the
//! caller's tenant. (A caller with no tenant at all — a deployment without
//! tenancy — may explain any user of the directory.) `context.time` and `context.client_ip` stand in for
//! the request's time and address (`current_time.*`, `request.client_ip`).
//!
//! Nothing is decided for real: the explained decision is not recorded as
//! an `access.check`, but the call itself is, as [`EXPLAIN_ACTION`], with
//! the caller as actor, the permission and subject explained as resource
//! and the explained rule as reason — before the answer is sent; when the
//! audit sink refuses the event the call answers `503`. Refused calls are
//! recorded too: a malformed body (`400`, `413`, `415`, `422`), an unknown
//! user (never named) as `failure`, a directory that cannot answer (`503`)
//! as `error`.
//!
//! Serve [`router`] behind the authentication layer; it carries its own
//! permission check ([`RequirePermissionLayer`] with [`PERMISSIONS`]).
//!
//! ```
//! use std::sync::Arc;
//! use kailash_access::http::{Directory, DirectoryError};
//! use kailash_access::{AccessControl, AccessPolicy};
//! use kailash_access::spec::AccessSpec;
//! use kailash_core::Principal;
//!
//! struct Fixed(Vec<Principal>);
//!
//! #[async_trait::async_trait]
//! impl Directory for Fixed {
//!     async fn principal(&self, username: &str) -> Result<Option<Principal>, DirectoryError> {
//!         Ok(self.0.iter().find(|p| p.subject() == username).cloned())
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let spec: AccessSpec = serde_json::from_str(r#"{ "roles": [
//!     { "name": "auditor", "permissions": ["audit:view"] }
//! ] }"#)?;
//! let access = AccessControl::new(AccessPolicy::load(&spec).await?);
//! let directory = Arc::new(Fixed(vec![Principal::builder("bob").build()]));
//! let routes: axum::Router = kailash_access::http::router(access, directory);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use kailash_core::audit::{AuditDecision, AuditEvent, AuditSeverity};
use kailash_core::context::RequestContext;
use kailash_core::schema::ValidJson;
use kailash_core::{Principal, Problem, TenantId};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{
    AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{RefOr, schema::AdditionalProperties};

use crate::control::AccessControl;
use crate::explain::{
    ExplainInput, MAX_ATTRIBUTES, MAX_CONTEXT_CHARS, MAX_DEPTH, MAX_NAME_CHARS, MAX_STRING_CHARS,
    Report,
};
use crate::layer::RequirePermissionLayer;

/// The route's path.
pub const PATH: &str = "/api/access/explain";

/// The permissions that admit a caller (any one of them).
pub const PERMISSIONS: [&str; 2] = ["audit:view", "system:configure"];

/// The audit action of an explain call.
pub const EXPLAIN_ACTION: &str = "access.explain";

/// The largest body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The grammar of a permission ([`Permission::parse`](crate::permission::Permission::parse)):
/// `*`, `resource:action` (either part may be `*`) or `kind:name:action`
/// (only the action may be `*`); each part 1 to 64 of `a-z 0-9 _ . -`.
pub const PERMISSION_PATTERN: &str =
    "^([*]|([*]|[a-z0-9_.-]{1,64}|[a-z0-9_.-]{1,64}:[a-z0-9_.-]{1,64}):([*]|[a-z0-9_.-]{1,64}))$";

/// An RFC 3339 timestamp with an offset, every one of which is a valid
/// instant (days checked per month, leap years included; years 0001 to
/// 9998 so that any offset stays in range; no leap second).
pub const TIMESTAMP_PATTERN: &str = concat!(
    "^(",
    "(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])",
    "-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)|02-(0[1-9]|1[0-9]|2[0-8]))",
    "|([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)-02-29",
    ")T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$",
);

/// An IPv4 address in dotted decimal (no leading zeros), or an IPv6
/// address in hexadecimal groups with at most one `::` (no embedded IPv4).
pub const IP_PATTERN: &str = concat!(
    "^(",
    "((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])[.]){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])",
    "|([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}",
    "|([0-9a-fA-F]{1,4}:){1,7}:",
    "|([0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}",
    "|([0-9a-fA-F]{1,4}:){1,5}(:[0-9a-fA-F]{1,4}){1,2}",
    "|([0-9a-fA-F]{1,4}:){1,4}(:[0-9a-fA-F]{1,4}){1,3}",
    "|([0-9a-fA-F]{1,4}:){1,3}(:[0-9a-fA-F]{1,4}){1,4}",
    "|([0-9a-fA-F]{1,4}:){1,2}(:[0-9a-fA-F]{1,4}){1,5}",
    "|[0-9a-fA-F]{1,4}:(:[0-9a-fA-F]{1,4}){1,6}",
    "|:((:[0-9a-fA-F]{1,4}){1,7}|:)",
    ")$",
);

/// The body of `POST /api/access/explain`: who (default: the caller), what
/// permission, on what resource, when and from where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    /// The username to explain for (default: the caller); only users of
    /// the caller's tenant. 1 to 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 256)]
    pub user: Option<String>,
    /// The permission asked about: `resource:action`, `kind:name:action`
    /// or `*`; at most 128 characters.
    #[schema(schema_with = permission_schema)]
    pub permission: String,
    /// The resource's attributes (`data.*`): strings, numbers, booleans,
    /// lists and maps, at most 64 entries per map or list, 4 levels, names
    /// of 1 to 64 and strings of at most 1024 characters. `null` or absent:
    /// no resource, so conditions reading `data.*` deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = resource_schema)]
    pub resource: Option<serde_json::Value>,
    /// When and from where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ExplainContext>,
}

/// When and from where an explained request is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainContext {
    /// When (`current_time.*`), RFC 3339 with an offset; default now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = timestamp_schema)]
    pub time: Option<String>,
    /// From where (`request.client_ip`), an IPv4 or IPv6 address; default
    /// the caller's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = ip_schema)]
    pub client_ip: Option<String>,
}

fn permission_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(crate::permission::MAX_PERMISSION_LEN))
        .pattern(Some(PERMISSION_PATTERN))
        .description(Some(
            "`resource:action`, `kind:name:action` or `*` (parts of `a-z 0-9 _ . -`, or `*`)",
        ))
        .examples(["data:read"])
        .into()
}

fn timestamp_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::DateTime,
        )))
        .max_length(Some(MAX_CONTEXT_CHARS))
        .pattern(Some(TIMESTAMP_PATTERN))
        .description(Some("When (`current_time.*`); default now"))
        .examples(["2026-12-07T10:00:00Z"])
        .into()
}

fn ip_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(MAX_CONTEXT_CHARS))
        .pattern(Some(IP_PATTERN))
        .description(Some(
            "From where (`request.client_ip`); default the caller's address",
        ))
        .examples(["203.0.113.7"])
        .into()
}

/// An attribute name: 1 to [`MAX_NAME_CHARS`] characters.
fn name_schema() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_NAME_CHARS))
        .into()
}

/// A map of attributes whose values sit at `depth`.
fn map_schema(depth: usize, nullable: bool) -> Schema {
    let ty = if nullable {
        SchemaType::Array(vec![Type::Object, Type::Null])
    } else {
        SchemaType::Type(Type::Object)
    };
    ObjectBuilder::new()
        .schema_type(ty)
        .max_properties(Some(MAX_ATTRIBUTES))
        .property_names(Some(name_schema()))
        .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(value_schema(
            depth,
        )))))
        .into()
}

/// An attribute value at `depth` (the top map's values are at 2): a
/// string, number or boolean, or — up to [`MAX_DEPTH`] — a list or map.
fn value_schema(depth: usize) -> Schema {
    let scalar = ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![
            Type::String,
            Type::Number,
            Type::Boolean,
        ]))
        .max_length(Some(MAX_STRING_CHARS));
    if depth > MAX_DEPTH {
        return scalar.into();
    }
    let list = ArrayBuilder::new()
        .items(RefOr::T(value_schema(depth + 1)))
        .max_items(Some(MAX_ATTRIBUTES));
    AnyOfBuilder::new()
        .item(scalar)
        .item(list)
        .item(map_schema(depth + 1, false))
        .into()
}

fn resource_schema() -> Schema {
    map_schema(2, true)
}

/// Why a [`Directory`] could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The directory cannot be reached now.
    #[error("user directory unavailable")]
    Unavailable,
}

/// Where the principals of other users come from: the same principal a
/// login would give the user (subject, tenant, roles, attributes).
#[async_trait::async_trait]
pub trait Directory: Send + Sync + 'static {
    /// The principal of `username`, or `None` for an unknown user.
    async fn principal(&self, username: &str) -> Result<Option<Principal>, DirectoryError>;
}

#[derive(Clone)]
struct Routes {
    access: AccessControl,
    directory: Arc<dyn Directory>,
}

/// The explain route, behind its own permission check
/// ([`PERMISSIONS`]), deciding with `access` and finding other users in
/// `directory`.
pub fn router(access: AccessControl, directory: Arc<dyn Directory>) -> Router {
    let guard = RequirePermissionLayer::new(PERMISSIONS[0])
        .or(PERMISSIONS[1])
        .access(access.clone());
    Router::new()
        .route(
            PATH,
            post(explain).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route_layer(guard)
        .with_state(Routes { access, directory })
}

/// Explain an access decision: every role grant and policy condition
/// evaluated, and the rule the audit trail records (`audit:view` or
/// `system:configure`; audited as `access.explain`).
#[cfg_attr(feature = "openapi", utoipa::path(
    post,
    path = "/api/access/explain",
    tag = "access",
    operation_id = "explain_access",
    security(("bearer" = [])),
    request_body = ExplainRequest,
    responses(
        (status = 200, body = Report, description = "The explanation (Cache-Control: no-store)"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "The body is not JSON"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Not authenticated"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Neither `audit:view` nor `system:configure` is granted"),
        (status = 404, body = Problem, content_type = "application/problem+json", description = "No such user in the caller's tenant"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "The body is larger than 16 KiB"),
        (status = 415, body = Problem, content_type = "application/problem+json", description = "The body is not application/json"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "The body does not match the schema (`errors` points at each field)"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "The user directory or the audit trail is unavailable"),
    ),
))]
async fn explain(
    State(s): State<Routes>,
    caller: Option<Extension<Principal>>,
    ctx: Option<Extension<RequestContext>>,
    resolved: Option<Extension<TenantId>>,
    body: Result<ValidJson<ExplainRequest>, Problem>,
) -> Response {
    let Some(Extension(caller)) = caller else {
        return Problem::unauthorized(None).into_response();
    };
    let ctx = ctx.map(|Extension(c)| c);
    // The caller's resolved tenant: the tenancy layer's, else the token's.
    let tenant = resolved
        .map(|Extension(t)| t)
        .or_else(|| caller.tenant().cloned());
    let refused = |reason: &'static str| {
        let mut event = AuditEvent::new(EXPLAIN_ACTION, AuditDecision::Failure)
            .principal(&caller)
            .reason(reason)
            .severity(AuditSeverity::Warning);
        if let Some(ctx) = &ctx {
            event = event.context(ctx).at(ctx.received_at());
        }
        event
    };

    let request = match body {
        Ok(ValidJson(request)) => request,
        Err(problem) => {
            let reason = if problem.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                "body too large"
            } else {
                "malformed request"
            };
            return audited(&s, refused(reason), || problem.into_response()).await;
        }
    };
    // The schema admitted it, so this reading cannot refuse it; should the
    // two ever disagree, the answer is still a pointed 422, never a 5xx.
    let input = match serde_json::to_value(&request) {
        Ok(v) => ExplainInput::from_json(&v),
        Err(_) => ExplainInput::from_json(&serde_json::Value::Null),
    };
    let input = match input {
        Ok(i) => i,
        Err(e) => {
            let problem = Problem::new(
                http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                "Invalid request",
            )
            .with_detail(e.to_string())
            .with_extension("field", e.field.as_str());
            return audited(&s, refused("malformed request"), || problem.into_response()).await;
        }
    };

    let principal = match &input.user {
        None => caller.clone(),
        Some(name) => match s.directory.principal(name).await {
            Err(_) => {
                let mut event = refused("user directory unavailable");
                event.decision = AuditDecision::Error;
                return audited(&s, event, || {
                    Problem::service_unavailable("the user directory is unavailable")
                        .into_response()
                })
                .await;
            }
            // Another tenant's user answers like an unknown one.
            Ok(Some(p)) if tenant.is_none() || p.tenant() == tenant.as_ref() => p,
            Ok(_) => {
                return audited(&s, refused("unknown user"), || {
                    Problem::not_found()
                        .with_detail("no such user")
                        .into_response()
                })
                .await;
            }
        },
    };

    let mut areq = s
        .access
        .request(&principal, &input.permission, ctx.as_ref());
    if let Some(at) = input.time {
        areq.now = at;
    }
    if let Some(ip) = input.client_ip {
        areq.client_ip = Some(ip);
    }
    if let Some(resource) = &input.resource {
        areq = areq.resource(resource);
    }
    let at = areq.now;
    let explanation = s.access.explain(&areq);

    let mut target = String::with_capacity(input.permission.as_str().len() + 5 + 32);
    target.push_str(input.permission.as_str());
    target.push_str(" for ");
    target.push_str(principal.subject());
    let mut event = AuditEvent::new(EXPLAIN_ACTION, AuditDecision::Success)
        .principal(&caller)
        .resource(target)
        .reason(explanation.decision.rule.clone());
    if let Some(ctx) = &ctx {
        event = event.context(ctx).at(ctx.received_at());
    }
    let body = Report::new(&principal, &input.permission, at, &explanation);
    audited(&s, event, || {
        let mut r = axum::Json(body).into_response();
        r.headers_mut().insert(
            axum::http::header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
        r
    })
    .await
}

/// Records `event` and then answers `respond()`; a sink that refuses the
/// event makes the call fail closed (`503`), since an explain call is
/// always audited.
async fn audited(s: &Routes, event: AuditEvent, respond: impl FnOnce() -> Response) -> Response {
    if let Some(sink) = s.access.audit_sink()
        && let Err(error) = sink.record(event).await
    {
        tracing::error!(%error, action = EXPLAIN_ACTION, "could not record an audit event");
        return Problem::service_unavailable("the audit trail is unavailable").into_response();
    }
    respond()
}

#[cfg(feature = "openapi")]
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "kailash-access"),
    paths(explain),
    components(schemas(ExplainRequest, ExplainContext, Report, Problem))
)]
struct ExplainApi;

/// The OpenAPI 3.1 document of [`router`] (feature `openapi`), from the
/// types: to merge into a gateway's document.
#[cfg(feature = "openapi")]
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    ExplainApi::openapi()
}
