//! [`TenancyLayer`]: which tenant a request belongs to, as a tower layer.
//!
//! The layer decides the request's tenant, checks that the tenant exists
//! and is active, charges its API-call quota, and inserts the tenant into
//! the request extensions: an `Arc<`[`Tenant`](crate::model::Tenant)`>` for
//! code that wants the whole record, and its
//! [`TenantId`](kailash_core::TenantId) for kailash-core's `TenantId`
//! extractor and everything tenant-scoped downstream. Put it after
//! authentication, so the verified token's tenant is known, and before
//! anything that reads or writes tenant data.
//!
//! A request can name its tenant in up to four ways, each enabled on the
//! layer:
//!
//! - the authenticated [`Principal`](kailash_core::Principal)'s tenant
//!   (always consulted when an authentication layer inserted a principal;
//!   authoritative, because it comes from a verified token);
//! - an `X-Tenant-ID` header ([`header`](TenancyLayer::header));
//! - a subdomain of the platform's base domain, `acme.example.com`
//!   ([`subdomains`](TenancyLayer::subdomains));
//! - a tenant's own domain, looked up in the registry
//!   ([`custom_domains`](TenancyLayer::custom_domains)).
//!
//! The attack this stops is crossing tenants: a globex user who sends
//! `X-Tenant-ID: acme`, or calls `acme.example.com` with a globex token,
//! to read acme's data through handlers that trust "the tenant". Every
//! source present must name the same tenant, so disagreement is refused
//! with `403` and audited as a warning. A request naming no tenant gets
//! `400`; a malformed header or host `400`; an unknown or inactive tenant
//! `403`; an exhausted quota `429` with `Retry-After` and a `quota` member;
//! a registry or quota backend that cannot answer `503` (tenancy fails
//! closed). All refusals are RFC 9457 problem+json, and none echoes what
//! the client sent.
//!
//! Public paths ([`public_path`](TenancyLayer::public_path),
//! [`public_prefix`](TenancyLayer::public_prefix)) pass through untouched.
//!
//! ```
//! use std::sync::Arc;
//! use http::{Request, Response, StatusCode};
//! use kailash_core::audit::MemoryAuditSink;
//! use kailash_core::clock::SystemClock;
//! use kailash_core::state::SharedState;
//! use kailash_core::{Principal, TenantId};
//! use kailash_tenancy::layer::TenancyLayer;
//! use kailash_tenancy::model::{Tenant, TenantSpec};
//! use kailash_tenancy::quota::Quotas;
//! use kailash_tenancy::registry::StaticTenantRegistry;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! // One state backend for the registry's activation flags and the quotas
//! // (memory here; Redis when several gateway instances share it).
//! let state = SharedState::memory(Arc::new(SystemClock));
//! let acme: TenantSpec =
//!     serde_json::from_value(serde_json::json!({ "id": "acme", "max_api_calls_per_day": 2 }))?;
//! let registry = Arc::new(StaticTenantRegistry::new(vec![acme], state.clone())?);
//! let audit = Arc::new(MemoryAuditSink::new());
//!
//! let svc = ServiceBuilder::new()
//!     .layer(
//!         TenancyLayer::new(registry)
//!             .header(true)
//!             .quotas(Quotas::new(state))
//!             .public_path("/health")
//!             .audit(audit.clone()),
//!     )
//!     .service(service_fn(|req: Request<()>| async move {
//!         // Handlers find the resolved tenant in the extensions.
//!         let name = req.extensions().get::<Arc<Tenant>>().map(|t| t.name.clone());
//!         Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Full::new(
//!             bytes::Bytes::from(name.unwrap_or_default()),
//!         )))
//!     }));
//!
//! let user_of = |tenant: &str| {
//!     Principal::builder("u1").tenant(TenantId::new(tenant).unwrap()).build()
//! };
//!
//! // A public path needs no tenant.
//! let res = svc.clone().oneshot(Request::get("/health").body(())?).await?;
//! assert_eq!(res.status(), StatusCode::OK);
//!
//! // A request naming no tenant is malformed.
//! let res = svc.clone().oneshot(Request::get("/orders").body(())?).await?;
//! assert_eq!(res.status(), StatusCode::BAD_REQUEST);
//!
//! // A tenant the registry does not know is refused.
//! let req = Request::get("/orders").header("x-tenant-id", "initech").body(())?;
//! let res = svc.clone().oneshot(req).await?;
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//!
//! // The token's tenant and the header disagree: refused before any lookup.
//! let mut req = Request::get("/orders").header("x-tenant-id", "acme").body(())?;
//! req.extensions_mut().insert(user_of("globex"));
//! let res = svc.clone().oneshot(req).await?;
//! assert_eq!(res.status(), StatusCode::FORBIDDEN);
//!
//! // acme's users get through, each request charged to acme's daily quota…
//! for _ in 0..2 {
//!     let mut req = Request::get("/orders").body(())?;
//!     req.extensions_mut().insert(user_of("acme"));
//!     let res = svc.clone().oneshot(req).await?;
//!     assert_eq!(res.status(), StatusCode::OK);
//! }
//! // …until it is spent.
//! let mut req = Request::get("/orders").body(())?;
//! req.extensions_mut().insert(user_of("acme"));
//! let res = svc.clone().oneshot(req).await?;
//! assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert!(res.headers().contains_key("retry-after"));
//!
//! // Every refusal after the public path is in the audit trail.
//! assert_eq!(audit.events().len(), 4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod audit;
mod charge;
mod config;
mod header;
mod host;
#[allow(clippy::module_inception)]
mod layer;
mod refusal;
mod resolve;
mod service;
mod sources;

pub use audit::AUDIT_ACTION;
pub use header::TENANT_HEADER;
pub use layer::TenancyLayer;
pub use service::{ResponseFuture, Tenancy};
