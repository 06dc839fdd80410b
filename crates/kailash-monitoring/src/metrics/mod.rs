//! Metrics through the [`metrics`] facade, rendered in the Prometheus text
//! format.
//!
//! Everything kailash records goes through `metrics::counter!`,
//! `metrics::gauge!` and `metrics::histogram!`; [`MetricsRegistry::global`]
//! installs a Prometheus recorder (`metrics-exporter-prometheus`) as the
//! facade's global recorder, and its [`render`](MetricsRegistry::render) is
//! `/metrics`. Your own `metrics::counter!("orders_total").increment(1)`
//! appears there with no extra wiring. [`catalog`] lists every metric
//! kailash records; [`business`] is the seed's business-metrics helper.
//!
//! [`MetricsLayer`] records, per request:
//!
//! - `http_requests_total` — counter;
//! - `http_request_duration_seconds` — histogram of the time to the
//!   response head, with the buckets [`DURATION_BUCKETS`];
//! - `http_requests_in_flight` — gauge.
//!
//! Labels are `method` (the nine standard methods, anything else `OTHER`),
//! `route` (the matched route *template* such as `/api/data/{id}`, or
//! `unmatched`) and `status` (`1xx` … `5xx`). Raw paths, user ids and tenant
//! ids are never labels, so the number of series is bounded by your route
//! table, whatever clients send.
//!
//! The layer looks its series' handles up once per route, method and
//! status class (a shared read lock on the route table); after that a
//! request costs two atomic updates and a histogram sample.
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use kailash_monitoring::metrics::{MetricsLayer, MetricsRegistry};
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let registry = MetricsRegistry::global();
//! let app: Router = Router::new()
//!     .route("/api/data/{id}", get(|| async { "doc" }))
//!     // Router::layer runs after routing, so the route template is known.
//!     .layer(MetricsLayer::new(registry.clone()));
//! app.oneshot(http::Request::get("/api/data/7").body(Body::empty()).unwrap()).await.unwrap();
//! metrics::counter!("orders_total").increment(1); // your own
//!
//! let exposition: String = registry.render(); // serve this at /metrics
//! assert!(exposition.contains(r#"http_requests_total{method="GET",route="/api/data/{id}",status="2xx"} 1"#));
//! assert!(exposition.contains("orders_total 1"));
//! # });
//! ```
//!
//! Without axum, put a [`RouteTemplate`] into the request extensions before
//! this layer runs.

pub mod business;
pub mod catalog;
mod layer;
mod process;
mod registry;
mod service;

pub use layer::MetricsLayer;
pub use registry::{Collector, DURATION_BUCKETS, MetricsRegistry};
pub use service::{Metrics, ResponseFuture};

/// The matched route template of a request, for stacks other than axum
/// (with the `axum` feature, axum's `MatchedPath` is read directly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTemplate(pub std::sync::Arc<str>);
