//! `POST /api/events`: publish an event into the caller's own tenant.
//!
//! The route sits behind its own permission check ([`PERMISSION`],
//! `system:configure`, decided and audited by `kailash-access`) and, like
//! every API route, behind the application's `JwtAuthLayer` (and tenancy
//! layer, whose resolved tenant wins over the token's). The body:
//!
//! ```json
//! {"channel":"workflows","event":"workflow.created","data":{"id":"wf-1"},
//!  "metadata":{"classification":"internal","required_permission":"workflow:view"},
//!  "audience":"tenant"}
//! ```
//!
//! `audience` is `"tenant"` (the default: every connection of the tenant),
//! `"channel"` (the channel's subscribers) or `{"user":"alice"}`. There is
//! no tenant field: an event can only go to the caller's tenant. Answers
//! `202 {"id":"ms-seq"}`; `400` for a malformed body, `413` above
//! [`MAX_EVENT_BYTES`], `403` without the permission or a tenant, `503`
//! when the bus is down.
//!
//! ```
//! use std::sync::Arc;
//! use kailash_access::{AccessControl, AccessPolicy};
//! use kailash_access::spec::AccessSpec;
//! use kailash_auth::jwt::{Algorithm, KeySet, SigningKey, Verifier};
//! use kailash_auth::layer::JwtAuthLayer;
//! use kailash_core::clock::SystemClock;
//! use kailash_core::state::SharedState;
//! use kailash_realtime::{Hub, RealtimeConfig};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let clock = Arc::new(SystemClock);
//! let keys = Arc::new(KeySet::new(SigningKey::generate(Algorithm::ES256, "k1")?, clock.clone()));
//! let auth = JwtAuthLayer::new(Verifier::builder(keys, "https://id.example", "api").build());
//! let spec: AccessSpec = serde_json::from_str(r#"{"roles":[{"name":"admin","permissions":["system:configure"]}]}"#)?;
//! let access = AccessControl::new(AccessPolicy::load(&spec).await?);
//! let hub = Hub::builder(SharedState::memory(clock), auth.clone(), RealtimeConfig::default())
//!     .access(access.clone())
//!     .build()?;
//! // Inside the API stack (after JwtAuthLayer), next to the other /api routes.
//! let api: axum::Router = kailash_realtime::http::router(hub, access).layer(auth);
//! # let _ = api;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use kailash_access::AccessControl;
use kailash_access::layer::RequirePermissionLayer;
use kailash_core::{Principal, Problem, TenantId};
use serde::Deserialize;

use crate::error::RealtimeError;
use crate::event::{Event, MAX_EVENT_BYTES, Metadata};
use crate::hub::Hub;

/// The route.
pub const PATH: &str = "/api/events";
/// The permission it requires.
pub const PERMISSION: &str = "system:configure";

/// Who a published event is for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PublishAudience {
    /// Every connection of the tenant.
    #[default]
    Tenant,
    /// The channel's subscribers.
    Channel,
    /// One user's connections.
    User(String),
}

/// The body of `POST /api/events`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// The channel.
    pub channel: String,
    /// The event type.
    pub event: String,
    /// The payload.
    #[serde(default)]
    pub data: serde_json::Value,
    /// Classification and required permission.
    #[serde(default)]
    pub metadata: Metadata,
    /// Who it is for.
    #[serde(default)]
    pub audience: PublishAudience,
}

/// `POST /api/events` behind its permission check, publishing through `hub`.
pub fn router(hub: Hub, access: AccessControl) -> Router {
    Router::new()
        .route(PATH, post(publish))
        .route_layer(RequirePermissionLayer::new(PERMISSION).access(access))
        .with_state(hub)
}

async fn publish(State(hub): State<Hub>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Some(caller) = parts.extensions.get::<Principal>() else {
        return Problem::unauthorized(None).into_response();
    };
    // The tenancy layer's resolved tenant, else the token's: never the body's.
    let Some(tenant) = parts
        .extensions
        .get::<TenantId>()
        .or(caller.tenant())
        .cloned()
    else {
        return Problem::forbidden("the caller belongs to no tenant").into_response();
    };
    // Room for the JSON around the largest event.
    let limit = MAX_EVENT_BYTES + 1024;
    let Ok(bytes) = axum::body::to_bytes(Body::new(body), limit).await else {
        return Problem::payload_too_large(limit).into_response();
    };
    let Ok(input) = serde_json::from_slice::<PublishRequest>(&bytes) else {
        return Problem::bad_request("the body is not a valid event").into_response();
    };
    let event = Event {
        channel: input.channel,
        event: input.event,
        tenant_id: tenant,
        data: input.data,
        metadata: input.metadata,
    };
    let published = match &input.audience {
        PublishAudience::Tenant => hub.send_to_tenant(&event).await,
        PublishAudience::Channel => hub.publish_to_channel(&event).await,
        PublishAudience::User(user) => hub.send_to_user(user, &event).await,
    };
    match published {
        Ok(id) => (
            StatusCode::ACCEPTED,
            axum::Json(serde_json::json!({ "id": id.to_string() })),
        )
            .into_response(),
        Err(RealtimeError::EventTooLarge) => {
            Problem::payload_too_large(MAX_EVENT_BYTES).into_response()
        }
        Err(RealtimeError::State(e)) => {
            tracing::warn!(error = %e, "realtime: publishing an event failed");
            Problem::service_unavailable("realtime is temporarily unavailable").into_response()
        }
        Err(e) => Problem::bad_request(e.to_string()).into_response(),
    }
}

