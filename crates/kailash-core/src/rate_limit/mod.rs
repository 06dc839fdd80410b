//! Request rate limiting per client IP, per user and per tenant.
//!
//! [`RateLimitLayer`] charges each request to up to three GCRA buckets held
//! in the shared state ([`RateLimiter`](crate::state::RateLimiter)), so a
//! limit holds across every gateway instance on one Redis:
//!
//! - per client IP — the address resolved by
//!   [`SetRequestContextLayer`](crate::context::SetRequestContextLayer) under its
//!   trusted-proxy policy, never a raw `X-Forwarded-For`;
//! - per user and per tenant — from the [`Principal`](crate::Principal) an
//!   authentication layer inserted (requests without one skip these two).
//!
//! A refused request gets `429` problem+json with `Retry-After` and a
//! `limit` member naming the bucket (`ip`, `user` or `tenant`). When the
//! state backend cannot answer, [`FailMode`] decides: rate limits fail open
//! by default (availability over enforcement), and say so in the log.
//!
//! The in-memory backend bounds its key space, so a flood of distinct client
//! addresses cannot grow memory without limit.
//!
//! ```
//! use std::sync::Arc;
//! use http::{Request, Response, StatusCode};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use kailash_core::clock::SystemClock;
//! use kailash_core::context::SetRequestContextLayer;
//! use kailash_core::rate_limit::{Limit, RateLimitLayer};
//! use kailash_core::state::{RateQuota, SharedState};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let state = SharedState::memory(Arc::new(SystemClock));
//! let mut svc = ServiceBuilder::new()
//!     .layer(SetRequestContextLayer::new())
//!     .layer(RateLimitLayer::new(state.rate.clone(), Limit::PerIp(RateQuota::per_minute(2).unwrap())))
//!     .service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
//!     });
//!
//! for expected in [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS] {
//!     let res = svc.ready().await.unwrap().call(Request::new(())).await.unwrap();
//!     assert_eq!(res.status(), expected);
//! }
//! # });
//! ```

mod config;
mod layer;
mod service;

pub use config::{FailMode, Limit};
pub use layer::RateLimitLayer;
pub use service::{RateLimit, ResponseFuture};
