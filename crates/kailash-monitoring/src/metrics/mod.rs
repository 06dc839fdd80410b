//! RED metrics (rate, errors, duration) for HTTP services, rendered in the
//! Prometheus text format.
//!
//! [`MetricsLayer`] records, per request:
//!
//! - `http_requests_total` — counter;
//! - `http_request_duration_seconds` — histogram of the time to the
//!   response head;
//! - `http_requests_in_flight` — gauge.
//!
//! Labels are `method` (the nine standard methods, anything else `OTHER`),
//! `route` (the matched route *template* such as `/api/data/{id}`, or
//! `unmatched`) and `status` (`1xx` … `5xx`). Raw paths, user ids and tenant
//! ids are never labels, so the number of series is bounded by your route
//! table, whatever clients send.
//!
//! The recording path takes no lock in the common case beyond a shared read
//! lock on the route table, and allocates nothing once a route has been seen.
//!
//! ```
//! use axum::{Router, routing::get};
//! use kailash_monitoring::metrics::{MetricsLayer, MetricsRegistry};
//!
//! let registry = MetricsRegistry::new();
//! let app: Router = Router::new()
//!     .route("/api/data/{id}", get(|| async { "doc" }))
//!     // Router::layer runs after routing, so the route template is known.
//!     .layer(MetricsLayer::new(registry.clone()));
//! let exposition: String = registry.render(); // serve this at /metrics
//! assert!(exposition.contains("# TYPE http_requests_total counter"));
//! ```
//!
//! Without axum, put a [`RouteTemplate`] into the request extensions before
//! this layer runs.

mod layer;
mod registry;
mod service;

pub use layer::MetricsLayer;
pub use registry::{Collector, MetricsRegistry};
pub use service::{Metrics, ResponseFuture};

/// The matched route template of a request, for stacks other than axum
/// (with the `axum` feature, axum's `MatchedPath` is read directly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTemplate(pub std::sync::Arc<str>);
