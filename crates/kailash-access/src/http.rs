//! `POST /api/access/explain` (feature `axum`): an access decision with
//! every role grant and every policy condition evaluated.
//!
//! | route | permission | what |
//! |---|---|---|
//! | `POST /api/access/explain` | `audit:view` or `system:configure` | `{user?, permission, resource?, context?}` → the decision, the rule the audit trail records for it, and what each role, policy and comparison said |
//!
//! The body is read by [`ExplainInput::from_json`] (bounded; errors name
//! the field). Without `user` the caller is explained, as their token
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
//! recorded too: a malformed body, an unknown user (never named) as
//! `failure`, a directory that cannot answer (`503`) as `error`.
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
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use kailash_core::audit::{AuditDecision, AuditEvent, AuditSeverity};
use kailash_core::context::RequestContext;
use kailash_core::{Principal, Problem, TenantId};
use serde_json::json;

use crate::control::AccessControl;
use crate::explain::{ExplainInput, InputError};
use crate::layer::RequirePermissionLayer;

/// The route's path.
pub const PATH: &str = "/api/access/explain";

/// The permissions that admit a caller (any one of them).
pub const PERMISSIONS: [&str; 2] = ["audit:view", "system:configure"];

/// The audit action of an explain call.
pub const EXPLAIN_ACTION: &str = "access.explain";

/// The largest body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

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
        .route(PATH, post(explain))
        .route_layer(guard)
        .with_state(Routes { access, directory })
}

fn invalid(e: &InputError) -> Response {
    let status = if e.field.is_empty() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut problem =
        Problem::new(status, "invalid-field", "Invalid request").with_detail(e.to_string());
    if !e.field.is_empty() {
        problem = problem.with_extension("field", e.field.as_str());
    }
    problem.into_response()
}

async fn explain(State(s): State<Routes>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Some(caller) = parts.extensions.get::<Principal>().cloned() else {
        return Problem::unauthorized(None).into_response();
    };
    let ctx = parts.extensions.get::<RequestContext>().cloned();
    // The caller's resolved tenant: the tenancy layer's, else the token's.
    let tenant = parts
        .extensions
        .get::<TenantId>()
        .or(caller.tenant())
        .cloned();
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

    let bytes = match axum::body::to_bytes(Body::new(body), MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return audited(&s, refused("body too large"), || {
                Problem::payload_too_large(MAX_BODY_BYTES).into_response()
            })
            .await;
        }
    };
    let input = match serde_json::from_slice(&bytes)
        .map_err(|_| InputError {
            field: String::new(),
            message: "the body is not JSON".into(),
        })
        .and_then(|v| ExplainInput::from_json(&v))
    {
        Ok(i) => i,
        Err(e) => return audited(&s, refused("malformed request"), || invalid(&e)).await,
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
    let body = crate::explain::report(&principal, &input.permission, at, &explanation);
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

/// OpenAPI 3.1 `paths` and schemas of [`router`], to merge into a
/// gateway's document.
pub fn openapi() -> serde_json::Value {
    let problem = |d: &str| json!({ "description": d, "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } });
    let max_attr = crate::explain::MAX_ATTRIBUTES;
    let max_user = crate::explain::MAX_USERNAME_BYTES;
    json!({
        "openapi": "3.1.0",
        "info": { "title": "kailash-access", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/api/access/explain": { "post": {
                "tags": ["access"], "operationId": "explain_access",
                "summary": "Explain an access decision: every role grant and policy condition evaluated, and the rule the audit trail records (`audit:view` or `system:configure`; audited as `access.explain`)",
                "security": [{ "bearer": [] }],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ExplainRequest" } } } },
                "responses": {
                    "200": { "description": "The explanation", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Explanation" } } } },
                    "400": problem("The body is not a JSON object"),
                    "401": problem("Not authenticated"),
                    "403": problem("Neither `audit:view` nor `system:configure` is granted"),
                    "404": problem("No such user in the caller's tenant"),
                    "413": problem("The body is larger than 16 KiB"),
                    "422": problem("A field is invalid (`field` names it)"),
                    "503": problem("The user directory or the audit trail is unavailable")
                } } }
        },
        "components": { "schemas": {
            "ExplainRequest": { "type": "object", "required": ["permission"], "additionalProperties": false, "properties": {
                "user": { "type": "string", "maxLength": max_user, "description": "Username to explain for (default: the caller); only users of the caller's tenant" },
                "permission": { "type": "string", "description": "`resource:action`", "examples": ["data:read"] },
                "resource": { "type": "object", "description": format!("The resource's attributes (`data.*`): at most {max_attr} values, 4 levels, strings of 1024 bytes") },
                "context": { "type": "object", "additionalProperties": false, "properties": {
                    "time": { "type": "string", "format": "date-time", "description": "When (`current_time.*`); default now" },
                    "client_ip": { "type": "string", "description": "From where (`request.client_ip`); default the caller's address" } } } } },
            "Explanation": { "type": "object", "properties": {
                "user": { "type": "string" }, "tenant": { "type": ["string", "null"] },
                "roles": { "type": "array", "items": { "type": "string" } },
                "permission": { "type": "string" }, "at": { "type": "string", "format": "date-time" },
                "allowed": { "type": "boolean" },
                "reason": { "type": "string", "description": "The rule, exactly as the audit trail records it for this decision" },
                "strategy": { "type": "string", "enum": ["rbac", "abac", "hybrid"] },
                "steps": { "type": "array", "items": { "$ref": "#/components/schemas/ExplainStep" } } } },
            "ExplainStep": { "type": "object", "required": ["kind", "name", "outcome"], "properties": {
                "kind": { "type": "string", "enum": ["role", "policy"] }, "name": { "type": "string" },
                "outcome": { "type": "string" }, "condition": { "type": "string" },
                "clauses": { "type": "array", "items": { "type": "object", "required": ["at", "test", "outcome"], "properties": {
                    "at": { "type": "string" }, "test": { "type": "string" }, "values": { "type": "string" }, "outcome": { "type": "string" } } } } } }
        } }
    })
}
