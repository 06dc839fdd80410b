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
//! no tenant field: an event can only go to the caller's tenant. The body
//! is checked against the schema [`PublishRequest`] publishes (a channel
//! of `[A-Za-z0-9._:-]{1,128}`, an event type of 1-128 characters without
//! control characters, a known classification, a permission in its
//! grammar, a user of 1-64 characters): answers `202 {"id":"ms-seq"}`;
//! `422` (a pointer per violation) for a body outside the schema, `400`
//! for one that is not JSON, `415` for one that is not `application/json`,
//! `413` above [`MAX_EVENT_BYTES`], `401` without a principal, `403`
//! without the permission or a tenant, `503` when the bus is down.
//!
//! With the feature `openapi`, [`openapi`] documents this route and the
//! WebSocket and SSE endpoints.
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
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use kailash_access::AccessControl;
use kailash_access::layer::RequirePermissionLayer;
use kailash_core::schema::ValidJson;
use kailash_core::{Principal, Problem, TenantId};
use serde::{Deserialize, Serialize};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::error::RealtimeError;
use crate::event::{Event, MAX_EVENT_BYTES, Metadata};
use crate::hub::Hub;

/// The route.
pub const PATH: &str = "/api/events";
/// The permission it requires.
pub const PERMISSION: &str = "system:configure";
/// The longest user id a published event may be addressed to, in
/// characters (at most 4 bytes each: within the bus's
/// [`MAX_AUDIENCE_ID`](crate::event::MAX_AUDIENCE_ID) bytes).
pub const MAX_PUBLISH_USER_CHARS: usize = 64;

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

impl PartialSchema for PublishAudience {
    fn schema() -> RefOr<Schema> {
        let user = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_PUBLISH_USER_CHARS));
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["tenant", "channel"])),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property("user", user)
                    .required("user")
                    .additional_properties(Some(AdditionalProperties::FreeForm(false))),
            )
            .description(Some(
                "`tenant` (every connection of the tenant), `channel` (its subscribers) or `{\"user\": id}`",
            ))
            .into()
    }
}

impl ToSchema for PublishAudience {}

/// The body of `POST /api/events`.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// The channel.
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:-]+$")]
    pub channel: String,
    /// The event type (no control characters).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\x00-\\x1F\\x7F-\\x9F]+$"
    )]
    pub event: String,
    /// The payload: any JSON value.
    #[serde(default)]
    pub data: serde_json::Value,
    /// Classification and required permission.
    #[serde(default)]
    pub metadata: Metadata,
    /// Who it is for (default `tenant`).
    #[serde(default)]
    pub audience: PublishAudience,
}

/// The answer of `POST /api/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Published {
    /// The event's id (`ms-seq`), as `/ws` and `/events` carry it.
    pub id: String,
}

/// `POST /api/events` behind its permission check, publishing through `hub`.
pub fn router(hub: Hub, access: AccessControl) -> Router {
    Router::new()
        .route(
            PATH,
            post(publish).layer(DefaultBodyLimit::max(MAX_EVENT_BYTES + 1024)),
        )
        .route_layer(RequirePermissionLayer::new(PERMISSION).access(access))
        .with_state(hub)
}

/// The principal and the tenant an event goes to: the tenancy layer's
/// resolved tenant, else the token's, never the body's.
struct Publisher(TenantId);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Publisher {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Problem> {
        let Some(caller) = parts.extensions.get::<Principal>() else {
            return Err(Problem::unauthorized(None));
        };
        parts
            .extensions
            .get::<TenantId>()
            .or(caller.tenant())
            .cloned()
            .map(Self)
            .ok_or_else(|| Problem::forbidden("the caller belongs to no tenant"))
    }
}