/// The OpenAPI 3.1 description of this crate's HTTP surface: the WebSocket
/// and SSE endpoints (at their default paths) and `POST /api/events`, for a
/// gateway to merge into its document. The WebSocket's own protocol
/// (frames, close codes) is described in the crate documentation; OpenAPI
/// covers the upgrade request and its refusals.
pub fn openapi() -> serde_json::Value {
    let bearer = serde_json::json!([{ "bearer": [] }]);
    serde_json::json!({
        "openapi": "3.1.0",
        "info": { "title": "kailash-realtime", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/ws": { "get": {
                "tags": ["realtime"], "operationId": "realtime_ws",
                "summary": "Authenticated WebSocket of the caller tenant's events",
                "description": "Credentials: `Authorization: Bearer`, the subprotocol pair `kailash.v1, kailash.bearer.<token>` (the server selects `kailash.v1`), or the session cookie; never a token in the URL. A missing or invalid token, or a dead session, closes the socket with 4001. Server frames: `welcome`, `event` (`{type, id, channel, event, tenant_id, data, metadata: {classification, required_permission}}`), `error` (`{type, code, detail}`), `resumed` (`{type, recovered}`). Client frames: `subscribe`, `unsubscribe`, `refresh`, `resume`. Close codes: 4001 invalid token/session or token expired, 4008 slow consumer, 4029 too many connections, 4000 idle, 4003 no tenant, 1009 message too big.",
                "security": bearer,
                "parameters": [
                    { "name": "Sec-WebSocket-Protocol", "in": "header", "required": false, "schema": { "type": "string" },
                      "description": "`kailash.v1, kailash.bearer.<token>` for browsers" }
                ],
                "responses": {
                    "101": { "description": "Switching protocols; the first frame is `welcome`" },
                    "400": { "description": "Not a WebSocket upgrade" },
                    "403": { "description": "The Origin is not allowed (cross-site WebSocket hijacking)" }
                } } },
            "/events": { "get": {
                "tags": ["realtime"], "operationId": "realtime_sse",
                "summary": "The same events as server-sent events",
                "description": "`id:` lines carry event ids; `Last-Event-ID` resumes after one (events the history no longer holds are reported as not recovered). Keep-alive comments keep proxies from closing the stream.",
                "security": bearer,
                "parameters": [
                    { "name": "Last-Event-ID", "in": "header", "required": false, "schema": { "type": "string" } }
                ],
                "responses": {
                    "200": { "description": "An event stream", "content": { "text/event-stream": { "schema": { "type": "string" } } } },
                    "401": { "description": "Missing or invalid credentials, or a dead session" },
                    "403": { "description": "The Origin is not allowed, or the caller has no tenant" }
                } } },
            "/api/events": { "post": {
                "tags": ["realtime"], "operationId": "realtime_publish",
                "summary": "Publish an event into the caller's own tenant (system:configure)",
                "security": bearer,
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["channel", "event"], "additionalProperties": false,
                    "properties": {
                        "channel": { "type": "string", "pattern": "^[A-Za-z0-9._:-]{1,128}$" },
                        "event": { "type": "string" },
                        "data": { "type": ["object", "array", "string", "number", "boolean", "null"], "description": "Any JSON value" },
                        "metadata": { "type": "object", "additionalProperties": false, "properties": {
                            "classification": { "type": "string", "enum": ["public", "internal", "confidential", "secret"] },
                            "required_permission": { "type": ["string", "null"] } } },
                        "audience": { "oneOf": [
                            { "type": "string", "enum": ["tenant", "channel"] },
                            { "type": "object", "required": ["user"], "properties": { "user": { "type": "string" } } } ] }
                    } } } } },
                "responses": {
                    "202": { "description": "Published", "content": { "application/json": { "schema": {
                        "type": "object", "properties": { "id": { "type": "string" } } } } } },
                    "400": { "description": "Not a valid event" },
                    "401": { "description": "Not authenticated" },
                    "403": { "description": "Lacks system:configure" },
                    "413": { "description": "The event is too large" },
                    "503": { "description": "Realtime state unavailable" }
                } } }
        }
    })
}
