//! [`ResponseCacheLayer`]: answers repeated `GET` and `HEAD` requests from
//! memory, without ever answering one caller with another's response.
//!
//! # Where it goes: after every check
//!
//! A stored answer skips everything *inside* the layer, so the layer goes
//! inside — after — every layer that decides whether the request may be
//! answered at all: authentication, the session check, tenancy, rate
//! limits and the route's access decision (kailash-access's
//! `RequirePermissionLayer`). Then a logout, a revoked session, a revoked
//! role or a failed ABAC condition refuses the request before it reaches
//! the cache, every time, and every allowed request is still decided and
//! audited. In axum a route layer added later wraps the ones before it,
//! so the cache is added first:
//!
//! ```text
//! .route("/api/reports", get(reports)
//!     .layer::<_, Infallible>(ResponseCacheLayer::new(store.clone())) // inner: runs last
//!     .layer(RequirePermissionLayer::new("report:view")))              // outer: decides first
//! ```
//!
//! Never put it on a route whose handler still makes an access check of
//! its own (kailash-access's `defer_resource`): that layer marks such
//! requests [`Uncacheable`] and the cache passes them by, but a handler
//! that checks by other means must insert the marker itself.
//!
//! # What is stored, for whom
//!
//! - Only responses with explicit freshness: `Cache-Control: max-age`
//!   (`s-maxage` first for shared entries) or a valid `Expires` against
//!   the response's `Date`. Nothing is guessed. `no-store`, `no-cache`,
//!   `Vary: *`, `Set-Cookie`, `text/event-stream`, trailers, statuses
//!   outside RFC 9110's heuristically cacheable set (206 excluded) and
//!   bodies over the per-entry cap are never stored; a body is copied as
//!   it streams out (never delayed, never buffered past the cap).
//! - The key is the host, path and query (the same for `GET` and `HEAD`),
//!   the resolved tenant ([`TenantId`](crate::TenantId) in the request,
//!   else the principal's), the authenticated [`Principal`](crate::Principal)
//!   (subject, session, tenant, roles and attributes) and the access
//!   policy's [`Generation`]; then the request fields the response's
//!   `Vary` names must match. The whole key is stored with the entry and
//!   compared on every lookup.
//! - A request without a principal is answered from, and fills, only
//!   shared entries, and only a `Cache-Control: public` response is shared;
//!   shared and per-principal entries never meet. A request that carries
//!   `Authorization` or `Cookie` but no principal passes by the cache.
//! - Requests: `no-store` passes by; `no-cache` (or `Pragma: no-cache`)
//!   skips the lookup but may refill; `max-age` bounds the age served.
//!   `If-None-Match` (weak comparison) or else `If-Modified-Since` is
//!   answered `304` from a stored `200`. Hits carry `Age`.
//! - The store is bounded by total bytes, bytes per entry and entries; the
//!   least recently used entry goes first ([`CacheStore`]).
//!
//! Every request through the layer is counted in
//! `kailash_cache_requests_total{outcome="hit|miss|bypass|revalidated"}`;
//! evictions in `kailash_cache_evictions_total`.
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use http::{Request, Response, StatusCode, header};
//! use kailash_core::Principal;
//! use kailash_core::cache::{CacheLimits, CacheStore, ResponseCacheLayer};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let calls = Arc::new(AtomicUsize::new(0));
//! let counted = calls.clone();
//! let store = CacheStore::new(CacheLimits::default());
//! let app = ServiceBuilder::new()
//!     // Authentication and the access decision go here, outside the cache.
//!     .layer(ResponseCacheLayer::new(store.clone()).x_cache_header(true))
//!     .service(service_fn(move |_req: Request<String>| {
//!         counted.fetch_add(1, Ordering::Relaxed);
//!         async {
//!             Ok::<_, Infallible>(
//!                 Response::builder()
//!                     .header(header::CACHE_CONTROL, "private, max-age=60")
//!                     .header(header::ETAG, "\"v1\"")
//!                     .body(String::from("report"))
//!                     .unwrap(),
//!             )
//!         }
//!     }));
//!
//! let as_bob = |etag: Option<&str>| {
//!     let mut req = Request::get("/reports");
//!     if let Some(tag) = etag {
//!         req = req.header(header::IF_NONE_MATCH, tag);
//!     }
//!     let mut req = req.body(String::new()).unwrap();
//!     // In a real stack the authentication layer inserts the principal.
//!     req.extensions_mut().insert(Principal::builder("bob").session_id("s1").build());
//!     req
//! };
//! let first = app.clone().oneshot(as_bob(None)).await?;
//! assert_eq!(first.headers()["x-cache"], "miss");
//! // The body is stored as it is read out.
//! let _ = http_body_util::BodyExt::collect(first.into_body()).await;
//!
//! let again = app.clone().oneshot(as_bob(None)).await?;
//! assert_eq!(again.headers()["x-cache"], "hit");
//! assert_eq!(again.headers()[header::AGE], "0");
//! let revalidated = app.clone().oneshot(as_bob(Some("W/\"v1\""))).await?;
//! assert_eq!(revalidated.status(), StatusCode::NOT_MODIFIED);
//!
//! // Nobody else gets Bob's answer: an anonymous caller misses.
//! let anonymous = app.clone().oneshot(Request::get("/reports").body(String::new()).unwrap()).await?;
//! assert_eq!(anonymous.headers()["x-cache"], "miss");
//! assert_eq!(calls.load(Ordering::Relaxed), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod body;
mod config;
mod directives;
mod future;
mod key;
mod layer;
mod service;
mod store;
#[cfg(test)]
mod tests;

pub use body::CacheBody;
pub use config::{CacheLimits, CacheLimitsError};
pub use future::ResponseFuture;
pub use layer::ResponseCacheLayer;
pub use service::ResponseCache;
pub use store::{CacheStore, Generation};

/// A request extension that keeps the request's answer out of every
/// response cache: the answer depends on more than the cache's key (an
/// access check the handler makes against the resource it loads).
/// kailash-access's `RequirePermissionLayer` inserts it when it leaves a
/// check to the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Uncacheable;