/// Publish an event into the caller's own tenant (`system:configure`).
#[cfg_attr(feature = "openapi", utoipa::path(
    post, path = "/api/events", tag = "realtime", operation_id = "realtime_publish",
    security(("bearer" = [])),
    request_body = PublishRequest,
    responses(
        (status = 202, body = Published, description = "Published"),
        (status = 400, body = Problem, content_type = "application/problem+json", description = "The body is not JSON (or, never for a schema-valid body, the hub refused the event)"),
        (status = 401, body = Problem, content_type = "application/problem+json", description = "Not authenticated"),
        (status = 403, body = Problem, content_type = "application/problem+json", description = "Lacks `system:configure`, or the caller has no tenant"),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "The body or the serialised event is too large"),
        (status = 415, body = Problem, content_type = "application/problem+json", description = "The body is not `application/json`"),
        (status = 422, body = Problem, content_type = "application/problem+json", description = "The body does not match its schema"),
        (status = 503, body = Problem, content_type = "application/problem+json", description = "Realtime state unavailable"),
    )
))]
async fn publish(
    State(hub): State<Hub>,
    Publisher(tenant): Publisher,
    ValidJson(input): ValidJson<PublishRequest>,
) -> Response {
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
            axum::Json(Published { id: id.to_string() }),
        )
            .into_response(),
        Err(RealtimeError::EventTooLarge) => {
            Problem::payload_too_large(MAX_EVENT_BYTES).into_response()
        }
        Err(RealtimeError::State(e)) => {
            tracing::warn!(error = %e, "realtime: publishing an event failed");
            Problem::service_unavailable("realtime is temporarily unavailable").into_response()
        }
        // The schema admits only what the event checks accept; kept as
        // defence in depth.
        Err(e) => Problem::bad_request(e.to_string()).into_response(),
    }
}

/// The document of this crate's HTTP surface.
#[cfg(feature = "openapi")]
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "kailash-realtime"),
    paths(crate::ws::upgrade, crate::sse::events, publish),
    components(schemas(
        PublishRequest,
        PublishAudience,
        Published,
        Metadata,
        crate::event::Classification,
        Problem,
    ))
)]
struct Doc;

/// The OpenAPI 3.1 description of this crate's HTTP surface (feature
/// `openapi`): the WebSocket and SSE endpoints (at their default paths) and
/// `POST /api/events`, derived from the handlers and their types, for a
/// gateway to merge into its document ([`openapi_for`] places the
/// endpoints at a configuration's paths). The WebSocket's own protocol
/// (frames, close codes) is described in the crate documentation; OpenAPI
/// covers the upgrade request and its refusals.
#[cfg(feature = "openapi")]
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Doc as utoipa::OpenApi>::openapi()
}

/// [`openapi`] with the WebSocket and SSE endpoints at the paths `config`
/// serves them on (`ws_path`, `sse_path`), so a deployment that moves them
/// documents where they are.
#[cfg(feature = "openapi")]
pub fn openapi_for(config: &crate::RealtimeConfig) -> utoipa::openapi::OpenApi {
    let mut doc = openapi();
    for (default, actual) in [("/ws", &config.ws_path), ("/events", &config.sse_path)] {
        if default != actual.as_str()
            && let Some(item) = doc.paths.paths.remove(default)
        {
            doc.paths.paths.insert(actual.clone(), item);
        }
    }
    doc
}

#[cfg(all(test, feature = "openapi"))]
mod tests {
    #[test]
    fn the_document_names_the_paths_the_endpoints_are_served_on() {
        let mut config = crate::RealtimeConfig::default();
        let doc = super::openapi_for(&config);
        assert!(doc.paths.paths.contains_key("/ws") && doc.paths.paths.contains_key("/events"));
        config.ws_path = "/rt/socket".into();
        config.sse_path = "/rt/stream".into();
        let doc = super::openapi_for(&config);
        let paths: Vec<&str> = doc.paths.paths.keys().map(String::as_str).collect();
        assert_eq!(paths, ["/api/events", "/rt/socket", "/rt/stream"]);
    }
}
