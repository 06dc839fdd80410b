//! [`RequirePermissionLayer`]: a per-route permission check, audited.
//!
//! The layer reads the verified [`Principal`](kailash_core::Principal) that
//! an authentication layer (kailash-auth's `JwtAuthLayer`) put in the
//! request, asks the [`AccessControl`](crate::AccessControl) in force — the
//! strategy, the roles and the ABAC policies bound to the permission — and
//! either passes the request on or answers `403` problem+json naming the
//! permission. Every decision, allow and deny, is recorded in the audit
//! trail with the rule that decided. A request without a principal gets
//! `401`.
//!
//! Where a policy bound to the permission reads `data.*`, the route cannot
//! decide alone: the resource is loaded by the handler. By default such a
//! condition then denies (missing attribute), so forgetting the resource
//! check can never allow. With
//! [`defer_resource`](RequirePermissionLayer::defer_resource) the layer checks
//! the roles and every condition that does not read `data.*`, inserts a
//! [`PendingResourceCheck`] into the request, and the handler finishes
//! with [`AccessControl::check`](crate::AccessControl::check) once it has
//! the resource's attributes.
//!
//! The check itself reads a compiled snapshot (no casbin call, no lock);
//! with a sink that accepts events without waiting (the JSON-lines and
//! memory sinks do) the allowed path allocates no boxed future.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use http::{Request, Response, StatusCode};
//! use kailash_access::{AccessControl, AccessPolicy};
//! use kailash_access::layer::RequirePermissionLayer;
//! use kailash_access::spec::AccessSpec;
//! use kailash_core::Principal;
//! use kailash_core::audit::MemoryAuditSink;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let spec: AccessSpec = serde_json::from_str(r#"{ "roles": [
//!     { "name": "business_user", "permissions": ["workflow:execute", "report:view"] },
//!     { "name": "data_scientist", "permissions": ["workflow:*"] }
//! ] }"#)?;
//! let audit = Arc::new(MemoryAuditSink::new());
//! let access = AccessControl::new(AccessPolicy::load(&spec).await?).audit(audit.clone());
//!
//! let create = ServiceBuilder::new()
//!     .layer(RequirePermissionLayer::new("workflow:create").access(access.clone()))
//!     .service(service_fn(|_req: Request<String>| async {
//!         Ok::<_, Infallible>(Response::new("created".to_owned()))
//!     }));
//!
//! // In a real stack JwtAuthLayer inserts the principal.
//! let as_user = |name: &str, role: &str| {
//!     let mut req = Request::new(String::new());
//!     req.extensions_mut().insert(Principal::builder(name).role(role).build());
//!     req
//! };
//! let res = create.clone().oneshot(as_user("bob", "business_user")).await?;
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//! let res = create.oneshot(as_user("dave", "data_scientist")).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(audit.events().len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod config;
#[allow(clippy::module_inception)]
mod layer;
mod service;

pub use layer::RequirePermissionLayer;
pub use service::{PendingResourceCheck, RequirePermission, ResponseFuture};
