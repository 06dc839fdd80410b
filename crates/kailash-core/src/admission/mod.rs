//! Deferred admission: the guards after authentication contribute their
//! state checks to one plan, and [`AdmitLayer`] asks the backend once.
//!
//! Composed one after another, the session check, the tenant's quota and
//! the per-user and per-tenant rate limits each ask the shared state
//! themselves — one Redis round trip each. Composed *deferred*, each of
//! them adds its [`Check`](crate::state::Check) and a [`CheckOwner`] (who
//! answers for it) to the request's [`PendingAdmission`] instead, and the
//! [`AdmitLayer`] placed inside them runs the whole plan with
//! [`SharedState::admit`](crate::state::SharedState::admit): one script on
//! Redis, one synchronous call in memory. A check that does not pass is
//! answered by its owner — the same problem, the same audit event as the
//! layer would have produced on its own; a check that passes may still
//! have work to do (a session touch), which its owner returns from
//! [`CheckOwner::admitted`].
//!
//! A layer composed deferred checks nothing by itself: an [`AdmitLayer`]
//! must sit inside it (the gateway composes both). Without a
//! [`PendingAdmission`] in the request the [`AdmitLayer`] passes it on
//! untouched, so it is harmless where nothing was deferred.
//!
//! ```
//! use std::sync::Arc;
//! use http::{Request, Response, StatusCode};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use kailash_core::admission::AdmitLayer;
//! use kailash_core::clock::SystemClock;
//! use kailash_core::rate_limit::{Limit, RateLimitLayer};
//! use kailash_core::state::{RateQuota, SharedState};
//! use kailash_core::Principal;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let state = SharedState::memory(Arc::new(SystemClock));
//! let mut svc = ServiceBuilder::new()
//!     .map_request(|mut req: Request<()>| {
//!         req.extensions_mut().insert(Principal::builder("alice").build());
//!         req
//!     })
//!     // Contributes the per-user check; the AdmitLayer runs it.
//!     .layer(RateLimitLayer::new(state.rate.clone(), Limit::PerUser(RateQuota::per_minute(1).unwrap())).deferred())
//!     .layer(AdmitLayer::new(state))
//!     .service_fn(|_req: Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Empty::<bytes::Bytes>::new()))
//!     });
//!
//! for expected in [StatusCode::OK, StatusCode::TOO_MANY_REQUESTS] {
//!     let res = svc.ready().await.unwrap().call(Request::new(())).await.unwrap();
//!     assert_eq!(res.status(), expected);
//! }
//! # });
//! ```

mod layer;
mod owner;
mod service;

pub use layer::AdmitLayer;
pub use owner::{AdmissionRefused, AfterAdmit, CheckOwner, PendingAdmission, Refusal, RequestView};
pub use service::{Admit, ResponseFuture};
